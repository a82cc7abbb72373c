#!/usr/bin/env bash
# Does label-map synthesis on phantom anatomies help the no-real-CT model? training_runs/phantom_synthesis_hn_2mm's
# recipe (mix phantom 0.5 / synthesis 0.5 / real 0, CPU recipe, hard negatives, weight average, LR 3e-4, from
# training_runs/phantom_synthesis_2mm/model.pt, verse014 0.714) with one change: the synthesis set holds the 64
# real-template cases and 64 more, each from its own phantom anatomy (synthesis.py --phantom_templates 64).
# No real CT is trained on: the two real templates give anatomy only, drawn in synthetic intensities.
# First segment: bash command.sh; later: bash command.sh --resume true.
set -euo pipefail
cd "$(dirname "$0")/../../bundle"
RUN=../training_runs/phantom_templates_noreal_2mm
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} python -m monai.bundle run training \
  --config_file "['configs/train.yaml','configs/data_mix.yaml','configs/cpu_recipe.yaml','configs/hard_negatives.yaml','configs/ema.yaml']" \
  --mix_weights "{'phantom': 0.5, 'synthesis': 0.5, 'real': 0.0}" \
  --pretrained ../training_runs/phantom_synthesis_2mm/model.pt --learning_rate 0.0003 --epochs 4 \
  --synthesis_dir data/synth_phantom_templates --synthesis_kwargs "{'phantom_templates': 64}" \
  --ckpt_dir "$RUN" --output_dir runs/phantom_templates_noreal_2mm "$@" 2>&1 | tee -a "$RUN/train.log"
