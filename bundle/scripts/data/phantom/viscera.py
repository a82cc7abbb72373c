"""Soft-tissue structures placed from the anatomy's random draws: the aorta (with calcified plaques), the abdominal
organs (liver, spleen, stomach, kidneys: ellipsoids with smoothly deformed surfaces, painted by priority inside the
visceral cavity so that they press against the body wall and one another), bowel loops, visceral fat and lung
vessels. Builders take the case's ``_Anatomy`` and store their primitives on it."""
from __future__ import annotations

import math

import numpy as np

from .heart import aortic_root
from .sdf import _Blob, _Cap, _Ell, smooth_waves


def build_aorta(an):
    """an.aorta: capsule chain root - arch - descending - bifurcation - iliac arteries; an.calc: (ellipsoid, HU)
    plaques on the wall below T7 in calcified cases."""
    r = an.rng
    an.aorta = _aorta_chain(an)
    an.calc = []
    if an.calcified:
        segs = [p for p in an.aorta if p.p0[2] < an.vz(14)]
        for _ in range(int(r.integers(4, 18))):
            p = segs[int(r.integers(len(segs)))]
            t = r.random()
            ctr = p.p0 + t * (p.p1 - p.p0)
            rad = p.r0 + t * (p.r1 - p.r0)
            dirn = r.normal(size=3)
            dirn[2] = 0
            dirn /= np.linalg.norm(dirn) + 1e-9
            an.calc.append((_Ell(ctr + dirn * (rad - 1.2), r.uniform(0.8, 2.2, size=3)), r.uniform(350, 1000)))


def _aorta_chain(an):
    r = an.rng
    vs = r.uniform(0.85, 1.2)

    def at(vid, dx, dy, dz=0.0):
        c, _ = an.verts[vid]
        g = an.dims[vid]
        return np.array([c[0] + dx, c[1] + g["rb"] + dy, c[2] + dz])

    root, asc = aortic_root(an)
    arch = at(10, -12, 28, 0)
    pts = [root, asc, arch, at(11, -20, 6), at(13, -21, -6), at(16, -17, 0), at(19, -12, 6), at(21, -11, 10),
           at(23, -10, 10, an.dims[23]["hh"])]
    rad = np.array([15, 15, 13.5, 12.5, 12, 11.5, 11, 10, 9]) * vs
    chain = [_Cap(p, q, a, b) for p, q, a, b in zip(pts[:-1], pts[1:], rad[:-1], rad[1:])]
    bif = pts[-1]
    cS1, _ = an.sacrum[0]
    for s in (-1, 1):
        chain.append(_Cap(bif, np.array([cS1[0] + s * 38, cS1[1] + 30, cS1[2] - 10]), 6.5 * vs, 5.5 * vs))
    return chain


def build_organs(an):
    """an.organs: [(name, blob, HU)] in painting order (stomach, liver, spleen; kidneys are an.kidneys), each an
    ellipsoid from the soft-tissue tables with a smoothly deformed surface (amplitude 3-8 mm, wavelength
    50-160 mm), oversized towards the body wall (painting keeps them inside the visceral cavity);
    an.kidneys: (centre, semi-axes, waves) per side."""
    r, bs = an.rng, an.bs
    z11 = an.vz(18)
    p = an.soft_at(np.array([z11]))
    xs, ys, cx, cyf = p["xs"][0], p["ys"][0], p["cx"][0], p["cyf"][0]
    waves = lambda: smooth_waves(r, 3, r.uniform(3, 8), (50, 160))  # noqa: E731
    an.stomach_fill = r.choice(["gas", "fluid", "mixed", "collapsed"], p=[0.2, 0.25, 0.35, 0.2])
    st_c = np.array([xs - 0.45 * cx, ys + 0.55 * cyf, z11 + r.uniform(0, 25)])
    an.organs = [("stomach", _Blob(st_c, np.array([45, 35, 50]) * bs * r.uniform(0.8, 1.2, size=3), waves()),
                  an.hu_muscle - 5)]
    lv = r.uniform(0.9, 1.15, size=3)
    lc = np.array([xs + 0.42 * cx, ys + 0.45 * cyf, z11 + r.uniform(0, 15)])
    an.organs.append(("liver", _Blob(lc, np.array([0.72 * cx, 0.62 * cyf, 92 * bs]) * lv, waves()), an.hu_liver))
    ll = np.array([xs + 0.02 * cx, ys + 0.75 * cyf, z11 + r.uniform(15, 40)])
    an.organs.append(("liver", _Blob(ll, np.array([0.42 * cx, 0.24 * cyf, 45 * bs]) * lv, waves()), an.hu_liver))
    sc = np.array([xs - 0.72 * cx, ys + 0.1 * cyf, z11 + r.uniform(-10, 15)])
    an.organs.append(("spleen", _Blob(sc, np.array([32, 55, 55]) * bs * r.uniform(0.8, 1.25, size=3), waves()),
                      an.hu_spleen))
    z_l1, z_l2 = an.vz(20), an.vz(21)
    pk = an.soft_at(np.array([z_l1]))
    an.kidneys = []
    for s in (-1, 1):
        kc = np.array([pk["xs"][0] + s * 58 * bs, pk["ys"][0] + 8, (z_l1 + z_l2) / 2 + (12 if s < 0 else -5)])
        kc += r.uniform(-6, 6, size=3)
        an.kidneys.append((s, kc, np.array([24, 21, 52]) * bs * r.uniform(0.88, 1.12, size=3),
                           smooth_waves(r, 2, r.uniform(1, 3), (40, 100))))


