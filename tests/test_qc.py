"""QC PNG: RGB, square pixels (size follows the spacing), orientation, overlay colour where the mask is."""
import logging

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from skimage import io as skio

from scripts.qc import SaveQCPngd, qc_image, save_qc_png, save_qc_png_nifti

SHAPE = (50, 50, 30)  # RAS: x L->R, y P->A, z I->S
SPACING = (1.0, 0.8, 2.0)  # extents: 50 mm (x), 40 mm (y), 60 mm (z)
GAP = 4


def phantom():
    """Air volume with a bone box (the mask) and a bright superior slab on the patient's right (all y)."""
    img = np.full(SHAPE, -1000.0, dtype=np.float32)
    mask = np.zeros(SHAPE, dtype=np.uint8)
    mask[15:35, 10:30, 8:22] = 1
    img[mask > 0] = 700.0
    img[40:50, :, 24:30] = 1500.0  # x high = patient right, z high = superior
    return img, mask


def is_grey(rgb):
    return (rgb[..., 0] == rgb[..., 1]) & (rgb[..., 1] == rgb[..., 2])


def test_png_rgb_and_square_pixels(tmp_path):
    img, mask = phantom()
    path = save_qc_png(img, mask, tmp_path / "qc.png", spacing=SPACING)
    png = skio.imread(path)
    assert png.ndim == 3 and png.shape[2] == 3 and png.dtype == np.uint8
    # default: longest extent (z, 60 mm) spans min_size=384 px -> pixel = 60/384 mm; panel widths 40 mm and 50 mm
    pixel = 60 / 384
    assert png.shape[0] == 384
    assert png.shape[1] == round(40 / pixel) + GAP + round(50 / pixel)


def test_native_pixel_size_follows_spacing():
    img, mask = phantom()
    rgb = qc_image(img, mask, spacing=SPACING, min_size=1)  # pixel = finest spacing = 0.8 mm
    assert rgb.shape[:2] == (round(60 / 0.8), round(40 / 0.8) + GAP + round(50 / 0.8))
    # a different spacing changes the aspect ratio accordingly (anatomy is not squashed)
    rgb_iso = qc_image(img, mask, spacing=(1, 1, 1), min_size=1)
    assert rgb_iso.shape[:2] == (30, 50 + GAP + 50)


