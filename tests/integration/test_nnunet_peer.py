"""Our fingerprint and planner against nnU-Net v2's own (nnunetv2 2.8.1 in a separate venv, see conftest.py).

Skipped with a reason only when the peer venv cannot be created (no package index reachable, ...).
"""
from __future__ import annotations

import json

import pytest

from scripts.plan.fingerprint import extract_fingerprint
from scripts.plan.planner import bundle_view, plan_experiment

from .conftest import PLANNERS, VECTOR_PLANNERS

pytestmark = pytest.mark.slow  # builds the nnU-Net venv on first use and runs nnU-Net's planners

STATS = ("max", "mean", "median", "min", "percentile_00_5", "percentile_99_5", "std")
PLAN_KEYS = ("spacing", "patch_size", "batch_size", "median_image_size_in_voxels", "batch_dice", "data_identifier",
             "normalization_schemes", "use_mask_for_norm", "resampling_fn_data_kwargs", "resampling_fn_seg_kwargs",
             "resampling_fn_probabilities_kwargs")
TOP_KEYS = ("transpose_forward", "transpose_backward", "original_median_spacing_after_transp",
            "original_median_shape_after_transp", "plans_name", "experiment_planner_used")


def _norm(x):
    """JSON round trip: tuples -> lists, numpy scalars -> floats/ints."""
    return json.loads(json.dumps(x, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def _plan_diffs(ours: dict, theirs: dict) -> list:
    diffs = [(k, ours[k], theirs[k]) for k in TOP_KEYS if _norm(ours[k]) != _norm(theirs[k])]
    ours_c = {k: v for k, v in ours["configurations"].items()}
    theirs_c = {k: v for k, v in theirs["configurations"].items() if k != "2d"}  # we plan 3D only
    if set(ours_c) != set(theirs_c):
        diffs.append(("configurations", sorted(ours_c), sorted(theirs_c)))
    for name in set(ours_c) & set(theirs_c):
        o, t = ours_c[name], theirs_c[name]
        if "architecture" not in t:
            if _norm(o) != _norm(t):
                diffs.append((name, o, t))
            continue
        diffs += [(name, k, o[k], t[k]) for k in PLAN_KEYS if _norm(o[k]) != _norm(t[k])]
        if o["architecture"]["network_class_name"] != t["architecture"]["network_class_name"]:
            diffs.append((name, "network_class_name"))
        oa, ta = _norm(o["architecture"]["arch_kwargs"]), _norm(t["architecture"]["arch_kwargs"])
        diffs += [(name, k, oa.get(k), v) for k, v in ta.items() if oa.get(k) != v]
    return diffs


@pytest.fixture(scope="module")
def our_fingerprints(nnunet_raw) -> dict:
    return {key: extract_fingerprint(nnunet_raw[key]["cases"], progress=False) for key in ("iso", "aniso")}


@pytest.mark.parametrize("key,ds", [("iso", "1"), ("aniso", "2")])
def test_fingerprint_matches_nnunet(nnunet_peer, our_fingerprints, key, ds):
    ours, theirs = our_fingerprints[key], nnunet_peer["datasets"][ds]["fingerprint"]
    a = ours["foreground_intensity_properties_per_channel"]["0"]
    b = theirs["foreground_intensity_properties_per_channel"]["0"]
    for stat in STATS:
        assert a[stat] == pytest.approx(b[stat], rel=1e-6, abs=1e-9), (key, stat, a[stat], b[stat])
    # the RAS-ordered fingerprint equals nnU-Net's SimpleITK order for axially stored (RAS/LPS) files
    assert ours["spacings"] == theirs["spacings"]
    assert ours["shapes_after_crop"] == [list(s) for s in theirs["shapes_after_crop"]]
    assert ours["median_relative_size_after_cropping"] == pytest.approx(theirs["median_relative_size_after_cropping"])
    if key == "iso":  # two cases have an exact-zero border: crop-to-nonzero really cropped
        assert ours["median_relative_size_after_cropping"] < 1.0


@pytest.mark.parametrize("key,ds", [("iso", "1"), ("aniso", "2")])
@pytest.mark.parametrize("planner", list(PLANNERS))
def test_plan_matches_nnunet(nnunet_peer, our_fingerprints, key, ds, planner):
    theirs = nnunet_peer["datasets"][ds]["plans"][planner]
    ours = plan_experiment(our_fingerprints[key], PLANNERS[planner], num_labels=4)
    assert _plan_diffs(ours, theirs) == []
    fr = ours["configurations"]["3d_fullres"]
    if key == "aniso":  # the anisotropy rule fired: z = 10th percentile of (2.5, 3, 3, 3) mm
        assert fr["spacing"][0] == pytest.approx(2.65)
        assert fr["architecture"]["arch_kwargs"]["kernel_sizes"][0] == [1, 3, 3]


@pytest.mark.parametrize("name,planner", [(n, p) for n, ps in VECTOR_PLANNERS.items() for p in ps])
def test_planner_vectors_match_nnunet(nnunet_peer, name, planner):
    """Fingerprints without images (512^2 spine CTs, thick slices, ties): shrink loop, 3d_lowres, tie-breaking."""
    theirs = nnunet_peer["datasets"][str(nnunet_peer["vector_ids"][name])]["plans"][planner]
    ours = plan_experiment(nnunet_peer["vectors"][name], PLANNERS[planner])
    assert _plan_diffs(ours, theirs) == []


def test_real_data_fingerprint_matches_nnunet_in_file_order(nnunet_peer):
    """The real cases mix PIR and RAS files and int16/int32 data: ``axes="file"`` reproduces nnU-Net's fingerprint
    exactly; ``axes="ras"`` has the anatomically reordered spacings/shapes."""
    if nnunet_peer.get("real_cases") is None:
        pytest.skip("real data not found in shared/data/real")
    theirs = nnunet_peer["datasets"]["3"]["fingerprint"]
    ours = extract_fingerprint(nnunet_peer["real_cases"], axes="file", progress=False)
    a = ours["foreground_intensity_properties_per_channel"]["0"]
    b = theirs["foreground_intensity_properties_per_channel"]["0"]
    for stat in STATS:
        assert a[stat] == pytest.approx(b[stat], rel=1e-6, abs=1e-9), (stat, a[stat], b[stat])
    assert ours["spacings"] == theirs["spacings"]
    assert ours["shapes_after_crop"] == [list(s) for s in theirs["shapes_after_crop"]]
    # (that both orders give the same statistics is checked in test_fingerprint; few samples suffice here)
    ras = extract_fingerprint(nnunet_peer["real_cases"], axes="ras", num_samples_total=1e5, progress=False)
    for sp_ras, sp_file in zip(ras["spacings"], ours["spacings"]):
        assert sorted(sp_ras) == pytest.approx(sorted(sp_file))
    # tptbox and verse014 are PIR: file-reversed order is (R, I, P) = (x, z, y); RAS-reversed is (z, y, x)
    for i in (0, 2):
        f = ours["shapes_after_crop"][i]
        assert ras["shapes_after_crop"][i] == [f[1], f[2], f[0]]


def test_report_comparison(nnunet_peer, our_fingerprints):
    """The side-by-side figures (printed; run with -s to see them)."""
    rows = []
    for key, ds in (("iso", "1"), ("aniso", "2")):
        a = our_fingerprints[key]["foreground_intensity_properties_per_channel"]["0"]
        b = nnunet_peer["datasets"][ds]["fingerprint"]["foreground_intensity_properties_per_channel"]["0"]
        ours = plan_experiment(our_fingerprints[key], num_labels=4)
        theirs = nnunet_peer["datasets"][ds]["plans"]["ExperimentPlanner"]["configurations"]["3d_fullres"]
        fr = ours["configurations"]["3d_fullres"]
        rows.append({"set": key, "stats_ours": a, "stats_nnunet": b,
                     "max_rel_diff": max(abs(a[s] - b[s]) / max(abs(b[s]), 1e-12) for s in STATS),
                     "fullres_ours": {k: fr[k] for k in ("spacing", "patch_size", "batch_size")}
                     | {"strides": fr["architecture"]["arch_kwargs"]["strides"]},
                     "fullres_nnunet": {k: theirs[k] for k in ("spacing", "patch_size", "batch_size")}
                     | {"strides": theirs["architecture"]["arch_kwargs"]["strides"]},
                     "bundle_ras": {k: v for k, v in bundle_view(ours).items()
                                    if k in ("spacing", "patch_size", "batch_size")}})
    print("\n" + json.dumps({"comparison": rows, "peer_timings_s": nnunet_peer["timings"]}, indent=1))
    assert all(r["max_rel_diff"] <= 1e-6 for r in rows)
