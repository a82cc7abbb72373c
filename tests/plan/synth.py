"""Small synthetic CT data sets in nnU-Net raw layout for the plan tests (numpy + nibabel only).

A noisy soft-tissue body (ellipse, ~40 HU) in air (-1000 HU) with three bright "vertebra" cylinders (labels 1-3,
~700 HU) stacked along z. Cases differ in size, spacing, storage orientation (RAS / LPS / PIR), dtype and an
exact-zero scanner padding border (so that nnU-Net's crop-to-nonzero does something).
"""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

# (name, spacing x,y,z mm, shape x,y,z, orientation, dtype, zero-pad border voxels)
ISO_CASES = [
    ("iso_000", (1.0, 1.0, 1.0), (64, 60, 48), "RAS", np.int16, 0),
    ("iso_001", (0.9, 0.9, 1.0), (70, 66, 52), "LPS", np.float32, 3),
    ("iso_002", (1.1, 1.1, 1.2), (58, 56, 40), "RAS", np.int16, 0),
    ("iso_003", (1.0, 1.0, 1.0), (62, 64, 45), "LPS", np.int16, 2),
]
ANISO_CASES = [
    ("aniso_000", (0.7, 0.7, 3.0), (96, 92, 16), "RAS", np.int16, 0),
    ("aniso_001", (0.7, 0.7, 3.0), (100, 96, 18), "LPS", np.int16, 4),
    ("aniso_002", (0.75, 0.75, 2.5), (90, 90, 20), "RAS", np.float32, 0),
    ("aniso_003", (0.7, 0.7, 3.0), (96, 96, 15), "LPS", np.int16, 0),
]


def _affine(spacing, shape, orientation: str) -> tuple[np.ndarray, tuple[int, ...], tuple[bool, ...]]:
    """Affine, storage permutation and flips that store a RAS (x, y, z) array in ``orientation``."""
    sx, sy, sz = spacing
    if orientation == "RAS":
        return np.diag([sx, sy, sz, 1.0]), (0, 1, 2), (False, False, False)
    if orientation == "LPS":
        aff = np.diag([-sx, -sy, sz, 1.0])
        aff[:3, 3] = [(shape[0] - 1) * sx, (shape[1] - 1) * sy, 0]
        return aff, (0, 1, 2), (True, True, False)
    if orientation == "PIR":  # file axes: P (-y), I (-z), R (+x)
        aff = np.zeros((4, 4))
        aff[1, 0], aff[2, 1], aff[0, 2], aff[3, 3] = -sy, -sz, sx, 1.0
        aff[:3, 3] = [0, (shape[1] - 1) * sy, (shape[2] - 1) * sz]
        return aff, (1, 2, 0), (True, True, False)
    raise ValueError(orientation)


def make_volume(seed: int, spacing, shape, pad: int = 0):
    """(image HU float32, label uint8) in RAS (x, y, z) order."""
    rs = np.random.RandomState(seed)
    sx, sy, sz = spacing
    x = (np.arange(shape[0]) - shape[0] / 2 + 0.5) * sx
    y = (np.arange(shape[1]) - shape[1] / 2 + 0.5) * sy
    z = (np.arange(shape[2]) + 0.5) * sz
    X, Y, Z = np.meshgrid(x, y, z, indexing="ij")
    rx, ry = 0.42 * shape[0] * sx, 0.4 * shape[1] * sy
    body = (X / rx) ** 2 + (Y / ry) ** 2 <= 1
    img = np.full(shape, -1000.0, np.float32) + rs.normal(0, 15, shape).astype(np.float32)
    img[body] = 40 + rs.normal(0, 25, int(body.sum()))
    lab = np.zeros(shape, np.uint8)
    cyl = ((X - 0.05 * rx) ** 2 + (Y + 0.3 * ry) ** 2) <= (0.18 * min(rx, ry)) ** 2
    zlen = shape[2] * sz
    for k in range(3):
        zone = (Z >= (0.1 + 0.28 * k) * zlen) & (Z < (0.34 + 0.28 * k) * zlen)
        m = cyl & zone
        lab[m] = k + 1
        img[m] = 650 + 60 * k + rs.normal(0, 90, int(m.sum()))
    if pad:
        img[:pad] = 0
        img[:, -pad:] = 0
        lab[:pad] = 0
        lab[:, -pad:] = 0
    return img, lab


def write_case(image_path, label_path, seed, spacing, shape, orientation="RAS", dtype=np.int16, pad=0):
    img, lab = make_volume(seed, spacing, shape, pad)
    aff, perm, flips = _affine(spacing, shape, orientation)
    for ax, f in enumerate(flips):
        if f:
            img, lab = np.flip(img, ax), np.flip(lab, ax)
    img, lab = np.ascontiguousarray(img.transpose(perm)), np.ascontiguousarray(lab.transpose(perm))
    if np.issubdtype(dtype, np.integer):
        img = np.round(img)
    for arr, path in ((img.astype(dtype), image_path), (lab, label_path)):
        nii = nib.Nifti1Image(arr, aff)
        nii.header.set_qform(aff, code=1)
        nii.header.set_sform(aff, code=1)
        nib.save(nii, str(path))


