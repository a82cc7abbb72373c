#!/usr/bin/env bash
# The shipped binary model's continuation: starts from the data-ablation model (phantom v2 + synthesis + real CT,
# 600 steps, models/model.pt md5 fe6a0eeec3902fd26459eeef56d08f08) and trains on the default data mix with the CPU recipe (configs/cpu_recipe.yaml) at a fine-tuning LR.
# First segment: bash command.sh; every later segment: bash command.sh --resume true (continues from last_model.pt).
set -euo pipefail
cd "$(dirname "$0")/../../bundle"
RUN=../training_runs/fine_mix_2mm
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} python -m monai.bundle run training \
  --config_file "['configs/train.yaml','configs/data_mix.yaml','configs/cpu_recipe.yaml']" \
  --pretrained models/model.pt --learning_rate 0.0003 \
  --ckpt_dir "$RUN" --output_dir runs/fine_mix_2mm "$@" 2>&1 | tee -a "$RUN/train.log"
