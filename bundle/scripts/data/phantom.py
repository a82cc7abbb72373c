"""Synthetic spine CT phantom generator: realistic HU volumes with VerSe-style vertebra labels.

The scene is modelled in world millimetres (RAS+: +x = patient right, +y = anterior, +z = superior) as
signed-distance primitives (capsules, ellipsoids, elliptic cylinders, extruded segments). Each primitive is
evaluated only inside its bounding box on the voxel grid. Soft tissue is painted with priority (later
overwrites earlier); bone is accumulated as two signed-distance fields (labelled vertebrae / unlabelled
distractor bone: ribs, sternum, sacrum, pelvis, skull base, mandible, scapulae, clavicles) and converted
to HU at the end (cortical shell + cancellous core with trabecular texture, anti-aliased border).
Acquisition: random FOV (contiguous sub-range of the spine), in-plane spacing 0.6-1.0 mm, slice spacing
0.5-5 mm, Gaussian PSF, correlated Gaussian noise, HU offset, orientation RAS/LPS/PIR.

Labels: 1-7 C1-C7, 8-19 T1-T12, 20-25 L1-L6 (L6 only in ~5 % of cases); 0 everything else.

CLI::

    python -m scripts.data.phantom case --out_image x.nii.gz --out_label y.nii.gz --seed 3
    python -m scripts.data.phantom dataset --out_dir X --n_train 4
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

__all__ = ["LEVEL_NAMES", "ORIENTATIONS", "generate_case", "write_case", "make_dataset"]

LEVEL_NAMES: list[str] = ([f"C{i}" for i in range(1, 8)] + [f"T{i}" for i in range(1, 13)]
                          + [f"L{i}" for i in range(1, 7)])
ORIENTATIONS = ("RAS", "LPS", "PIR")
GENERATOR_VERSION = 1
_BIG = np.float32(1e4)
_F32 = np.float32

# ----------------------------------------------------------------------------------------------------------
# anatomical tables, index = VerSe id - 1 (C1..C7, T1..T12, L1..L6), adult averages in mm
# ----------------------------------------------------------------------------------------------------------
_BODY_W = [0, 17, 15, 16, 17, 19, 21, 25, 27, 27, 27, 28, 29, 30, 31, 32, 34, 37, 40, 42, 44, 46, 48, 50, 50]
_BODY_D = [0, 15, 15, 15, 15.5, 16, 16, 16, 17, 18, 19, 21, 23, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 35]
_BODY_H = [10, 18, 12, 12, 12, 12.5, 13.5, 15, 16, 17, 17.5, 18, 18.5, 19, 19.5, 20, 21, 22, 23, 25, 26, 27, 27, 26, 25]
_DISC_H = [0, 5, 5, 5.5, 5.5, 6, 5, 4, 4, 4, 4.5, 4.5, 5, 5, 5.5, 6, 6, 7, 8, 9, 10, 11, 11, 10, 9]  # below level
_CANAL_W = [28, 24, 24, 24, 24, 24, 24, 20, 17, 17, 17, 17, 17, 17, 17, 17, 17, 19, 21, 22, 23, 24, 25, 26, 26]
_CANAL_D = [30, 16, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 16, 17, 18, 17, 16, 16, 17, 17]
_PED_W = [0, 6, 5.5, 5.5, 5.5, 5.5, 6, 8, 7, 6, 5, 5, 5, 5, 5.5, 6, 7, 8, 8, 8, 9, 10, 12, 14, 14]
_PED_H = [0, 8, 7, 7, 7, 7, 7.5, 10, 10.5, 11, 11.5, 12, 12.5, 13, 13.5, 14, 14.5, 15, 15, 15, 15, 14.5, 14, 13, 13]
_TP_L = [0, 7, 7, 7, 7, 8, 11, 18, 16, 16, 16, 16, 16, 15, 14, 14, 13, 10, 6, 17, 22, 27, 24, 20, 19]
_SP_L = [0, 22, 15, 15, 16, 20, 30, 35, 36, 38, 42, 44, 44, 44, 43, 40, 36, 33, 32, 30, 31, 31, 29, 23, 22]
_SP_ANG = [0, 20, 25, 25, 25, 20, 15, 30, 35, 45, 55, 60, 62, 62, 60, 50, 35, 25, 20, 10, 8, 5, 5, 5, 5]
# rib cage per rib 1..12 (half width, half depth of the inner thoracic cavity, anterior drop, arc end angle)
_RIB_RX = [45, 70, 88, 100, 110, 118, 123, 126, 127, 126, 122, 118]
_RIB_RY = [30, 45, 58, 68, 76, 82, 86, 88, 89, 89, 88, 86]
_RIB_DROP = [25, 40, 50, 58, 64, 68, 70, 72, 72, 70, 60, 45]
_RIB_END = [150, 152, 152, 152, 152, 150, 146, 132, 124, 116, 95, 70]
_SAC_W = [48, 38, 30, 22, 15]
_SAC_D = [34, 26, 20, 15, 11]
_SAC_H = [28, 22, 17, 13, 10]


# ----------------------------------------------------------------------------------------------------------
# signed-distance primitives (local coordinates a, b, h = right, anterior, cranial of their frame)
# ----------------------------------------------------------------------------------------------------------
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
    conc: endplate concavity (mm), waist: relative narrowing at mid height, wedge: anterior extra height (mm)."""

    def __init__(self, c, ra, rb, hh, conc=0.0, waist=0.0, wedge=0.0):
        self.c = np.asarray(c, float)
        self.ra, self.rb, self.hh = float(ra), float(rb), float(hh)
        self.conc, self.waist, self.wedge = float(conc), float(waist), float(wedge)

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


class _Fn:
    """Custom SDF from a function of (a, b, h) with an explicit bounding box."""

    def __init__(self, fn, lo, hi):
        self.fn, self.lo, self.hi = fn, np.asarray(lo, float), np.asarray(hi, float)

    def bbox(self):
        return self.lo, self.hi

    def sdf(self, a, b, h):
        return self.fn(a, b, h)


_I3 = np.eye(3)
_O3 = np.zeros(3)


class _Canvas:
    """RAS voxel grid with HU volume, label volume and bone distance fields."""

    def __init__(self, shape, spacing, origin):
        self.shape = tuple(int(n) for n in shape)
        self.sp = np.asarray(spacing, float)
        self.org = np.asarray(origin, float)
        self.ax = [(self.org[i] + self.sp[i] * np.arange(self.shape[i])).astype(np.float32) for i in range(3)]
        self.hu = np.full(self.shape, -1000.0, np.float32)
        self.lab = np.zeros(self.shape, np.uint8)
        self.dvert = np.full(self.shape, _BIG, np.float32)
        self.dother = np.full(self.shape, _BIG, np.float32)
        self.dense = np.zeros(self.shape, bool)  # vertebral posterior elements (thicker cortex)
        self.lo = self.org - 0.5 * self.sp
        self.hi = self.org + (np.asarray(self.shape) - 0.5) * self.sp

    def box(self, lo, hi):
        i0 = np.ceil((np.asarray(lo) - self.org) / self.sp).astype(int)
        i1 = np.floor((np.asarray(hi) - self.org) / self.sp).astype(int) + 1
        i0 = np.maximum(i0, 0)
        i1 = np.minimum(i1, self.shape)
        if np.any(i1 <= i0):
            return None
        return tuple(slice(int(a), int(b)) for a, b in zip(i0, i1))

    def xyz(self, sl):
        return (self.ax[0][sl[0]][:, None, None], self.ax[1][sl[1]][None, :, None], self.ax[2][sl[2]][None, None, :])

    def local(self, sl, c, R):
        X, Y, Z = self.xyz(sl)
        dx, dy, dz = X - _F32(c[0]), Y - _F32(c[1]), Z - _F32(c[2])
        return tuple((dx * _F32(R[i, 0]) + dy * _F32(R[i, 1])) + dz * _F32(R[i, 2]) for i in range(3))

    @staticmethod
    def world_box(c, R, lo, hi):
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        w = np.asarray(c) + corners @ R
        return w.min(0), w.max(0)

    def part_sdf(self, part, c=_O3, R=_I3):
        """(slices, sdf array) of one primitive on its bounding box, or (None, None)."""
        sl = self.box(*self.world_box(c, R, *part.bbox()))
        if sl is None:
            return None, None
        if R is _I3 and c is _O3:
            a, b, h = self.xyz(sl)
        else:
            a, b, h = self.local(sl, c, R)
        d = part.sdf(a, b, h)
        shp = tuple(s.stop - s.start for s in sl)
        if d.shape != shp:
            d = np.broadcast_to(d, shp)
        return sl, d

    def paint(self, part, value, c=_O3, R=_I3, where=None):
        """hu = value inside the primitive; `where(hu_sub, slices)` optionally restricts the voxels."""
        sl, d = self.part_sdf(part, c, R)
        if sl is None:
            return
        sub = self.hu[sl]
        m = d <= 0
        if where is not None:
            m &= where(sub, sl)
        if np.isscalar(value):
            sub[m] = value
        else:
            sub[m] = np.broadcast_to(value, sub.shape)[m]

    def solid(self, parts, c=_O3, R=_I3, subtract=()):
        """Union of parts (min) minus `subtract` parts, on the union bounding box: (slices, sdf)."""
        boxes = [self.world_box(c, R, *p.bbox()) for p in parts]
        lo = np.min([b[0] for b in boxes], 0)
        hi = np.max([b[1] for b in boxes], 0)
        sl = self.box(lo, hi)
        if sl is None:
            return None, None
        d = np.full(tuple(s.stop - s.start for s in sl), _BIG, np.float32)
        for p, (plo, phi) in zip(parts, boxes):
            psl = self.box(plo, phi)
            if psl is None:
                continue
            rel = tuple(slice(ps.start - s.start, ps.stop - s.start) for ps, s in zip(psl, sl))
            a, b, h = self.local(psl, c, R)
            view = d[rel]
            np.minimum(view, p.sdf(a, b, h), out=view)
        for p in subtract:
            plo, phi = self.world_box(c, R, *p.bbox())
            psl = self.box(np.maximum(plo, self.ax_lo(sl)), np.minimum(phi, self.ax_hi(sl)))
            if psl is None:
                continue
            rel = tuple(slice(ps.start - s.start, ps.stop - s.start) for ps, s in zip(psl, sl))
            a, b, h = self.local(psl, c, R)
            view = d[rel]
            np.maximum(view, -p.sdf(a, b, h), out=view)
        return sl, d

    def ax_lo(self, sl):
        return np.array([self.ax[i][sl[i].start] for i in range(3)], float) - 1e-3

    def ax_hi(self, sl):
        return np.array([self.ax[i][sl[i].stop - 1] for i in range(3)], float) + 1e-3

    def add_other_bone(self, parts, c=_O3, R=_I3, subtract=()):
        if subtract:
            sl, d = self.solid(parts, c, R, subtract)
            if sl is not None:
                view = self.dother[sl]
                np.minimum(view, d, out=view)
            return
        for p in parts:
            sl, d = self.part_sdf(p, c, R)
            if sl is not None:
                view = self.dother[sl]
                np.minimum(view, d, out=view)

    def add_vertebra(self, vid, parts, c, R, subtract, label_margin, n_body=1):
        """Vertebra = body parts (first n_body) + posterior elements, minus the canal; sets dvert and labels."""
        for group, dense in ((parts[:n_body], False), (parts[n_body:], True)):
            if not group:
                continue
            sl, d = self.solid(group, c, R, subtract)
            if sl is None:
                continue
            dv = self.dvert[sl]
            closer = d < dv
            np.copyto(dv, d, where=closer)
            self.dense[sl][closer] = dense
            lv = self.lab[sl]
            if callable(label_margin):
                lv[closer & (d <= label_margin(*self.xyz(sl)))] = vid
            else:
                lv[closer & (d <= _F32(label_margin))] = vid


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


