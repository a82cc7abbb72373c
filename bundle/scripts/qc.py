"""Quality-control pictures: CT + mask overlay on a mid-sagittal and a mid-coronal slice, written as an RGB PNG.

Orientation convention (input of :func:`save_qc_png`): arrays are **RAS-canonical**, i.e. what
``nibabel.as_closest_canonical`` returns: axis 0 runs patient Left -> Right, axis 1 Posterior -> Anterior,
axis 2 Inferior -> Superior. :func:`save_qc_png_nifti` and :class:`SaveQCPngd` reorient for you.

Picture layout (radiological display convention), left panel | right panel:

* sagittal (slice at the mask centroid's L-R position): superior at the top, **anterior on the left**
  (viewed from the patient's left side);
* coronal (slice at the centroid's P-A position): superior at the top, **patient right on the image left**.

Without a (non-empty) mask the slices go through the volume centre. Both panels are resampled to square pixels
(one common pixel size: the finest voxel spacing, refined so the picture spans at least ``min_size`` pixels and
coarsened so it spans at most ``max_size``), so
anatomy is not squashed by anisotropic voxels. The CT is windowed to grey with ``window = (low, high)`` in HU
(default -300..1200, a bone window). Each mask label gets a colour (a binary mask is red), blended with
``alpha`` and outlined by an opaque contour of the same colour.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Hashable, Mapping, Sequence

import nibabel as nib
import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform
from monai.utils import ImageMetaKey as Key
from skimage import io as skio
from skimage.color import label2rgb
from skimage.segmentation import find_boundaries
from skimage.transform import resize

from scripts.atomic_files import atomic_output
from scripts.metrics import case_name

__all__ = ["qc_image", "save_qc_png", "save_qc_png_nifti", "SaveQCPngd", "QC_COLORS"]

logger = logging.getLogger(__name__)

#: overlay colours (RGB in [0, 1]), cycled over the sorted nonzero labels; bright so they read on a dark CT
QC_COLORS: tuple[tuple[float, float, float], ...] = (
    (1.0, 0.0, 0.0),  # red
    (0.0, 1.0, 0.0),  # green
    (1.0, 1.0, 0.0),  # yellow
    (0.0, 1.0, 1.0),  # cyan
    (1.0, 0.0, 1.0),  # magenta
    (1.0, 0.5, 0.0),  # orange
    (0.3, 0.6, 1.0),  # light blue
    (0.6, 1.0, 0.4),  # light green
    (1.0, 0.4, 0.6),  # pink
    (0.7, 0.4, 1.0),  # violet
)

_GAP = 4  # black pixels between the two panels


def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if isinstance(x, MetaTensor):
            x = x.as_tensor()
        x = x.numpy()
    return np.asarray(x)


def _squeeze3d(x: np.ndarray, what: str) -> np.ndarray:
    while x.ndim > 3 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 3:
        raise ValueError(f"{what} must be 3-D (X, Y, Z) (optionally with leading singleton dims), got {x.shape}")
    return x


def _to_panel(img2d: np.ndarray, lab2d: np.ndarray, spacing2d: Sequence[float], pixel: float):
    """(rows, cols) slice with spacing -> resampled to ``pixel`` mm square pixels (image linear, labels nearest)."""
    shape = tuple(max(1, int(round(n * s / pixel))) for n, s in zip(img2d.shape, spacing2d))
    img = resize(img2d, shape, order=1, preserve_range=True, anti_aliasing=False)
    lab = resize(lab2d, shape, order=0, preserve_range=True, anti_aliasing=False).astype(lab2d.dtype)
    return img, lab


def qc_image(
    image,
    mask=None,
    spacing: Sequence[float] | None = None,
    window: tuple[float, float] = (-300, 1200),
    alpha: float = 0.35,
    max_size: int = 1024,
    min_size: int = 384,
    centre: Sequence[int] | None = None,
) -> np.ndarray:
    """The QC picture as a ``(H, W, 3)`` uint8 array (see the module docstring for the layout).

    Args:
        image: CT volume ``(X, Y, Z)`` in RAS-canonical orientation (numpy or torch; leading singleton dims ok).
        mask: label volume of the same shape (binary or integer labels, 0 = background), or ``None``.
        spacing: voxel size in mm along the three axes (``None``: isotropic 1 mm).
        window: ``(low, high)`` intensities mapped to black and white.
        alpha: opacity of the filled overlay.
        max_size: upper bound on the picture's height and on each panel's width, in pixels.
        min_size: small volumes are upsampled so that the longest physical extent spans at least this many pixels.
        centre: the voxel ``(x, y, z)`` the two slices go through (default: the mask's centroid).
    """
    # only two slices are drawn: no full-volume float/int32 copies (a 512x512x600 CT is 630 MB per float copy)
    img = _squeeze3d(_to_numpy(image), "image")
    if mask is None:
        lab = np.zeros(img.shape, dtype=np.uint8)
    else:
        lab = _squeeze3d(_to_numpy(mask), "mask")
        if lab.shape != img.shape:
            raise ValueError(f"image {img.shape} and mask {lab.shape} shapes differ")
        if lab.dtype.kind == "f":
            lab = np.rint(lab)
    sp = np.ones(3) if spacing is None else np.asarray(spacing, dtype=float).ravel()
    if sp.size != 3 or np.any(sp <= 0):
        raise ValueError(f"spacing must be 3 positive numbers, got {spacing}")

    if centre is not None:
        centre = np.asarray(centre, dtype=int)
    elif lab.any():
        fg = lab > 0  # the centre of mass from per-axis counts: scipy's builds a float64 volume per axis (1.2 GB
        counts = [fg.sum(axis=tuple(j for j in range(3) if j != a)) for a in range(3)]  # at 512x512x600)
        centre = np.rint([np.dot(c, np.arange(c.size)) / c.sum() for c in counts]).astype(int)
        del fg
    else:
        centre = np.asarray(img.shape) // 2
    cx, cy = int(centre[0]), int(centre[1])

    lo, hi = float(window[0]), float(window[1])

    def grey(sl: np.ndarray) -> np.ndarray:
        return np.clip((sl.astype(np.float32) - lo) / max(hi - lo, 1e-6), 0.0, 1.0)

    # 2-D slices as (rows, cols): rows = superior -> inferior (z reversed)
    sag_img = grey(img[cx, ::-1, ::-1].T)  # cols: anterior -> posterior
    sag_lab = lab[cx, ::-1, ::-1].T.astype(np.int32)
    cor_img = grey(img[::-1, cy, ::-1].T)  # cols: patient right -> left
    cor_lab = lab[::-1, cy, ::-1].T.astype(np.int32)
    sag_sp, cor_sp = (sp[2], sp[1]), (sp[2], sp[0])

    extent = max(img.shape[2] * sp[2], img.shape[1] * sp[1], img.shape[0] * sp[0])  # mm
    pixel = max(min(float(sp.min()), extent / min_size), extent / max_size)
    sag = _to_panel(sag_img, sag_lab, sag_sp, pixel)
    cor = _to_panel(cor_img, cor_lab, cor_sp, pixel)

    h = max(sag[0].shape[0], cor[0].shape[0])
    w = sag[0].shape[1] + _GAP + cor[0].shape[1]
    canvas = np.zeros((h, w), dtype=np.float32)
    labels = np.zeros((h, w), dtype=np.int32)
    c0 = 0
    for g, l_ in (sag, cor):
        canvas[: g.shape[0], c0 : c0 + g.shape[1]] = g
        labels[: l_.shape[0], c0 : c0 + l_.shape[1]] = l_
        c0 += g.shape[1] + _GAP

    # one label2rgb call over both panels, so a label has the same colour in both
    rgb = label2rgb(labels, image=canvas, colors=QC_COLORS, alpha=alpha, bg_label=0, bg_color=None, kind="overlay")
    if labels.any():
        solid = label2rgb(labels, colors=QC_COLORS, bg_label=0, bg_color=None, kind="overlay")
        edge = find_boundaries(labels, mode="inner")
        rgb[edge] = solid[edge]
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def save_qc_png(
    image,
    mask,
    path: str | os.PathLike,
    spacing: Sequence[float] | None = None,
    window: tuple[float, float] = (-300, 1200),
    **kwargs,
) -> str:
    """Write :func:`qc_image` of ``image`` (RAS-canonical ``(X, Y, Z)``) and ``mask`` to ``path`` (PNG, RGB).

    Extra keyword arguments go to :func:`qc_image` (``alpha``, ``max_size``). Returns the path."""
    rgb = qc_image(image, mask, spacing=spacing, window=window, **kwargs)
    path = os.fspath(path)
    with atomic_output(path) as tmp:   # a killed run leaves no truncated PNG
        skio.imsave(tmp, rgb, check_contrast=False)
    return path


def _canonical(img: nib.spatialimages.SpatialImage) -> tuple[np.ndarray, np.ndarray]:
    can = nib.as_closest_canonical(img)
    return np.asanyarray(can.dataobj), np.asarray(can.header.get_zooms()[:3], dtype=float)


def save_qc_png_nifti(
    image_path: str | os.PathLike,
    mask_path: str | os.PathLike,
    png_path: str | os.PathLike,
    window: tuple[float, float] = (-300, 1200),
    **kwargs,
) -> str:
    """QC PNG from two NIfTI files on the same grid (any orientation; both reoriented with
    ``nib.as_closest_canonical``, spacing from the canonical header)."""
    img_nii, mask_nii = nib.load(os.fspath(image_path)), nib.load(os.fspath(mask_path))
    if not np.allclose(img_nii.affine, mask_nii.affine, atol=1e-3):
        warnings.warn(f"{image_path} and {mask_path} have different affines; drawing them voxel-to-voxel", stacklevel=2)
    img, spacing = _canonical(img_nii)
    mask, _ = _canonical(mask_nii)
    return save_qc_png(img.astype(np.float32, copy=False), mask, png_path, spacing=spacing, window=window, **kwargs)


def _original_image(src: str) -> nib.spatialimages.SpatialImage:
    """The input as a nibabel image on its original grid: a NIfTI file as stored, a DICOM series folder as MONAI's
    PydicomReader reads it (the grid ``LoadImaged`` and ``Invertd`` give the prediction), with its RAS affine."""
    if os.path.isdir(src):
        from scripts.data.datalist import load_image

        image = load_image(src)
        return nib.Nifti1Image(image.numpy(), _to_numpy(image.affine).astype(float))
    return nib.load(src)


class SaveQCPngd(MapTransform):
    """Post-processing transform writing ``output_dir/<case>_<postfix>.png`` for each item; data returned unchanged.

    Put it *last* in the inference post-processing, after ``Invertd`` (and ``SaveImaged``), so that
    ``data[keys[1]]`` (the prediction) is on the original image grid with the original affine. The CT (a NIfTI
    file or a DICOM series folder) is **re-read from disk** from the ``filename_or_obj`` meta of ``data[keys[0]]``
    (the in-memory image is resampled and intensity-normalised): both are reoriented to RAS-canonical with nibabel
    before drawing. The prediction may be ``(1, X, Y, Z)`` labels / binary, ``(C, X, Y, Z)`` one-hot/scores (argmax
    is drawn) or ``(X, Y, Z)``.

    A QC failure (unreadable file, grid mismatch) is logged as a warning and never stops the inference.

    Args:
        keys: ``(image_key, pred_key)``.
        output_dir: folder of the PNGs.
        postfix: appended to the case name.
        window: CT window ``(low, high)``.
    """

    def __init__(
        self,
        keys: KeysCollection = ("image", "pred"),
        output_dir: str = "./",
        postfix: str = "qc",
        window: tuple[float, float] = (-300, 1200),
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 2:
            raise ValueError(f"keys must be (image_key, pred_key), got {self.keys}")
        self.output_dir = str(output_dir)
        self.postfix = postfix
        self.window = tuple(window)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> Mapping[Hashable, torch.Tensor]:
        image_key, pred_key = self.keys
        if image_key not in data or pred_key not in data:
            if not self.allow_missing_keys:
                raise KeyError(f"SaveQCPngd needs keys {self.keys}, got {list(data)}")
            return data
        try:
            self.save(data[image_key], data[pred_key])
        except Exception as e:  # QC must never break inference
            logger.warning("SaveQCPngd: no QC picture: %s: %s", type(e).__name__, e)
        return data

    def save(self, image, pred) -> str:
        """Write the PNG for one ``image`` (for its file path) and ``pred`` (MetaTensor on the original grid)."""
        src = None
        for x in (image, pred):
            if isinstance(x, MetaTensor) and x.meta.get(Key.FILENAME_OR_OBJ):
                src = x.meta[Key.FILENAME_OR_OBJ]
                break
        if not src or not os.path.exists(str(src)):
            raise FileNotFoundError(f"original image file not found from meta filename_or_obj: {src!r}")
        if not isinstance(pred, MetaTensor):
            raise TypeError("pred must be a MetaTensor with the original affine (run Invertd before SaveQCPngd)")
        p = _to_numpy(pred)
        if p.ndim == 4:
            p = p[0] if p.shape[0] == 1 else np.argmax(p, axis=0)
        if p.dtype.kind == "f":
            p = np.rint(p)
        affine = _to_numpy(pred.affine).astype(float)
        pred_nii = nib.Nifti1Image(p if p.dtype == np.uint8 else p.astype(np.int16), affine)
        img_nii = _original_image(str(src))
        if img_nii.shape[:3] != p.shape:
            raise ValueError(f"pred {p.shape} is not on the original grid {img_nii.shape[:3]} of {src}")
        img, spacing = _canonical(img_nii)
        mask, _ = _canonical(pred_nii)
        path = os.path.join(self.output_dir, f"{case_name(os.path.normpath(str(src)))}_{self.postfix}.png")
        return save_qc_png(_squeeze3d(img, "image"), mask, path, spacing=spacing, window=self.window)
