"""Case validation: each bad-case kind is rejected with a one-line message naming the file."""
import gzip
import json

import nibabel as nib
import numpy as np
import pytest

from scripts.data.validation import CaseError, check, validate_case, validate_datalist

AFFINE = np.array([[0.0, 0, -1.5, 40], [-1.2, 0, 0, 30], [0, -1.0, 0, 20], [0, 0, 0, 1]])
SHAPE = (12, 10, 8)


def ct_array(shape=SHAPE, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(40, 300, size=shape)
    a[0] = -1000  # air
    a[-1, :2] = 1500  # bone
    return a.astype(np.int16)


def label_array(shape=SHAPE):
    lab = np.zeros(shape, np.uint8)
    lab[3:6, 3:6, 2:5] = 20
    lab[6:9, 3:6, 2:5] = 21
    return lab


def save(path, arr, affine=AFFINE):
    nib.save(nib.Nifti1Image(arr, affine), str(path))
    return str(path)


@pytest.fixture
def good(tmp_path):
    return save(tmp_path / "img.nii.gz", ct_array()), save(tmp_path / "lab.nii.gz", label_array())


def expect_error(path, *args, match, **kw):
    with pytest.raises(CaseError) as e:
        validate_case(*args, **kw)
    msg = str(e.value)
    assert msg.startswith(f"{path}: "), msg
    assert "\n" not in msg, msg
    assert match in msg, msg
    return msg


def test_good_case_passes(good):
    img, lab = good
    s = validate_case(img, lab)
    assert s["shape"] == SHAPE and s["label"] == lab
    np.testing.assert_allclose(s["spacing"], (1.2, 1.0, 1.5))
    assert validate_case(img)["label"] is None


def test_shape_mismatch(tmp_path, good):
    img, _ = good
    lab = save(tmp_path / "short.nii.gz", label_array((12, 10, 7)))
    expect_error(lab, img, lab, match="shape (12, 10, 7) differs from image shape (12, 10, 8)")


def test_affine_mismatch_reports_max_difference(tmp_path, good):
    img, _ = good
    aff = AFFINE.copy()
    aff[1, 3] += 0.5
    lab = save(tmp_path / "shifted.nii.gz", label_array(), aff)
    msg = expect_error(lab, img, lab, match="affine differs")
    assert "0.5 mm" in msg
    aff[1, 3] = AFFINE[1, 3] + 1e-4  # within the default 1e-3 mm tolerance
    validate_case(img, save(tmp_path / "tiny.nii.gz", label_array(), aff))
    with pytest.raises(CaseError):
        validate_case(img, str(tmp_path / "tiny.nii.gz"), atol_mm=1e-5)


def test_same_grid_in_other_axis_order_is_accepted(tmp_path, good):
    """A label stored flipped/permuted (as NIfTI labels of DICOM series often are) describes the same voxels."""
    img, _ = good
    lab_img = nib.Nifti1Image(label_array(), AFFINE)
    flipped = lab_img.as_reoriented(np.array([[1, -1], [0, 1], [2, -1]]))  # swap axes 0/1, flip two of them
    assert flipped.shape != SHAPE
    lab = str(tmp_path / "flipped.nii.gz")
    nib.save(flipped, lab)
    assert validate_case(img, lab)["label_reoriented"] is True


def test_4d_multichannel_rejected_but_trailing_singleton_ok(tmp_path):
    img4 = save(tmp_path / "multi.nii.gz", np.stack([ct_array(), ct_array(seed=1)], -1))
    expect_error(img4, img4, match="4D / multi-channel")
    img1 = save(tmp_path / "single.nii.gz", ct_array()[..., None])
    lab = save(tmp_path / "lab.nii.gz", label_array())
    assert validate_case(img1, lab)["shape"] == SHAPE
    img2d = save(tmp_path / "flat.nii.gz", ct_array()[:, :, 0])
    expect_error(img2d, img2d, match="expected a 3D volume")


def test_nan_rejected(tmp_path):
    a = ct_array().astype(np.float32)
    a[2, 2, 2] = np.nan
    img = save(tmp_path / "nan.nii.gz", a)
    expect_error(img, img, match="non-finite")


def test_normalised_intensities_rejected(tmp_path):
    a = np.random.default_rng(0).random(SHAPE).astype(np.float32)  # 0..1
    img = save(tmp_path / "norm.nii.gz", a)
    expect_error(img, img, match="normalised")
    z = ((ct_array() - 40.0) / 300.0).astype(np.float32)  # z-scored: has negatives but no air, tiny span
    img = save(tmp_path / "zscore.nii.gz", z)
    expect_error(img, img, match="normalised")


def test_out_of_ct_range_rejected(tmp_path):
    a = ct_array().astype(np.int32)
    a[0, 0, 0] = 70000
    img = save(tmp_path / "big.nii.gz", a)
    expect_error(img, img, match="outside the CT range")


def test_missing_label_file(tmp_path, good):
    img, _ = good
    lab = str(tmp_path / "nolabel.nii.gz")
    expect_error(lab, img, lab, match="does not exist")
    expect_error(str(tmp_path / "noimg.nii.gz"), str(tmp_path / "noimg.nii.gz"), match="image file does not exist")


def test_corrupt_files(tmp_path, good):
    img, _ = good
    garbage = tmp_path / "garbage.nii.gz"
    garbage.write_bytes(b"this is not a nifti file at all" * 10)
    expect_error(str(garbage), str(garbage), match="cannot read image")
    # valid header, truncated data
    whole = gzip.decompress(open(good[1], "rb").read())
    trunc = tmp_path / "truncated.nii.gz"
    trunc.write_bytes(gzip.compress(whole[: len(whole) // 2]))
    expect_error(str(trunc), img, str(trunc), match="cannot read label data")
    empty_dir = tmp_path / "emptydir"
    empty_dir.mkdir()
    expect_error(str(empty_dir), str(empty_dir), match="without DICOM")


def test_bad_label_values(tmp_path, good):
    img, _ = good
    neg = label_array().astype(np.int16)
    neg[0, 0, 0] = -1
    p = save(tmp_path / "neg.nii.gz", neg)
    expect_error(p, img, p, match="negative")
    frac = label_array().astype(np.float32)
    frac[0, 0, 0] = 0.5
    p = save(tmp_path / "frac.nii.gz", frac)
    expect_error(p, img, p, match="non-integer")
    validate_case(img, save(tmp_path / "float_ok.nii.gz", label_array().astype(np.float32)))


def test_validate_datalist_collects_all_errors(tmp_path, good):
    img, lab = good
    short = save(tmp_path / "short.nii.gz", label_array((12, 10, 7)))
    norm = save(tmp_path / "norm.nii.gz", np.random.default_rng(0).random(SHAPE).astype(np.float32))
    items = [
        {"image": img, "label": lab},
        {"image": img, "label": short},
        {"image": norm, "label": lab},
        {"image": img, "label": str(tmp_path / "missing.nii.gz")},
        {"image": img, "label": lab, "label_map": "not_a_map"},
    ]
    with pytest.raises(CaseError) as e:
        validate_datalist(items, progress=False)
    lines = str(e.value).splitlines()
    assert lines[0] == "4 of 5 cases failed validation:"
    assert len(lines) == 5
    assert short in lines[1] and norm in lines[2] and "missing.nii.gz" in lines[3] and "not_a_map" in lines[4]
    ok = items[:1] + [{"image": img}]
    assert validate_datalist(ok, progress=False) is ok


def test_check_cli(tmp_path, good, capsys):
    ds = tmp_path / "ds"
    (ds / "imagesTr").mkdir(parents=True)
    (ds / "labelsTr").mkdir()
    for c in ("a", "b"):
        save(ds / "imagesTr" / f"{c}_0000.nii.gz", ct_array())
        save(ds / "labelsTr" / f"{c}.nii.gz", label_array())
    check(dataset_dir=str(ds))
    assert "OK: 2 cases valid" in capsys.readouterr().out
    save(ds / "labelsTr" / "b.nii.gz", label_array((12, 10, 7)))
    with pytest.raises(SystemExit) as e:
        check(dataset_dir=str(ds))
    assert e.value.code == 1
    assert "1 of 2 cases failed" in capsys.readouterr().err
    dl = tmp_path / "dl.json"
    dl.write_text(json.dumps({"training": [{"image": "ds/imagesTr/a_0000.nii.gz", "label": "ds/labelsTr/a.nii.gz"}]}))
    check(datalist=str(dl))