# ----------------------------------------------------------------------------------------------------------
# anatomy
# ----------------------------------------------------------------------------------------------------------
class _Anatomy:
    """All random anatomy of one case (independent of the acquisition grid)."""

    def __init__(self, rng: np.random.Generator, force_l6: bool = False):
        r = rng
        self.rng = r
        u_l6 = r.random()
        self.has_l6 = bool(force_l6 or u_l6 < 0.05)
        self.ids = list(range(1, 25)) + ([25] if self.has_l6 else [])
        self.bs = r.uniform(0.9, 1.1)  # bone size
        # spinal curvature (deg)
        self.kyph = r.uniform(20, 55)  # thoracic kyphosis T1-T12
        self.lord = r.uniform(40, 70)  # lumbar lordosis L1-S1 (2/3 of it below L4)
        self.cerv = r.uniform(-5, 40)  # cervical lordosis
        self.sacr = r.uniform(40, 60)  # sacral kyphosis
        self.tl = self.lord * r.uniform(0.25, 0.4)  # tangent at the thoracolumbar junction
        self.scol = r.uniform(5, 16) if r.random() < 0.3 else r.uniform(0, 2)
        self.scol_len = r.uniform(220, 420)
        self.scol_phase = r.uniform(0, 2 * np.pi)
        # tissue properties
        self.fat = r.uniform(5, 40)  # subcutaneous fat thickness (mm) at the abdomen
        self.habitus = 0.92 + 0.2 * (self.fat - 5) / 35 + r.uniform(-0.04, 0.04)
        self.hu_fat = r.uniform(-108, -82)
        self.hu_muscle = r.uniform(32, 58)  # lower = fatty infiltration
        self.muscle = r.uniform(0.85, 1.15)
        self.hu_visc = r.uniform(20, 38)
        self.hu_lung = r.uniform(-880, -790)
        self.hu_csf = r.uniform(5, 18)
        self.hu_cord = r.uniform(28, 40)
        self.hu_disc = r.uniform(70, 100)
        self.hu_liver = r.uniform(52, 68)
        # bone density (osteoporotic .. young)
        dens = r.uniform(0.55, 1.25)
        self.hu_canc = 195 * dens
        self.hu_cort = r.uniform(1200, 1800) * (0.8 + 0.2 * dens)
        self.hu_canc_other = 220 * dens
        self.tc = r.uniform(0.5, 1.1)  # cortical shell thickness (mm) of vertebral bodies
        self.tc_post = r.uniform(1.0, 2.0)  # posterior elements are denser
        self.tc_other = r.uniform(0.8, 1.6)
        # annotation style: margin (mm beyond the bone surface) varying smoothly in space, sometimes < 0
        self.label_margin = r.uniform(0.4, 1.3)
        self.label_margin_amp = r.uniform(0.4, 1.1)
        self.label_waves = [(r.normal(size=3), r.uniform(2 * np.pi / 40, 2 * np.pi / 15), r.uniform(0, 2 * np.pi))
                            for _ in range(3)]
        self.tex_sd = r.uniform(30, 60)
        self.tex_waves = [(r.normal(size=3), r.uniform(2 * np.pi / 9, 2 * np.pi / 3), r.uniform(0, 2 * np.pi))
                          for _ in range(10)]
        # contrast phase
        cp = r.random()
        self.phase = "none" if cp < 0.5 else ("arterial" if cp < 0.8 else "venous")
        ph = self.phase
        self.hu_aorta = {"none": r.uniform(35, 50), "arterial": r.uniform(230, 380), "venous": r.uniform(140, 200)}[ph]
        self.hu_vein = {"none": r.uniform(35, 50), "arterial": r.uniform(60, 90), "venous": r.uniform(130, 180)}[ph]
        if self.phase == "venous":
            self.hu_liver += r.uniform(40, 60)
        self.hu_kidney = {"none": r.uniform(25, 35), "arterial": r.uniform(140, 200), "venous": r.uniform(150, 200)}[ph]
        self.calcified = r.random() < 0.35
        self.world_shift = np.array([r.uniform(-10, 10), r.uniform(-60, -40), r.uniform(-150, 150)])
        self._build_spine()
        self._build_soft_params()
        self._build_extras()

    # --- spine ------------------------------------------------------------------------------------------
    def _build_spine(self):
        r, bs = self.rng, self.bs
        self.dims = {}
        for vid in self.ids:
            i = vid - 1
            j = r.uniform(0.96, 1.04, size=3)
            g = dict(ra=_BODY_W[i] / 2 * bs * j[0], rb=_BODY_D[i] / 2 * bs * j[1], hh=_BODY_H[i] / 2 * bs * j[2],
                     disc=_DISC_H[i] * bs * r.uniform(0.85, 1.15), rca=_CANAL_W[i] / 2 * bs, rcb=_CANAL_D[i] / 2 * bs,
                     pw=_PED_W[i] * bs, ph=_PED_H[i] * bs, tpl=_TP_L[i] * bs * r.uniform(0.9, 1.1),
                     spl=_SP_L[i] * bs * r.uniform(0.9, 1.1), spa=_SP_ANG[i] + r.uniform(-5, 5))
            self.dims[vid] = g
        if self.has_l6:  # L5 is then an ordinary lumbar vertebra, L6 the transitional one
            self.dims[25]["ra"] = self.dims[24]["ra"] * 1.01
        # stacking along the arc length s (s = 0: top of C1)
        tops, bots = {}, {}
        tops[1], bots[1] = 0.0, self.dims[1]["hh"] * 2
        s = bots[1] + 2.0 * bs
        for vid in self.ids[1:]:
            tops[vid] = s
            bots[vid] = s + 2 * self.dims[vid]["hh"]
            s = bots[vid] + self.dims[vid]["disc"]
        sac = []
        for k in range(5):
            h = _SAC_H[k] * bs
            sac.append((s, s + h))
            s += h + 1.0
        self.tops, self.bots, self.sac_s = tops, bots, sac
        smid = {v: (tops[v] + bots[v]) / 2 for v in self.ids}
        self.smid = smid
        s_c7t1 = (bots[7] + tops[8]) / 2
        s_tl = (bots[19] + tops[20]) / 2
        s_s1 = (sac[0][0] + sac[0][1]) / 2
        s_s5 = (sac[4][0] + sac[4][1]) / 2
        # tangent angle theta (deg; > 0: going caudally moves anteriorly): lordosis = theta decreasing caudally
        tl = self.tl
        t_ct = tl - self.kyph
        s_l4 = tops[self.ids[-2]]
        kn_s = [-90, smid[1], s_c7t1, s_tl, s_l4, s_s1, s_s5, s_s5 + 60]
        kn_t = [t_ct + self.cerv, t_ct + self.cerv, t_ct, tl, tl - self.lord * 0.36, tl - self.lord,
                tl - self.lord + self.sacr, tl - self.lord + self.sacr]
        ds = 0.5
        ss = np.arange(-90, s_s5 + 60, ds)
        th = np.radians(np.interp(ss, kn_s, kn_t))
        # scoliosis: lateral angle, tapered to 0 at T1 and S1
        s_t1 = smid[8]
        win = np.clip((ss - s_t1) / 60, 0, 1) * np.clip((s_s1 - ss) / 60, 0, 1)
        ph = np.radians(self.scol) * np.sin(2 * np.pi * (ss - s_t1) / self.scol_len + self.scol_phase) * win
        d = np.stack([np.sin(ph), np.sin(th) * np.cos(ph), -np.cos(th) * np.cos(ph)], 1)
        P = np.cumsum(d, 0) * ds
        P -= P[np.searchsorted(ss, smid[20])]
        P += self.world_shift
        self.ss, self.P, self.tang, self.phi = ss, P, d, ph

        def frame_at(sv, psi=0.0):
            k = int(np.clip(np.searchsorted(ss, sv), 0, len(ss) - 1))
            return P[k].copy(), _frame(-d[k], psi)

        self.frame_at = frame_at
        self.verts = {}
        for vid in self.ids:
            k = int(np.searchsorted(ss, smid[vid]))
            psi = 0.6 * ph[k] + np.radians(r.uniform(-2, 2))
            self.verts[vid] = frame_at(smid[vid], psi)
        self.sacrum = [frame_at((a + b) / 2) for a, b in sac]

    def pos_at_s(self, sv):
        k = int(np.clip(np.searchsorted(self.ss, sv), 0, len(self.ss) - 1))
        return self.P[k]

    def s_of_z(self, z):
        """Arc length at world height z (z decreases monotonically along s)."""
        zz = self.P[:, 2]
        return np.interp(-np.asarray(z, float), -zz, self.ss)

    def spine_xy(self, z):
        s = self.s_of_z(z)
        return np.interp(s, self.ss, self.P[:, 0]), np.interp(s, self.ss, self.P[:, 1])

    def vz(self, vid):
        return self.verts[vid][0][2]

    def vtop_z(self, vid):
        return self.pos_at_s(self.tops[vid])[2]

    def vbot_z(self, vid):
        return self.pos_at_s(self.bots[vid])[2]

    def body_zrange(self, vid):
        c, R = self.verts[vid]
        g = self.dims[vid]
        e = np.array([g["ra"], g["rb"], g["hh"]])
        lo, hi = _Canvas.world_box(c, R, -e, e)
        return lo[2], hi[2]

    def vertebra_parts(self, vid):
        g = self.dims[vid]
        bs = self.bs
        ra, rb, hh, rca, rcb = g["ra"], g["rb"], g["hh"], g["rca"], g["rcb"]
        dis_dn = g["disc"]
        dis_up = self.dims[vid - 1]["disc"] if vid > 1 else 2.0
        if vid == 1:
            return self._atlas_parts()
        reg = "C" if vid <= 7 else ("T" if vid <= 19 else "L")
        parts = []
        last_lumbar = vid == self.ids[-1]
        wedge = {"C": 0.0, "T": -0.5, "L": 0.0}[reg] + (1.8 * bs if last_lumbar else 0.0)
        parts.append(_ECyl((0, 0, 0), ra, rb, hh, conc=0.5 if reg == "C" else 0.9, waist=0.05, wedge=wedge))
        if vid == 2:
            parts.append(_Cap((0, -1.0, hh - 3), (0, -1.5, hh + 13.5 * bs), 5.2 * bs, 4.2 * bs))
            for s in (-1, 1):
                parts.append(_Ell((s * ra * 0.85, -rb * 0.3, hh - 1.5), np.array([7, 8, 4.5]) * bs))
        bc = -(rb + rcb - 1.5)
        pw, ph = g["pw"], g["ph"]
        lt = {"C": 4.5, "T": 6.0, "L": 7.0}[reg] * bs
        apr = {"C": 5.5, "T": 4.0, "L": 5.0}[reg] * bs
        xp = rca + pw / 2 - 0.8
        xj = xp + 0.5
        hp = 0.0 if reg == "C" else hh * 0.25
        bj = bc - rcb * 0.55
        bback = bc - rcb - lt * 0.45
        tpl = g["tpl"]
        info = {}
        for s in (-1, 1):
            parts.append(_Cap((s * xp, -rb + 3, hp), (s * xj, bj, hp), pw / 2, scale=(1, 1, pw / ph)))
            lam_h = hh * (0.75 if reg == "C" else 0.85)
            parts.append(_Plate((0, 1), 2, (s * xj, bj), (0, bback), lt / 2, -hh * 0.15, lam_h))
            # superior / inferior articular processes
            parts.append(_Cap((s * (xj + 1.5), bj + 1.0, hp), (s * (xj + 1.5), bj + 0.5, hh + dis_up * 0.85), apr))
            parts.append(_Cap((s * (xj - 1.0), bj - 2.5, -hh * 0.2),
                              (s * (xj - 1.5), bj - 3.5, -hh - dis_dn * 0.6), apr))
            if reg == "C":
                tip = (s * (xj + tpl), -rb * 0.15, 0.0)
                parts.append(_Cap((s * xj, bj, 0.0), tip, 2.8 * bs))
                parts.append(_Cap((s * (ra - 1), -rb * 0.1, 0.0), tip, 2.5 * bs))
                if vid == 7:
                    parts.append(_Cap((s * xj, bj, 0.0), (s * (xj + tpl * 1.2), bj + 2, 0.0), 3.5 * bs))
            elif reg == "T":
                tip = (s * (xj + tpl * 0.75), bj - tpl * 0.65, hp + 1)
                parts.append(_Cap((s * xj, bj + 1, hp), tip, 4.3 * bs, 5.0 * bs))
            else:
                tip = (s * (xj + tpl), bj + 3, hp * 0.6)
                rt = 6.0 * bs if last_lumbar else 4.0 * bs
                parts.append(_Cap((s * xj, bj + 2, hp * 0.6), tip, rt + 1, rt, scale=(1, 1, 0.7)))
            info[s] = tip
        b0, h0 = bback + 1.0, -hh * 0.15
        ang = math.radians(g["spa"])
        tipb, tiph = b0 - g["spl"] * math.cos(ang), h0 - g["spl"] * math.sin(ang)
        if reg == "C" and 3 <= vid <= 6:
            for s in (-1, 1):
                parts.append(_Cap((0, b0, h0), (s * 3.5 * bs, tipb, tiph), 3.0 * bs))
        elif reg == "L":
            parts.append(_Plate((1, 2), 0, (b0, h0), (tipb, tiph), 7.0 * bs, 0.0, 3.3 * bs))
        else:
            parts.append(_Cap((0, b0, h0), (0, tipb, tiph), 3.5 * bs, 4.5 * bs))
        canal = _ECyl((0, bc, 0), rca, rcb, hh + dis_up + dis_dn + 8)
        return parts, [canal], info

    def _atlas_parts(self):
        bs = self.bs
        parts = []
        yc, rx, ry = -14 * bs, 21 * bs, 23 * bs
        n = 16
        ang = np.linspace(0, 2 * np.pi, n + 1)
        pts = [(rx * np.sin(t), yc + ry * np.cos(t), 0.0) for t in ang]
        for p, q in zip(pts[:-1], pts[1:]):
            parts.append(_Cap(p, q, 3.2 * bs, scale=(1, 1, 0.6)))
        info = {}
        for s in (-1, 1):
            parts.append(_Ell((s * 18 * bs, -6 * bs, 0), np.array([7, 10, 8]) * bs))
            tip = (s * 37 * bs, -8 * bs, 1.0)
            parts.append(_Cap((s * 22 * bs, -8 * bs, 0), tip, 4.0 * bs))
            info[s] = tip
        canal = _ECyl((0, -22 * bs, 0), 13 * bs, 12 * bs, 20)
        return parts, [canal], info

    # --- soft tissue tables -----------------------------------------------------------------------------
    def _build_soft_params(self):
        r = self.rng
        bs = self.bs
        self.cage_w = r.uniform(0.9, 1.1) * bs
        self.cage_d = r.uniform(0.9, 1.1) * bs
        # cage (thoracic cavity) per rib at the rib head level
        rib_s, rib_rx, rib_ry, rib_post = [], [], [], []
        for k in range(12):
            vid = 8 + k
            g = self.dims[vid]
            rib_s.append(self.smid[vid])
            rib_rx.append(_RIB_RX[k] * self.cage_w)
            rib_ry.append(_RIB_RY[k] * self.cage_d)
            rib_post.append(g["rb"] + g["rcb"] * 1.2 + 12)
        self.rib_s, self.rib_rx, self.rib_ry, self.rib_post = map(np.array, (rib_s, rib_rx, rib_ry, rib_post))
        hw = self.habitus
        sm = self.smid
        last = self.ids[-1]
        s_s2 = np.mean(self.sac_s[1])
        s_c7t1 = (self.bots[7] + self.tops[8]) / 2
        # anchors along s: (s, A, Ba, Bp, fat factor, cavity Rx, cavity y_back, cavity y_front, thoracic weight)
        rows = [(-80, 72, 95, 80, 0.35, 0, 0, 0, 0), (sm[1], 62, 80, 72, 0.35, 0, 0, 0, 0),
                (sm[3], 56, 62, 68, 0.4, 0, 0, 0, 0), (sm[6], 55, 54, 68, 0.45, 0, 0, 0, 0),
                (s_c7t1, 85, 60, 72, 0.5, 0, 0, 0, 1)]
        for k in range(12):
            vid = 8 + k
            rx, ry, post = rib_rx[k], rib_ry[k], rib_post[k]
            A = rx + 18 if k > 1 else max(rx + 18, 150 * hw if k == 1 else 100)
            Ba = -post + 2 * ry + 16
            Bp = 65 + 8 * k / 11
            rows.append((sm[vid], A * (1 + 0.3 * (hw - 1)), Ba * (1 + 0.3 * (hw - 1)), Bp, 0.7 + 0.2 * k / 11,
                         rx, -post, -post + 2 * ry, 1.0))
        ab = [(sm[20], 148, 150, 75), (sm[22], 142, 135, 82), (sm[last], 152, 122, 86), (s_s2, 165, 110, 78),
              (self.sac_s[4][1] + 80, 170, 110, 70)]
        for s_, A, Ba, Bp in ab:
            A, Ba = A * hw, Ba * hw
            rows.append((s_, A, Ba, Bp, 1.1, A - 14, -5, Ba - 12, 0.0))
        self.soft_tab = np.array(rows, float)

    def soft_at(self, z):
        """Soft-tissue parameters at world heights z (array): dict of arrays."""
        s = self.s_of_z(z)
        t = self.soft_tab
        keys = ["A", "Ba", "Bp", "fatf", "cx", "cyb", "cyf", "thor"]
        out = {k: np.interp(s, t[:, 0], t[:, i + 1]) for i, k in enumerate(keys)}
        out["xs"], out["ys"] = np.interp(s, self.ss, self.P[:, 0]), np.interp(s, self.ss, self.P[:, 1])
        out["s"] = s
        return out

    def cage_at(self, z):
        """Thoracic cage ellipse at height z: (xc, yc, Rx, Ry)."""
        s = self.s_of_z(z)
        xs, ys = np.interp(s, self.ss, self.P[:, 0]), np.interp(s, self.ss, self.P[:, 1])
        rx = np.interp(s, self.rib_s, self.rib_rx)
        ry = np.interp(s, self.rib_s, self.rib_ry)
        post = np.interp(s, self.rib_s, self.rib_post)
        return xs, ys - post + ry, rx, ry

    # --- everything that is not the spine ----------------------------------------------------------------
    def _build_extras(self):
        r = self.rng
        bs = self.bs
        self.x_body = float(np.mean([self.verts[v][0][0] for v in range(8, 25)]))
        # ribs: list of capsule chains (world)
        self.ribs, self.cartilage = [], []
        for k in range(12):
            vid = 8 + k
            c, R = self.verts[vid]
            g = self.dims[vid]
            parts, _, info = self.vertebra_parts(vid)
            rr = (4.2 if k == 0 else 3.4) * bs
            sc = (1.0, 1.0, 0.62)
            for s in (-1, 1):
                head = c + np.array([s * g["ra"] * 0.8, -g["rb"] * 0.45, g["hh"] * 0.85]) @ R
                tip = np.asarray(info[s], float)
                neck = c + np.array([tip[0] - s * 2, tip[1] + 4.5, tip[2] - 1]) @ R
                z0 = neck[2]
                xc, yc, rx, ry = self.cage_at(z0)
                rx, ry = rx + rr + 1, ry + rr + 1
                ph0 = math.asin(float(np.clip(abs(neck[0] - xc) / rx, 0.05, 0.9)))
                ph1 = math.radians(_RIB_END[k] + r.uniform(-5, 5))
                drop = _RIB_DROP[k] * 1.35 * bs * r.uniform(0.85, 1.15)
                n = 14
                pts = [head, neck]
                for t in np.linspace(0, 1, n)[1:]:
                    ph = ph0 + t * (ph1 - ph0)
                    z = z0 - drop * t ** 1.4
                    xc2, yc2, rx2, ry2 = self.cage_at(z)
                    rx2, ry2 = rx2 + rr + 1, ry2 + rr + 1
                    pts.append(np.array([xc2 + s * rx2 * math.sin(ph), yc2 - ry2 * math.cos(ph), z]))
                chain = [_Cap(p, q, rr, rr * 0.9, scale=sc) for p, q in zip(pts[:-1], pts[1:])]
                self.ribs.append(chain)
                if k < 10:  # costal cartilage towards the sternum
                    end = pts[-1]
                    zst = min(end[2] + (10 if k < 7 else 25), self.vz(8 + min(k + 2, 9)))
                    xc2, yc2, rx2, ry2 = self.cage_at(zst)
                    stern = np.array([xc2 + s * (12 + 1.5 * k), yc2 + ry2 + 4, zst])
                    self.cartilage.append(_Cap(end, stern, rr * 0.9))
        # sternum
        zs_top, zs_bot = self.vtop_z(10) + 8, self.vz(17)
        zz = np.linspace(zs_top, zs_bot, 6)
        spts = []
        for z in zz:
            xc, yc, rx, ry = self.cage_at(z)
            spts.append(np.array([self.x_body, yc + ry + 7 * bs, z]))
        self.sternum = [_Cap(p, q, 6 * bs, 5 * bs, scale=(0.4, 1, 1)) for p, q in zip(spts[:-1], spts[1:])]
        # clavicles and scapulae
        self.shoulder = []
        zc = self.vtop_z(9)
        xc, yc, rx, ry = self.cage_at(zc)
        for s in (-1, 1):
            p0 = np.array([self.x_body + s * 18, spts[0][1] + 4, zs_top + 6])
            p1 = np.array([self.x_body + s * (rx + 30), yc + 10, zc + 28])
            p2 = np.array([self.x_body + s * (rx + 48), yc - 15, zc + 35])
            self.shoulder += [_Cap(p0, p1, 7 * bs), _Cap(p1, p2, 6 * bs)]
        z5 = self.vz(12)
        xc5, yc5, rx5, ry5 = self.cage_at(z5)
        self.scapulae = []
        for s in (-1, 1):
            ph = math.radians(58)
            pt = np.array([xc5 + s * (rx5 + 14) * math.sin(ph), yc5 - (ry5 + 14) * math.cos(ph), z5])
            normal = np.array([s * math.sin(ph) / (rx5 + 14), -math.cos(ph) / (ry5 + 14), 0])
            normal /= np.linalg.norm(normal)
            tang = np.cross([0, 0, 1.0], normal) * s
            R = np.stack([tang, normal, [0, 0, 1.0]])
            parts = [_Plate((0, 2), 1, (-5, 45), (12, -55), 24 * bs, 0.0, 3.0),
                     _Cap((-35, 4, 55), (40, 8, 62), 5 * bs)]
            self.scapulae.append((pt, R, parts))
        # sacrum
        self.sacrum_parts = []
        for k, (c, R) in enumerate(self.sacrum):
            hw, hd, hh = _SAC_W[k] / 2 * bs, _SAC_D[k] / 2 * bs, _SAC_H[k] / 2 * bs
            rca, rcb = (15 - 2.2 * k) * bs, (8 - 1.0 * k) * bs
            bc = -(hd + rcb - 1)
            parts = [_ECyl((0, 0, 0), hw, hd, hh + 1.2)]
            ala = [52, 45, 34, 0, 0][k] * bs
            if ala:
                for s in (-1, 1):
                    parts.append(_Cap((0, -hd * 0.3, 0), (s * ala, -hd * 0.7, -hh * 0.2), [14, 11, 8][k] * bs,
                                      [10, 8, 6][k] * bs, scale=(1, 1, 0.55)))
            parts.append(_Plate((0, 1), 2, (-(rca + 5), bc), (0, bc - rcb - 3), 4.0 * bs, 0.0, hh + 1.0))
            parts.append(_Plate((0, 1), 2, ((rca + 5), bc), (0, bc - rcb - 3), 4.0 * bs, 0.0, hh + 1.0))
            parts.append(_Cap((0, bc - rcb - 3, hh * 0.5), (0, bc - rcb - 9, -hh * 0.5), 3.5 * bs))
            canal = _ECyl((0, bc, 0), rca, rcb, hh + 3)
            self.sacrum_parts.append((c, R, parts, [canal]))
        # ilium (shell of an ellipsoid, posterolateral half) + posterior iliac mass
        cS1, RS1 = self.sacrum[0]
        ps = r.uniform(0.92, 1.08) * bs * self.habitus ** 0.3
        z_crest = self.vz(self.ids[-1]) + r.uniform(-2, 14)
        self.ilium = []
        for s in (-1, 1):
            C = np.array([cS1[0] + s * 66 * ps, cS1[1] + 30 * ps, z_crest - 8])
            rad = np.array([54, 50, 100]) * ps
            th = 3.6 * bs
            ca, sa = math.cos(math.radians(42)), math.sin(math.radians(42))

            def fn(X, Y, Z, C=C, rad=rad, th=th, s=s, ca=ca, sa=sa, zc=z_crest):
                x, y, z = X - _F32(C[0]), Y - _F32(C[1]), Z - _F32(C[2])
                k0 = np.sqrt((x / _F32(rad[0])) ** 2 + (y / _F32(rad[1])) ** 2 + (z / _F32(rad[2])) ** 2)
                k1 = np.sqrt((x / _F32(rad[0] ** 2)) ** 2 + (y / _F32(rad[1] ** 2)) ** 2 + (z / _F32(rad[2] ** 2)) ** 2)
                d = np.abs(k0 * (k0 - 1) / (k1 + _F32(1e-6))) - _F32(th)
                half = _F32(ca) * y - _F32(sa) * (x * _F32(s))  # keep the posterolateral half
                return np.maximum(np.maximum(d, half), Z - _F32(zc))

            lo = C - rad - th
            hi = C + rad + th
            hi[2] = z_crest + 1
            self.ilium.append(_Fn(fn, lo, hi))
            self.ilium.append(_Ell(cS1 + np.array([s * 50, -22, -12]) * ps, np.array([13, 16, 30]) * ps))
        # skull base, occipital condyles, mandible
        c1, R1 = self.verts[1]
        c2, _ = self.verts[2]
        c4, _ = self.verts[4]
        top1 = self.pos_at_s(0.0)
        self.skull = []
        Cs = np.array([c1[0], c1[1] + 8, top1[2] + 78])
        rs = np.array([70, 88, 80]) * bs
        fm = np.array([c1[0], c1[1] - 12])

        def skull_fn(X, Y, Z, Cs=Cs, rs=rs, fm=fm):
            x, y, z = X - _F32(Cs[0]), Y - _F32(Cs[1]), Z - _F32(Cs[2])
            k0 = np.sqrt((x / _F32(rs[0])) ** 2 + (y / _F32(rs[1])) ** 2 + (z / _F32(rs[2])) ** 2)
            k1 = np.sqrt((x / _F32(rs[0] ** 2)) ** 2 + (y / _F32(rs[1] ** 2)) ** 2 + (z / _F32(rs[2] ** 2)) ** 2)
            d = np.abs(k0 * (k0 - 1) / (k1 + _F32(1e-6))) - _F32(4.0)
            hole = _F32(17.0) - np.sqrt((X - _F32(fm[0])) ** 2 + (Y - _F32(fm[1])) ** 2)
            return np.maximum(d, hole)

        self.skull.append(_Fn(skull_fn, Cs - rs - 5, Cs + rs + 5))
        self.skull_center, self.skull_r = Cs, rs
        for s in (-1, 1):
            self.skull.append(_Ell(top1 + np.array([s * 17, -7, 5]) * bs, np.array([7, 10, 5.5]) * bs))
            m0 = np.array([c1[0] + s * 48 * bs, c1[1] + 22 * bs, top1[2] + 8])
            m1 = np.array([c2[0] + s * 46 * bs, c2[1] + 22 * bs, c2[2] - 18])
            m2 = np.array([c4[0] + s * 36 * bs, c4[1] + 58 * bs, c4[2] - 2])
            m3 = np.array([c4[0], c4[1] + 78 * bs, c4[2] - 4])
            self.skull += [_Cap(m0, m1, 5.5 * bs, 6 * bs), _Cap(m1, m2, 6 * bs, 7 * bs), _Cap(m2, m3, 7 * bs)]
        # vessels
        self.aorta = self._aorta_chain()
        self.calc = []
        if self.calcified:
            segs = [p for p in self.aorta if p.p0[2] < self.vz(14)]
            for _ in range(int(r.integers(4, 18))):
                p = segs[int(r.integers(len(segs)))]
                t = r.random()
                ctr = p.p0 + t * (p.p1 - p.p0)
                rad = p.r0 + t * (p.r1 - p.r0)
                dirn = r.normal(size=3)
                dirn[2] = 0
                dirn /= np.linalg.norm(dirn) + 1e-9
                self.calc.append((_Ell(ctr + dirn * (rad - 1.2), r.uniform(0.8, 2.2, size=3)), r.uniform(350, 1000)))
        # bowel loops (abdomen), visceral fat blobs, lung vessels
        self.bowel = []
        z_hi, z_lo = self.vz(19), self.sacrum[2][0][2]
        nb = int(r.integers(60, 110))
        for _ in range(nb):
            z = r.uniform(z_lo, z_hi)
            p = self.soft_at(np.array([z]))
            ang = r.uniform(0, 2 * np.pi)
            rad = math.sqrt(r.uniform(0.0, 1.0))
            A = max(p["cx"][0] - 20, 20)
            yb, yf = p["ys"][0] + self.dims[22]["rb"] + 10, p["ys"][0] + p["cyf"][0] - 12
            x = self.x_body + A * rad * math.cos(ang)
            y = (yb + yf) / 2 + (yf - yb) / 2 * rad * math.sin(ang)
            d = r.normal(size=3)
            d[2] *= 0.6
            d /= np.linalg.norm(d)
            L = r.uniform(15, 70)
            rr = r.uniform(8, 16) * (1.15 - 0.3 * (self.fat - 5) / 35)
            kind = r.choice(["gas", "fluid", "feces", "mixed", "collapsed"], p=[0.12, 0.3, 0.1, 0.13, 0.35])
            p0 = np.array([x, y, z]) - d * L / 2
            self.bowel.append((p0, p0 + d * L, rr, kind, r.uniform(0.2, 0.7)))
        self.visc_fat = []
        nf = int(10 + 50 * (self.fat - 5) / 35 * r.uniform(0.5, 1.0))
        for _ in range(nf):
            z = r.uniform(z_lo, z_hi)
            p = self.soft_at(np.array([z]))
            A = max(p["cx"][0] - 15, 20)
            ang = r.uniform(0, 2 * np.pi)
            rad = math.sqrt(r.uniform(0, 1))
            yb, yf = p["ys"][0] + 0, p["ys"][0] + p["cyf"][0] - 10
            c = np.array([self.x_body + A * rad * math.cos(ang), (yb + yf) / 2 + (yf - yb) / 2 * rad * math.sin(ang),
                          z])
            self.visc_fat.append(_Ell(c, r.uniform(12, 40, size=3)))
        self.lung_vessels = []
        for _ in range(70):
            vid = int(r.integers(9, 18))
            z = self.vz(vid) + r.uniform(-15, 15)
            xc, yc, rx, ry = self.cage_at(z)
            s = r.choice([-1, 1])
            hil = np.array([xc + s * 30, yc + 0.1 * ry, self.vz(13)])
            ang = r.uniform(-np.pi / 2, np.pi / 2)
            rad = r.uniform(0.35, 0.95)
            tgt = np.array([xc + s * rx * rad * math.cos(ang) * 0.9, yc + ry * rad * math.sin(ang) * 0.9, z])
            mid = hil + (tgt - hil) * r.uniform(0.3, 0.7)
            self.lung_vessels.append(_Cap(mid, tgt, r.uniform(1.5, 3.5), r.uniform(0.6, 1.2)))

    def _aorta_chain(self):
        r = self.rng
        vs = r.uniform(0.85, 1.2)

        def at(vid, dx, dy, dz=0.0):
            c, _ = self.verts[vid]
            g = self.dims[vid]
            return np.array([c[0] + dx, c[1] + g["rb"] + dy, c[2] + dz])

        xc, yc, rx, ry = self.cage_at(self.vz(14))
        root = np.array([xc - 5, yc + 0.35 * ry, self.vz(14)])
        asc = np.array([xc - 2, yc + 0.4 * ry, self.vz(11)])
        arch = at(10, -12, 28, 0)
        pts = [root, asc, arch, at(11, -20, 6), at(13, -21, -6), at(16, -17, 0), at(19, -12, 6), at(21, -11, 10),
               at(23, -10, 10, self.dims[23]["hh"])]
        rad = np.array([15, 15, 13.5, 12.5, 12, 11.5, 11, 10, 9]) * vs
        chain = [_Cap(p, q, a, b) for p, q, a, b in zip(pts[:-1], pts[1:], rad[:-1], rad[1:])]
        bif = pts[-1]
        cS1, _ = self.sacrum[0]
        for s in (-1, 1):
            chain.append(_Cap(bif, np.array([cS1[0] + s * 38, cS1[1] + 30, cS1[2] - 10]), 6.5 * vs, 5.5 * vs))
        return chain


