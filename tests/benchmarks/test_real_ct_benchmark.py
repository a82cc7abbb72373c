"""benchmarks/real_ct.py: its figures on tiny constructed cases whose answers are known by hand, its world-space
label resampling, and one end-to-end run of the bundle's inference on a constructed case laid out as a real one."""
import hashlib
import importlib.util
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import REPO

spec = importlib.util.spec_from_file_location("real_ct", REPO / "benchmarks" / "real_ct.py")
real_ct = importlib.util.module_from_spec(spec)
spec.loader.exec_module(real_ct)


def _cube(shape, lo, hi):
    a = np.zeros(shape, dtype=np.uint8)
    a[tuple(slice(s, e) for s, e in zip(lo, hi))] = 1
    return a


def test_scores_of_a_constructed_case():
    # reference: a 10x10x10 cube; prediction: the same cube shifted by 2 voxels in x plus a 2x2x2 blob on the "heart"
    shape = (40, 30, 30)
    ref = _cube(shape, (10, 10, 10), (20, 20, 20))
    pred = _cube(shape, (12, 10, 10), (22, 20, 20))
    pred[30:32, 2:4, 2:4] = 1
    organ = np.zeros(shape, dtype=np.int32)
    organ[30:32, 2:4, 2:4] = 51  # heart
    organ[21:22, 10:20, 10:20] = 92  # a rib under part of the prediction's overhang (10x10 = 100 voxels)
    row = real_ct.score_case(pred, ref, spacing=(1.0, 2.0, 0.5), organ_map=organ, box=((0, 0, 0), (20, 30, 30)))
    tp, n_pred, n_ref = 800, 1000 + 8, 1000
    assert row["dice"] == pytest.approx(2 * tp / (n_pred + n_ref), abs=1e-6)
    assert row["recall"] == pytest.approx(0.8)
    assert row["pred_ml"] == pytest.approx(n_pred * 1e-3)  # 1 x 2 x 0.5 mm = 1 mm^3 per voxel
    assert row["fp_ml"] == pytest.approx((n_pred - tp) * 1e-3)
    assert row["on_structure_voxels"]["heart"] == 8 and row["on_structure_voxels"]["ribs"] == 100
    assert row["critical_share"] == pytest.approx(108 / n_pred)
    assert row["box_spine_share"] == pytest.approx(1.0)  # the box x 0..20 holds the whole reference
    assert row["box_volume_share"] == pytest.approx(0.5)
    # the shift: 2 slices of 100 voxels gained past the reference's x face and 2 lost at the other, within the 2 mm
    # band along x (1 mm voxels there); the rib's overhang is one of the gained slices
    assert row["fp_boundary_ml"] == pytest.approx(200 * 1e-3) and row["fn_boundary_ml"] == pytest.approx(200 * 1e-3)
    assert row["hd95_mm"] > 0


def test_round_trip_ceiling_is_exact_on_the_native_grid_and_loses_thin_parts_at_coarse_voxels():
    shape = (40, 40, 40)
    block = _cube(shape, (8, 8, 8), (32, 32, 32))       # 24 mm thick at 1 mm voxels
    plate = _cube(shape, (8, 8, 19), (32, 32, 21))      # 2 mm thick
    affine = np.eye(4)
    assert real_ct.round_trip_dice(block, affine, 1.0) == pytest.approx(1.0)
    assert real_ct.round_trip_dice(block, affine, 2.0) > 0.93   # at most the one face layer between two samples
    assert real_ct.round_trip_dice(plate, affine, 1.0) == pytest.approx(1.0)
    assert real_ct.round_trip_dice(plate, affine, 4.0) < 0.8   # a 2 mm plate does not survive 4 mm voxels


def test_levels_beyond_a_partial_reference_are_counted_apart():
    """A reference that labels some levels only: what the prediction marks above or below them is reported apart,
    with the Dice within the reference's slices beside the benchmark's Dice."""
    shape = (20, 20, 40)                                   # RAS: axis 2 runs inferior -> superior
    ref = _cube(shape, (5, 5, 10), (15, 15, 30))           # 10x10x20 = 2000 voxels, slices 10..29
    pred = _cube(shape, (5, 5, 4), (15, 15, 36))           # the same column, 6 slices longer at each end
    row = real_ct.score_case(pred, ref, spacing=(1.0, 1.0, 1.0))
    assert row["dice"] == pytest.approx(2 * 2000 / (3200 + 2000))
    assert row["fp_beyond_ref_levels_ml"] == pytest.approx(1200 * 1e-3)
    assert row["dice_in_ref_levels"] == pytest.approx(1.0)


