"""Signed-distance primitives in world millimetres.

Each primitive has ``bbox()`` (its axis-aligned box in its local frame) and ``sdf(a, b, h)`` (signed distance,
< 0 inside) on broadcastable float32 coordinate arrays, local axes a, b, h = right, anterior, cranial of its
frame. ``_frame`` builds such a frame along the spine; ``world_box`` maps a local box to world coordinates.
"""
from __future__ import annotations

import math

import numpy as np

_BIG = np.float32(1e4)
_F32 = np.float32


class _Cap:
    """Capsule (segment p0-p1, radius r0->r1); `scale` stretches the shape by 1/scale per axis."""

    def __init__(self, p0, p1, r0, r1=None, scale=(1.0, 1.0, 1.0)):
        self.p0 = np.asarray(p0, float)
        self.p1 = np.asarray(p1, float)
        self.r0 = float(r0)
        self.r1 = float(r0 if r1 is None else r1)
        self.sc = np.asarray(scale, float)

    def bbox(self):
        r = max(self.r0, self.r1) / self.sc
        return np.minimum(self.p0, self.p1) - r, np.maximum(self.p0, self.p1) + r

    def sdf(self, a, b, h):
        sc = self.sc
        p0 = self.p0 * sc
        ba = (self.p1 - self.p0) * sc
        px = a * _F32(sc[0]) - _F32(p0[0]) if sc[0] != 1 else a - _F32(p0[0])
        py = b * _F32(sc[1]) - _F32(p0[1]) if sc[1] != 1 else b - _F32(p0[1])
        pz = h * _F32(sc[2]) - _F32(p0[2]) if sc[2] != 1 else h - _F32(p0[2])
        bb = float(ba @ ba) + 1e-9
        t = (px * _F32(ba[0] / bb) + py * _F32(ba[1] / bb)) + pz * _F32(ba[2] / bb)
        np.clip(t, 0, 1, out=t)
        dx = px - t * _F32(ba[0])
        dy = py - t * _F32(ba[1])
        dz = pz - t * _F32(ba[2])
        d = np.sqrt(dx * dx + dy * dy + dz * dz)
        if self.r1 != self.r0:
            return d - (self.r0 + t * _F32(self.r1 - self.r0))
        return d - _F32(self.r0)


class _Ell:
    """Ellipsoid (approximate SDF, exact near the surface)."""

    def __init__(self, c, r):
        self.c = np.asarray(c, float)
        self.r = np.asarray(r, float)

    def bbox(self):
        return self.c - self.r, self.c + self.r

    def sdf(self, a, b, h):
        x = (a - _F32(self.c[0]))
        y = (b - _F32(self.c[1]))
        z = (h - _F32(self.c[2]))
        r = self.r
        k0 = np.sqrt((x * _F32(1 / r[0])) ** 2 + (y * _F32(1 / r[1])) ** 2 + (z * _F32(1 / r[2])) ** 2)
        k1 = np.sqrt((x * _F32(1 / r[0] ** 2)) ** 2 + (y * _F32(1 / r[1] ** 2)) ** 2 + (z * _F32(1 / r[2] ** 2)) ** 2)
        return k0 * (k0 - 1) / (k1 + _F32(1e-6))


class _ECyl:
    """Elliptic cylinder along h (vertebral body / disc / canal): semi-axes ra, rb, half height hh.
    conc: endplate concavity (mm), waist: relative narrowing at mid height, wedge: anterior extra height (mm),
    kidney: posterior concavity of the outline as a fraction of rb (kidney-shaped vertebral bodies)."""

    def __init__(self, c, ra, rb, hh, conc=0.0, waist=0.0, wedge=0.0, kidney=0.0):
        self.c = np.asarray(c, float)
        self.ra, self.rb, self.hh = float(ra), float(rb), float(hh)
        self.conc, self.waist, self.wedge = float(conc), float(waist), float(wedge)
        self.kidney = float(kidney)

    def bbox(self):
        e = np.array([self.ra, self.rb, self.hh + abs(self.wedge)])
        return self.c - e, self.c + e

    def sdf(self, a, b, h):
        x = a - _F32(self.c[0])
        y = b - _F32(self.c[1])
        z = h - _F32(self.c[2])
        ia, ib = 1.0 / self.ra, 1.0 / self.rb
        if self.waist:
            s = 1 + _F32(self.waist) * np.clip(1 - (z * _F32(1 / self.hh)) ** 2, 0, 1)  # >1 inside => narrower
            x = x * s
            y = y * s
        if self.kidney:  # pull the posterior wall forward near the midline
            w = np.clip(1 - (x * _F32(1 / (0.55 * self.ra))) ** 2, 0, 1)
            y = y - _F32(self.kidney * self.rb) * (w * w) * np.clip(y * _F32(-2 / self.rb), 0, 1)
        xa, yb = x * _F32(ia), y * _F32(ib)
        e2 = xa * xa + yb * yb
        k0 = np.sqrt(e2)
        k1 = np.sqrt((xa * _F32(ia)) ** 2 + (yb * _F32(ib)) ** 2)
        de = k0 * (k0 - 1) / (k1 + _F32(1e-6))
        hh = _F32(self.hh)
        if self.conc:
            hh = hh - _F32(self.conc) * np.clip(1 - e2, 0, 1)
        if self.wedge:
            hh = hh + _F32(self.wedge) * yb
        dh = np.abs(z) - hh
        return np.maximum(de, dh)


