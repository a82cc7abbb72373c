#!/usr/bin/env bash
# Create (once) the separate virtual environment that runs MONAI Label 0.8.5 over this bundle.
#
#   bash monailabel_app/make_monailabel_venv.sh        # prints the venv path on its last line
#
# Idempotent: an existing venv whose monailabel app and bundle tasks import is reused. The venv lives outside the
# repository (default ~/.cache/spine_ct_seg/monailabel-venv, override with SPINE_MONAILABEL_VENV); about 5.5 GB.
#
# Why a venv of its own (see shared/specs/bundle_conventions.md section 3.5): monailabel 0.8.5 imports torchvision at
# module level, and PyPI's torchvision does not load next to the bundle's torch 2.13.0+cpu, so this venv takes the
# matching pair torch 2.14.1 + torchvision 0.29.1 (CUDA build from PyPI, runs on CPU). Its dependencies also need
# numpy<2 and pydicom 2.x (pydicom-seg 0.4.1 fails to import with pydicom 3: MONAILabel #1841), where the bundle's
# own requirements pin pydicom 3. sam2 (a hard dependency, an sdist) is built against the installed torch without
# CUDA and without build isolation, which would otherwise download a second torch into a temporary build folder.
# The bundle's other requirements (nibabel, ignite, scikit-image, ...) are installed too, at their pinned versions,
# so the bundle's scripts import and train inside MONAI Label.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$HERE")"
VENV="${SPINE_MONAILABEL_VENV:-$HOME/.cache/spine_ct_seg/monailabel-venv}"
PY="${SPINE_MONAILABEL_PYTHON:-python3}"
STAMP="$VENV/.spine_monailabel_ok"
CHECK="import monailabel.interfaces.app, monailabel.tasks.infer.bundle, monailabel.tasks.train.bundle, monai, nibabel"

# one creator at a time (two test runs starting together would delete each other's half-made venv)
mkdir -p "$(dirname "$VENV")"
if command -v flock >/dev/null; then
    exec 9>"$VENV.lock"
    flock 9
fi

# reuse: the stamp (written after the full import check below) and a cheap import (importing torch alone takes seconds)
if [[ -f "$STAMP" ]] && "$VENV/bin/python" -c "import monailabel" >/dev/null 2>&1; then
    echo "MONAI Label venv already present"
    echo "$VENV"
    exit 0
fi

# pip warns once per package about this machine's optional local index folders; keep the log readable
quiet_pip() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

start=$(date +%s)
rm -rf "$VENV"
"$PY" -m venv "$VENV"
quiet_pip "$VENV/bin/python" -m pip install -q --upgrade pip
quiet_pip "$VENV/bin/python" -m pip install -q torch==2.14.1 torchvision==0.29.1 wheel setuptools
# the bundle's requirements without torch (2.14.1 here) and pydicom (2.x here)
REQS="$(mktemp)"
trap 'rm -f "$REQS"' EXIT
grep -v -E '^\s*(#|$|torch\b|pydicom\b)' "$REPO/requirements.txt" >"$REQS"
SAM2_BUILD_CUDA=0 quiet_pip "$VENV/bin/python" -m pip install -q --no-build-isolation \
    monailabel==0.8.5 monai==1.6.1 torch==2.14.1 torchvision==0.29.1 \
    "pydicom==2.4.5" "pynetdicom==2.1.1" "dicomweb-client==0.59.3" -r "$REQS"
"$VENV/bin/python" -c "$CHECK; import torch, torchvision, pydicom, numpy; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'monai', monai.__version__, 'pydicom', pydicom.__version__, 'numpy', numpy.__version__)"
"$VENV/bin/python" -m pip show monailabel | grep -i '^version' || true
echo "$(( $(date +%s) - start )) s" >"$STAMP"
echo "MONAI Label venv created in $(( $(date +%s) - start )) s"
echo "$VENV"
