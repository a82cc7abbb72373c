"""Datalists: Decathlon/nnU-Net folders, MONAI datalist JSON, k-fold splits, DICOM series, real data end to end."""
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from scripts.data import datalist
from scripts.data.datalist import (
    READERS,
    case_id,
    from_datalist_json,
    from_decathlon_dir,
    image_reader_for,
    is_dicom_series,
    kfold_split,
    load_datalist,
)

AFF = np.diag([1.0, 1.0, 2.0, 1.0])


def _nii(path, arr=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    if arr is None:
        arr = np.zeros((4, 4, 3), np.int16)
        arr[0] = -1000
        arr[1] = 1000
    nib.save(nib.Nifti1Image(arr, AFF), str(path))
    return path


def _nnunet_dir(root, cases=("b", "a", "c"), tests=("t1",)):
    for c in cases:
        _nii(root / "imagesTr" / f"case_{c}_0000.nii.gz")
        _nii(root / "labelsTr" / f"case_{c}.nii.gz", np.zeros((4, 4, 3), np.uint8))
    for t in tests:
        _nii(root / "imagesTs" / f"{t}_0000.nii.gz")
    (root / "imagesTr" / "._case_a_0000.nii.gz").write_bytes(b"mac resource fork")  # MSD tarballs have these
    return root


def test_case_id():
    assert case_id("/x/imagesTr/verse_012_0000.nii.gz") == "verse_012"
    assert case_id("/x/labelsTr/verse_012.nii.gz") == "verse_012"
    assert case_id("la_003.nii") == "la_003"
    assert case_id("/x/imagesTr/ct_2019") == "ct"  # nnU-Net naming; pairing below also tries the full stem


def test_four_digit_case_names_without_channel_suffix(tmp_path):
    """patient_2019.nii.gz <-> labelsTr/patient_2019.nii.gz must not be mistaken for nnU-Net channel 2019."""
    for c in ("patient_2019", "patient_2020"):
        _nii(tmp_path / "imagesTr" / f"{c}.nii.gz")
        _nii(tmp_path / "labelsTr" / f"{c}.nii.gz")
    d = from_decathlon_dir(tmp_path)
    assert [Path(it["label"]).name for it in d["training"]] == ["patient_2019.nii.gz", "patient_2020.nii.gz"]


def test_nnunet_suffix_pairing(tmp_path):
    root = _nnunet_dir(tmp_path / "Dataset001_Spine")
    d = from_decathlon_dir(root)
    assert [Path(it["image"]).name for it in d["training"]] == [f"case_{c}_0000.nii.gz" for c in "abc"]
    for it in d["training"]:
        assert os.path.isabs(it["image"]) and os.path.isabs(it["label"])
        assert Path(it["label"]).name == Path(it["image"]).name.replace("_0000", "")
        assert Path(it["label"]).parent.name == "labelsTr"
    assert d["testing"] == [{"image": str((root / "imagesTs" / "t1_0000.nii.gz").resolve())}]


def test_plain_decathlon_names_and_test_labels(tmp_path):
    root = tmp_path / "Task09"
    _nii(root / "imagesTr" / "s1.nii.gz")
    _nii(root / "labelsTr" / "s1.nii.gz")
    _nii(root / "imagesTs" / "s9.nii.gz")
    _nii(root / "labelsTs" / "s9.nii.gz")
    d = from_decathlon_dir(root)
    assert d["training"][0]["label"].endswith("labelsTr/s1.nii.gz")
    assert d["testing"][0]["label"].endswith("labelsTs/s9.nii.gz")


def test_missing_label_names_the_image(tmp_path):
    root = _nnunet_dir(tmp_path / "ds")
    os.remove(root / "labelsTr" / "case_b.nii.gz")
    with pytest.raises(FileNotFoundError) as e:
        from_decathlon_dir(root)
    assert "case_b_0000.nii.gz" in str(e.value) and "labelsTr/case_b.nii.gz" in str(e.value)


def test_multichannel_nnunet_rejected(tmp_path):
    root = _nnunet_dir(tmp_path / "ds")
    _nii(root / "imagesTr" / "case_a_0001.nii.gz")
    with pytest.raises(ValueError, match="case_a"):
        from_decathlon_dir(root)


def test_decathlon_dataset_json_with_nnunet_renamed_files(tmp_path):
    root = _nnunet_dir(tmp_path / "ds", tests=())
    _nii(root / "imagesTs" / "t7_0000.nii.gz")
    meta = {
        "name": "spine",
        "training": [{"image": f"./imagesTr/case_{c}.nii.gz", "label": f"./labelsTr/case_{c}.nii.gz"} for c in "ab"],
        "test": ["./imagesTs/t7.nii.gz"],
    }
    (root / "dataset.json").write_text(json.dumps(meta))
    d = from_decathlon_dir(root)
    assert [Path(it["image"]).name for it in d["training"]] == ["case_a_0000.nii.gz", "case_b_0000.nii.gz"]
    assert all(os.path.exists(it["image"]) and os.path.exists(it["label"]) for it in d["training"])
    assert Path(d["testing"][0]["image"]).name == "t7_0000.nii.gz"
    # nnU-Net v2 dataset.json (no file lists) -> folder pairing
    (root / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "file_ending": ".nii.gz"}))
    assert len(from_decathlon_dir(root)["training"]) == 3


