"""``generate_case``: one synthetic spine CT case from a seed (anatomy, scene, acquisition)."""
from __future__ import annotations

import numpy as np

from .acquisition import (
    _acquire,
    _centroids,
    _check_args,
    _draw_scan,
    _grid,
    _label_margin_fn,
    _psf_sigma_mm,
    _reorient,
    _spine_range,
)
from .anatomy import _Anatomy
from .canvas import _Canvas
from .scene import _render
from .structures import STRUCTURES

GENERATOR_VERSION = 2


def generate_case(seed: int, *, spacing=None, shape=None, orientation=None, levels=None, size_scale=1.0,
                  structures: bool = False) -> dict:
    """Generate one synthetic spine CT case.

    Args:
        seed: integer seed; the same seed (and arguments) gives identical arrays and affine.
        spacing: (sx, sy, sz) mm along the RAS grid axes (x R-L, y A-P in-plane, z S-I slice); None = random
            (in-plane 0.6-1.0 mm, slice 0.5-5 mm).
        shape: (nx, ny, nz) voxels of the RAS grid; None = derived from the field of view.
        orientation: "RAS" | "LPS" | "PIR" (array/affine orientation of the output); None = random.
        levels: (first_id, last_id) VerSe ids of the spine range covered; None = random range of >= 3 levels.
            Requesting 25 (L6) forces a six-lumbar anatomy. Vertebrae partially visible at the FOV edges are
            labelled too (as in VerSe).
        size_scale: scales the in-plane field of view (0.5 halves it), for small test volumes.
        structures: also return the structure map (what each voxel was painted as, before blur and noise).

    Returns:
        dict(image=int16 HU array, label=uint8 array, affine=4x4 float64, orientation=str,
             spacing=voxel size in the *output array* order, spacing_ras=(sx, sy, sz),
             levels=sorted ids present, centroids_mm={id: (x, y, z) world mm}, seed=int, meta=dict: the case's
             draws); with structures=True also structures=uint8 array on the image grid and
             structure_ids={name: id} (:data:`.structures.STRUCTURES`).
    """
    import nibabel as nib

    spacing, shape, orientation, levels, size_scale = _check_args(spacing, shape, orientation, levels, size_scale)
    seed = int(seed)
    ss = np.random.SeedSequence(seed)
    r_anat, r_acq, r_orient, r_noise, r_art = (np.random.default_rng(s) for s in ss.spawn(5))
    an = _Anatomy(r_anat, force_l6=levels is not None and levels[1] == 25)
    scan = _draw_scan(r_acq, r_orient)
    orient = orientation if orientation is not None else scan.orient
    sp = np.array(spacing if spacing is not None else (scan.sxy, scan.sxy, scan.sz), float)
    first, last = _spine_range(an, scan, sp, shape, levels)
    z_top = an.body_zrange(first)[1] + scan.m_top
    z_bot = an.body_zrange(last)[0] - scan.m_bot
    shp, origin = _grid(an, scan, sp, shape, size_scale, z_top, z_bot)
    cv = _Canvas(shp, sp, origin)
    _render(an, cv, label_margin=_label_margin_fn(an, sp))
    image = _acquire(cv, scan, sp, r_noise, r_art)
    aff_ras = np.diag([sp[0], sp[1], sp[2], 1.0])
    aff_ras[:3, 3] = origin
    present, cents = _centroids(cv.lab, aff_ras)
    arrays = (image, cv.lab, cv.st) if structures else (image, cv.lab)
    out, affine = _reorient(arrays, aff_ras, shp, orient)
    spacing_out = tuple(float(x) for x in nib.affines.voxel_sizes(affine))
    res = {"image": out[0], "label": out[1], "affine": affine.astype(np.float64), "orientation": orient,
           "spacing": spacing_out, "spacing_ras": tuple(float(x) for x in sp), "levels": present,
           "centroids_mm": cents, "seed": seed, "meta": _meta(an, scan, sp, shp, first, last)}
    if structures:
        res["structures"], res["structure_ids"] = out[2], dict(STRUCTURES)
    return res


def _meta(an, scan, sp, shp, first, last) -> dict:
    return dict(phase=an.phase, noise_sd=float(scan.noise_sd),
                psf_sigma_mm=tuple(float(x) for x in _psf_sigma_mm(scan, sp)), hu_offset=float(scan.hu_off),
                has_l6=an.has_l6, requested_levels=(int(first), int(last)),
                fov_mm=tuple(float(n * s) for n, s in zip(shp, sp)), body_fov=bool(scan.wide),
                habitus=an.habitus_class, fat_mm=float(an.fat), arms=an.arms, bone=an.bone_class,
                sclerosis=an.sclerosis, osteophytes=bool(an.osteophytes), bolus=bool(an.bolus_side),
                implants=[name for name, _, _ in an.implants], implant_levels=dict(an.implant_levels))
