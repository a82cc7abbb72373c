#!/usr/bin/env bash
# The shipped binary model's continuation with an exponential moving average of the weights (configs/ema.yaml,
# momentum 0.01): starts from models/model.pt of 0.5.1 (md5 1a306bb3388dc31cbb4726393e383740) and trains on the
# default data mix with the CPU recipe (configs/cpu_recipe.yaml) at the fine-tuning LR of training_runs/fine_mix_2mm,
# which is the same run without the average. It validates the average on verse014 after every 100 steps.
# First segment: bash command.sh; every later segment: bash command.sh --resume true (continues from last_model.pt).
set -euo pipefail
cd "$(dirname "$0")/../../bundle"
RUN=../training_runs/fine_ema_2mm
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} python -m monai.bundle run training \
  --config_file "['configs/train.yaml','configs/data_mix.yaml','configs/cpu_recipe.yaml','configs/ema.yaml']" \
  --pretrained models/model.pt --learning_rate 0.0003 \
  --ckpt_dir "$RUN" --output_dir runs/fine_ema_2mm "$@" 2>&1 | tee -a "$RUN/train.log"
