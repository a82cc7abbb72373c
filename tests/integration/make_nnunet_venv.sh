#!/usr/bin/env bash
# Create (once) the separate virtual environment holding nnU-Net v2, the peer the plan tests compare against.
#
#   bash tests/integration/make_nnunet_venv.sh            # prints the venv path on its last line
#
# Idempotent: an existing venv whose nnunetv2 imports is reused. The venv lives outside the repository
# (default ~/.cache/spine_ct_seg/nnunet-venv, override with SPINE_PEER_VENV).
#
# torch is pinned with a constraint file: a plain `pip install nnunetv2` otherwise resolves
# dynamic-network-architectures -> timm -> torchvision 0.29.1, which drags in a multi-GB CUDA torch 2.14.1.
# With torch==2.13.0 pinned pip picks torchvision 0.28.0 (CPU torch stays 2.13.0). torchvision/timm then fail
# to import (CPU-wheel clash), but nnU-Net's fingerprint extractor and planners never import them.
set -euo pipefail

VENV="${SPINE_PEER_VENV:-$HOME/.cache/spine_ct_seg/nnunet-venv}"
PY="${SPINE_PEER_PYTHON:-python3}"
TORCH_VERSION="${SPINE_PEER_TORCH:-2.13.0}"
NNUNET_SPEC="${SPINE_PEER_NNUNET:-nnunetv2==2.8.1}"
STAMP="$VENV/.spine_peer_ok"

if [[ -f "$STAMP" ]] && "$VENV/bin/python" -c "import nnunetv2, dynamic_network_architectures" >/dev/null 2>&1; then
    echo "nnU-Net peer venv already present"
    echo "$VENV"
    exit 0
fi

# pip warns once per package about this machine's optional local index folders; keep the log readable
quiet_pip() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

start=$(date +%s)
mkdir -p "$(dirname "$VENV")"
rm -rf "$VENV"
"$PY" -m venv "$VENV"
quiet_pip "$VENV/bin/python" -m pip install -q --upgrade pip
quiet_pip "$VENV/bin/python" -m pip install -q "torch==$TORCH_VERSION"
CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
echo "torch==$TORCH_VERSION" >"$CONSTRAINTS"
quiet_pip "$VENV/bin/python" -m pip install -q -c "$CONSTRAINTS" "$NNUNET_SPEC"
"$VENV/bin/python" -c "import torch, nnunetv2; from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner; print('torch', torch.__version__)"
"$VENV/bin/python" -m pip show nnunetv2 | grep -i '^version' || true
echo "$(( $(date +%s) - start )) s" >"$STAMP"
echo "nnU-Net peer venv created in $(( $(date +%s) - start )) s"
echo "$VENV"
