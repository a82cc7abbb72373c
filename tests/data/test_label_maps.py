"""Label maps (verse / totalseg / dict / binary) and the RemapLabelsd transform."""
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from scripts.data.label_maps import VERSE_IDS, get_label_map, lookup_table, remap
from scripts.data.transforms import RemapLabelsd

ALL = np.arange(0, 130, dtype=np.int32)


def test_verse_is_identity_on_vertebrae_and_zero_elsewhere():
    out = remap(ALL, "verse")
    expected = np.where(np.isin(ALL, VERSE_IDS), ALL, 0)
    np.testing.assert_array_equal(out, expected)
    assert out[28] == 28 and out[26] == 0 and out[27] == 0 and out[25] == 25


def test_totalseg_to_verse():
    out = remap(ALL, "totalseg")
    for t in range(27, 51):
        assert out[t] == 51 - t
    assert out[27] == 24 and out[31] == 20 and out[32] == 19 and out[44] == 7 and out[50] == 1
    for t in [0, 1, 10, 24, 25, 26, 51, 79, 117, 129]:  # organs, sacrum, S1, spinal cord, ...
        assert out[t] == 0, t
    assert set(np.unique(out)) == set(range(0, 25))


def test_binary_after_map():
    out = remap(ALL, "totalseg", binary=True)
    np.testing.assert_array_equal(out, ((ALL >= 27) & (ALL <= 50)).astype(out.dtype))
    assert set(np.unique(remap(ALL, "verse", binary=True))) == {0, 1}


def test_dict_map_with_json_string_keys_and_out_of_range_values():
    a = np.array([[0, 5, 7], [300, -3, 5]], dtype=np.int64)
    out = remap(a, {"5": 20, 7: "21"})
    np.testing.assert_array_equal(out, [[0, 20, 21], [0, 0, 20]])
    assert out.dtype == a.dtype and out.shape == a.shape


def test_bad_maps_rejected():
    with pytest.raises(ValueError, match="unknown label map"):
        get_label_map("totalsegmentator_v9")
    with pytest.raises(ValueError):
        get_label_map({"a": 1})
    with pytest.raises(ValueError, match="unknown label map"):
        RemapLabelsd("label", label_map="versee")


def test_lookup_table_shape():
    lut = lookup_table("totalseg")
    assert len(lut) == 52 and lut[-1] == 0 and lut[50] == 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8, torch.int16])
def test_remap_labelsd_metatensor_keeps_meta_and_dtype(dtype):
    affine = torch.tensor([[0, 0, -1.5, 10], [-1.5, 0, 0, 20], [0, -1.5, 0, 30], [0, 0, 0, 1]], dtype=torch.float64)
    x = MetaTensor(torch.tensor([[[[0, 26, 27, 33]]]], dtype=dtype), affine=affine, meta={"filename_or_obj": "x.nii"})
    d = RemapLabelsd("label")({"label": x, "label_map": "totalseg"})  # per-case map overrides default "verse"
    y = d["label"]
    assert isinstance(y, MetaTensor) and y.dtype == dtype and y.shape == x.shape
    torch.testing.assert_close(y.affine, affine)
    assert y.meta["filename_or_obj"] == "x.nii"
    assert y.flatten().tolist() == [0, 0, 24, 18]
    assert "label_map" not in d  # consumed: MONAI spatial transforms would take a "label_*" key for meta
    # no per-case map (None) -> default "verse": 26, 27, 33 are not VerSe vertebrae
    y2 = RemapLabelsd("label")({"label": x, "label_map": None})["label"]
    assert y2.flatten().tolist() == [0, 0, 0, 0]
    y3 = RemapLabelsd("label", label_map="totalseg", binary=True)({"label": x})["label"]
    assert y3.flatten().tolist() == [0, 0, 1, 1]


def test_remap_labelsd_numpy():
    d = RemapLabelsd(["label"], label_map="verse")({"label": np.array([0, 20, 26, 28], dtype=np.uint8)})
    assert isinstance(d["label"], np.ndarray) and d["label"].dtype == np.uint8
    assert d["label"].tolist() == [0, 20, 0, 28]


def test_remap_real_totalseg_label(real_dir):
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

    path = str(real_dir / "ts_example_ct" / "totalseg_spine_only.nii.gz")
    load = Compose([LoadImaged("label"), EnsureChannelFirstd("label")])
    raw = load({"label": path})["label"]
    out = RemapLabelsd("label")({"label": raw, "label_map": "totalseg"})["label"]
    assert set(np.unique(out.numpy()).astype(int)) == {0, 18, 19, 20, 21, 22, 23, 24}
    for t in range(27, 34):  # 27 L5 .. 33 T11 -> 24 .. 18, voxel for voxel
        assert int((out == 51 - t).sum()) == int((raw == t).sum()) > 0
    assert int((out[raw == 26] != 0).sum()) == 0  # S1 -> background
    torch.testing.assert_close(out.affine, raw.affine)
