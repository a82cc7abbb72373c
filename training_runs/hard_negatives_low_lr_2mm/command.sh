#!/usr/bin/env bash
# Does a lower LR pay after hard_negatives_2mm_repeat? From the weights of 0.7.0 (models/model.pt, md5
# 5d618ca2992a080d6336249002bb1422, that run's best average), the same data mix, CPU recipe, hard negatives and
# weight average at a third of its LR (1e-4). Validated on verse014 after every 100 steps.
# First segment: bash command.sh; later: bash command.sh --resume true.
set -euo pipefail
cd "$(dirname "$0")/../../bundle"
RUN=../training_runs/hard_negatives_low_lr_2mm
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} python -m monai.bundle run training \
  --config_file "['configs/train.yaml','configs/data_mix.yaml','configs/cpu_recipe.yaml','configs/hard_negatives.yaml','configs/ema.yaml']" \
  --pretrained models/model.pt --learning_rate 0.0001 --epochs 6 \
  --ckpt_dir "$RUN" --output_dir runs/hard_negatives_low_lr_2mm "$@" 2>&1 | tee -a "$RUN/train.log"
