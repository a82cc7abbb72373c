#!/usr/bin/env bash
# Does label-map synthesis on phantom anatomies pay? From the weights of 0.7.0 (models/model.pt, md5
# 5d618ca2992a080d6336249002bb1422), the control's recipe (training_runs/restart_3e-4_2mm: default mix, CPU recipe,
# hard negatives, weight average, LR 3e-4) with one change: the synthesis set holds the control's 64 cases from
# the two real templates (the same bytes) and 64 more, each from its own phantom anatomy drawn in the synthesis's
# appearance (synthesis.py --phantom_templates 64), so half the synthesis draws are phantom anatomy with no phantom
# intensities. Validated on verse014 after every 100 steps.
# First segment: bash command.sh; later: bash command.sh --resume true.
set -euo pipefail
cd "$(dirname "$0")/../../bundle"
RUN=../training_runs/phantom_templates_2mm
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} python -m monai.bundle run training \
  --config_file "['configs/train.yaml','configs/data_mix.yaml','configs/cpu_recipe.yaml','configs/hard_negatives.yaml','configs/ema.yaml']" \
  --pretrained models/model.pt --learning_rate 0.0003 --epochs 4 \
  --synthesis_dir data/synth_phantom_templates --synthesis_kwargs "{'phantom_templates': 64}" \
  --ckpt_dir "$RUN" --output_dir runs/phantom_templates_2mm "$@" 2>&1 | tee -a "$RUN/train.log"
