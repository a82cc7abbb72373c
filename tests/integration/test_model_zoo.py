"""Model-zoo readiness, checked offline the way the MONAI model zoo's CI checks a submitted bundle.

The zoo runs `verify_metadata`, `verify_net_in_out` and `ckpt_export` as commands (run here as subprocesses of
`python -m monai.bundle`, with PYTHONPATH=bundle as the zoo's verify_bundle.py has the bundle on sys.path), then its
unit tests build `ConfigWorkflow`s in-process on a few tiny random cases: initialize -> check_properties() == [] ->
run -> finalize (the pattern of the zoo's ci/unit_tests/test_spleen_ct_segmentation.py). The metadata schema is the
copy in ../shared/specs (the zoo's CI also pre-places it: ci/prepare_schema.py), so nothing is downloaded.
"""
from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from tests.conftest import BUNDLE, SHARED

META = BUNDLE / "configs" / "metadata.json"
SCHEMA = SHARED / "specs" / "meta_schema_20240725.json"
SHIPPED = BUNDLE / "models" / "model.pt"
INFER_CFG = "configs/inference.yaml"
PATCH = [32, 32, 32]  # the smallest patch the network takes (divisor 8) that still has a 4^3 bottleneck
LEARNED_DICE = 0.5  # as in test_bundle_workflows: far above what an untrained or constant prediction scores


def monai_bundle(*args: str) -> subprocess.CompletedProcess:
    """`python -m monai.bundle <args>` from bundle/ with PYTHONPATH=bundle; raises with the log tail on failure."""
    env = dict(os.environ, PYTHONPATH=str(BUNDLE), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    proc = subprocess.run([sys.executable, "-m", "monai.bundle", *args], cwd=BUNDLE, env=env,
                          capture_output=True, text=True, timeout=600)
    proc.log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise AssertionError(f"monai.bundle {' '.join(args)} failed ({proc.returncode}):\n{proc.log[-4000:]}")
    return proc


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> Path:
    if not SCHEMA.is_file():
        pytest.skip(f"metadata schema copy not found at {SCHEMA}")
    path = tmp_path_factory.mktemp("schema") / "schema.json"
    shutil.copy(SCHEMA, path)  # verify_metadata skips the download when --filepath already exists
    return path


@pytest.fixture(scope="module")
def shipped_net():
    from scripts.networks import build_network

    net = build_network("spine_context_resunet")
    net.load_state_dict(torch.load(SHIPPED, map_location="cpu", weights_only=True), strict=True)
    return net.eval()


@pytest.fixture(scope="module")
def probe():
    """A fixed random input patch and the shipped network's output on it (the reference for the exports)."""
    return torch.randn(1, 1, *PATCH, generator=torch.Generator().manual_seed(0))


# ---- metadata ---------------------------------------------------------------------------------------------------
def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split("."))


def test_metadata_version_is_the_newest_changelog_entry():
    meta = json.loads(META.read_text())
    assert meta["version"] in meta["changelog"]
    assert meta["version"] == max(meta["changelog"], key=_version_key)
    # MONAI 1.6.1 renames optional_packages_version over required_packages_version when parsing metadata
    assert "optional_packages_version" not in meta and meta["required_packages_version"]


def test_verify_metadata_passes_against_the_schema(schema):
    proc = monai_bundle("verify_metadata", "--meta_file", str(META), "--filepath", str(schema))
    assert "metadata is verified with no error" in proc.log


def test_verify_metadata_rejects_metadata_without_a_version(schema, tmp_path):
    meta = json.loads(META.read_text())
    del meta["version"]
    bad = tmp_path / "metadata.json"
    bad.write_text(json.dumps(meta))
    from monai.bundle import verify_metadata  # in-process: the command itself is run by the test above

    with pytest.raises(ValueError, match="'version' is a required property"):
        verify_metadata(meta_file=str(bad), filepath=str(schema))


