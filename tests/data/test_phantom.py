"""Tests of the synthetic spine CT phantom generator (scripts/data/phantom/) and realism statistics."""
import json
import os

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

from scripts.data import phantom
from scripts.data.realism import hu_stats

# small, fast settings for most tests
SMALL = dict(spacing=(1.5, 1.5, 2.0), size_scale=0.5)


def world_centroids(label, affine):
    ids = [int(i) for i in np.unique(label) if i > 0]
    com = ndi.center_of_mass(label > 0, label, ids)
    return {i: nib.affines.apply_affine(affine, np.array(c)) for i, c in zip(ids, com)}


def test_level_names():
    assert len(phantom.LEVEL_NAMES) == 25
    assert phantom.LEVEL_NAMES[0] == "C1" and phantom.LEVEL_NAMES[7] == "T1"
    assert phantom.LEVEL_NAMES[19] == "L1" and phantom.LEVEL_NAMES[24] == "L6"


def test_output_types_and_labels_on_bone():
    res = phantom.generate_case(3, spacing=(1.0, 1.0, 1.0), levels=(20, 24), size_scale=0.6, orientation="RAS")
    img, lab = res["image"], res["label"]
    assert img.dtype == np.int16 and lab.dtype == np.uint8 and img.shape == lab.shape
    assert res["affine"].shape == (4, 4) and res["affine"].dtype == np.float64
    assert -1024 <= img.min() and img.max() <= 3071
    st = hu_stats(img, lab, res["spacing"])
    # real lumbar CT (verse014): 396 +- 319 inside the labels, soft tissue -12 +- 54
    assert 200 < st["label_mean"] < 600, st
    assert 150 < st["label_sd"] < 500, st
    assert st["label_mean"] > st["soft_mean"] + 200, st
    assert -60 < st["soft_mean"] < 60, st
    # air outside the body, fat and muscle present
    assert (img < -900).mean() > 0.02
    assert ((img > -150) & (img < -50)).mean() > 0.03
    # a label is mostly bone: > 85 % of each vertebra's voxels above 100 HU
    for v in range(20, 25):
        assert (img[lab == v] > 100).mean() > 0.85, v


def test_deterministic_same_seed_identical_bytes():
    a = phantom.generate_case(11, **SMALL, levels=(14, 17))
    b = phantom.generate_case(11, **SMALL, levels=(14, 17))
    assert a["image"].tobytes() == b["image"].tobytes()
    assert a["label"].tobytes() == b["label"].tobytes()
    assert a["affine"].tobytes() == b["affine"].tobytes()
    assert a["orientation"] == b["orientation"] and a["levels"] == b["levels"]
    c = phantom.generate_case(12, **SMALL, levels=(14, 17))
    assert c["image"].shape != a["image"].shape or c["image"].tobytes() != a["image"].tobytes()
    # fully random cases are deterministic too
    r1, r2 = phantom.generate_case(5, size_scale=0.4), phantom.generate_case(5, size_scale=0.4)
    assert r1["image"].tobytes() == r2["image"].tobytes() and np.array_equal(r1["affine"], r2["affine"])


@pytest.mark.parametrize("orient", ["LPS", "PIR"])
def test_orientation_variants_same_world(orient):
    ref = phantom.generate_case(21, **SMALL, levels=(19, 22), orientation="RAS")
    res = phantom.generate_case(21, **SMALL, levels=(19, 22), orientation=orient)
    assert nib.aff2axcodes(ref["affine"]) == ("R", "A", "S")
    assert nib.aff2axcodes(res["affine"]) == tuple(orient)
    assert res["orientation"] == orient
    assert sorted(res["image"].shape) == sorted(ref["image"].shape)
    # same world geometry: label centroids in world mm agree within half a voxel
    c_ref, c_res = world_centroids(ref["label"], ref["affine"]), world_centroids(res["label"], res["affine"])
    assert set(c_ref) == set(c_res) and len(c_ref) >= 4
    tol = 0.5 * min(ref["spacing"])
    for v in c_ref:
        assert np.allclose(c_ref[v], c_res[v], atol=tol), (v, c_ref[v], c_res[v])
        assert np.allclose(c_ref[v], res["centroids_mm"][v], atol=tol)
    # and the voxel data are the same volume, just reoriented
    back = nib.Nifti1Image(res["image"], res["affine"]).as_reoriented(
        nib.orientations.ornt_transform(nib.orientations.io_orientation(res["affine"]),
                                        nib.orientations.axcodes2ornt(("R", "A", "S"))))
    assert np.allclose(back.affine, ref["affine"], atol=1e-6)
    assert np.array_equal(np.asanyarray(back.dataobj), ref["image"])
    # returned spacing follows the output array axes
    assert np.allclose(res["spacing"], nib.affines.voxel_sizes(res["affine"]))