# ----------------------------------------------------------------------------------------------------------
# rendering
# ----------------------------------------------------------------------------------------------------------
def _render(an: _Anatomy, cv: _Canvas, label_margin: float):
    nx, ny, _ = cv.shape
    X, Y, Z = cv.ax[0][:, None, None], cv.ax[1][None, :, None], cv.ax[2]
    p = an.soft_at(Z)
    bs = an.bs
    # ---- body outline: skin / subcutaneous fat / muscle -------------------------------------------------
    F = an.fat * p["fatf"]
    xb = an.x_body + 0.3 * (p["xs"] - an.x_body)
    f32 = lambda v: v.astype(np.float32)[None, None, :]  # noqa: E731
    dx = X - f32(xb)
    dy = Y - f32(p["ys"])
    ant = dy > 0

    def q(A, Ba, Bp):
        qa = (dx * f32(1 / A)) ** 2
        ya = dy * np.where(ant, f32(1 / Ba), f32(1 / Bp))
        ya *= ya
        ya = np.where(ant, ya, ya * ya)
        return qa + ya

    hu = cv.hu
    skin = q(p["A"] + F * 1.15, p["Ba"] + F, p["Bp"] + F * 0.8) <= 1
    hu[skin] = an.hu_fat
    inner = q(p["A"], p["Ba"], p["Bp"]) <= 1
    hu[inner] = an.hu_muscle
    del skin, ant, dx, dy
    # ---- cavity (visceral compartment: thorax = rib cage, abdomen) ------------------------------------
    zsel = np.nonzero(p["cx"] > 5)[0]
    if len(zsel):
        zs = slice(int(zsel[0]), int(zsel[-1]) + 1)
        pc = {k: v[zs] for k, v in p.items()}
        ycen = pc["ys"] + (pc["cyb"] + pc["cyf"]) / 2
        ry = np.maximum((pc["cyf"] - pc["cyb"]) / 2, 1)
        cav = ((X - f32(pc["xs"])) * f32(1 / pc["cx"])) ** 2 + ((Y - f32(ycen)) * f32(1 / ry)) ** 2 <= 1
        cav &= inner[:, :, zs]
        val = np.where(pc["thor"] > 0.5, an.hu_fat * 0.85, an.hu_fat * 0.8).astype(np.float32)
        sub = hu[:, :, zs]
        np.copyto(sub, np.broadcast_to(val[None, None, :], sub.shape), where=cav)
        del cav
    del inner
    body = lambda h, sl: h > -500  # noqa: E731
    # ---- abdominal organs -------------------------------------------------------------------------------
    for e in an.visc_fat:
        cv.paint(e, an.hu_fat, where=body)
    for p0, p1, rr, kind, lev in an.bowel:
        cv.paint(_Cap(p0, p1, rr), an.hu_muscle - 5, where=body)
        inner_cap = _Cap(p0, p1, rr - 2.5)
        if kind == "collapsed":
            pass
        elif kind == "gas":
            cv.paint(inner_cap, -1000.0)
        elif kind == "fluid":
            cv.paint(inner_cap, an.hu_csf)
        elif kind == "feces":
            cv.paint(inner_cap, -60.0)
        else:  # gas above a fluid level (supine: anterior is up)
            ylev = (p0[1] + p1[1]) / 2 + (lev - 0.5) * rr

            def up(h, sl, ylev=ylev):
                return np.broadcast_to(cv.xyz(sl)[1] > ylev, h.shape)

            cv.paint(inner_cap, an.hu_csf)
            cv.paint(inner_cap, -1000.0, where=up)
    z_t11, z_l1, z_l2 = an.vz(18), an.vz(20), an.vz(21)
    pk = an.soft_at(np.array([z_l1]))
    for s in (-1, 1):
        kc = np.array([pk["xs"][0] + s * 58 * bs, pk["ys"][0] + 8, (z_l1 + z_l2) / 2 + (12 if s < 0 else -5)])
        cv.paint(_Ell(kc, np.array([34, 31, 62]) * bs), an.hu_fat)
        cv.paint(_Ell(kc, np.array([24, 21, 52]) * bs), an.hu_kidney)
        if an.phase != "none":
            cv.paint(_Ell(kc + [s * -4, 2, 0], np.array([14, 11, 36]) * bs), an.hu_kidney * 0.6)
    pl = an.soft_at(np.array([z_t11]))
    lc = np.array([pl["xs"][0] + 0.4 * pl["cx"][0], pl["ys"][0] + 0.45 * pl["cyf"][0], z_t11 + 5])
    cv.paint(_Ell(lc, np.array([0.62 * pl["cx"][0], 0.5 * pl["cyf"][0], 85 * bs])), an.hu_liver, where=body)
    sc_ = np.array([pl["xs"][0] - 0.65 * pl["cx"][0], pl["ys"][0] + 0.15 * pl["cyf"][0], z_t11])
    cv.paint(_Ell(sc_, np.array([26, 48, 50]) * bs), an.hu_liver - 8, where=body)
    # ---- lungs ---------------------------------------------------------------------------------------------
    z_apex = an.vtop_z(8) + 28
    z_low = an.vbot_z(19) + 5
    zi = np.nonzero((Z <= z_apex) & (Z >= z_low))[0]
    if len(zi):
        zs = slice(int(zi[0]), int(zi[-1]) + 1)
        Zs = Z[zs]
        xc, yc, rx, ry = an.cage_at(Zs)
        # spine keep-out half widths (interpolated from the vertebra at that height)
        s_ = an.s_of_z(Zs)
        sm = np.array([an.smid[v] for v in range(1, 21)])
        ra_ = np.interp(s_, sm, [an.dims[v]["ra"] for v in range(1, 21)])
        rb_ = np.interp(s_, sm, [an.dims[v]["rb"] for v in range(1, 21)])
        kp = np.interp(s_, sm, [an.dims[v]["rca"] + an.dims[v]["pw"] + an.dims[v]["tpl"] * 0.9 for v in range(1, 21)])
        ys_ = np.interp(s_, an.ss, an.P[:, 1])
        xs_ = np.interp(s_, an.ss, an.P[:, 0])

        def ell(cx, cy, ax, by):
            return ((X - f32(cx)) * f32(1 / ax)) ** 2 + ((Y - f32(cy)) * f32(1 / by)) ** 2 <= 1

        lung = ell(xc, yc, rx - 1, ry - 1)
        lung &= ~ell(xs_, ys_ - 0.2 * rb_, ra_ + 5, 1.5 * rb_ + 4)  # vertebral body + paravertebral tissue
        lung &= ~ell(xs_, ys_ - 2.2 * rb_ - 8, kp + 5, rb_ + 16)  # posterior elements, paraspinal muscles
        front = yc + ry
        lung &= ~ell(xs_ - 6, (ys_ + front) / 2, 14 + 0.1 * rx, (front - ys_) / 2 + 2)  # mediastinum
        # diaphragm domes
        zb = an.vz(17)
        xcc, ycc, rxd, ryd = an.cage_at(np.array([zb]))
        xcc, ycc, rxd, ryd = float(xcc[0]), float(ycc[0]), float(rxd[0]), float(ryd[0])
        hd = an.vz(16) - z_low
        zdia = np.full((nx, ny, 1), z_low, np.float32)
        for s, extra in ((1, 12.0), (-1, 0.0)):
            qd = 1 - ((X[:, :, 0:1] - _F32(xcc + s * 0.45 * rxd)) / _F32(0.75 * rxd)) ** 2 - \
                ((Y[:, :, 0:1] - _F32(ycc + 0.15 * ryd)) / _F32(ryd)) ** 2
            zdia = np.maximum(zdia, _F32(z_low) + _F32(hd + extra) * np.sqrt(np.clip(qd, 0, 1)))
        lung &= Zs[None, None, :] >= zdia
        grad = (Y - f32(yc - ry)) * f32(1 / (2 * ry))  # 0 posterior .. 1 anterior
        lv = _F32(an.hu_lung + 70) - _F32(110) * grad
        sub = hu[:, :, zs]
        np.copyto(sub, np.broadcast_to(lv, sub.shape), where=lung)
        del lung, grad, lv
    is_lung = lambda h, sl: h < -600  # noqa: E731
    for v in an.lung_vessels:
        cv.paint(v, 35.0, where=is_lung)
    # heart
    zh = an.vz(15)
    xc, yc, rx, ry = (float(v[0]) for v in an.cage_at(np.array([zh])))
    hc = np.array([xc - 0.18 * rx, yc + 0.32 * ry, zh])
    hr = np.array([0.48 * rx, 0.5 * ry, 58 * bs])
    cv.paint(_Ell(hc, hr + 5), an.hu_fat)
    cv.paint(_Ell(hc, hr), 45.0)
    cv.paint(_Ell(hc + [0, -3, 5], hr * 0.65), an.hu_aorta if an.phase == "arterial" else max(an.hu_vein, 45.0))
    # ---- neck ------------------------------------------------------------------------------------------------
    tra0, tra1 = an.verts[5][0], an.verts[12][0]
    off = lambda c, vid, dy: c + np.array([0, an.dims[vid]["rb"] + dy, 0])  # noqa: E731
    t0, t1 = off(tra0, 5, 20), off(tra1, 12, 22)
    cv.paint(_Cap(off(an.verts[6][0], 6, 6), off(an.verts[18][0], 18, 4), 7.5), an.hu_muscle - 8)  # esophagus
    for s in (-1, 1):
        cv.paint(_Ell(off(an.verts[7][0], 7, 22) + [s * 16, 0, 0], np.array([9, 10, 22])), 100.0)  # thyroid
        cv.paint(_Cap(off(an.verts[2][0], 2, 12) + [s * 22, 0, 0], off(an.verts[8][0], 8, 15) + [s * 20, 0, 0], 4.0),
                 an.hu_aorta)
    cv.paint(_Cap(t0, t1, 9.5), 40.0)
    cv.paint(_Cap(t0, t1, 7.5), -1000.0)
    for s in (-1, 1):
        cv.paint(_Cap(t1, t1 + np.array([s * 38, 8, -22]), 6.5), -1000.0)
    # ---- vessels ----------------------------------------------------------------------------------------------
    for a in an.aorta:
        cv.paint(a, an.hu_aorta)
    for e, v in an.calc:
        cv.paint(e, v)
    ivc0, ivc1 = an.verts[23][0], an.verts[18][0]
    ivc = _Cap(ivc0 + [24, an.dims[23]["rb"] + 12, 0], ivc1 + [22, an.dims[18]["rb"] + 14, 0], 10.0 * bs)
    cv.paint(ivc, an.hu_vein)
    # ---- muscles: psoas, paraspinal (with fat planes) ---------------------------------------------------------
    musc = []
    lum = [v for v in an.ids if v >= 20]
    prev = None
    for v in [19] + lum:
        c, R = an.verts[v]
        g = an.dims[v]
        rp = 5 + 19 * (v - 19) / (len(lum)) * bs
        pts = [c + np.array([s * (g["ra"] + rp * 0.75), -g["rb"] * 0.05, 0]) @ R for s in (-1, 1)]
        if prev is not None:
            for s in range(2):
                musc.append(("cap", prev[0][s], pts[s], prev[1], rp))
        prev = (pts, rp)
    cS1, RS1 = an.sacrum[0]
    for s, k in ((-1, 0), (1, 1)):
        musc.append(("cap", prev[0][k], cS1 + np.array([s * 58, 22, -10]), prev[1], prev[1] * 1.1))
    for v in an.ids[2:]:
        c, R = an.verts[v]
        g = an.dims[v]
        reg = "C" if v <= 7 else ("T" if v <= 19 else "L")
        ax_, by_ = {"C": (17, 16), "T": (21, 18), "L": (30, 24)}[reg]
        ax_, by_ = ax_ * bs * an.muscle, by_ * bs * an.muscle
        bcx = -(g["rb"] + 2 * g["rcb"] + 4 + by_ * 0.75)
        for s in (-1, 1):
            musc.append(("ecyl", c, R, (s * (ax_ * 0.95 + 3.5), bcx, 0), ax_, by_, g["hh"] + g["disc"] / 2 + 3))
    for fatpass in (True, False):
        for m in musc:
            if m[0] == "cap":
                _, a0, a1, r0, r1 = m
                cv.paint(_Cap(a0, a1, r0 + (2.0 if fatpass else 0), r1 + (2.0 if fatpass else 0)),
                         an.hu_fat if fatpass else an.hu_muscle, where=body)
            else:
                _, c, R, ctr, ea, eb, hh = m
                e = 1.8 if fatpass else 0.0
                cv.paint(_ECyl(ctr, ea + e, eb + e, hh), an.hu_fat if fatpass else an.hu_muscle, c, R, where=body)
    # ---- spinal canal, discs ----------------------------------------------------------------------------------
    for v in an.ids:
        c, R = an.verts[v]
        g = an.dims[v]
        if v == 1:
            bc, rca, rcb = -22 * bs, 12 * bs, 11 * bs
        else:
            bc, rca, rcb = -(g["rb"] + g["rcb"] - 1.5), g["rca"], g["rcb"]
        hh = g["hh"] + g["disc"] / 2 + 2
        if v >= 20:
            cv.paint(_ECyl((0, bc, 0), rca, rcb, hh), an.hu_fat * 0.8, c, R)
            cv.paint(_ECyl((0, bc + rcb * 0.15, 0), rca * 0.75, rcb * 0.7, hh), an.hu_csf, c, R)
        else:
            cv.paint(_ECyl((0, bc, 0), rca * 0.95, rcb * 0.95, hh), an.hu_csf, c, R)
        if v <= 20:
            cv.paint(_ECyl((0, bc + rcb * 0.1, 0), min(rca * 0.45, 6.5), min(rcb * 0.45, 4.5), hh), an.hu_cord, c, R)
    disc_pairs = [(an.ids[i], an.ids[i + 1]) for i in range(1, len(an.ids) - 1)] + [(an.ids[-1], "S1")]
    for up, dn in disc_pairs:
        gu = an.dims[up]
        if dn == "S1":
            gd = dict(ra=_SAC_W[0] / 2 * bs, rb=_SAC_D[0] / 2 * bs)
            s_dn = an.sac_s[0][0]
        else:
            gd = an.dims[dn]
            s_dn = an.tops[dn]
        sm_ = (an.bots[up] + s_dn) / 2
        c, R = an.frame_at(sm_)
        ra = (gu["ra"] + gd["ra"]) / 2 * 1.03
        rb = (gu["rb"] + gd["rb"]) / 2 * 1.03
        hh = (s_dn - an.bots[up]) / 2 + 1.6
        cv.paint(_ECyl((0, 0, 0), ra, rb, hh), an.hu_disc, c, R)
        cv.paint(_ECyl((0, -rb * 0.1, 0), ra * 0.55, rb * 0.5, hh), an.hu_disc - 12, c, R)
    # ---- costal cartilage ---------------------------------------------------------------------------------------
    for cpart in an.cartilage:
        cv.paint(cpart, 120.0, where=body)
    # ---- bone ---------------------------------------------------------------------------------------------------
    for v in an.ids:
        c, R = an.verts[v]
        parts, sub, _ = an.vertebra_parts(v)
        cv.add_vertebra(v, parts, c, R, sub, label_margin, n_body=0 if v == 1 else (2 if v == 2 else 1))
    for chain in an.ribs:
        cv.add_other_bone(chain)
    cv.add_other_bone(an.sternum)
    cv.add_other_bone(an.shoulder)
    for pt, R, parts in an.scapulae:
        cv.add_other_bone(parts, pt, R)
    for c, R, parts, sub in an.sacrum_parts:
        cv.add_other_bone(parts, c, R, sub)
    cv.add_other_bone(an.ilium)
    # brain behind the skull base, then skull
    cv.paint(_Ell(an.skull_center, an.skull_r - 4), 35.0)
    cv.add_other_bone(an.skull)
    _compose_bone(an, cv)


