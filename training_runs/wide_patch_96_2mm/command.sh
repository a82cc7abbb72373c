#!/usr/bin/env bash
# Does a larger field of view pay? From the weights of 0.7.0 (models/model.pt, md5 5d618ca2992a080d6336249002bb1422),
# the same data mix, CPU recipe, hard negatives, weight average and LR (3e-4) as training_runs/hard_negatives_2mm_repeat,
# with 96x96x96 patches at 2 mm (a 192 mm field of view) instead of 64x64x64. Validated on verse014 after every 100 steps.
# First segment: bash command.sh; later: bash command.sh --resume true.
set -euo pipefail
cd "$(dirname "$0")/../../bundle"
RUN=../training_runs/wide_patch_96_2mm
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} python -m monai.bundle run training \
  --config_file "['configs/train.yaml','configs/data_mix.yaml','configs/cpu_recipe.yaml','configs/hard_negatives.yaml','configs/ema.yaml']" \
  --pretrained models/model.pt --learning_rate 0.0003 --epochs 8 --patch_size "[96,96,96]" \
  --ckpt_dir "$RUN" --output_dir runs/wide_patch_96_2mm "$@" 2>&1 | tee -a "$RUN/train.log"