def test_datalist_json_relative_paths_validation_and_label_map(tmp_path):
    _nii(tmp_path / "data" / "a.nii.gz")
    js = tmp_path / "lists" / "dl.json"
    js.parent.mkdir()
    raw = {
        "training": [
            {"image": "../data/a.nii.gz", "label": "../data/a.nii.gz", "label_map": "totalseg"},
            {"image": "../data/b.nii.gz", "label": "../data/b.nii.gz"},
            {"image": "/abs/c.nii.gz", "label": "/abs/c_seg.nii.gz"},
        ],
        "validation": [{"image": "../data/v.nii.gz", "label": "../data/v.nii.gz"}],
        "test": ["../data/t.nii.gz"],
    }
    js.write_text(json.dumps(raw))
    d = from_datalist_json(js)
    assert d["training"][0] == {
        "image": str(tmp_path / "data" / "a.nii.gz"),
        "label": str(tmp_path / "data" / "a.nii.gz"),
        "label_map": "totalseg",
    }
    assert d["training"][2]["image"] == "/abs/c.nii.gz"
    assert d["testing"] == [{"image": str(tmp_path / "data" / "t.nii.gz")}]
    d2 = from_datalist_json(js, base_dir=tmp_path / "elsewhere")
    assert d2["training"][1]["image"] == str(tmp_path / "elsewhere" / "../data/b.nii.gz").replace("elsewhere/../", "")
    # an existing "validation" list is kept, no folding
    full = load_datalist(datalist=js, fold=3)
    assert len(full["training"]) == 3 and full["validation"][0]["image"].endswith("data/v.nii.gz")
    # a label_map default for entries without their own
    full = load_datalist(datalist=js, label_map="verse")
    assert [it["label_map"] for it in full["training"]] == ["totalseg", "verse", "verse"]


def test_load_datalist_argument_checks(tmp_path):
    with pytest.raises(ValueError, match="exactly one"):
        load_datalist()
    with pytest.raises(ValueError, match="exactly one"):
        load_datalist(dataset_dir=tmp_path, datalist=tmp_path / "x.json")


def _items(n):
    return [{"image": f"/data/imagesTr/case_{i:03d}.nii.gz", "label": f"/data/labelsTr/case_{i:03d}.nii.gz"} for i in range(n)]


def test_kfold_deterministic_disjoint_and_covering():
    items = _items(23)
    rng = np.random.default_rng(1)
    shuffled = [items[i] for i in rng.permutation(len(items))]
    vals = []
    for fold in range(5):
        tr, va = kfold_split(items, n_folds=5, fold=fold, seed=0)
        tr2, va2 = kfold_split(shuffled, n_folds=5, fold=fold, seed=0)
        assert tr == tr2 and va == va2  # independent of input order
        names_tr = {it["image"] for it in tr}
        names_va = {it["image"] for it in va}
        assert not names_tr & names_va and len(names_tr | names_va) == 23
        assert len(va) in (4, 5)
        vals.append(names_va)
    assert set().union(*vals) == {it["image"] for it in items}
    assert sum(len(v) for v in vals) == 23  # each case in exactly one validation fold
    assert kfold_split(items, 5, 0, seed=1)[1] != kfold_split(items, 5, 0, seed=0)[1]


