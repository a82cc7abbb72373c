#!/usr/bin/env bash
# The control of training_runs/hard_negatives_2mm: the same run without configs/hard_negatives.yaml, from the weights
# of 0.6.0 (models/model.pt, md5 a446cd8d7f71891d380f4f7093c36051),
# with the default data mix, the CPU recipe and the weight average of training_runs/fine_ema_2mm at its LR.
# Validated on verse014 after every 100 steps. First segment: bash command.sh; later: bash command.sh --resume true.
set -euo pipefail
cd "$(dirname "$0")/../../bundle"
RUN=../training_runs/continue_ema_2mm
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} python -m monai.bundle run training \
  --config_file "['configs/train.yaml','configs/data_mix.yaml','configs/cpu_recipe.yaml','configs/ema.yaml']" \
  --pretrained models/model.pt --learning_rate 0.0003 --epochs 10 \
  --ckpt_dir "$RUN" --output_dir runs/continue_ema_2mm "$@" 2>&1 | tee -a "$RUN/train.log"