class _Plate:
    """2D capsule (segment p0-p1 in the plane of axes `plane`, radius r) extruded along axis `ext`
    over [kc - kh, kc + kh]."""

    def __init__(self, plane, ext, p0, p1, r, kc, kh):
        self.i, self.j = plane
        self.k = ext
        self.p0 = np.asarray(p0, float)
        self.p1 = np.asarray(p1, float)
        self.r, self.kc, self.kh = float(r), float(kc), float(kh)

    def bbox(self):
        lo = np.zeros(3)
        hi = np.zeros(3)
        lo[[self.i, self.j]] = np.minimum(self.p0, self.p1) - self.r
        hi[[self.i, self.j]] = np.maximum(self.p0, self.p1) + self.r
        lo[self.k] = self.kc - self.kh
        hi[self.k] = self.kc + self.kh
        return lo, hi

    def sdf(self, a, b, h):
        q = (a, b, h)
        u = q[self.i] - _F32(self.p0[0])
        v = q[self.j] - _F32(self.p0[1])
        ba = self.p1 - self.p0
        bb = float(ba @ ba) + 1e-9
        t = np.clip(u * _F32(ba[0] / bb) + v * _F32(ba[1] / bb), 0, 1)
        du = u - t * _F32(ba[0])
        dv = v - t * _F32(ba[1])
        d2 = np.sqrt(du * du + dv * dv) - _F32(self.r)
        return np.maximum(d2, np.abs(q[self.k] - _F32(self.kc)) - _F32(self.kh))


class _Blob:
    """Ellipsoid (centre c, semi-axes r) whose surface is displaced by a smooth random field: `waves` =
    [(amplitude mm, (kx, ky, kz) rad/mm, (phx, phy, phz))], each a product of cosines along the three axes
    (separable, so cheap on a box). Distance is approximate: (|x / r| - 1) * min(r)."""

    def __init__(self, c, r, waves=()):
        self.c = np.asarray(c, float)
        self.r = np.asarray(r, float)
        self.waves = list(waves)
        self.amp = float(sum(abs(w[0]) for w in self.waves))

    def bbox(self):
        return self.c - self.r - self.amp, self.c + self.r + self.amp

    def sdf(self, a, b, h):
        x = (a - _F32(self.c[0])) * _F32(1 / self.r[0])
        y = (b - _F32(self.c[1])) * _F32(1 / self.r[1])
        z = (h - _F32(self.c[2])) * _F32(1 / self.r[2])
        d = (np.sqrt(x * x + y * y + z * z) - _F32(1)) * _F32(self.r.min())
        for amp, k, ph in self.waves:
            d = d + _F32(amp) * (np.cos(a * _F32(k[0]) + _F32(ph[0])) * np.cos(b * _F32(k[1]) + _F32(ph[1]))
                                 * np.cos(h * _F32(k[2]) + _F32(ph[2])))
        return d


def smooth_waves(rng, n, amp, wavelength):
    """n random separable waves for :class:`_Blob`: amplitudes U(0.5, 1) * amp / sqrt(n) mm, wavelengths in
    U(*wavelength) mm."""
    out = []
    for _ in range(n):
        k = 2 * np.pi / rng.uniform(*wavelength, size=3)
        out.append((rng.uniform(0.5, 1.0) * amp / math.sqrt(n), k, rng.uniform(0, 2 * np.pi, size=3)))
    return out


class _Grown:
    """A primitive grown by d mm (its SDF minus d): soft tissue around a bone."""

    def __init__(self, part, d):
        self.part, self.d = part, float(d)

    def bbox(self):
        lo, hi = self.part.bbox()
        return np.asarray(lo) - self.d, np.asarray(hi) + self.d

    def sdf(self, a, b, h):
        return self.part.sdf(a, b, h) - _F32(self.d)


class _Fn:
    """Custom SDF from a function of (a, b, h) with an explicit bounding box."""

    def __init__(self, fn, lo, hi):
        self.fn, self.lo, self.hi = fn, np.asarray(lo, float), np.asarray(hi, float)

    def bbox(self):
        return self.lo, self.hi

    def sdf(self, a, b, h):
        return self.fn(a, b, h)


def _frame(w, psi=0.0):
    """Rows u (right), v (anterior), w (cranial) for a cranial direction w and axial rotation psi (rad)."""
    w = np.asarray(w, float)
    w = w / np.linalg.norm(w)
    v0 = np.array([0.0, 1.0, 0.0])
    v = v0 - (v0 @ w) * w
    v /= np.linalg.norm(v)
    u = np.cross(v, w)
    if psi:
        u, v = math.cos(psi) * u + math.sin(psi) * v, -math.sin(psi) * u + math.cos(psi) * v
    return np.stack([u, v, w])


def world_box(c, R, lo, hi):
    """World bounding box of the local box [lo, hi] of a frame with origin c and rows R."""
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    w = np.asarray(c) + corners @ R
    return w.min(0), w.max(0)