def test_metadata_output_describes_the_mask_inference_writes():
    """``outputs.pred`` is format ``segmentation``: in the MONAI bundle specification one channel whose voxel values
    are the labels ``channel_def`` names, so one channel with background 0 and spine 1 agree. MONAI Label's
    BundleInferTask takes its labels from those keys (background dropped). The network tensor's dtype stays float32,
    as ``verify_net_in_out`` checks it; ``post_processed_outputs.pred`` is the file inference.yaml writes."""
    from monai.bundle import ConfigParser

    meta = json.loads(META.read_text())
    pred = meta["network_data_format"]["outputs"]["pred"]
    written = meta["network_data_format"]["post_processed_outputs"]["pred"]
    sidecar = json.loads((BUNDLE / "models" / "model.json").read_text())
    assert pred["format"] == written["format"] == "segmentation"
    assert pred["num_channels"] == written["num_channels"] == sidecar["network"]["out_channels"] == 1
    assert pred["channel_def"] == written["channel_def"]
    values = sorted(int(k) for k in pred["channel_def"])
    assert values == [0, 1] and pred["value_range"] == written["value_range"] == [values[0], values[-1]]
    labels = {v.lower(): int(k) for k, v in pred["channel_def"].items() if v.lower() != "background"}
    assert labels == {"spine": 1}                       # what MONAI Label lists for the model
    assert pred["dtype"] == "float32" and "logit" in meta["pred_classes"]
    config = ConfigParser.load_config_file(BUNDLE / "configs" / "inference.yaml")
    (save,) = [t for t in config["postprocessing"]["transforms"] if t["_target_"] == "SaveImaged"]
    assert save["output_dtype"] == f"$numpy.{written['dtype']}"


# ---- network: shapes and exports --------------------------------------------------------------------------------
def test_verify_net_in_out():
    # spatial_shape 8*n with n=4: a 1x1x32x32x32 float32 input must give 1 output channel of the same size
    proc = monai_bundle("verify_net_in_out", "network_def", "--meta_file", str(META), "--config_file", INFER_CFG,
                        "--n", "4", "--device", "cpu")
    assert "data shape of network is verified with no error" in proc.log


def test_torchscript_export_carries_metadata_and_matches_the_network(tmp_path, shipped_net, probe):
    from monai.data import load_net_with_metadata

    ts = tmp_path / "model.ts"
    monai_bundle("ckpt_export", "network_def", "--filepath", str(ts), "--ckpt_file", str(SHIPPED),
                 "--meta_file", str(META), "--config_file", INFER_CFG)
    net, meta, extra = load_net_with_metadata(str(ts), map_location="cpu", more_extra_files=("inference.json",))
    expected = json.loads(META.read_text())
    assert meta["version"] == expected["version"]
    assert meta["required_packages_version"] == expected["required_packages_version"]
    # the config travels inside the TorchScript file; its network comes from the weights' sidecar
    assert json.loads(extra["inference.json"])["network_def"]["info"] == "@weights_sidecar"
    with torch.no_grad():
        torch.testing.assert_close(net(probe), shipped_net(probe), atol=1e-5, rtol=0)


@pytest.mark.slow  # the dynamo ONNX export in a subprocess
def test_onnx_export_matches_the_network_under_onnxruntime(tmp_path, shipped_net, probe):
    import onnxruntime as ort

    path = tmp_path / "model.onnx"
    monai_bundle("onnx_export", "network_def", "--filepath", str(path), "--ckpt_file", str(SHIPPED),
                 "--meta_file", str(META), "--config_file", INFER_CFG, "--input_shape", str([1, 1, *PATCH]))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {session.get_inputs()[0].name: probe.numpy()})
    with torch.no_grad():
        torch_out = shipped_net(probe).numpy()
    assert onnx_out.shape == torch_out.shape == (1, 1, *PATCH)
    diff = float(np.abs(onnx_out - torch_out).max())
    print(f"onnxruntime vs PyTorch max abs diff: {diff:.3g}")
    assert diff < 1e-4, f"onnxruntime output differs from PyTorch by {diff:.3g}"


