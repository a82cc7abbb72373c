"""Per-vertebra Dice / Hausdorff, detection and identification rates, and the CSV."""
import csv
import math

import numpy as np
import pytest

from scripts.instances.evaluation import summarise_vertebrae, vertebra_metrics, write_vertebra_csv


def _ref():
    ref = np.zeros((30, 30, 60), np.uint8)
    ref[10:20, 10:20, 5:15] = 20
    ref[10:20, 10:20, 20:30] = 21
    ref[10:20, 10:20, 35:45] = 22
    return ref


def test_detection_identification_and_dice(tmp_path):
    ref = _ref()
    pred = np.zeros_like(ref)
    pred[ref == 20] = 20                                              # right segment, right name
    pred[ref == 21] = 19                                              # right segment, wrong name
    pred[10:20, 10:20, 35:38] = 22                                    # 30 % of L3: not detected
    pred[0:3, 0:3, 50:55] = 5                                         # a false positive
    rows, fp = vertebra_metrics(pred, ref, spacing=(1.0, 1.0, 2.0), case="c")
    by = {r["vertebra_id"]: r for r in rows}
    assert [r["name"] for r in rows] == ["L1", "L2", "L3"]
    assert by[20]["dice"] == 1.0 and by[20]["identified"] and by[20]["hd_mm"] == 0.0
    assert by[21]["detected"] and not by[21]["identified"] and by[21]["matched_id"] == 19
    assert not by[22]["detected"] and by[22]["dice"] == pytest.approx(2 * 300 / (300 + 1000))
    assert by[22]["hd_mm"] == pytest.approx(7 * 2.0)                  # 7 slices of 2 mm missing
    assert fp == 2                                                    # the L3 fragment and the stray blob
    s = summarise_vertebrae(rows)
    assert s["detection_rate"] == pytest.approx(2 / 3) and s["identification_rate"] == pytest.approx(1 / 3)
    out = write_vertebra_csv(rows, str(tmp_path / "eval" / "vertebrae.csv"))
    with open(out) as f:
        got = list(csv.DictReader(f))
    assert [g["name"] for g in got] == ["L1", "L2", "L3"] and got[1]["identified"] == "False"


def test_missing_vertebra_and_grid_mismatch():
    ref = _ref()
    rows, fp = vertebra_metrics(np.zeros_like(ref), ref)
    assert all(r["dice"] == 0 and math.isinf(r["hd_mm"]) for r in rows) and fp == 0
    with pytest.raises(ValueError, match="grids differ"):
        vertebra_metrics(np.zeros((2, 2, 2)), ref)
