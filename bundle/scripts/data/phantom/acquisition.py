"""The acquisition of a case: argument checks, random scanner draws (spacing, field of view: spine-centred or, in
30 % of the cases, a body field of view of 320-384 mm, covered spine range, PSF, noise, HU offset, orientation),
the voxel grid placed around the column, the spatially varying label margin, metal streaks, blur and correlated
noise, centroids and the reorientation of the output arrays."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .metal import metal_streaks
from .sdf import _F32

ORIENTATIONS = ("RAS", "LPS", "PIR")


def _check_args(spacing, shape, orientation, levels, size_scale):
    if spacing is not None:
        sp = np.asarray(spacing, float).ravel()
        if sp.size == 1:
            sp = np.repeat(sp, 3)
        if sp.size != 3 or not np.all(np.isfinite(sp)) or np.any(sp < 0.2) or np.any(sp > 10):
            raise ValueError(f"spacing must be 3 values in mm between 0.2 and 10, got {spacing!r}")
        spacing = tuple(float(s) for s in sp)
    if shape is not None:
        sh = np.asarray(shape).ravel()
        if sh.size != 3 or np.any(sh != np.round(sh)):
            raise ValueError(f"shape must be 3 integers (nx, ny, nz), got {shape!r}")
        if np.any(sh < 16):
            raise ValueError(f"shape {tuple(int(s) for s in sh)} is too small: every dimension must be >= 16 voxels")
        if np.prod(sh.astype(float)) > 512 * 512 * 1024:
            raise ValueError(f"shape {tuple(int(s) for s in sh)} is too large")
        shape = tuple(int(s) for s in sh)
    if orientation is not None:
        orientation = str(orientation).upper()
        if orientation not in ORIENTATIONS:
            raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
    if levels is not None:
        levels = _check_levels(levels)
    if not (0.1 <= float(size_scale) <= 4.0):
        raise ValueError(f"size_scale must be in [0.1, 4], got {size_scale!r}")
    return spacing, shape, orientation, levels, float(size_scale)


def _check_levels(levels):
    lv = list(levels) if not isinstance(levels, str) else [int(x) for x in levels.replace("-", ",").split(",")]
    if len(lv) != 2 or any(int(x) != x for x in lv):
        raise ValueError(f"levels must be (first_id, last_id), got {levels!r}")
    a, b = int(lv[0]), int(lv[1])
    if not (1 <= a <= b <= 25):
        raise ValueError(f"levels must satisfy 1 <= first <= last <= 25 (VerSe ids), got {levels!r}")
    return a, b


@dataclass
class _Scan:
    """The scanner draws of one case (always all drawn, so overriding one keeps the others)."""

    sxy: float
    sz: float
    fov: float
    u_whole: float
    n_lev_draw: int
    start_u: float
    m_top: float
    m_bot: float
    jx: float
    jy: float
    psf_k: float
    psf0: float
    noise_sd: float
    noise_corr: float
    hu_off: float
    orient: str
    wide: bool
    streak_hu: float


def _draw_scan(r_acq: np.random.Generator, r_orient: np.random.Generator) -> _Scan:
    sxy = r_acq.uniform(0.6, 1.0)
    u = r_acq.random()
    sz = r_acq.uniform(0.5, 1.5) if u < 0.45 else (r_acq.uniform(1.5, 3.0) if u < 0.8 else r_acq.uniform(3.0, 5.0))
    fov = r_acq.uniform(180, 300)
    u_whole = r_acq.random()
    n_lev_draw = int(r_acq.integers(3, 10))
    start_u = r_acq.random()
    m_top, m_bot = r_acq.uniform(2, 15, size=2)
    jx, jy = r_acq.uniform(-15, 15), r_acq.random()
    psf_k, psf0 = r_acq.uniform(0.4, 0.6), r_acq.uniform(0.25, 0.45)
    noise_sd = r_acq.uniform(10, 40)
    noise_corr = r_acq.uniform(0.15, 0.33)
    hu_off = r_acq.uniform(-5, 5)
    orient = ORIENTATIONS[int(r_orient.integers(len(ORIENTATIONS)))]
    wide = r_acq.random() < 0.3
    fov_wide = r_acq.uniform(320, 384)
    streak_hu = r_acq.uniform(150, 700)
    if wide:
        fov, sxy = fov_wide, max(sxy, fov_wide / _WIDE_N)
    return _Scan(sxy, sz, fov, u_whole, n_lev_draw, start_u, m_top, m_bot, jx, jy, psf_k, psf0, noise_sd,
                 noise_corr, hu_off, orient, wide, streak_hu)


_WIDE_N = 384  # in-plane voxels of a body field of view (256 otherwise)


def _spine_range(an, scan: _Scan, sp, shape, levels):
    """(first, last) VerSe ids covered: requested, or a random contiguous range of >= 3 levels (~12 %: most of
    the column) shortened until it fits the slice budget."""
    if levels is not None:
        return levels
    nv = len(an.ids)
    n = nv - int(scan.start_u * 6) if scan.u_whole < 0.12 else scan.n_lev_draw
    n = int(np.clip(n, 3, nv))
    i0 = int(scan.start_u * (nv - n + 1))
    i0 = min(i0, nv - n)
    lo_i, hi_i = i0, i0 + n - 1
    max_ext = (300 if shape is None else shape[2]) * sp[2]
    while hi_i > lo_i + 2:
        ext = an.body_zrange(an.ids[lo_i])[1] - an.body_zrange(an.ids[hi_i])[0] + scan.m_top + scan.m_bot
        if ext <= max_ext:
            break
        if (hi_i - lo_i) % 2:
            hi_i -= 1
        else:
            lo_i += 1
    return an.ids[lo_i], an.ids[hi_i]


def _grid(an, scan: _Scan, sp, shape, size_scale, z_top, z_bot):
    """(shape, origin) of the RAS grid: the FOV centred near the column, which it keeps inside when possible."""
    if shape is None:
        cap = float(_WIDE_N if scan.wide else 256)
        nxy = max(16, int(round(min(cap, scan.fov / sp[0]) * size_scale)))
        nyy = max(16, int(round(min(cap, scan.fov / sp[1]) * size_scale)))
        nzz = max(16, int(math.ceil((z_top - z_bot) / sp[2])) + 1)
        shp = (nxy, nyy, nzz)
    else:
        shp = shape
    fx, fy = shp[0] * sp[0], shp[1] * sp[1]
    if fx < 40 or fy < 40:
        raise ValueError(f"in-plane field of view {fx:.0f} x {fy:.0f} mm is too small (needs >= 40 mm); "
                         f"increase shape/spacing/size_scale")
    zmid = (z_top + z_bot) / 2
    zz = np.linspace(z_bot, z_top, 16)
    xs_c, ys_c = an.spine_xy(zz)
    xc = float(np.mean([xs_c.min(), xs_c.max()])) + scan.jx * size_scale
    # keep the vertebral column (body front +25 mm .. spinous tips -75 mm) inside the FOV when possible, and the
    # FOV on the trunk (centred on it when it is deeper than the trunk)
    y_front, y_back = float(ys_c.max()) + 25, float(ys_c.min()) - 75
    lo_y, hi_y = y_front - fy / 2, y_back + fy / 2
    p = an.soft_at(np.array([zmid]))
    fat = an.fat * p["fatf"][0]
    y_ant, y_post = p["ys"][0] + p["Ba"][0] + fat, p["ys"][0] - p["Bp"][0] - 0.8 * fat
    lo_b, hi_b = y_post + fy / 2, y_ant - fy / 2
    if hi_b < lo_b:
        lo_b = hi_b = (y_ant + y_post) / 2
    if hi_y >= lo_y and max(lo_y, lo_b) <= min(hi_y, hi_b):
        lo_y, hi_y = max(lo_y, lo_b), min(hi_y, hi_b)
    yc = lo_y + scan.jy * (hi_y - lo_y) if hi_y >= lo_y else (y_front + y_back) / 2
    origin = np.array([xc - (shp[0] - 1) / 2 * sp[0], yc - (shp[1] - 1) / 2 * sp[1], zmid - (shp[2] - 1) / 2 * sp[2]])
    return shp, origin


def _label_margin_fn(an, sp):
    """Label margin (mm beyond the bone surface) as a smooth function of world position: half a voxel plus the
    annotation style's offset and three plane waves."""
    vox = float(np.prod(sp)) ** (1 / 3)
    m0 = _F32(0.5 * vox + an.label_margin)
    amp = _F32(an.label_margin_amp / math.sqrt(1.5))
    waves = [(k / (np.linalg.norm(k) + 1e-9) * f, ph) for k, f, ph in an.label_waves]

    def margin(X, Y, Z):
        m = m0
        for k, ph in waves:
            m = m + amp * np.sin((X * _F32(k[0]) + Y * _F32(k[1])) + (Z * _F32(k[2]) + _F32(ph)))
        return m

    return margin