# ---- ConfigWorkflow: the zoo's unit-test pattern ----------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    """Decathlon folder: 4 random 40^3 training cases (noise around an air slab and a bright block labelled L1,
    VerSe id 20), as in the zoo's unit tests, and 1 labelled test case that is a small spine phantom (~77x77x176 at
    ~1 mm), on which the shipped weights can be judged."""
    from scripts.data.phantom import write_case

    root = tmp_path_factory.mktemp("tiny")
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (root / sub).mkdir()
    for i in range(4):
        rng = np.random.default_rng(i)
        image = rng.normal(0.0, 50.0, (40, 40, 40)).astype(np.float32)
        image[:, :, :6] = -1000.0
        label = np.zeros((40, 40, 40), np.uint8)
        label[14 + i:26 + i, 15:25, 8:34] = 20
        image[label > 0] += 700.0
        nib.save(nib.Nifti1Image(image, np.eye(4)), str(root / "imagesTr" / f"case{i}.nii.gz"))
        nib.save(nib.Nifti1Image(label, np.eye(4)), str(root / "labelsTr" / f"case{i}.nii.gz"))
    write_case(str(root / "imagesTs" / "phantom0.nii.gz"), str(root / "labelsTs" / "phantom0.nii.gz"), seed=500,
               size_scale=0.3)
    return root


def train_overrides(data: Path, work: Path) -> dict:
    return {"bundle_root": str(BUNDLE), "dataset_dir": str(data), "ckpt_dir": str(work / "models"),
            "output_dir": str(work / "eval"), "epochs": 1, "cache_rate": 0.0, "num_workers": 0,
            "patch_size": PATCH}


def check_workflow(workflow) -> None:
    workflow.initialize()
    assert workflow.check_properties() == []
    workflow.run()
    workflow.finalize()


def make_workflow(workflow_type: str, configs: list[str], **override):
    from monai.bundle import ConfigWorkflow

    return ConfigWorkflow(
        workflow_type=workflow_type, config_file=[str(BUNDLE / "configs" / c) for c in configs],
        meta_file=str(META), logging_file=str(BUNDLE / "configs" / "logging.conf"), **override,
    )


@pytest.mark.slow  # a training epoch with validation (ConfigWorkflow)
def test_train_workflow(tiny_dataset, tmp_path, shipped_net):
    check_workflow(make_workflow("train", ["train.yaml"], **train_overrides(tiny_dataset, tmp_path)))
    ckpt = tmp_path / "models" / "model.pt"  # best-metric checkpoint of the one epoch's validation
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert state.keys() == shipped_net.state_dict().keys()
    assert any(not torch.equal(v, shipped_net.state_dict()[k]) for k, v in state.items())


@pytest.mark.slow  # a training epoch, then the evaluation
def test_train_evaluate_workflow(tiny_dataset, tmp_path):
    # the shipped weights on the held-out phantom; 64^3 windows (32^3 lacks the context the model was trained
    # with: measured Dice 0.03 there vs 0.84 at 64^3)
    overrides = dict(train_overrides(tiny_dataset, tmp_path), ckpt_path=str(SHIPPED), patch_size=[64, 64, 64])
    check_workflow(make_workflow("train", ["train.yaml", "evaluate.yaml"], **overrides))
    with open(tmp_path / "eval" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["case"] for r in rows] == ["phantom0", "mean"]
    assert all(math.isfinite(float(r["hd95_mm"])) for r in rows)
    assert float(rows[-1]["dice"]) > LEARNED_DICE, rows


def test_inference_workflow(tiny_dataset, tmp_path):
    image = tiny_dataset / "imagesTs" / "phantom0.nii.gz"
    out = tmp_path / "out"
    check_workflow(make_workflow("inference", ["inference.yaml"], bundle_root=str(BUNDLE), image=str(image),
                                 output_dir=str(out), ckpt_path=str(SHIPPED), patch_size=[64, 64, 64]))
    img, seg = nib.load(str(image)), nib.load(str(out / "phantom0_seg.nii.gz"))
    assert seg.shape == img.shape and seg.get_data_dtype() == np.uint8
    np.testing.assert_allclose(seg.affine, img.affine, atol=1e-4)
    mask = np.asarray(seg.dataobj)
    label = np.asarray(nib.load(str(tiny_dataset / "labelsTs" / "phantom0.nii.gz")).dataobj) > 0
    assert set(np.unique(mask)) <= {0, 1}
    dice = 2 * np.logical_and(mask > 0, label).sum() / (mask.sum() + label.sum())
    assert dice > LEARNED_DICE, dice
    assert (out / "phantom0_qc.png").is_file()