def write_nnunet_dataset(raw_dir, dataset_id: int, name: str, cases, seed: int = 0) -> dict:
    """Write ``raw_dir/DatasetXXX_name/{imagesTr,labelsTr,dataset.json}``; returns the bundle-style case list."""
    root = Path(raw_dir) / f"Dataset{dataset_id:03d}_{name}"
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(parents=True, exist_ok=True)
    items = []
    for i, (cid, spacing, shape, orient, dtype, pad) in enumerate(cases):
        img = root / "imagesTr" / f"{cid}_0000.nii.gz"
        lab = root / "labelsTr" / f"{cid}.nii.gz"
        write_case(img, lab, seed * 100 + i, spacing, shape, orient, dtype, pad)
        items.append({"image": str(img), "label": str(lab)})
    ds = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "v1": 1, "v2": 2, "v3": 3},
          "numTraining": len(cases), "file_ending": ".nii.gz"}
    (root / "dataset.json").write_text(json.dumps(ds, indent=2))
    return {"root": str(root), "name": root.name, "id": dataset_id, "cases": sorted(items, key=lambda c: c["image"])}


# ------------------------------------------------------------------------------------ fingerprints without images
def fake_fingerprint(spacings, shapes, num_labels: int) -> dict:
    """A fingerprint (z, y, x) with given per-case spacings/shapes; intensity statistics are placeholders."""
    return {
        "foreground_intensity_properties_per_channel": {"0": {
            "max": 1500.0, "mean": 300.0, "median": 280.0, "min": -200.0, "percentile_00_5": -50.0,
            "percentile_99_5": 1200.0, "std": 250.0}},
        "median_relative_size_after_cropping": 1.0,
        "shapes_after_crop": [list(map(int, s)) for s in shapes],
        "spacings": [list(map(float, s)) for s in spacings],
        "labels": list(range(num_labels)),
        "n_cases": len(spacings),
    }


def planner_vectors() -> dict:
    """Named fingerprints for planner-only comparisons: shrink loops, the anisotropy rule, 3d_lowres, axis ties."""
    rs = np.random.RandomState(7)
    thick_sp, thick_sh = [], []
    for i in range(60):
        z = [2.5, 3.0, 3.75, 5.0][i % 4]
        thick_sp.append([z, 0.722, 0.722])
        thick_sh.append([round(rs.uniform(300, 420) / z), 512, 512])
    mixed_sp = [[float(rs.choice([0.8, 1.0, 1.25, 1.5])), *[float(rs.uniform(0.6, 0.9))] * 2] for _ in range(20)]
    mixed_sh = [[int(rs.randint(200, 700)), int(rs.randint(380, 520)), int(rs.randint(380, 520))] for _ in range(20)]
    return {
        "dataset002_synth_ct": fake_fingerprint([[2.5, 0.8, 0.8]] * 4, [[120, 256, 256]] * 4, 6),
        "thin_spine": fake_fingerprint([[0.93, 0.58, 0.58]] * 100, [[515, 512, 512]] * 100, 26),
        "thick_spine": fake_fingerprint(thick_sp, thick_sh, 26),
        "small_65_5": fake_fingerprint([[1.0, 1.0, 1.0]] * 10, [[65, 64, 64]] * 5 + [[66, 64, 64]] * 5, 3),
        "ties_yx": fake_fingerprint([[1.0, 1.0, 1.0]] * 10, [[200, 160, 160]] * 10, 2),
        "mixed_thin": fake_fingerprint(mixed_sp, mixed_sh, 26),
    }


def write_fake_nnunet_dataset(raw_dir, preprocessed_dir, dataset_id: int, name: str, fingerprint: dict,
                              example_image: str, example_label: str) -> str:
    """A raw folder holding one (symlinked) example case plus a ``dataset.json`` with the fingerprint's case count,
    and the fingerprint itself in ``preprocessed``: enough for nnU-Net's planners."""
    import os

    root = Path(raw_dir) / f"Dataset{dataset_id:03d}_{name}"
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(parents=True, exist_ok=True)
    for src, dst in ((example_image, root / "imagesTr" / "case_0000.nii.gz"),
                     (example_label, root / "labelsTr" / "case.nii.gz")):
        if not dst.exists():
            os.symlink(src, dst)
    n_labels = len(fingerprint["labels"])
    ds = {"channel_names": {"0": "CT"}, "labels": {"background": 0, **{f"l{i}": i for i in range(1, n_labels)}},
          "numTraining": len(fingerprint["spacings"]), "file_ending": ".nii.gz"}
    (root / "dataset.json").write_text(json.dumps(ds))
    pre = Path(preprocessed_dir) / root.name
    pre.mkdir(parents=True, exist_ok=True)
    nn_fp = {k: fingerprint[k] for k in ("foreground_intensity_properties_per_channel",
                                         "median_relative_size_after_cropping", "shapes_after_crop", "spacings")}
    (pre / "dataset_fingerprint.json").write_text(json.dumps(nn_fp))
    return root.name
