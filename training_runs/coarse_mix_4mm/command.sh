#!/usr/bin/env bash
# The coarse spine finder (configs/coarse.yaml: 4 mm, 48x48x32 patches, base_filters 4) on the default data mix of
# configs/data_mix.yaml (phantom 0.3, synthesis 0.5, real 0.2; validated on verse014, never trained on).
# First segment: bash command.sh; every later segment: bash command.sh --resume true.
set -euo pipefail
cd "$(dirname "$0")/../../bundle"
RUN=../training_runs/coarse_mix_4mm
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} python -m monai.bundle run training \
  --config_file "['configs/train.yaml','configs/data_mix.yaml','configs/coarse.yaml']" \
  --draws_per_epoch 100 --epochs 40 --val_interval 2 \
  --ckpt_dir "$RUN" --output_dir runs/coarse_mix_4mm "$@" 2>&1 | tee -a "$RUN/train.log"