def test_overlay_colour_where_mask_is_and_orientation():
    img, mask = phantom()
    rgb = qc_image(img, mask, spacing=(1, 1, 1), min_size=1).astype(int)
    h = 30
    sag, cor = rgb[:, :50], rgb[:, 50 + GAP :]
    # mask box: z 8..21 -> rows 30-22=8 .. 30-8-1=21; sagittal cols (anterior first) y 10..29 -> cols 20..39;
    # coronal cols (patient right first) x 15..34 -> cols 15..34
    for panel, cols in ((sag, slice(21, 39)), (cor, slice(16, 34))):
        inside = panel[9:21, cols]
        assert (inside[..., 0] > inside[..., 1] + 60).all() and (inside[..., 0] > inside[..., 2] + 60).all()  # red
        outside = panel[: h // 4]  # above the mask: no overlay, grey
        assert is_grey(outside).all()
    # coronal: the superior-right slab is at the top-left (superior up, patient right on the image left)
    assert (cor[:6, :10] == 255).all() and (cor[:6, -10:] == 0).all() and (cor[-6:, :10] == 0).all()


def test_sagittal_anterior_left_superior_up():
    img = np.full(SHAPE, -1000.0, dtype=np.float32)
    img[:, 40:50, 24:30] = 1500.0  # anterior-superior slab through every x
    rgb = qc_image(img, None, spacing=(1, 1, 1), min_size=1)
    sag = rgb[:, :50]
    assert sag[0, 0, 0] == 255 and sag[0, 5, 0] == 255  # top-left bright
    assert sag[-1, 0, 0] == 0 and sag[0, -1, 0] == 0  # bottom-left and top-right dark
    assert is_grey(rgb).all()  # no mask -> no colour


def test_labels_get_distinct_colours_consistent_across_panels():
    img, mask = phantom()
    mask = mask.astype(np.int32)
    mask[15:35, 10:30, 15:22] = 2  # superior half is label 2
    rgb = qc_image(img, mask, spacing=(1, 1, 1), min_size=1).astype(int)
    sag, cor = rgb[:, :50], rgb[:, 50 + GAP :]
    c_inf_sag, c_sup_sag = sag[19, 30], sag[11, 30]  # rows: z=10 (label 1), z=18 (label 2)
    c_inf_cor, c_sup_cor = cor[19, 25], cor[11, 25]
    assert tuple(c_inf_sag) != tuple(c_sup_sag)
    assert tuple(c_inf_sag) == tuple(c_inf_cor) and tuple(c_sup_sag) == tuple(c_sup_cor)


def test_empty_mask_and_bad_shapes(tmp_path):
    img, _ = phantom()
    rgb = qc_image(img, np.zeros(SHAPE), spacing=SPACING)
    assert is_grey(rgb).all()
    with pytest.raises(ValueError):
        qc_image(img, np.zeros((5, 5, 5)), spacing=SPACING)
    with pytest.raises(ValueError):
        qc_image(img, None, spacing=(1, 1))


def _pir_nifti(arr, spacing, path, dtype):
    """A RAS-canonical array as a PIR-oriented NIfTI (like VerSe); saved to ``path`` unless it is None."""
    ras = nib.Nifti1Image(arr.astype(dtype), np.diag([*spacing, 1.0]))
    pir = ras.as_reoriented(nib.orientations.ornt_transform(
        nib.orientations.axcodes2ornt(("R", "A", "S")), nib.orientations.axcodes2ornt(("P", "I", "R"))))
    assert nib.aff2axcodes(pir.affine) == ("P", "I", "R")
    if path is not None:
        nib.save(pir, str(path))
    return pir


def test_nifti_reoriented_to_canonical(tmp_path):
    img, mask = phantom()
    _pir_nifti(img, SPACING, tmp_path / "ct.nii.gz", np.int16)
    _pir_nifti(mask, SPACING, tmp_path / "msk.nii.gz", np.uint8)
    out = save_qc_png_nifti(tmp_path / "ct.nii.gz", tmp_path / "msk.nii.gz", tmp_path / "n.png")
    ref = save_qc_png(img, mask, tmp_path / "r.png", spacing=SPACING)
    assert np.array_equal(skio.imread(out), skio.imread(ref))


def test_save_qc_pngd_returns_data_unchanged(tmp_path, caplog):
    img, mask = phantom()
    pir = _pir_nifti(img, SPACING, tmp_path / "case7_ct.nii.gz", np.int16)
    mask_pir = _pir_nifti(mask, SPACING, None, np.uint8)  # the inverted prediction, on the original (PIR) grid
    pred = MetaTensor(torch.from_numpy(np.asarray(mask_pir.dataobj).astype(np.float32))[None],
                      affine=torch.as_tensor(pir.affine), meta={"filename_or_obj": str(tmp_path / "case7_ct.nii.gz")})
    image = MetaTensor(torch.zeros(1, 8, 8, 8), meta={"filename_or_obj": str(tmp_path / "case7_ct.nii.gz")})
    data = {"image": image, "pred": pred}
    t = SaveQCPngd(keys=("image", "pred"), output_dir=str(tmp_path / "qc"), postfix="qc")
    out = t(data)
    assert out is data and out["pred"] is pred
    png = skio.imread(tmp_path / "qc" / "case7_ct_qc.png")
    ref = skio.imread(save_qc_png(img, mask, tmp_path / "r.png", spacing=SPACING))
    assert np.array_equal(png, ref)

    # a QC failure is only logged
    bad = {"image": MetaTensor(torch.zeros(1, 4, 4, 4), meta={"filename_or_obj": "/nonexistent.nii.gz"}),
           "pred": MetaTensor(torch.zeros(1, 4, 4, 4))}
    with caplog.at_level(logging.WARNING, logger="scripts.qc"):
        assert t(bad) is bad
    assert "no QC picture" in caplog.text


def test_real_verse014(real_dir, tmp_path):
    d = real_dir / "verse014"
    out = save_qc_png_nifti(d / "sub-verse014_ct.nii.gz", d / "sub-verse014_seg-vert_msk.nii.gz", tmp_path / "v.png")
    png = skio.imread(out)
    # canonical: 40 x 186 x 186 voxels of 2 x 1 x 1 mm -> sagittal 186 x 186 mm, coronal 186 (S) x 80 (R-L) mm
    pixel = 186 / 384
    assert png.shape == (384, round(186 / pixel) + GAP + round(80 / pixel), 3)
    assert (~is_grey(png)).mean() > 0.05  # vertebrae coloured
