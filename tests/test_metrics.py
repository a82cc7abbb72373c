"""Per-case metrics on hand-built masks with known answers."""
import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from scipy.spatial.distance import cdist

from scripts import metrics
from scripts.metrics import METRIC_COLUMNS, adjusted_rand_index, case_metrics, case_name, summarise

N, K = 10, 2  # cube edge and offset, in voxels
SPACING = (0.8, 1.0, 2.5)


def cube(shape=(24, 24, 24), start=(6, 6, 6), n=N):
    m = np.zeros(shape, dtype=bool)
    m[tuple(slice(s, s + n) for s in start)] = True
    return m


def brute_force_assd(a, b, spacing):
    """Independent reference: MONAI's surfaces (mask minus its erosion), all-pairs distances in mm."""
    def surface_points(m):
        edge = m & ~ndimage.binary_erosion(m)
        return np.argwhere(edge) * np.asarray(spacing)

    d = cdist(surface_points(a), surface_points(b))
    return float(np.concatenate([d.min(axis=1), d.min(axis=0)]).mean())


@pytest.mark.parametrize("axis", [0, 2])
def test_offset_cubes_anisotropic(axis):
    a = cube()
    start = [6, 6, 6]
    start[axis] += K
    b = cube(start=tuple(start))
    m = case_metrics(a, b, SPACING)
    assert list(m) == METRIC_COLUMNS
    assert m["dice"] == pytest.approx((N - K) / N, rel=1e-6)  # overlap (N-K) N^2 over N^3
    assert m["iou"] == pytest.approx((N - K) / (N + K), rel=1e-6)
    assert m["voe"] == pytest.approx(1 - (N - K) / (N + K), rel=1e-6)
    # farthest surface points (the two exposed faces, 20% of the surface) are exactly K voxels apart along `axis`
    assert m["hd95_mm"] == pytest.approx(K * SPACING[axis], rel=1e-6)
    assert 0 < m["assd_mm"] < K * SPACING[axis]
    assert m["assd_mm"] == pytest.approx(brute_force_assd(a, b, SPACING), rel=1e-5)
    assert 0 < m["ari"] < 1
    assert all(math.isfinite(v) for v in m.values())


def test_parallel_plates_distances_exact():
    """One-voxel plates K apart along axis 2: every surface point is exactly K * 2.5 mm from the other plate."""
    a = np.zeros((12, 12, 12), dtype=np.uint8)
    b = np.zeros_like(a)
    a[2:10, 2:10, 4] = 1
    b[2:10, 2:10, 4 + K] = 1
    m = case_metrics(a, b, SPACING)
    assert m["dice"] == 0 and m["iou"] == 0 and m["voe"] == 1
    assert m["hd95_mm"] == pytest.approx(K * 2.5)
    assert m["assd_mm"] == pytest.approx(K * 2.5)


def test_identical_masks():
    a = cube()
    m = case_metrics(a, a.copy(), SPACING)
    assert m == {"dice": 1.0, "iou": 1.0, "voe": 0.0, "hd95_mm": 0.0, "assd_mm": 0.0, "ari": 1.0}


def test_spacing_scales_distances_not_overlap():
    a, b = cube(), cube(start=(6, 6, 6 + K))
    m1, m3 = case_metrics(a, b, None), case_metrics(a, b, 3.0)
    assert m1["hd95_mm"] == pytest.approx(K)
    assert m3["hd95_mm"] == pytest.approx(3 * K)
    assert m3["assd_mm"] == pytest.approx(3 * m1["assd_mm"], rel=1e-5)
    assert m1["dice"] == m3["dice"]


def test_torch_inputs_any_dtype_nonzero_is_foreground():
    a, b = cube(), cube(start=(6, 6, 6 + K))
    ref = case_metrics(a, b, SPACING)
    pred = torch.from_numpy(a.astype(np.float32) * 0.7)[None]  # (1, X, Y, Z) float
    label = torch.from_numpy(b.astype(np.uint8) * 5)[None, None]  # (1, 1, X, Y, Z) uint8 labels
    assert case_metrics(pred, label, torch.tensor(SPACING)) == pytest.approx(ref)


def test_one_empty_mask():
    a, empty = cube(), np.zeros((24, 24, 24), bool)
    for p, t in ((a, empty), (empty, a)):
        m = case_metrics(p, t, SPACING)
        assert (m["dice"], m["iou"], m["voe"]) == (0.0, 0.0, 1.0)
        assert m["hd95_mm"] == math.inf and m["assd_mm"] == math.inf
        assert m["ari"] == pytest.approx(0.0, abs=1e-12)


def test_both_empty_mask():
    empty = np.zeros((8, 8, 8), bool)
    m = case_metrics(empty, empty, SPACING)
    assert m == {"dice": 1.0, "iou": 1.0, "voe": 0.0, "hd95_mm": 0.0, "assd_mm": 0.0, "ari": 1.0}


def test_shape_and_spacing_errors():
    with pytest.raises(ValueError):
        case_metrics(np.zeros((4, 4, 4)), np.zeros((4, 4, 5)), SPACING)
    with pytest.raises(ValueError):
        case_metrics(cube(), cube(), (1.0, 1.0))


def test_ari_hand_computed():
    # 6 voxels, pred foreground {0,1}, label foreground {0,1,2}: index 4, expected 42/15, max 13/2 -> ARI = 12/37
    pred = np.array([1, 1, 0, 0, 0, 0])
    label = np.array([1, 1, 1, 0, 0, 0])
    assert adjusted_rand_index(pred, label) == pytest.approx(12 / 37)
    # swapping foreground/background gives the same partition, ARI is symmetric
    assert adjusted_rand_index(1 - pred, label) == pytest.approx(12 / 37)
    assert adjusted_rand_index(label, pred) == pytest.approx(12 / 37)
    assert adjusted_rand_index(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0])) == pytest.approx(0.0)


def test_ari_random_vs_structured_near_zero():
    rng = np.random.default_rng(0)
    noise = rng.random((24, 24, 24)) < 0.3
    assert abs(adjusted_rand_index(noise, cube())) < 0.01


def test_ari_both_trivial_partitions_is_one():
    full, empty = np.ones((4, 4, 4)), np.zeros((4, 4, 4))
    assert adjusted_rand_index(full, empty) == 1.0  # same one-cluster partition (documented convention)


def test_summarise_ignores_non_finite():
    rows = [
        {"dice": 0.8, "iou": 0.6, "voe": 0.4, "hd95_mm": 2.0, "assd_mm": 1.0, "ari": 0.7},
        {"dice": 0.0, "iou": 0.0, "voe": 1.0, "hd95_mm": math.inf, "assd_mm": math.inf, "ari": 0.0},
    ]
    s = summarise(rows)
    assert list(s) == METRIC_COLUMNS
    assert s["dice"] == pytest.approx(0.4)
    assert s["hd95_mm"] == pytest.approx(2.0)
    assert s["assd_mm"] == pytest.approx(1.0)
    assert math.isnan(summarise([rows[1]])["hd95_mm"])
    assert math.isnan(summarise([])["dice"])


def test_case_name():
    assert case_name("/data/sub-verse014_ct.nii.gz") == "sub-verse014_ct"
    assert case_name("x/y.nii") == "y"
    assert case_name(["a/b.nii.gz"]) == "b"
    assert metrics.case_name("plain") == "plain"
