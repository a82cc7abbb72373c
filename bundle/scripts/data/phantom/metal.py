"""Metal implants and their streak artefacts. Implants (drawn per case): sternal wire loops after sternotomy (8 %),
pedicle screws with rods over 2-4 thoracolumbar levels (8 %). Streaks: the metal (and any contrast bolus above
2000 HU) of each axial slice is forward projected over 72 angles; the projection error of beam hardening
(-p^2, p = metal path length) and photon starvation (noise growing with p) is ramp filtered and back-projected on
a coarse grid, giving bright and dark streaks along lines through the metal (dark between two metal objects)."""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from .sdf import _Cap, _Ell
from .structures import STRUCTURES as S
from .tables import region

METAL_HU = 2000.0  # pre-blur HU above which a voxel counts as metal for the streaks
_STREAK_GAIN = 0.045  # calibrated: streaks of about +-amplitude HU 5-15 mm from two 6.4 mm titanium screws
_P_SAT = 30.0  # mm of metal path where the projection error starts to saturate


def build_implants(an):
    """an.implants: [(name, parts, HU)] in world coordinates; an.implant_levels: {name: (first, last) VerSe ids of
    the vertebrae at the implant's height}."""
    r = an.rng
    an.implants, an.implant_levels = [], {}
    u_wire, u_screw = r.random(), r.random()
    if u_wire < 0.08:
        an.implants.append(("sternal_wires", _sternal_wires(an), r.uniform(30000, 45000)))
        an.implant_levels["sternal_wires"] = (10, 16)
    candidates = [v for v in an.ids if 17 <= v <= an.ids[-1] - 1]
    if u_screw < 0.08 and candidates:
        n = int(r.integers(2, 5))
        first = int(r.choice(candidates))
        levels = [v for v in an.ids if first <= v < first + n]
        an.implants.append(("pedicle_screws", _pedicle_screws(an, levels), r.uniform(6000, 10000)))
        an.implant_levels["pedicle_screws"] = (levels[0], levels[-1])


def _sternal_wires(an):
    r, bs = an.rng, an.bs
    pts = np.array(an.sternum_pts)
    parts = []
    for z in np.linspace(pts[0, 2] - 5, pts[-1, 2] + 10, int(r.integers(5, 8))):
        c = np.array([np.interp(-z, -pts[:, 2], pts[:, i]) for i in range(3)])
        c[2] = z
        ax, ay = 17 * bs, 9 * bs
        ang = np.linspace(0, 2 * np.pi, 11)
        tilt = r.uniform(-0.15, 0.15)
        ring = [c + np.array([ax * math.cos(t), ay * math.sin(t), ax * tilt * math.cos(t)]) for t in ang]
        parts += [_Cap(p, q, 0.7) for p, q in zip(ring[:-1], ring[1:])]
        parts.append(_Cap(c + [0, ay, 0], c + [r.uniform(-3, 3), ay + 5, r.uniform(-2, 2)], 1.1))
    return parts


def _pedicle_screws(an, levels):
    """Bilateral transpedicular screws (entry at the base of the transverse process, tip in the anterior third of
    the body, converging), tulip heads and one rod per side."""
    r = an.rng
    parts, heads = [], {-1: [], 1: []}
    for vid in levels:
        c, R = an.verts[vid]
        g = an.dims[vid]
        xp = g["rca"] + g["pw"] / 2 - 0.8
        bj = -(g["rb"] * (1 - g["kidney"]) + g["rcb"] - 1.5) - g["rcb"] * 0.55
        hp = g["hh"] * 0.25 if region(vid) != "C" else 0.0
        rad = r.uniform(2.8, 3.4) * an.bs
        for s in (-1, 1):
            entry = np.array([s * (xp + 2.5), bj - 4, hp])
            tip = np.array([s * r.uniform(3.0, 8.0), g["rb"] * r.uniform(0.35, 0.65), hp * 0.6])
            tulip = entry + np.array([s * 1.0, -7.0, 0.0])
            parts += [_Cap(c + entry @ R, c + tip @ R, rad, rad * 0.8), _Ell(c + tulip @ R, np.array([6, 6, 6.5]))]
            heads[s].append(c + (tulip + np.array([0, -3, 0])) @ R)
    for s in (-1, 1):
        h = heads[s]
        ext = (h[-1] - h[0]) / max(len(h) - 1, 1) * 0.35 if len(h) > 1 else np.array([0, 0, 8.0])
        chain = [h[0] - ext] + h + [h[-1] + ext]
        parts += [_Cap(p, q, 2.75) for p, q in zip(chain[:-1], chain[1:])]
    return parts


