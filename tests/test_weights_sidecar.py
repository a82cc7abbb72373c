"""Weight sidecars (scripts/weights_sidecar.py): every shipped weight file carries its geometry, inference.yaml reads
it, and missing weights stop the run with one line and no output."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser

from scripts.networks import build_network
from scripts.weights_sidecar import WeightsError, build_network_from_sidecar, read_sidecar, sidecar_path, write_sidecar

BUNDLE = Path(__file__).resolve().parents[1] / "bundle"
INFO = {"network": {"name": "spine_context_resunet", "out_channels": 1, "args": {"base_filters": 4}},
        "task": "binary", "spacing": [2.0, 2.0, 2.0], "patch_size": [64, 64, 64],
        "intensity": {"a_min": -1000.0, "a_max": 2000.0, "b_min": -1.0, "b_max": 1.0}, "threshold": 0.5}


def test_sidecar_round_trip_and_one_line_errors(tmp_path):
    weights = tmp_path / "model.pt"
    with pytest.raises(WeightsError, match=r"model\.pt: weights file does not exist"):
        read_sidecar(str(weights))
    assert read_sidecar(str(weights), required="false") is None      # an optional model (the coarse one)
    torch.save(build_network(**{"name": "spine_context_resunet", "base_filters": 4}).state_dict(), weights)
    with pytest.raises(WeightsError, match=r"model\.json: no sidecar for model\.pt"):
        read_sidecar(str(weights), required=False)
    assert write_sidecar(str(weights), INFO) == sidecar_path(str(weights)) == str(tmp_path / "model.json")
    assert read_sidecar(str(weights)) == INFO
    net = build_network_from_sidecar(read_sidecar(str(weights)))
    net.load_state_dict(torch.load(weights))                          # the sidecar's network fits the weights
    Path(sidecar_path(str(weights))).write_text(json.dumps({"network": INFO["network"]}))
    with pytest.raises(WeightsError, match="sidecar lacks task, spacing, patch_size, intensity"):
        read_sidecar(str(weights))


@pytest.mark.parametrize("weights", ["model.pt", "coarse.pt"] + [f"vertebrae_cpu/{name}.pt" for name in (
    "heatmap", "teacher", "student", "student_kd_soft", "student_kd_logits")])
def test_every_shipped_weight_file_has_a_sidecar_that_fits_it(weights):
    path = BUNDLE / "models" / weights
    net = build_network_from_sidecar(read_sidecar(str(path)))
    net.load_state_dict(torch.load(path, weights_only=True))          # strict: the sidecar names the right network


def test_inference_takes_its_geometry_from_the_sidecar(tmp_path):
    weights = tmp_path / "model.pt"
    torch.save(build_network(name="spine_context_resunet", base_filters=4).state_dict(), weights)
    write_sidecar(str(weights), INFO)
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "inference.yaml"))
    parser.update({"bundle_root": str(BUNDLE), "ckpt_path": str(weights)})
    assert parser.get_parsed_content("spacing") == [2.0, 2.0, 2.0]
    assert parser.get_parsed_content("patch_size") == [64, 64, 64]
    assert parser.get_parsed_content("intensity")["a_max"] == 2000.0
    net = parser.get_parsed_content("network_def")
    assert sum(p.numel() for p in net.parameters()) == sum(
        p.numel() for p in build_network(name="spine_context_resunet", base_filters=4).parameters())
    assert parser.get_parsed_content("coarse_spacing") == [4.0, 4.0, 4.0]   # the shipped coarse.json


@pytest.mark.slow  # quick tier: > 9 s with one thread beside a 2-thread training
def test_inference_without_weights_stops_with_one_line_and_no_output(tmp_path, real_dir):
    image = real_dir / "verse014" / "sub-verse014_ct.nii.gz"
    missing = tmp_path / "none" / "model.pt"
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.yaml", "--image", str(image),
         "--output_dir", str(out), "--ckpt_path", str(missing)],
        cwd=BUNDLE, env=dict(os.environ), capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert f"{missing}: weights file does not exist" in proc.stdout + proc.stderr
    assert not out.exists() or not any(out.iterdir())                 # no mask from random weights
