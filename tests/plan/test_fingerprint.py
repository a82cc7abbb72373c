"""The fingerprint: nnU-Net's crop, sampling rule and statistics, the axis conventions, errors, real data."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from scripts.plan.fingerprint import (
    AXIS_ORDERS,
    crop_to_nonzero,
    extract_fingerprint,
    intensity_statistics,
    load_fingerprint,
    read_case,
    save_fingerprint,
)

from . import synth

NNUNET_KEYS = {"foreground_intensity_properties_per_channel", "median_relative_size_after_cropping",
               "shapes_after_crop", "spacings"}
SMALL = 2e5  # samples for the whole data set in quick tests (nnU-Net: 1e8)


@pytest.fixture(scope="module")
def stored_three_ways(tmp_path_factory):
    """One volume (1 x 1.5 x 2 mm, 40 x 36 x 24) stored as RAS, LPS and PIR."""
    d = tmp_path_factory.mktemp("orient")
    out = {}
    for orient in ("RAS", "LPS", "PIR"):
        img, lab = d / f"{orient}.nii.gz", d / f"{orient}_seg.nii.gz"
        synth.write_case(img, lab, 5, (1.0, 1.5, 2.0), (40, 36, 24), orient, np.int16, 0)
        out[orient] = {"image": str(img), "label": str(lab)}
    return out


def test_crop_to_nonzero_like_nnunet():
    data = np.zeros((6, 7, 8), np.float32)
    data[1:5, 2:6, 1:7] = 5.0
    data[2:4, 3:5, 3:5] = 0.0  # a hole: filled, so it stays inside the mask
    seg = np.zeros_like(data)
    seg[2, 3, 3] = 2
    out, seg_c, bbox = crop_to_nonzero(data, seg)
    assert bbox == [[1, 5], [2, 6], [1, 7]] and out.shape == (4, 4, 6)
    assert seg_c.min() == 0  # the filled hole is inside: no -1 there, and the bbox is fully masked here
    empty, seg_e, bbox_e = crop_to_nonzero(np.zeros((3, 4, 5), np.float32))
    assert bbox_e == [[0, 3], [0, 4], [0, 5]] and empty.shape == (3, 4, 5) and (seg_e == -1).all()
    data2 = np.zeros((5, 5, 5), np.float32)
    data2[1:4, 1:4, 1:4] = 1
    data2[1, 1, 1] = 0  # a corner, not a hole: outside the mask -> label -1 there
    _, seg2, _ = crop_to_nonzero(data2, np.zeros_like(data2))
    assert seg2[0, 0, 0] == -1 and (seg2 == -1).sum() == 1


def test_sampling_rule_and_statistics(stored_three_ways):
    case = stored_three_ways["RAS"]
    fp = extract_fingerprint([case, case], num_samples_total=SMALL, progress=False)
    assert fp["num_foreground_samples_per_case"] == int(SMALL // 2)
    data, seg, _, _ = read_case(case["image"], case["label"])
    fg = crop_to_nonzero(data, seg)[0][crop_to_nonzero(data, seg)[1] > 0]
    one = np.random.RandomState(1234).choice(fg, int(SMALL // 2), replace=True)  # same seed for every case
    expected = intensity_statistics(np.concatenate([one, one]))
    assert fp["foreground_intensity_properties_per_channel"]["0"] == expected
    assert expected["std"] == pytest.approx(float(np.std(np.concatenate([one, one]))))
    assert np.percentile(np.concatenate([one, one]), 99.5) == pytest.approx(expected["percentile_99_5"])


def test_output_format(stored_three_ways, tmp_path):
    fp = extract_fingerprint([stored_three_ways["RAS"]], num_samples_total=SMALL, progress=False)
    assert NNUNET_KEYS <= set(fp)
    assert set(fp["foreground_intensity_properties_per_channel"]) == {"0"}
    assert set(fp["foreground_intensity_properties_per_channel"]["0"]) == {
        "max", "mean", "median", "min", "percentile_00_5", "percentile_99_5", "std"}
    assert fp["axis_order"] == AXIS_ORDERS["ras"] and fp["labels"] == [0, 1, 2, 3] and fp["n_cases"] == 1
    path = save_fingerprint(fp, tmp_path / "fp" / "fingerprint.json")
    assert load_fingerprint(path) == json.loads(json.dumps(fp))
    (tmp_path / "bad.json").write_text(json.dumps({"spacings": []}))
    with pytest.raises(ValueError, match="not a dataset fingerprint"):
        load_fingerprint(tmp_path / "bad.json")


def test_axis_conventions(stored_three_ways):
    """'ras': (z, y, x) of the RAS image, whatever the storage; 'file': SimpleITK order (file axes reversed)."""
    fps = {o: extract_fingerprint([c], num_samples_total=SMALL, progress=False) for o, c in stored_three_ways.items()}
    for o in ("RAS", "LPS", "PIR"):
        assert fps[o]["spacings"] == [[2.0, 1.5, 1.0]], o  # z, y, x
        assert fps[o]["shapes_after_crop"] == [[24, 36, 40]], o
    pir_file = extract_fingerprint([stored_three_ways["PIR"]], axes="file", num_samples_total=SMALL, progress=False)
    # PIR file axes are (y, z, x): SimpleITK reverses them to (x, z, y)
    assert pir_file["spacings"] == [[1.0, 2.0, 1.5]] and pir_file["shapes_after_crop"] == [[40, 24, 36]]
    assert pir_file["axis_order"] == AXIS_ORDERS["file"]
    # samples are drawn in SimpleITK voxel order in both modes: identical statistics for one file
    assert (pir_file["foreground_intensity_properties_per_channel"]
            == fps["PIR"]["foreground_intensity_properties_per_channel"])
    # RAS and LPS storage only flip axes: the same set of voxels, statistics close
    a = fps["RAS"]["foreground_intensity_properties_per_channel"]["0"]
    b = fps["LPS"]["foreground_intensity_properties_per_channel"]["0"]
    assert a["min"] == b["min"] and a["max"] == b["max"] and a["mean"] == pytest.approx(b["mean"], rel=0.02)


def test_read_case_matches_stored_voxels(stored_three_ways):
    img = nib.load(stored_three_ways["PIR"]["image"])
    data, seg, spacing, perm = read_case(stored_three_ways["PIR"]["image"], stored_three_ways["PIR"]["label"])
    assert data.dtype == np.float32 and seg.dtype == np.float32
    np.testing.assert_array_equal(data, np.asarray(img.dataobj).transpose(2, 1, 0))
    assert spacing == [1.0, 2.0, 1.5] and perm == [1, 2, 0]  # array (x, z, y) -> (z, y, x)


def test_empty_case_is_pooled_as_nnunet(stored_three_ways, tmp_path, caplog):
    img = nib.load(stored_three_ways["RAS"]["label"])
    empty = tmp_path / "empty_seg.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(img.shape, np.uint8), img.affine), str(empty))
    cases = [stored_three_ways["RAS"], {"image": stored_three_ways["RAS"]["image"], "label": str(empty)}]
    with caplog.at_level("WARNING"):
        fp = extract_fingerprint(cases, num_samples_total=SMALL, progress=False)
    assert "1 of 2 cases have no foreground" in caplog.text
    assert fp["num_foreground_samples_per_case"] == int(SMALL // 2) and fp["n_cases"] == 2


@pytest.mark.parametrize("cases,exc,match", [
    ([], ValueError, "no cases"),
    ([{"image": "x.nii.gz"}], ValueError, "case 0: every case needs 'image' and 'label'"),
    ([{"image": "/nonexistent/ct.nii.gz", "label": "/nonexistent/seg.nii.gz"}], FileNotFoundError,
     "case 0: image /nonexistent/ct.nii.gz is not a file"),
    ([{"image": ["a", "b"], "label": "c"}], ValueError, "one CT channel expected, got 2 images"),
])
def test_case_errors(cases, exc, match):
    with pytest.raises(exc, match=match):
        extract_fingerprint(cases, progress=False)


def test_other_errors(stored_three_ways, tmp_path):
    case = stored_three_ways["RAS"]
    with pytest.raises(ValueError, match="axes must be one of"):
        extract_fingerprint([case], axes="lps", progress=False)
    img = nib.load(case["label"])
    nib.save(nib.Nifti1Image(np.zeros((5, 5, 5), np.uint8), img.affine), str(tmp_path / "small.nii.gz"))
    with pytest.raises(ValueError, match="label shape .* differs from image shape"):
        extract_fingerprint([{"image": case["image"], "label": str(tmp_path / "small.nii.gz")}], progress=False)
    nib.save(nib.Nifti1Image(np.zeros(img.shape, np.uint8), img.affine), str(tmp_path / "zero.nii.gz"))
    with pytest.raises(ValueError, match="no foreground voxels in any case"):
        extract_fingerprint([{"image": case["image"], "label": str(tmp_path / "zero.nii.gz")}], progress=False)


def real_cases(real_dir):
    return [
        {"image": str(real_dir / "verse014" / "sub-verse014_ct.nii.gz"),
         "label": str(real_dir / "verse014" / "sub-verse014_seg-vert_msk.nii.gz")},
        {"image": str(real_dir / "ts_example_ct" / "example_ct.nii.gz"),
         "label": str(real_dir / "ts_example_ct" / "totalseg_spine_only.nii.gz")},
        {"image": str(real_dir / "tptbox_ct_crop" / "sub-ct_label-22_ct.nii.gz"),
         "label": str(real_dir / "tptbox_ct_crop" / "sub-ct_seg-vert_label-22_msk.nii.gz")},
    ]


def test_real_cases_mixed_orientations(real_dir):
    """verse014 and tptbox are PIR, ts_example_ct is RAS: in 'ras' order every spacing/shape is anatomical."""
    fp = extract_fingerprint(real_cases(real_dir), num_samples_total=3e6, progress=False)
    assert fp["n_cases"] == 3
    verse, ts, tpt = fp["spacings"]
    assert ts == pytest.approx([3.0, 3.0, 3.0], abs=1e-3) and tpt == pytest.approx([1.5, 1.5, 1.5], abs=1e-3)
    assert sorted(verse) == pytest.approx([1.0, 1.0, 2.0], abs=1e-3)
    stats = fp["foreground_intensity_properties_per_channel"]["0"]
    assert 100 < stats["mean"] < 700 and stats["percentile_00_5"] < stats["median"] < stats["percentile_99_5"]
    assert len(fp["labels"]) > 5  # VerSe ids and TotalSegmentator ids pooled
