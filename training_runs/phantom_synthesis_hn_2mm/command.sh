#!/usr/bin/env bash
# The no-real-CT model (phantom v2 + label-map synthesis only) continued with hard-negative patches
# (configs/hard_negatives.yaml) and the weight average (configs/ema.yaml): starts from
# training_runs/phantom_synthesis_2mm/model.pt (its best, verse014 0.714) at the fine-tuning LR of fine_ema_2mm.
# First segment: bash command.sh; every later segment: bash command.sh --resume true (continues from last_model.pt).
set -euo pipefail
cd "$(dirname "$0")/../../bundle"
RUN=../training_runs/phantom_synthesis_hn_2mm
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} python -m monai.bundle run training \
  --config_file "['configs/train.yaml','configs/data_mix.yaml','configs/cpu_recipe.yaml','configs/hard_negatives.yaml','configs/ema.yaml']" \
  --mix_weights "{'phantom': 0.5, 'synthesis': 0.5, 'real': 0.0}" \
  --pretrained ../training_runs/phantom_synthesis_2mm/model.pt --learning_rate 0.0003 --epochs 10 \
  --ckpt_dir "$RUN" --output_dir runs/phantom_synthesis_hn_2mm "$@" 2>&1 | tee -a "$RUN/train.log"
