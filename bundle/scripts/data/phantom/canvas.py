"""The voxel canvas: an RAS grid holding the HU volume, the label volume, the structure map and two bone
signed-distance fields (labelled vertebrae, unlabelled distractor bone), painting of primitives, and the conversion
of the bone fields to HU (cortical shell, cancellous core with trabecular texture and focal lesions, anti-aliased
border)."""
from __future__ import annotations

import math

import numpy as np

from .sdf import _BIG, _F32, world_box
from .structures import STRUCTURES

_I3 = np.eye(3)
_O3 = np.zeros(3)


class _Canvas:
    """RAS voxel grid with HU volume, label volume, structure map (``st``) and bone distance fields."""

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
        self.st = np.zeros(self.shape, np.uint8)  # structure id of the last paint (structures.STRUCTURES)
        self.bone_st = np.zeros(self.shape, np.uint8)  # structure of the nearest distractor bone
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

    world_box = staticmethod(world_box)

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

    def paint(self, part, value, c=_O3, R=_I3, where=None, sid=None):
        """hu = value (and structure = sid) inside the primitive; `where(hu_sub, slices)` optionally restricts the
        voxels (it may also read ``self.st[slices]``)."""
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
        if sid is not None:
            self.st[sl][m] = sid

    def fill(self, mask, value, sid, sl=(slice(None),) * 3):
        """hu = value, structure = sid where the bool array `mask` (on the slices `sl`) is set."""
        sub = self.hu[sl]
        if np.isscalar(value):
            sub[mask] = value
        else:
            np.copyto(sub, np.broadcast_to(value, sub.shape), where=mask)
        self.st[sl][mask] = sid

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

    def add_other_bone(self, parts, c=_O3, R=_I3, subtract=(), sid=None):
        """Distractor bone: the union of parts (minus `subtract`) into dother; sid = its structure."""
        if subtract:
            sl, d = self.solid(parts, c, R, subtract)
            if sl is not None:
                self._min_other(sl, d, sid)
            return
        for p in parts:
            sl, d = self.part_sdf(p, c, R)
            if sl is not None:
                self._min_other(sl, d, sid)

    def _min_other(self, sl, d, sid):
        view = self.dother[sl]
        if sid is not None:
            self.bone_st[sl][d < view] = sid
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


def _compose_bone(an, cv: _Canvas):
    """Bone HU from the distance fields: cortical shell + textured cancellous core (with the case's focal lesions),
    blended with the soft tissue at the border; voxels inside bone get their bone structure."""
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
    P = [cv.ax[i][idx[i]] for i in range(3)]
    canc = canc + _trabecular_texture(an, P)
    for c, r, dhu in an.bone_lesions:
        q = sum(((P[i] - _F32(c[i])) * _F32(1 / r[i])) ** 2 for i in range(3))
        canc = canc + np.where(isv, _F32(dhu) * np.clip(_F32(1.5) - q, 0, 1).astype(np.float32), _F32(0))
    hb = canc + wc * (_F32(an.hu_cort) - canc)
    cv.hu[idx] = frac * hb + (1 - frac) * cv.hu[idx]
    inside = d <= 0
    ii = tuple(i[inside] for i in idx)
    cv.st[ii] = np.where(isv[inside], np.uint8(STRUCTURES["vertebra"]), cv.bone_st[ii])


def _trabecular_texture(an, P):
    """Sum of random plane waves in world mm at the points P (x, y, z arrays), SD an.tex_sd."""
    tex = np.zeros(len(P[0]), np.float32)
    for k, f, ph in an.tex_waves:
        k = k / (np.linalg.norm(k) + 1e-9) * f
        tex += np.sin(P[0] * _F32(k[0]) + P[1] * _F32(k[1]) + P[2] * _F32(k[2]) + _F32(ph))
    return tex * _F32(an.tex_sd * math.sqrt(2 / len(an.tex_waves)))