def _compose_bone(an: _Anatomy, cv: _Canvas):
    vox = float(np.prod(cv.sp)) ** (1 / 3)
    dall = np.minimum(cv.dvert, cv.dother)
    idx = np.nonzero(dall < _F32(0.5 * vox))
    if len(idx[0]) == 0:
        return
    d = dall[idx]
    isv = cv.dvert[idx] <= cv.dother[idx]
    frac = np.clip(0.5 - d / _F32(vox), 0, 1)
    tc = np.where(isv, np.where(cv.dense[idx], _F32(an.tc_post), _F32(an.tc)), _F32(an.tc_other))
    wc = np.clip((d + tc) / _F32(0.6) + _F32(0.5), 0, 1)
    canc = np.where(isv, _F32(an.hu_canc), _F32(an.hu_canc_other))
    # trabecular texture: sum of random plane waves in world mm
    P = [cv.ax[i][idx[i]] for i in range(3)]
    tex = np.zeros(len(d), np.float32)
    for k, f, ph in an.tex_waves:
        k = k / (np.linalg.norm(k) + 1e-9) * f
        tex += np.sin(P[0] * _F32(k[0]) + P[1] * _F32(k[1]) + P[2] * _F32(k[2]) + _F32(ph))
    canc = canc + tex * _F32(an.tex_sd * math.sqrt(2 / len(an.tex_waves)))
    hb = canc + wc * (_F32(an.hu_cort) - canc)
    cv.hu[idx] = frac * hb + (1 - frac) * cv.hu[idx]