def paint_implants(an, cv):
    """Metal over everything painted before (after the bone HU)."""
    for _, parts, hu in an.implants:
        for p in parts:
            cv.paint(p, hu, sid=S["metal"])


def metal_streaks(hu, sp, rng, amplitude, n_ang=72, grid=96):
    """{z index: (nx, ny) float32 HU increment} for the axial slices holding metal (pre-blur HU > METAL_HU), or {}.
    Near a pair of pedicle screws the streaks reach about +-`amplitude` HU."""
    zs = np.nonzero((hu > METAL_HU).any(axis=(0, 1)))[0]
    if not len(zs):
        return {}
    nx, ny, _ = hu.shape
    f = max(1, int(math.ceil(max(nx, ny) / grid)))
    gx, gy = -(-nx // f), -(-ny // f)
    xc = (np.arange(gx) * f + (f - 1) / 2 - (nx - 1) / 2) * sp[0]
    yc = (np.arange(gy) * f + (f - 1) / 2 - (ny - 1) / 2) * sp[1]
    th = np.linspace(0, np.pi, n_ang, endpoint=False)
    dt = f * min(sp[0], sp[1])
    tmax = 0.5 * math.hypot(gx * f * sp[0], gy * f * sp[1]) + 2 * dt
    nb = int(2 * tmax / dt) + 2
    npad = 1 << int(math.ceil(math.log2(2 * nb)))
    ramp = np.abs(np.fft.rfftfreq(npad)).astype(np.float32)
    T = (np.cos(th)[:, None] * np.repeat(xc, gy)[None, :] + np.sin(th)[:, None] * np.tile(yc, gx)[None, :] + tmax) / dt
    i0 = np.clip(np.floor(T).astype(np.int64), 0, nb - 2)
    w = (T - i0).astype(np.float32)
    rows = (np.arange(n_ang) * nb)[:, None]
    noise = ndi.gaussian_filter1d(rng.standard_normal((n_ang, nb)).astype(np.float32), 0.7, axis=1)
    mix = rng.uniform(0.3, 0.8)
    out = {}
    for z in zs:
        m = np.clip((hu[:, :, z] - METAL_HU) / 3000.0, 0, None)
        m = np.pad(m, ((0, gx * f - nx), (0, gy * f - ny))).reshape(gx, f, gy, f).sum(axis=(1, 3)).ravel()
        j = np.nonzero(m)[0]
        wt = (m[j] * (sp[0] * sp[1] / dt)).astype(np.float32)  # metal path length (mm) per ray bin
        idx = (rows + i0[:, j]).ravel()
        wj = w[:, j]
        p = (np.bincount(idx, ((1 - wj) * wt).ravel(), n_ang * nb)
             + np.bincount(idx + 1, (wj * wt).ravel(), n_ang * nb))
        p = p.reshape(n_ang, nb).astype(np.float32)
        q = p / (1 + p / _P_SAT)  # saturating metal path (mm)
        e = -(1 - mix) * q * q + 2 * mix * noise * q
        ef = np.fft.irfft(np.fft.rfft(e, npad, axis=1) * ramp, npad, axis=1)[:, :nb].astype(np.float32)
        flat = rows + i0
        bp = (ef.ravel()[flat] * (1 - w) + ef.ravel()[flat + 1] * w).sum(0).reshape(gx, gy)
        out[int(z)] = bp
    for z, v in out.items():
        full = ndi.zoom(v * np.float32(_STREAK_GAIN), (f, f), order=1)[:nx, :ny]
        out[z] = (np.float32(1.5 * amplitude) * np.tanh(full / np.float32(1.5))).astype(np.float32)
    return out
