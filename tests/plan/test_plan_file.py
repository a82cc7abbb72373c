"""plan.json / fingerprint.json next to the models, load_plan_or_defaults, and configs/plan.yaml."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from scripts.plan.plan_file import PAPER_DEFAULTS, load_plan_or_defaults, make_plan, read_plan

from . import synth
from .test_fingerprint import real_cases

SMALL = 2e5


@pytest.fixture(scope="module")
def aniso_cases(tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw")
    return synth.write_nnunet_dataset(raw, 2, "Aniso", synth.ANISO_CASES, seed=2)


def test_make_plan_writes_both_files(aniso_cases, tmp_path, caplog):
    out = tmp_path / "models"
    with caplog.at_level(logging.INFO):
        plans = make_plan(aniso_cases["cases"], out, network="spine_context_resunet", num_samples_total=SMALL)
    assert (out / "plan.json").is_file() and (out / "fingerprint.json").is_file()
    assert read_plan(out) == json.loads((out / "plan.json").read_text())
    b = plans["bundle"]
    fr = plans["configurations"]["3d_fullres"]
    # nnU-Net order (z, y, x) in configurations, RAS (x, y, z) in the bundle section
    assert fr["spacing"] == pytest.approx([2.65, 0.7, 0.7]) and b["spacing"] == pytest.approx([0.7, 0.7, 2.65])
    assert b["patch_size_planned"] == fr["patch_size"][::-1] == [96, 96, 20]
    assert b["patch_size"] == [96, 96, 16]  # SpineContextResUNet needs multiples of 8
    assert b["normalization"]["scheme"] == "CTNormalization" and b["divisor"] == 8
    assert "plan (nnunet_default) written to" in caplog.text
    # the fingerprint is reused for the same cases, recomputed with clean=True
    caplog.clear()
    with caplog.at_level(logging.INFO):
        make_plan(aniso_cases["cases"], out, preset="cpu", num_samples_total=SMALL)
    assert "reusing fingerprint" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        again = make_plan(aniso_cases["cases"], out, preset="cpu", clean=True, num_samples_total=SMALL)
    assert "fingerprinting 4 labelled cases" in caplog.text and again["preset"]["name"] == "cpu"
    # RAS target spacing override
    iso = make_plan(aniso_cases["cases"], out, target_spacing=[1.0, 1.0, 2.0], num_samples_total=SMALL)
    assert iso["bundle"]["spacing"] == [1.0, 1.0, 2.0]


def test_load_plan_or_defaults(aniso_cases, tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        d = load_plan_or_defaults(tmp_path / "nowhere" / "plan.json")
    assert d["from_plan"] is False and "paper defaults" in d["source"] and "paper defaults" in caplog.text
    assert d["spacing"] == [1.0, 1.0, 1.0] and d["patch_size"] == [128, 128, 64] and d["batch_size"] == 4  # the paper: batch 4
    assert (d["a_min"], d["a_max"], d["b_min"], d["b_max"]) == (-1000.0, 2000.0, -1.0, 1.0)
    assert load_plan_or_defaults("", network="swin_unetr")["patch_size"] == [128, 128, 64]
    assert load_plan_or_defaults(None)["from_plan"] is False

    out = tmp_path / "models"
    plans = make_plan(aniso_cases["cases"], out, num_samples_total=SMALL)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        p = load_plan_or_defaults(out)  # a folder works too
    assert p["from_plan"] is True and "plan " in p["source"] and "geometry from plan" in caplog.text
    assert p["spacing"] == plans["bundle"]["spacing"] and p["patch_size"] == [96, 96, 20]
    assert load_plan_or_defaults(out / "plan.json", network="swin_unetr")["patch_size"] == [96, 96, 32]
    assert load_plan_or_defaults(out, use_plan=False)["from_plan"] is False
    props = plans["foreground_intensity_properties_per_channel"]["0"]
    assert p["clip"] == [props["percentile_00_5"], props["percentile_99_5"]]
    assert (p["mean"], p["std"]) == (props["mean"], props["std"])


def test_scale_intensity_range_equals_ct_normalisation():
    """ScaleIntensityRanged(a_min, a_max, b_min, b_max, clip) with the plan's numbers is nnU-Net's CTNormalization."""
    from monai.transforms import ScaleIntensityRange

    for norm in (PAPER_DEFAULTS["normalization"],
                 {"clip": [-120.0, 1350.0], "mean": 410.0, "std": 290.0}):
        lo, hi = norm["clip"]
        mean, std = norm["mean"], norm["std"]
        x = np.linspace(-1500, 3000, 301, dtype=np.float32)
        expected = (np.clip(x, lo, hi) - mean) / std
        t = ScaleIntensityRange(a_min=lo, a_max=hi, b_min=(lo - mean) / std, b_max=(hi - mean) / std, clip=True)
        np.testing.assert_allclose(np.asarray(t(x)), expected, rtol=1e-5, atol=1e-5)


def test_broken_plan_file_raises(tmp_path):
    (tmp_path / "plan.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_plan_or_defaults(tmp_path / "plan.json")
    (tmp_path / "plan.json").write_text(json.dumps({"configurations": {}}))
    with pytest.raises(ValueError, match="not a plan file"):
        load_plan_or_defaults(tmp_path)


def test_plan_for_real_data(real_dir, tmp_path):
    """All labelled real cases together (mixed PIR/RAS orientations); prints the plan (run with -s)."""
    plans = make_plan(real_cases(real_dir), tmp_path, network="spine_context_resunet", num_samples_total=3e6)
    b = plans["bundle"]
    assert plans["num_training"] == 3 and plans["axes"] == "ras"
    assert all(0.9 < s < 3.1 for s in b["spacing"]) and b["batch_size"] >= 2
    assert all(p % 8 == 0 for p in b["patch_size"])
    cpu = make_plan(real_cases(real_dir), tmp_path, preset="cpu", network="spine_context_resunet",
                    num_samples_total=3e6)
    print("\nreal data plan:", json.dumps({"nnunet_default": b, "cpu": cpu["bundle"],
                                           "fingerprint_stats": plans["foreground_intensity_properties_per_channel"]["0"]}))


def test_plan_yaml_runs_with_a_datalist(aniso_cases, bundle_dir, tmp_path):
    """configs/plan.yaml as `monai.bundle run plan` runs it (ConfigWorkflow, run_id 'plan'), on a datalist."""
    from monai.bundle import ConfigWorkflow

    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"training": aniso_cases["cases"][:3], "validation": aniso_cases["cases"][3:]}))
    out = tmp_path / "models"
    wf = ConfigWorkflow(config_file=str(bundle_dir / "configs" / "plan.yaml"), workflow_type=None, run_id="plan",
                        logging_file=str(bundle_dir / "configs" / "logging.conf"),
                        **{"bundle_root": str(bundle_dir), "datalist": str(datalist), "output_dir": str(out),
                           "preset": "cpu", "planner#num_samples_total": SMALL})
    wf.initialize()
    wf.run()
    wf.finalize()
    plans = read_plan(out)
    assert plans["num_training"] == 4 and plans["preset"]["name"] == "cpu"
    assert plans["bundle"]["network"] == "spine_context_resunet"
    assert load_plan_or_defaults(out)["from_plan"] is True


@pytest.mark.slow  # generates the default phantom set when it is not cached (92 s measured)
def test_plan_yaml_default_is_the_phantom_set(bundle_dir, tmp_path):
    """With no dataset_dir/datalist the plan runs on the built-in phantom set (a small one here)."""
    from monai.bundle import ConfigWorkflow

    out = tmp_path / "models"
    wf = ConfigWorkflow(config_file=str(bundle_dir / "configs" / "plan.yaml"), workflow_type=None, run_id="plan",
                        **{"bundle_root": str(bundle_dir), "phantom_dir": str(tmp_path / "phantom"), "n_phantoms": 2,
                           "output_dir": str(out), "planner#num_samples_total": SMALL})
    wf.initialize()
    wf.run()
    plans = read_plan(out)
    assert plans["num_training"] == 2 and (tmp_path / "phantom" / "dataset.json").is_file()
    p = load_plan_or_defaults(out)
    assert p["from_plan"] is True and all(s % 8 == 0 for s in p["patch_size"])
