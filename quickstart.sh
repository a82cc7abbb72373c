#!/usr/bin/env bash
# Fresh machine -> trained spine model on the built-in phantom set -> held-out evaluation with the Dice printed.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
.venv/bin/python -m pip install -q -r requirements.txt
cd bundle
../.venv/bin/python -m monai.bundle run training --config_file "['configs/train.yaml','configs/quick.yaml']"
../.venv/bin/python -m monai.bundle run --config_file "['configs/train.yaml','configs/quick.yaml','configs/evaluate.yaml']"