def test_distractor_bone_ribs_thoracic():
    res = phantom.generate_case(4, **SMALL, levels=(13, 16), orientation="RAS")
    img, lab = res["image"], res["label"]
    dist = ndi.distance_transform_edt(lab == 0, sampling=res["spacing"])
    far_bone = (img > 400) & (dist > 8)  # bone that is clearly not a labelled vertebra: ribs
    assert far_bone.sum() * np.prod(res["spacing"]) > 2000, far_bone.sum()  # > 2 cm^3
    # ribs sit lateral to the spine
    xs = np.nonzero(far_bone)[0] * res["spacing"][0]
    spine_x = np.mean(np.nonzero(lab)[0]) * res["spacing"][0]
    assert np.abs(xs - spine_x).max() > 60


def test_distractor_bone_pelvis_below_l5():
    res = phantom.generate_case(6, **SMALL, levels=(22, 24), orientation="RAS")
    img, lab = res["image"], res["label"]
    assert 24 in res["levels"]
    aff = res["affine"]
    z_l5 = res["centroids_mm"][24][2]
    zk = np.arange(img.shape[2]) * aff[2, 2] + aff[2, 3]
    below = zk < z_l5 - 5
    assert below.any()
    pelvis = (img[:, :, below] > 400) & (lab[:, :, below] == 0)
    assert pelvis.sum() * np.prod(res["spacing"]) > 3000, pelvis.sum()  # sacrum + iliac wings


@pytest.mark.parametrize("levels", [(1, 4), (8, 12), (18, 21), (20, 24)])
def test_label_ids_contiguous(levels):
    res = phantom.generate_case(30 + levels[0], spacing=(1.5, 1.5, 2.5), size_scale=0.4, levels=levels)
    ids = [int(i) for i in np.unique(res["label"]) if i > 0]
    assert ids == res["levels"]
    assert all(1 <= i <= 25 for i in ids)
    assert ids == list(range(ids[0], ids[-1] + 1)), ids  # contiguous
    assert set(range(levels[0], levels[1] + 1)) <= set(ids)  # every requested level present
    # only partial neighbours at the FOV edges (tilted column: the arch of level+2 can reach the last slices)
    assert ids[0] >= levels[0] - 2 and ids[-1] <= levels[1] + 2
    assert set(res["centroids_mm"]) == set(ids)


def test_random_levels_and_l6():
    for seed in range(4):
        res = phantom.generate_case(100 + seed, spacing=(1.5, 1.5, 3.0), size_scale=0.3)
        ids = res["levels"]
        first, last = res["meta"]["requested_levels"]
        assert last - first + 1 >= 3
        assert set(range(first, last + 1)) <= set(ids)
        assert ids == list(range(ids[0], ids[-1] + 1))
        assert res["image"].shape[2] <= 300 if res["orientation"] != "PIR" else res["image"].shape[1] <= 300
    res = phantom.generate_case(7, **SMALL, levels=(24, 25), orientation="RAS")
    assert 25 in res["levels"] and res["meta"]["has_l6"]


def test_invalid_arguments():
    with pytest.raises(ValueError, match="too small"):
        phantom.generate_case(0, shape=(8, 8, 8))
    with pytest.raises(ValueError, match="too small"):
        phantom.generate_case(0, shape=(20, 20, 20), spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError):
        phantom.generate_case(0, orientation="XYZ")
    with pytest.raises(ValueError):
        phantom.generate_case(0, levels=(5, 3))
    with pytest.raises(ValueError):
        phantom.generate_case(0, levels=(0, 3))
    with pytest.raises(ValueError):
        phantom.generate_case(0, spacing=(0.0, 1.0, 1.0))
    with pytest.raises(ValueError):
        phantom.make_dataset("/nonexistent/never", n_train=0, n_test=0)


def test_explicit_shape():
    res = phantom.generate_case(2, shape=(64, 48, 40), spacing=(1.5, 1.5, 2.0), orientation="RAS", levels=(20, 22))
    assert res["image"].shape == (64, 48, 40)
    assert 21 in res["levels"]


def test_write_case_nifti(tmp_path):
    meta = phantom.write_case(str(tmp_path / "img.nii.gz"), str(tmp_path / "lab.nii.gz"), 9, **SMALL,
                              levels=(20, 22), orientation="LPS")
    im, lb = nib.load(tmp_path / "img.nii.gz"), nib.load(tmp_path / "lab.nii.gz")
    assert im.get_data_dtype() == np.int16 and lb.get_data_dtype() == np.uint8
    assert int(im.header["qform_code"]) == 1 and int(im.header["sform_code"]) == 1
    assert np.allclose(im.affine, np.array(meta["affine"]), atol=1e-4)
    assert nib.aff2axcodes(im.affine) == ("L", "P", "S")
    res = phantom.generate_case(9, **SMALL, levels=(20, 22), orientation="LPS")
    assert np.array_equal(np.asanyarray(im.dataobj), res["image"])
    assert np.array_equal(np.asanyarray(lb.dataobj), res["label"])