def test_kfold_small_and_impossible():
    with pytest.warns(UserWarning, match="only 3 cases for 5 folds"):
        tr, va = kfold_split(_items(3), n_folds=5, fold=4)
    assert len(tr) == 2 and len(va) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert {kfold_split(_items(3), 5, f)[1][0]["image"] for f in range(3)} == {it["image"] for it in _items(3)}
        tr, va = kfold_split(_items(2), n_folds=5, fold=0)
    assert len(tr) == 1 and len(va) == 1
    with pytest.raises(ValueError, match="need at least 2"):
        kfold_split(_items(1))
    with pytest.raises(ValueError, match="fold must be in"):
        kfold_split(_items(10), n_folds=5, fold=5)


def test_load_datalist_folds_a_dataset_dir_and_fold_key(tmp_path):
    root = _nnunet_dir(tmp_path / "ds", cases=[f"{i:02d}" for i in range(10)])
    d = load_datalist(dataset_dir=root, fold=1, n_folds=5)
    assert len(d["training"]) == 8 and len(d["validation"]) == 2 and len(d["testing"]) == 1
    assert load_datalist(dataset_dir=root, n_folds=None)["validation"] == []
    js = tmp_path / "folds.json"
    js.write_text(json.dumps({"training": [dict(it, fold=i % 3) for i, it in enumerate(_items(6))]}))
    d = load_datalist(datalist=js, fold=2)
    assert [it["image"][-10:-7] for it in d["validation"]] == ["002", "005"]


