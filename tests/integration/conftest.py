"""Fixtures for the integration tests (everything under tests/integration/ is marked ``integration`` by
tests/conftest.py): nnU-Net v2 itself, run once per session in its own venv (``make_nnunet_venv.sh``, through the
shared ``peer_python`` fixture) on small synthetic data sets in nnU-Net raw layout (``tests/plan/synth.py``) and on
the labelled real cases, for test_nnunet_peer.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import SHARED
from tests.plan import synth

HERE = Path(__file__).resolve().parent
#: nnU-Net planner class -> our preset
PLANNERS = {"ExperimentPlanner": "nnunet_default", "nnUNetPlannerResEncM": "resenc_m",
            "nnUNetPlannerResEncL": "resenc_l"}
#: planner-only comparisons (fake fingerprints, no images): which nnU-Net planners to run on which vector. The slow
#: ones (ResEnc on 512^2 data: 10-55 s each in nnU-Net, it builds a torch model per estimate; thin_spine, whose
#: lowres path mixed_thin also takes) are left to the offline published-vector tests.
VECTOR_PLANNERS = {
    "dataset002_synth_ct": ["ExperimentPlanner"],
    "thick_spine": ["ExperimentPlanner"],
    "small_65_5": ["ExperimentPlanner", "nnUNetPlannerResEncM", "nnUNetPlannerResEncL"],
    "ties_yx": ["ExperimentPlanner", "nnUNetPlannerResEncL"],
    "mixed_thin": ["ExperimentPlanner"],
}


@pytest.fixture(scope="session")
def nnunet_raw(tmp_path_factory) -> dict:
    """Two small labelled CT sets in nnU-Net raw layout: isotropic (~1 mm) and anisotropic (0.7x0.7x3 mm)."""
    raw = tmp_path_factory.mktemp("nnUNet_raw")
    iso = synth.write_nnunet_dataset(raw, 1, "Iso", synth.ISO_CASES, seed=1)
    aniso = synth.write_nnunet_dataset(raw, 2, "Aniso", synth.ANISO_CASES, seed=2)
    return {"raw": str(raw), "iso": iso, "aniso": aniso}


REAL_CASES = {  # nnU-Net case id -> (image, label) under shared/data/real; sorted ids = nnU-Net's case order
    "real_tptbox": ("tptbox_ct_crop/sub-ct_label-22_ct.nii.gz", "tptbox_ct_crop/sub-ct_seg-vert_label-22_msk.nii.gz"),
    "real_ts": ("ts_example_ct/example_ct.nii.gz", "ts_example_ct/totalseg_spine_only.nii.gz"),
    "real_verse": ("verse014/sub-verse014_ct.nii.gz", "verse014/sub-verse014_seg-vert_msk.nii.gz"),
}


def real_nnunet_dataset(raw) -> list | None:
    """The labelled real cases as Dataset003_Real (symlinks into shared/, nothing copied); None without them."""
    real = SHARED / "data" / "real"
    if not all((real / img).is_file() and (real / lab).is_file() for img, lab in REAL_CASES.values()):
        return None
    root = Path(raw) / "Dataset003_Real"
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(parents=True, exist_ok=True)
    cases = []
    for cid, (img, lab) in sorted(REAL_CASES.items()):
        for src, dst in ((real / img, root / "imagesTr" / f"{cid}_0000.nii.gz"),
                         (real / lab, root / "labelsTr" / f"{cid}.nii.gz")):
            if not dst.exists():
                os.symlink(src, dst)
        cases.append({"image": str(real / img), "label": str(real / lab)})
    ds = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "vertebra": 1}, "numTraining": len(cases),
          "file_ending": ".nii.gz"}
    (root / "dataset.json").write_text(json.dumps(ds))
    return cases


@pytest.fixture(scope="session")
def nnunet_peer(peer_python, nnunet_raw, tmp_path_factory) -> dict:
    """nnU-Net's fingerprint extractor + planners on the two data sets, and its planners on the fake fingerprints
    of :func:`synth.planner_vectors`; one peer process. Returns its result JSON plus our inputs."""
    work = tmp_path_factory.mktemp("nnunet_peer")
    raw, pre = nnunet_raw["raw"], str(work / "preprocessed")
    example = nnunet_raw["iso"]["cases"][0]
    vectors = synth.planner_vectors()
    plans, vector_ids = [], {}
    for ds in (1, 2):
        plans += [[ds, planner] for planner in PLANNERS]
    for i, (name, fp) in enumerate(vectors.items()):
        if name not in VECTOR_PLANNERS:
            continue
        did = 10 + i
        synth.write_fake_nnunet_dataset(raw, pre, did, name, fp, example["image"], example["label"])
        vector_ids[name] = did
        plans += [[did, planner] for planner in VECTOR_PLANNERS[name]]
    fingerprints = [1, 2]
    real = real_nnunet_dataset(raw)
    if real is not None:
        fingerprints.append(3)
    job = {"raw": raw, "preprocessed": pre, "results": str(work / "results"), "out": str(work / "peer.json"),
           "num_processes": 2, "fingerprint": fingerprints, "plans": plans}
    (work / "job.json").write_text(json.dumps(job))
    start = time.time()
    proc = subprocess.run([str(peer_python), str(HERE / "nnunet_peer.py"), str(work / "job.json")],
                          capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"nnU-Net peer run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    out = json.loads((work / "peer.json").read_text())
    out["wall_s"] = time.time() - start
    out["vector_ids"] = vector_ids
    out["vectors"] = vectors
    out["real_cases"] = real
    sys.stderr.write(f"\n[plan tests] nnU-Net {out.get('nnunetv2_version')} peer run: {out['wall_s']:.0f} s "
                     f"({', '.join(f'{k} {v:.1f}' for k, v in out['timings'].items())})\n")
    return out