def test_make_dataset_layout_and_cache(tmp_path):
    out = tmp_path / "ds"
    kw = dict(spacing=(2.0, 2.0, 3.0), size_scale=0.4, levels=(20, 22))
    ret = phantom.make_dataset(str(out), n_train=2, n_test=1, seed=5, progress=False, **kw)
    assert ret == str(out)
    ds = json.loads((out / "dataset.json").read_text())
    assert ds["modality"] == {"0": "CT"} and ds["numTraining"] == 2
    assert ds["labels"]["0"] == "background" and ds["labels"]["1"] == "C1" and ds["labels"]["25"] == "L6"
    assert [d["image"] for d in ds["training"]] == ["./imagesTr/phantom_000.nii.gz", "./imagesTr/phantom_001.nii.gz"]
    assert [d["label"] for d in ds["test"]] == ["./labelsTs/phantom_002.nii.gz"]
    files = [out / d[k] for d in ds["training"] + ds["test"] for k in ("image", "label")]
    assert all(f.is_file() for f in files)
    # case i uses seed + i
    ref = phantom.generate_case(6, **kw)
    assert np.array_equal(np.asanyarray(nib.load(out / "imagesTr/phantom_001.nii.gz").dataobj), ref["image"])
    # cached: a second call with the same arguments does not touch the files
    mt = {f: os.stat(f).st_mtime_ns for f in files + [out / "dataset.json"]}
    assert phantom.make_dataset(str(out), n_train=2, n_test=1, seed=5, progress=False, **kw) == str(out)
    assert {f: os.stat(f).st_mtime_ns for f in mt} == mt
    # different arguments rebuild it; no temp dirs are left behind
    phantom.make_dataset(str(out), n_train=1, n_test=0, seed=5, progress=False, **kw)
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == ["phantom_000.nii.gz"]
    assert not (out / "imagesTs").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_make_dataset_refuses_foreign_dir(tmp_path):
    (tmp_path / "x.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a phantom dataset"):
        phantom.make_dataset(str(tmp_path), n_train=1, n_test=0, progress=False, size_scale=0.3)
    assert (tmp_path / "x.txt").read_text() == "mine"


@pytest.mark.slow  # quick tier: > 9 s with one thread beside a 2-thread training
def test_realism_vs_real_case(real_dir):
    """Label/shell statistics of 1 mm lumbar phantoms are within ~35 % of the manually labelled verse014."""
    im = nib.load(real_dir / "verse014" / "sub-verse014_ct.nii.gz")
    lb = nib.load(real_dir / "verse014" / "sub-verse014_seg-vert_msk.nii.gz")
    real = hu_stats(np.asanyarray(im.dataobj), np.asanyarray(lb.dataobj), im.header.get_zooms()[:3])
    assert abs(real["label_mean"] - 396) < 5  # the calibration target itself
    stats = []
    for seed in (0, 1, 2):
        res = phantom.generate_case(seed, spacing=(1.0, 1.0, 1.0), levels=(20, 24), size_scale=0.55)
        stats.append(hu_stats(res["image"], res["label"], res["spacing"]))
    for key in ("label_mean", "label_sd", "label_p50", "label_p95"):
        ph = np.mean([s[key] for s in stats])
        assert abs(ph / real[key] - 1) < 0.35, (key, ph, real[key])
    assert abs(np.mean([s["soft_sd"] for s in stats]) / real["soft_sd"] - 1) < 0.35


# Golden output of the generator. These constants pin GENERATOR_VERSION's output: when the generator changes on
# purpose, GENERATOR_VERSION is bumped and the hashes below are re-measured and updated together (a change to the
# output without a bump fails here, and so does a bump without re-pinning). sha256 of the raw array bytes
# (C order, int16 image / uint8 label), not of a .nii.gz file (gzip headers carry a timestamp).
PINNED_GENERATOR_VERSION = 2
PINNED_CASE = dict(seed=17, spacing=(2.0, 2.0, 3.0), size_scale=0.4, levels=(20, 22), orientation="RAS")
PINNED_SHAPE = (68, 68, 42)
PINNED_IMAGE_SHA256 = "863def059997a755991d3145a5c00680634c5837de05c84d336f25b0427e2d91"
PINNED_LABEL_SHA256 = "aa4a100606f2b9bf5ff7edbf35091bf8ca7d6593fb590b77bab33aa15c405b59"


def test_generator_output_pinned_by_hash():
    import hashlib

    assert phantom.GENERATOR_VERSION == PINNED_GENERATOR_VERSION, (
        "GENERATOR_VERSION was bumped: re-measure and update the PINNED_* hashes together with it")
    case = dict(PINNED_CASE)
    res = phantom.generate_case(case.pop("seed"), **case)
    img, lab = np.ascontiguousarray(res["image"]), np.ascontiguousarray(res["label"])
    assert img.dtype == np.int16 and lab.dtype == np.uint8
    assert img.shape == lab.shape == PINNED_SHAPE
    got = (hashlib.sha256(img.tobytes()).hexdigest(), hashlib.sha256(lab.tobytes()).hexdigest())
    assert got == (PINNED_IMAGE_SHA256, PINNED_LABEL_SHA256), (
        f"phantom output changed without a GENERATOR_VERSION bump (got image/label sha256 {got}); if the change "
        "is intended, bump GENERATOR_VERSION in scripts/data/phantom/generator.py and re-pin these hashes")