def test_make_cli(tmp_path):
    root = _nnunet_dir(tmp_path / "ds")
    out = tmp_path / "out" / "datalist.json"
    bundle = Path(__file__).resolve().parents[2] / "bundle"
    r = subprocess.run(
        [sys.executable, "-m", "scripts.data.datalist", "make", "--dataset_dir", str(root), "--out", str(out),
         "--fold", "1", "--n_folds", "3"],
        cwd=bundle, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(out.read_text())
    assert len(d["training"]) == 2 and len(d["validation"]) == 1 and len(d["testing"]) == 1
    assert d == load_datalist(dataset_dir=root, fold=1, n_folds=3)


# ------------------------------------------------------------------------------------------------ DICOM
def test_dicom_series_detection(real_dir):
    dcm = real_dir / "ts_example_ct_dicom" / "dicom"
    assert is_dicom_series(dcm)
    assert not is_dicom_series(real_dir / "verse014")
    assert not is_dicom_series(real_dir / "verse014" / "sub-verse014_ct.nii.gz")
    assert image_reader_for(dcm) == "PydicomReader"
    assert image_reader_for(real_dir / "verse014" / "sub-verse014_ct.nii.gz") == "NibabelReader"


def test_dicom_read_and_world_space_overlap(real_dir):
    """PydicomReader reads the series (512x512x20, 0.977x0.977x2 mm) with a RAS affine; the y-flipped NIfTI label
    lands on bone once resampled into the DICOM grid through world coordinates."""
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, ResampleToMatch

    dcm = real_dir / "ts_example_ct_dicom" / "dicom"
    seg = real_dir / "ts_example_ct_dicom" / "example_seg_dicom.nii.gz"
    load = Compose([LoadImaged(["image", "label"], reader=READERS), EnsureChannelFirstd(["image", "label"])])
    d = load({"image": str(dcm), "label": str(seg)})
    img, lab = d["image"], d["label"]
    assert tuple(img.shape) == (1, 512, 512, 20)
    np.testing.assert_allclose(img.pixdim.numpy(), [0.9765625, 0.9765625, 2.0], atol=1e-4)
    aff = img.affine.numpy()
    assert nib.aff2axcodes(aff) == ("L", "P", "I")  # DICOM LPS rows/cols, slices by InstanceNumber (descending z)
    assert float(img.min()) == -1024 and float(img.max()) > 1000  # rescaled to HU
    # the label's own affine is LAS: a voxel-wise comparison would be wrong
    assert nib.aff2axcodes(lab.affine.numpy()) == ("L", "A", "S")
    lab_on_img = ResampleToMatch(mode="nearest")(lab, img)
    for t in (32, 33):
        m = lab_on_img == t
        assert int(m.sum()) > 1000
        assert float(img[m].mean()) > 150, t
    assert float(img[lab == 32].mean()) < 150  # same label without world-space alignment misses the bone
    assert datalist.load_image(dcm).shape == (512, 512, 20)


# ------------------------------------------------------------------------------------------------ real data
def test_real_datalist_validates_and_remaps(real_dir, tmp_path):
    """A datalist JSON over the real cases (mixed orientations, a TotalSegmentator label, a DICOM series)
    passes validation, and RemapLabelsd yields VerSe ids."""
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

    from scripts.data.transforms import RemapLabelsd
    from scripts.data.validation import validate_datalist

    r = real_dir
    raw = {
        "training": [
            {"image": f"{r}/verse014/sub-verse014_ct.nii.gz", "label": f"{r}/verse014/sub-verse014_seg-vert_msk.nii.gz"},
            {"image": f"{r}/ts_example_ct/example_ct.nii.gz", "label": f"{r}/ts_example_ct/totalseg_spine_only.nii.gz",
             "label_map": "totalseg"},
            {"image": f"{r}/tptbox_ct_crop/sub-ct_label-22_ct.nii.gz",
             "label": f"{r}/tptbox_ct_crop/sub-ct_seg-vert_label-22_msk.nii.gz", "label_map": "verse"},
            {"image": f"{r}/ts_example_ct_dicom/dicom", "label": f"{r}/ts_example_ct_dicom/example_seg_dicom.nii.gz",
             "label_map": "totalseg"},
        ]
    }
    js = tmp_path / "real.json"
    js.write_text(json.dumps(raw))
    d = load_datalist(datalist=js, fold=0, n_folds=4)
    assert len(d["training"]) == 3 and len(d["validation"]) == 1
    items = d["training"] + d["validation"]
    assert validate_datalist(items, progress=False) is items

    tf = Compose([LoadImaged(["image", "label"], reader=READERS), EnsureChannelFirstd(["image", "label"]),
                  RemapLabelsd("label")])
    expected = {
        "sub-verse014_seg-vert_msk.nii.gz": {20, 21, 22, 23, 24},
        "totalseg_spine_only.nii.gz": {18, 19, 20, 21, 22, 23, 24},  # 27..33 -> 24..18, 26 S1 -> 0
        "sub-ct_seg-vert_label-22_msk.nii.gz": {21, 22, 23},
        "example_seg_dicom.nii.gz": {18, 19},  # 32 T12, 33 T11; organs and cord -> 0
    }
    for it in items:
        out = tf(it)
        ids = set(np.unique(out["label"].numpy()).astype(int)) - {0}
        assert ids == expected[Path(it["label"]).name], it["label"]
        assert out["label"].shape == out["image"].shape


@pytest.mark.slow  # generates a phantom set (77 s measured)
def test_phantom_dataset_round_trip(tmp_path):
    """The built-in phantom set (Decathlon layout + dataset.json) is read, split and validated like user data."""
    phantom = pytest.importorskip("scripts.data.phantom")
    from scripts.data.label_maps import VERSE_IDS, remap
    from scripts.data.validation import validate_datalist

    root = phantom.make_dataset(tmp_path / "phantom", n_train=3, n_test=1, seed=0, progress=False)
    root = Path(root) if root is not None else tmp_path / "phantom"
    d = load_datalist(dataset_dir=root, fold=0, n_folds=3)
    assert len(d["training"]) == 2 and len(d["validation"]) == 1 and len(d["testing"]) == 1
    items = d["training"] + d["validation"] + d["testing"]
    assert validate_datalist(items, progress=False) is items
    lab = np.asarray(nib.load(d["training"][0]["label"]).dataobj)
    ids = set(np.unique(lab).astype(int)) - {0}
    assert ids and ids <= set(VERSE_IDS)
    np.testing.assert_array_equal(remap(lab, "verse"), lab)
