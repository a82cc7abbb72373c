#!/usr/bin/env bash
# Hard-negative patches (configs/hard_negatives.yaml: half the patch draws centre their background patches on bright
# voxels outside the spine) from the weights of 0.6.0 (models/model.pt, md5 a446cd8d7f71891d380f4f7093c36051),
# with the default data mix, the CPU recipe and the weight average of training_runs/fine_ema_2mm at its LR.
# The same command as training_runs/hard_negatives_2mm, run again because that run's weights were not kept; its
# validation curve repeats the first run's to four decimals (training on this CPU is deterministic).
# Validated on verse014 after every 100 steps. First segment: bash command.sh; later: bash command.sh --resume true.
set -euo pipefail
cd "$(dirname "$0")/../../bundle"
RUN=../training_runs/hard_negatives_2mm_repeat
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} python -m monai.bundle run training \
  --config_file "['configs/train.yaml','configs/data_mix.yaml','configs/cpu_recipe.yaml','configs/hard_negatives.yaml','configs/ema.yaml']" \
  --pretrained models/model.pt --learning_rate 0.0003 --epochs 10 \
  --ckpt_dir "$RUN" --output_dir runs/hard_negatives_2mm_repeat "$@" 2>&1 | tee -a "$RUN/train.log"
