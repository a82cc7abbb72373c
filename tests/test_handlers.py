"""CaseMetricsCSV on a tiny SupervisedEvaluator run (identity network: the prediction is the input image)."""
import csv
import logging
import math

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import DataLoader, Dataset, MetaTensor
from monai.engines import SupervisedEvaluator

from scripts.handlers import CSV_COLUMNS, CaseMetricsCSV, foreground_mask
from scripts.metrics import case_metrics

SPACING = (0.8, 1.0, 2.5)
AFFINE = torch.diag(torch.tensor([*SPACING, 1.0], dtype=torch.float64))


def box(start, n=6, shape=(16, 16, 16)):
    m = np.zeros(shape, dtype=np.float32)
    m[tuple(slice(s, s + n) for s in start)] = 1
    return m


def item(name, pred, label):
    meta = {"filename_or_obj": f"/data/{name}.nii.gz"}
    return {
        "image": MetaTensor(torch.from_numpy(pred)[None], affine=AFFINE, meta=dict(meta)),
        "label": MetaTensor(torch.from_numpy(label)[None], affine=AFFINE, meta=dict(meta)),
    }


CASES = [
    ("shifted", box((5, 5, 7)), box((5, 5, 5))),  # 2 voxels along z (2.5 mm)
    ("identical", box((4, 4, 4)), box((4, 4, 4))),
    ("missed", np.zeros((16, 16, 16), np.float32), box((4, 4, 4))),  # empty prediction -> inf distances
]


def run_evaluator(tmp_path, handler):
    data = [item(*c) for c in CASES]
    loader = DataLoader(Dataset(data), batch_size=2, num_workers=0)  # 2 iterations: 2 items, then 1
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"), val_data_loader=loader, network=torch.nn.Identity(), val_handlers=[handler]
    )
    evaluator.run()
    with open(handler.path, newline="") as f:
        return list(csv.DictReader(f))


def test_csv_rows_and_mean(tmp_path, capsys, caplog):
    handler = CaseMetricsCSV(output_dir=str(tmp_path / "eval"))
    with caplog.at_level(logging.INFO, logger="scripts.handlers"):
        rows = run_evaluator(tmp_path, handler)

    assert list(rows[0]) == CSV_COLUMNS == ["case", "dice", "iou", "voe", "hd95_mm", "assd_mm", "ari"]
    assert [r["case"] for r in rows] == ["shifted", "identical", "missed", "mean"]

    shifted, identical, missed, mean = rows
    expected = case_metrics(CASES[0][1], CASES[0][2], SPACING)
    for k, v in expected.items():
        assert float(shifted[k]) == pytest.approx(v, abs=1e-6)
    assert float(shifted["hd95_mm"]) == pytest.approx(2 * 2.5)  # spacing taken from the affine
    assert float(identical["dice"]) == 1.0 and float(identical["hd95_mm"]) == 0.0
    assert float(missed["dice"]) == 0.0 and float(missed["hd95_mm"]) == math.inf

    for col in CSV_COLUMNS[1:]:
        vals = [float(r[col]) for r in rows[:-1]]
        finite = [v for v in vals if math.isfinite(v)]
        assert math.isfinite(float(mean[col]))
        assert float(mean[col]) == pytest.approx(np.mean(finite), abs=1e-5)
        if col in ("dice", "iou", "voe", "ari"):  # overlap metrics are finite for every case
            assert len(finite) == len(vals)
    assert all(math.isfinite(float(v)) for v in shifted.values() if v != "shifted")

    line = f"mean Dice {float(mean['dice']):.3f} over 3 cases -> {handler.path}"
    assert line in capsys.readouterr().out
    assert line in caplog.text
    assert handler.summary["dice"] == pytest.approx(float(mean["dice"]), abs=1e-6)


def test_rerun_overwrites_not_appends(tmp_path):
    handler = CaseMetricsCSV(output_dir=str(tmp_path), filename="m.csv")
    run_evaluator(tmp_path, handler)
    rows = run_evaluator(tmp_path, handler)
    assert len(rows) == len(CASES) + 1


def test_config_target_instantiates(tmp_path):
    parser = ConfigParser({"h": {"_target_": "scripts.handlers.CaseMetricsCSV", "output_dir": str(tmp_path)}})
    h = parser.get_parsed_content("h")
    assert isinstance(h, CaseMetricsCSV) and h.path == str(tmp_path / "metrics.csv")


def test_foreground_mask_layouts():
    fg = np.zeros((4, 4, 4), bool)
    fg[1:3, 1:3, 1:3] = True
    onehot = np.stack([~fg, fg]).astype(np.float32)  # (2, X, Y, Z)
    labels = fg.astype(np.int64) * 3  # class indices
    assert (foreground_mask(torch.from_numpy(onehot)) == fg).all()
    assert (foreground_mask(MetaTensor(torch.from_numpy(labels)[None])) == fg).all()
    assert (foreground_mask(fg.astype(np.uint8)) == fg).all()
    with pytest.raises(ValueError):
        foreground_mask(np.zeros((1, 1, 4, 4, 4)))


def test_grid_mismatch_raises(tmp_path):
    handler = CaseMetricsCSV(output_dir=str(tmp_path))

    class State:
        output = [{"pred": torch.zeros(1, 4, 4, 4), "label": torch.zeros(1, 4, 4, 5)}]

    class Eng:
        state = State()

    with pytest.raises(ValueError, match="same grid"):
        handler(Eng())
