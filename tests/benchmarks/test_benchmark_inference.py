"""The inference benchmark's plumbing and its nnU-Net row (c): ``benchmarks/nnunet_predictor.py`` must run the bundle's
fine network on the bundle's grid and intensity scale, with nnU-Net's predictor around it."""
import importlib.util
import json

import numpy as np
import pytest
import torch

from tests.conftest import REPO

# verse014 (10 windows at 1 mm, ~15 s): the paper row scores Dice 0.669 against the reference and the nnU-Net row
# 0.685 (third-order resampling, no largest-component step). 0.6 leaves room for those pipeline differences; a wrong
# axis order or label mapping scores ~0 (an early version's one-channel "region" label gave an empty mask, Dice 0).
MIN_NNUNET_DICE_VERSE014 = 0.6


def _peer_module():
    spec = importlib.util.spec_from_file_location("nnunet_predictor", REPO / "benchmarks" / "nnunet_predictor.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nnunet_ct_normalisation_equals_the_bundle_intensity_window():
    from monai.transforms import ScaleIntensityRange

    window = {"a_min": -1000.0, "a_max": 2000.0, "b_min": -1.0, "b_max": 1.0}
    plans, dataset = _peer_module().plans_and_dataset([1.0, 1.0, 1.0], [128, 128, 64], window)
    fg = plans["foreground_intensity_properties_per_channel"]["0"]
    hu = np.array([-3000.0, -1000.0, -400.0, 0.0, 500.0, 1999.0, 2000.0, 4000.0], dtype=np.float32)
    nnunet = (np.clip(hu, fg["percentile_00_5"], fg["percentile_99_5"]) - fg["mean"]) / fg["std"]  # CTNormalization
    bundle = np.asarray(ScaleIntensityRange(**window, clip=True)(hu))
    np.testing.assert_allclose(nnunet, bundle, atol=1e-6)
    config = plans["configurations"]["3d_fullres"]
    assert config["patch_size"] == [64, 128, 128] and config["spacing"] == [1.0, 1.0, 1.0]  # (z, y, x)
    assert dataset["labels"] == {"background": 0, "spine": 1}


def test_zyx_wrapper_is_the_bundle_network_on_nnunet_axes(one_thread):
    from scripts.networks import build_network

    peer = _peer_module()
    torch.manual_seed(0)
    net = build_network("spine_context_resunet", base_filters=4).eval()
    wrapped = peer._zyx_wrapper(net)
    x_xyz = torch.randn(1, 1, 32, 24, 16)
    with torch.no_grad():
        ref = net(x_xyz)[:, 0]
        out = wrapped(x_xyz.permute(0, 1, 4, 3, 2))  # nnU-Net hands the network (z, y, x)
    assert out.shape == (1, 2, 16, 24, 32)
    assert torch.count_nonzero(out[:, 0]) == 0
    torch.testing.assert_close(out[:, 1].permute(0, 3, 2, 1), ref)
    # nnU-Net's softmax + argmax on (0, z) is the bundle's sigmoid > 0.5
    assert torch.equal(out.softmax(1).argmax(1).permute(0, 3, 2, 1), (torch.sigmoid(ref) > 0.5).long())


def test_run_rejects_unknown_configs_and_a_missing_peer(tmp_path):
    from benchmarks.benchmark_inference import run

    with pytest.raises(ValueError, match=r"unknown configuration\(s\) \['fastest'\]"):
        run(configs="fastest", volumes="verse014", memory_volume="")
    missing = tmp_path / "no-venv" / "bin" / "python"
    with pytest.raises(FileNotFoundError, match=f"{missing}: no nnU-Net peer python for config 'nnunet'"):
        run(configs="nnunet", volumes="verse014", memory_volume="", nnunet_python=str(missing))


@pytest.mark.integration  # nnU-Net v2 in its own venv (built on first use, minutes), on a real CT
@pytest.mark.slow
def test_nnunet_row_on_verse014(real_dir, peer_python, tmp_path):
    import nibabel as nib

    from benchmarks.benchmark_inference import run, volume

    results = tmp_path / "speed.json"
    run(configs="nnunet", volumes="verse014", memory_volume="", results=str(results), keep_dir=str(tmp_path / "w"),
        nnunet_python=str(peer_python))
    (row,) = json.loads(results.read_text())
    assert row["volume"] == "verse014" and row["config"] == "nnunet"
    assert row["dice"] >= MIN_NNUNET_DICE_VERSE014, row  # dice() also checks the mask has the input's shape
    assert row["peak_rss_mib"] > 0 and row["wall_s"] > 0
    assert "| verse014 | nnunet |" in results.with_suffix(".md").read_text()
    image = nib.load(str(volume("verse014")[0]))
    mask = nib.load(str(tmp_path / "w" / "verse014_nnunet" / "sub-verse014_ct_seg.nii.gz"))
    assert mask.shape == image.shape and np.allclose(mask.affine, image.affine, atol=1e-4)


def test_merge_keeps_the_rows_it_does_not_repeat(tmp_path, monkeypatch):
    """``--merge true`` replaces only the (volume, config) rows it re-runs and names the weights of each new row."""
    import subprocess
    from types import SimpleNamespace

    import benchmarks.benchmark_inference as bench

    image = tmp_path / "ct.nii.gz"
    image.write_bytes(b"")
    monkeypatch.setattr(bench, "volume", lambda name: (image, image, "verse"))
    monkeypatch.setattr(bench, "dice", lambda *a: 0.5)
    line = 'BENCH {"wall_s": 1.0, "cpu_s": 2.0, "peak_rss_mib": 3.0}'
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: SimpleNamespace(returncode=0, stdout=line, stderr=""))
    results = tmp_path / "speed.json"
    old = [{"volume": "verse014", "config": "paper", "wall_s": 9.0, "cpu_s": 9.0, "peak_rss_mib": 9.0, "dice": 0.1},
           {"volume": "verse014", "config": "fast", "wall_s": 8.0, "cpu_s": 8.0, "peak_rss_mib": 8.0, "dice": 0.2}]
    results.write_text(json.dumps(old))
    bench.run(configs="fast", volumes="verse014", memory_volume="", results=str(results), merge=True)
    rows = json.loads(results.read_text())
    assert [(r["config"], r["wall_s"]) for r in rows] == [("paper", 9.0), ("fast", 1.0)]
    assert rows[1]["weights_md5"] == bench.file_md5(bench.BUNDLE / "models" / "model.pt") and len(rows[1]["weights_md5"]) == 32
    bench.run(configs="fast", volumes="verse014", memory_volume="", results=str(results))  # no merge: only this run
    assert [r["config"] for r in json.loads(results.read_text())] == ["fast"]