def _abdomen_z(an):
    """Height range of the abdominal loops: T12 centre down to S3."""
    return an.sacrum[2][0][2], an.vz(19)


def build_bowel(an):
    """an.bowel: (p0, p1, radius, kind, fluid level) loops inside the abdominal cavity."""
    r = an.rng
    an.bowel = []
    z_lo, z_hi = _abdomen_z(an)
    nb = int(r.integers(60, 110))
    for _ in range(nb):
        z = r.uniform(z_lo, z_hi)
        p = an.soft_at(np.array([z]))
        ang = r.uniform(0, 2 * np.pi)
        rad = math.sqrt(r.uniform(0.0, 1.0))
        A = max(p["cx"][0] - 20, 20)
        yb, yf = p["ys"][0] + an.dims[22]["rb"] + 10, p["ys"][0] + p["cyf"][0] - 12
        x = an.x_body + A * rad * math.cos(ang)
        y = (yb + yf) / 2 + (yf - yb) / 2 * rad * math.sin(ang)
        d = r.normal(size=3)
        d[2] *= 0.6
        d /= np.linalg.norm(d)
        L = r.uniform(15, 70)
        rr = r.uniform(8, 16) * (1.15 - 0.3 * (an.fat - 5) / 35)
        kind = r.choice(["gas", "fluid", "feces", "mixed", "collapsed"], p=[0.12, 0.3, 0.1, 0.13, 0.35])
        p0 = np.array([x, y, z]) - d * L / 2
        an.bowel.append((p0, p0 + d * L, rr, kind, r.uniform(0.2, 0.7)))


def build_visceral_fat(an):
    """an.visc_fat: fat ellipsoids between the loops, more of them in fatter cases."""
    r = an.rng
    an.visc_fat = []
    z_lo, z_hi = _abdomen_z(an)
    nf = int(10 + 50 * (an.fat - 5) / 35 * r.uniform(0.5, 1.0))
    for _ in range(nf):
        z = r.uniform(z_lo, z_hi)
        p = an.soft_at(np.array([z]))
        A = max(p["cx"][0] - 15, 20)
        ang = r.uniform(0, 2 * np.pi)
        rad = math.sqrt(r.uniform(0, 1))
        yb, yf = p["ys"][0] + 0, p["ys"][0] + p["cyf"][0] - 10
        c = np.array([an.x_body + A * rad * math.cos(ang), (yb + yf) / 2 + (yf - yb) / 2 * rad * math.sin(ang), z])
        an.visc_fat.append(_Ell(c, r.uniform(12, 40, size=3)))


def build_lung_vessels(an):
    """an.lung_vessels: tapering capsules from the hila towards the periphery."""
    r = an.rng
    an.lung_vessels = []
    for _ in range(70):
        vid = int(r.integers(9, 18))
        z = an.vz(vid) + r.uniform(-15, 15)
        xc, yc, rx, ry = an.cage_at(z)
        s = r.choice([-1, 1])
        hil = np.array([xc + s * 30, yc + 0.1 * ry, an.vz(13)])
        ang = r.uniform(-np.pi / 2, np.pi / 2)
        rad = r.uniform(0.35, 0.95)
        tgt = np.array([xc + s * rx * rad * math.cos(ang) * 0.9, yc + ry * rad * math.sin(ang) * 0.9, z])
        mid = hil + (tgt - hil) * r.uniform(0.3, 0.7)
        an.lung_vessels.append(_Cap(mid, tgt, r.uniform(1.5, 3.5), r.uniform(0.6, 1.2)))
