#!/usr/bin/env bash
# The control of the runs that continue 0.7.0 at LR 3e-4 with one change (wide_patch_96_2mm, real_heavy_mix_2mm,
# synthesis_heavy_mix_2mm, four_patches_2mm): from the weights of 0.7.0 (models/model.pt, md5
# 5d618ca2992a080d6336249002bb1422), the recipe of training_runs/hard_negatives_2mm_repeat unchanged (default mix,
# CPU recipe, hard negatives, weight average, LR 3e-4). Validated on verse014 after every 100 steps.
# First segment: bash command.sh; later: bash command.sh --resume true.
set -euo pipefail
cd "$(dirname "$0")/../../bundle"
RUN=../training_runs/restart_3e-4_2mm
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} python -m monai.bundle run training \
  --config_file "['configs/train.yaml','configs/data_mix.yaml','configs/cpu_recipe.yaml','configs/hard_negatives.yaml','configs/ema.yaml']" \
  --pretrained models/model.pt --learning_rate 0.0003 --epochs 4 \
  --ckpt_dir "$RUN" --output_dir runs/restart_3e-4_2mm "$@" 2>&1 | tee -a "$RUN/train.log"