def test_false_positive_regions_are_ranked_placed_and_priced():
    """Two false-positive regions beside a correct cube: the larger one, wholly above the reference and on the
    aorta, comes first with its volume, mean HU, distance, structure and the Dice without it."""
    shape = (30, 30, 40)                                   # RAS: axis 2 runs inferior -> superior
    ref = _cube(shape, (10, 10, 5), (20, 20, 15))          # 1000 voxels, slices 5..14
    pred = ref.copy()
    pred[10:20, 10:20, 25:30] = 1                          # 500 voxels above it, 10 voxels from its top face
    pred[2:4, 2:4, 8:10] = 1                               # 8 voxels within its levels, beside it
    ct = np.full(shape, 40.0)
    ct[:, :, 25:30] = 400.0
    organ = np.zeros(shape, dtype=np.int32)
    organ[10:20, 10:20, 25:30] = 52                        # aorta
    row = real_ct.score_case(pred, ref, spacing=(1.0, 1.0, 2.0), organ_map=organ, ct=ct)
    big, small = row["fp_components"]
    assert big["voxels"] == 500 and big["ml"] == pytest.approx(1.0) and big["levels"] == "above"
    assert big["mean_hu"] == pytest.approx(400.0) and big["structure"] == "aorta"
    assert big["median_distance_mm"] == pytest.approx(2.0 * 13)  # slices 25..29 lie 11..15 slices of 2 mm above 14
    assert big["dice_without"] == pytest.approx(2 * 1000 / (1008 + 1000))
    assert small["voxels"] == 8 and small["levels"] == "within" and small["structure"] is None
    assert small["dice_without"] == pytest.approx(2 * 1000 / (1500 + 1000))
    assert "| 1 | 1.0 | 400 | above |" in real_ct.fp_table([{"case": "c", **row}])
    assert real_ct.score_case(ref, ref, (1, 1, 1))["fp_components"] == []


def test_empty_prediction_scores_zero():
    ref = _cube((10, 10, 10), (2, 2, 2), (6, 6, 6))
    row = real_ct.score_case(np.zeros_like(ref), ref, (1, 1, 1), organ_map=np.zeros((10, 10, 10)))
    assert row["dice"] == 0.0 and row["recall"] == 0.0 and row["critical_share"] == 0.0


def test_overlay_colours_fp_fn_tp():
    pred = np.array([1, 1, 0, 0])
    ref = np.array([0, 1, 1, 0])
    assert real_ct.overlay_labels(pred, ref).tolist() == [1, 3, 2, 0]


def test_labels_on_another_grid_are_compared_in_world_space(tmp_path):
    # the same world-space cube written on a y-flipped grid (as the DICOM case's label) lands on the same voxels
    shape = (12, 14, 8)
    ras = np.diag([2.0, 1.5, 3.0, 1.0])
    lab = _cube(shape, (2, 3, 1), (6, 9, 5)) * 33
    flip = ras.copy()
    flip[1, 1] = -1.5
    flip[1, 3] = (shape[1] - 1) * 1.5
    nib.save(nib.Nifti1Image(lab[:, ::-1].copy(), flip), tmp_path / "flipped.nii.gz")
    out = real_ct.load_on_grid(tmp_path / "flipped.nii.gz", shape, ras)
    assert out.shape == shape and np.array_equal(out, lab)


def test_end_to_end_on_a_constructed_case(tmp_path, bundle_dir):
    """A phantom laid out as the registry's tptbox case: the JSON's Dice equals the Dice of the written mask against
    the label, the record names the weights by md5, the mask keeps the input's grid, and the montage is written."""
    from scripts.data.phantom import write_case
    from scripts.data.real_cases import REAL_CASES

    case = next(c for c in REAL_CASES if c.name == "tptbox_ct_crop")
    image, label = tmp_path / "real" / case.image, tmp_path / "real" / case.label
    image.parent.mkdir(parents=True)
    write_case(str(image), str(label), seed=7, spacing=(2.0, 2.0, 2.0), shape=(64, 64, 48), orientation="PIR")
    out = tmp_path / "out"
    rows = real_ct.run(real_dir=str(tmp_path / "real"), out_dir=str(out), coarse_to_fine=False, cases="tptbox_ct_crop",
                       spacing=[2.0, 2.0, 2.0], patch_size=[64, 64, 32], threads=1)
    record = json.loads((out / "real_ct.json").read_text())
    assert [r["case"] for r in record["cases"]] == ["tptbox_ct_crop"] == [r["case"] for r in rows]
    assert record["checkpoint_md5"] == hashlib.md5(Path(record["checkpoint"]).read_bytes()).hexdigest()
    mask_img = nib.load(out / "masks" / "tptbox_ct_crop_seg.nii.gz")
    lab_img = nib.load(label)
    assert mask_img.shape == lab_img.shape and np.allclose(mask_img.affine, lab_img.affine, atol=1e-4)
    pred, ref = np.asanyarray(mask_img.dataobj) > 0, np.asanyarray(lab_img.dataobj) > 0
    dice = 2 * (pred & ref).sum() / (pred.sum() + ref.sum())
    assert record["cases"][0]["dice"] == pytest.approx(dice, abs=1e-4)
    assert (out / "real_ct_montage.png").stat().st_size > 1000


def test_unknown_case_and_missing_checkpoint_are_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown real case"):
        real_ct.available_cases(tmp_path, ["nope"])
    (tmp_path / "verse014").mkdir()
    for name in ("sub-verse014_ct.nii.gz", "sub-verse014_seg-vert_msk.nii.gz"):
        (tmp_path / "verse014" / name).write_bytes(b"")
    with pytest.raises(SystemExit, match="missing.pt: --checkpoint does not exist"):
        real_ct.run(checkpoint=str(tmp_path / "missing.pt"), real_dir=str(tmp_path), out_dir=str(tmp_path / "o"))