# ----------------------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------------------
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
        lv = list(levels) if not isinstance(levels, str) else [int(x) for x in levels.replace("-", ",").split(",")]
        if len(lv) != 2 or any(int(x) != x for x in lv):
            raise ValueError(f"levels must be (first_id, last_id), got {levels!r}")
        a, b = int(lv[0]), int(lv[1])
        if not (1 <= a <= b <= 25):
            raise ValueError(f"levels must satisfy 1 <= first <= last <= 25 (VerSe ids), got {levels!r}")
        levels = (a, b)
    if not (0.1 <= float(size_scale) <= 4.0):
        raise ValueError(f"size_scale must be in [0.1, 4], got {size_scale!r}")
    return spacing, shape, orientation, levels, float(size_scale)


def generate_case(seed: int, *, spacing=None, shape=None, orientation=None, levels=None, size_scale=1.0) -> dict:
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

    Returns:
        dict(image=int16 HU array, label=uint8 array, affine=4x4 float64, orientation=str,
             spacing=voxel size in the *output array* order, spacing_ras=(sx, sy, sz),
             levels=sorted ids present, centroids_mm={id: (x, y, z) world mm}, seed=int, meta=dict)
    """
    import nibabel as nib
    from nibabel import orientations as nio

    spacing, shape, orientation, levels, size_scale = _check_args(spacing, shape, orientation, levels, size_scale)
    seed = int(seed)
    ss = np.random.SeedSequence(seed)
    r_anat, r_acq, r_orient, r_noise = (np.random.default_rng(s) for s in ss.spawn(4))
    an = _Anatomy(r_anat, force_l6=levels is not None and levels[1] == 25)
    # ---- acquisition draws (always all drawn, so overriding one keeps the others) ------------------------
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
    if orientation is not None:
        orient = orientation
    sp = np.array(spacing if spacing is not None else (sxy, sxy, sz), float)
    # ---- spine range ------------------------------------------------------------------------------------------
    nv = len(an.ids)
    if levels is None:
        n = nv - int(start_u * 6) if u_whole < 0.12 else n_lev_draw
        n = int(np.clip(n, 3, nv))
        i0 = int(start_u * (nv - n + 1))
        i0 = min(i0, nv - n)
        lo_i, hi_i = i0, i0 + n - 1
        max_ext = (300 if shape is None else shape[2]) * sp[2]
        while hi_i > lo_i + 2:
            ext = an.body_zrange(an.ids[lo_i])[1] - an.body_zrange(an.ids[hi_i])[0] + m_top + m_bot
            if ext <= max_ext:
                break
            if (hi_i - lo_i) % 2:
                hi_i -= 1
            else:
                lo_i += 1
        first, last = an.ids[lo_i], an.ids[hi_i]
    else:
        first, last = levels
    z_top = an.body_zrange(first)[1] + m_top
    z_bot = an.body_zrange(last)[0] - m_bot
    # ---- grid ---------------------------------------------------------------------------------------------------
    if shape is None:
        nxy = max(16, int(round(min(256.0, fov / sp[0]) * size_scale)))
        nyy = max(16, int(round(min(256.0, fov / sp[1]) * size_scale)))
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
    xc = float(np.mean([xs_c.min(), xs_c.max()])) + jx * size_scale
    # keep the vertebral column (body front +25 mm .. spinous tips -75 mm) inside the FOV when possible
    y_front, y_back = float(ys_c.max()) + 25, float(ys_c.min()) - 75
    lo_y, hi_y = y_front - fy / 2, y_back + fy / 2
    yc = lo_y + jy * (hi_y - lo_y) if hi_y >= lo_y else (y_front + y_back) / 2
    origin = np.array([xc - (shp[0] - 1) / 2 * sp[0], yc - (shp[1] - 1) / 2 * sp[1], zmid - (shp[2] - 1) / 2 * sp[2]])
    cv = _Canvas(shp, sp, origin)
    vox = float(np.prod(sp)) ** (1 / 3)
    m0 = _F32(0.5 * vox + an.label_margin)
    amp = _F32(an.label_margin_amp / math.sqrt(1.5))
    waves = [(k / (np.linalg.norm(k) + 1e-9) * f, ph) for k, f, ph in an.label_waves]

    def margin(X, Y, Z):
        m = m0
        for k, ph in waves:
            m = m + amp * np.sin((X * _F32(k[0]) + Y * _F32(k[1])) + (Z * _F32(k[2]) + _F32(ph)))
        return m

    _render(an, cv, label_margin=margin)
    # ---- acquisition: PSF, noise, offset -------------------------------------------------------------------------
    sig_mm = np.sqrt((psf_k * sp) ** 2 + psf0 ** 2)
    img = ndi.gaussian_filter(cv.hu, sigma=sig_mm / sp, truncate=3.0, mode="nearest")
    cv.hu = None
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
    img += nse * _F32(gain)
    img += _F32(hu_off)
    np.clip(img, -1024, 3071, out=img)
    image = np.rint(img).astype(np.int16)
    label = cv.lab
    # ---- centroids, levels -------------------------------------------------------------------------------------
    aff_ras = np.diag([sp[0], sp[1], sp[2], 1.0])
    aff_ras[:3, 3] = origin
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
    # ---- reorient -------------------------------------------------------------------------------------------------
    tr = nio.ornt_transform(nio.axcodes2ornt(("R", "A", "S")), nio.axcodes2ornt(tuple(orient)))
    image = np.ascontiguousarray(nio.apply_orientation(image, tr))
    label = np.ascontiguousarray(nio.apply_orientation(label, tr))
    affine = aff_ras @ nio.inv_ornt_aff(tr, shp)
    spacing_out = tuple(float(x) for x in nib.affines.voxel_sizes(affine))
    meta = dict(phase=an.phase, noise_sd=float(noise_sd), psf_sigma_mm=tuple(float(x) for x in sig_mm),
                hu_offset=float(hu_off), has_l6=an.has_l6, requested_levels=(int(first), int(last)),
                fov_mm=tuple(float(n * s) for n, s in zip(shp, sp)))
    return {"image": image, "label": label, "affine": affine.astype(np.float64), "orientation": orient,
            "spacing": spacing_out, "spacing_ras": tuple(float(x) for x in sp), "levels": present,
            "centroids_mm": cents, "seed": seed, "meta": meta}


def _save_nifti(arr, affine, path):
    import nibabel as nib

    img = nib.Nifti1Image(arr, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_data_dtype(arr.dtype)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))


def write_case(out_image: str, out_label: str | None = None, seed: int = 0, **kw) -> dict:
    """Generate a case and write it as NIfTI (.nii.gz, qform+sform set). Returns the metadata (no arrays)."""
    res = generate_case(seed, **kw)
    _save_nifti(res["image"], res["affine"], out_image)
    if out_label:
        _save_nifti(res["label"], res["affine"], out_label)
    meta = {k: v for k, v in res.items() if k not in ("image", "label")}
    meta["affine"] = res["affine"].tolist()
    meta["shape"] = tuple(int(s) for s in res["image"].shape)
    meta["out_image"], meta["out_label"] = str(out_image), (str(out_label) if out_label else None)
    meta["centroids_mm"] = {int(k): list(v) for k, v in res["centroids_mm"].items()}
    return meta


def _jsonable(v):
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v


def make_dataset(out_dir: str, n_train: int = 8, n_test: int = 2, seed: int = 0, progress: bool = True, **kw) -> str:
    """Write a Decathlon/nnU-Net style dataset of phantoms (cached; atomic).

    Layout: imagesTr/phantom_000.nii.gz, labelsTr/..., imagesTs/..., labelsTs/..., dataset.json,
    phantom_params.json. Case i (train first, then test) uses seed + i; `kw` goes to every generate_case.
    If out_dir already holds a complete dataset made with the same arguments, it returns at once.
    """
    n_train, n_test, seed = int(n_train), int(n_test), int(seed)
    if n_train < 0 or n_test < 0 or n_train + n_test == 0:
        raise ValueError(f"need n_train >= 0, n_test >= 0 and at least one case, got {n_train}, {n_test}")
    _check_args(kw.get("spacing"), kw.get("shape"), kw.get("orientation"), kw.get("levels"), kw.get("size_scale", 1.0))
    unknown = set(kw) - {"spacing", "shape", "orientation", "levels", "size_scale"}
    if unknown:
        raise ValueError(f"unknown arguments for generate_case: {sorted(unknown)}")
    out = Path(out_dir)
    params = _jsonable({"generator_version": GENERATOR_VERSION, "n_train": n_train, "n_test": n_test, "seed": seed,
                        "kw": {k: kw[k] for k in sorted(kw)}})
    names = [f"phantom_{i:03d}.nii.gz" for i in range(n_train + n_test)]
    rel = ([("imagesTr", "labelsTr", nm) for nm in names[:n_train]]
           + [("imagesTs", "labelsTs", nm) for nm in names[n_train:]])
    pfile = out / "phantom_params.json"
    if pfile.is_file():
        try:
            old = json.loads(pfile.read_text())
        except (OSError, ValueError):
            old = None
        if old == params and (out / "dataset.json").is_file() and all(
                (out / a / nm).is_file() and (out / b / nm).is_file() for a, b, nm in rel):
            return str(out)
    if out.exists() and not pfile.is_file() and any(out.iterdir()):
        raise ValueError(f"{out} exists, is not empty and is not a phantom dataset; refusing to overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        it = range(n_train + n_test)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, desc="phantoms", unit="case")
        cases = []
        for i in it:
            a, b, nm = rel[i]
            meta = write_case(str(tmp / a / nm), str(tmp / b / nm), seed + i, **kw)
            cases.append({"image": f"./{a}/{nm}", "label": f"./{b}/{nm}", "levels": meta["levels"],
                          "orientation": meta["orientation"], "spacing": meta["spacing"]})
        ds = {
            "name": "SpinePhantom",
            "description": "Synthetic spine CT phantoms (HU) with VerSe vertebra labels",
            "reference": "scripts/data/phantom.py",
            "licence": "CC0",
            "release": str(GENERATOR_VERSION),
            "tensorImageSize": "3D",
            "modality": {"0": "CT"},
            "labels": {"0": "background", **{str(i + 1): n for i, n in enumerate(LEVEL_NAMES)}},
            "numTraining": n_train,
            "numTest": n_test,
            "training": [{"image": c["image"], "label": c["label"]} for c in cases[:n_train]],
            "test": [{"image": c["image"], "label": c["label"]} for c in cases[n_train:]],
            "cases": cases,
        }
        (tmp / "dataset.json").write_text(json.dumps(_jsonable(ds), indent=2))
        (tmp / "phantom_params.json").write_text(json.dumps(params, indent=2))
        if out.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, trash / "old")
            os.replace(tmp, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return str(out)


def _case_cli(out_image: str, out_label: str | None = None, seed: int = 0, spacing=None, shape=None,
              orientation=None, levels=None, size_scale: float = 1.0) -> None:
    """CLI for write_case: writes the NIfTI files and prints the metadata as JSON."""
    meta = write_case(out_image, out_label, seed, spacing=spacing, shape=shape, orientation=orientation,
                      levels=levels, size_scale=size_scale)
    print(json.dumps(_jsonable(meta), indent=1))


if __name__ == "__main__":
    import fire

    fire.Fire({"case": _case_cli, "dataset": make_dataset})