def _psf_sigma_mm(scan: _Scan, sp):
    return np.sqrt((scan.psf_k * sp) ** 2 + scan.psf0 ** 2)


def _acquire(cv, scan: _Scan, sp, r_noise: np.random.Generator, r_art: np.random.Generator):
    """Metal streaks, Gaussian PSF, correlated Gaussian noise of SD noise_sd, HU offset, clip and round: the int16
    image of the canvas's HU volume (which it releases)."""
    sig_mm = _psf_sigma_mm(scan, sp)
    streaks = metal_streaks(cv.hu, sp, r_art, scan.streak_hu)
    img = ndi.gaussian_filter(cv.hu, sigma=sig_mm / sp, truncate=3.0, mode="nearest")
    cv.hu = None
    for z, v in streaks.items():
        img[:, :, z] += v
    img += _correlated_noise(img.shape, scan.noise_sd, scan.noise_corr, r_noise)
    img += _F32(scan.hu_off)
    np.clip(img, -1024, 3071, out=img)
    return np.rint(img).astype(np.int16)


def _correlated_noise(shp, noise_sd, noise_corr, r_noise):
    """White noise smoothed twice per in-plane axis by [c, 1 - 2c, c], scaled to SD noise_sd."""
    nse = r_noise.standard_normal(shp, dtype=np.float32)
    w0 = 1.0 - 2 * noise_corr
    for axis in (0, 1, 0, 1):
        a = nse * _F32(w0)
        sl_a = [slice(None)] * 3
        sl_b = [slice(None)] * 3
        sl_a[axis], sl_b[axis] = slice(1, None), slice(None, -1)
        a[tuple(sl_a)] += nse[tuple(sl_b)] * _F32(noise_corr)
        a[tuple(sl_b)] += nse[tuple(sl_a)] * _F32(noise_corr)
        nse = a
    # var of [c, w0, c] applied twice per axis: kernel [c^2, 2c w0, w0^2 + 2c^2, 2c w0, c^2]
    var1 = 2 * noise_corr ** 4 + 2 * (2 * noise_corr * w0) ** 2 + (w0 ** 2 + 2 * noise_corr ** 2) ** 2
    gain = noise_sd / var1  # two axes: total var = var1^2
    return nse * _F32(gain)


def _centroids(label, aff_ras):
    """(sorted ids present, {id: world centroid (x, y, z) mm})."""
    nzi = np.nonzero(label)
    vals = label[nzi]
    present = sorted(int(v) for v in np.unique(vals))
    cents = {}
    if present:
        cnt = np.bincount(vals, minlength=26).astype(float)
        sums = [np.bincount(vals, weights=nzi[i].astype(float), minlength=26) for i in range(3)]
        for v in present:
            ijk = np.array([sums[i][v] / cnt[v] for i in range(3)])
            cents[v] = tuple(float(x) for x in (aff_ras[:3, :3] @ ijk + aff_ras[:3, 3]))
    return present, cents


def _reorient(arrays, aff_ras, shp, orient):
    """The RAS arrays reoriented to `orient`, and the output affine."""
    from nibabel import orientations as nio

    tr = nio.ornt_transform(nio.axcodes2ornt(("R", "A", "S")), nio.axcodes2ornt(tuple(orient)))
    out = [np.ascontiguousarray(nio.apply_orientation(a, tr)) for a in arrays]
    return out, aff_ras @ nio.inv_ornt_aff(tr, shp)
