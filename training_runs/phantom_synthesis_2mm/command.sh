#!/usr/bin/env bash
# The binary model trained on phantom v2 + label-map synthesis only (no real CT), CPU recipe (configs/cpu_recipe.yaml).
# First segment: bash command.sh; every later segment: bash command.sh --resume true (continues from last_model.pt).
set -euo pipefail
cd "$(dirname "$0")/../../bundle"
RUN=../training_runs/phantom_synthesis_2mm
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} python -m monai.bundle run training \
  --config_file "['configs/train.yaml','configs/data_mix.yaml','configs/cpu_recipe.yaml']" \
  --mix_weights "{'phantom': 0.5, 'synthesis': 0.5, 'real': 0.0}" \
  --ckpt_dir "$RUN" --output_dir runs/phantom_synthesis_2mm "$@" 2>&1 | tee -a "$RUN/train.log"
