"""Painting one case's anatomy into the canvas. Soft tissue is painted with priority (later overwrites earlier):
body outline, visceral cavity, abdominal organs, lungs, heart, neck, vessels, muscles, canal and discs, costal
cartilage; then the bone is accumulated as distance fields and converted to HU (:func:`.canvas._compose_bone`)."""
from __future__ import annotations

import numpy as np

from .canvas import _Canvas, _compose_bone
from .sdf import _F32, _Cap, _ECyl, _Ell
from .tables import _SAC_D, _SAC_W, region


def _f32(v):
    """A per-slice (z) array as a float32 (1, 1, nz) broadcastable array."""
    return v.astype(np.float32)[None, None, :]


def _body(h, sl):
    """`where` restriction to the inside of the body."""
    return h > -500


def _render(an, cv: _Canvas, label_margin):
    X, Y, Z = cv.ax[0][:, None, None], cv.ax[1][None, :, None], cv.ax[2]
    p = an.soft_at(Z)
    inner = _paint_body_outline(an, cv, X, Y, p)
    _paint_cavity(an, cv, X, Y, p, inner)
    del inner
    _paint_bowel(an, cv)
    _paint_abdominal_organs(an, cv)
    _paint_lungs(an, cv, X, Y, Z)
    _paint_heart(an, cv)
    _paint_neck(an, cv)
    _paint_vessels(an, cv)
    _paint_muscles(an, cv)
    _paint_canal(an, cv)
    _paint_discs(an, cv)
    for cpart in an.cartilage:
        cv.paint(cpart, 120.0, where=_body)
    _add_bone(an, cv, label_margin)
    _compose_bone(an, cv)


# --- soft tissue ------------------------------------------------------------------------------------------
def _paint_body_outline(an, cv, X, Y, p):
    """Skin / subcutaneous fat / muscle: superellipse-like outline per slice. Returns the inside of the muscle
    wall (bool volume)."""
    F = an.fat * p["fatf"]
    xb = an.x_body + 0.3 * (p["xs"] - an.x_body)
    dx = X - _f32(xb)
    dy = Y - _f32(p["ys"])
    ant = dy > 0

    def q(A, Ba, Bp):
        qa = (dx * _f32(1 / A)) ** 2
        ya = dy * np.where(ant, _f32(1 / Ba), _f32(1 / Bp))
        ya *= ya
        ya = np.where(ant, ya, ya * ya)
        return qa + ya

    hu = cv.hu
    skin = q(p["A"] + F * 1.15, p["Ba"] + F, p["Bp"] + F * 0.8) <= 1
    hu[skin] = an.hu_fat
    inner = q(p["A"], p["Ba"], p["Bp"]) <= 1
    hu[inner] = an.hu_muscle
    return inner


def _paint_cavity(an, cv, X, Y, p, inner):
    """Visceral compartment (thorax = rib cage, abdomen) filled with fat."""
    zsel = np.nonzero(p["cx"] > 5)[0]
    if not len(zsel):
        return
    zs = slice(int(zsel[0]), int(zsel[-1]) + 1)
    pc = {k: v[zs] for k, v in p.items()}
    ycen = pc["ys"] + (pc["cyb"] + pc["cyf"]) / 2
    ry = np.maximum((pc["cyf"] - pc["cyb"]) / 2, 1)
    cav = ((X - _f32(pc["xs"])) * _f32(1 / pc["cx"])) ** 2 + ((Y - _f32(ycen)) * _f32(1 / ry)) ** 2 <= 1
    cav &= inner[:, :, zs]
    val = np.where(pc["thor"] > 0.5, an.hu_fat * 0.85, an.hu_fat * 0.8).astype(np.float32)
    sub = cv.hu[:, :, zs]
    np.copyto(sub, np.broadcast_to(val[None, None, :], sub.shape), where=cav)


def _paint_bowel(an, cv):
    """Visceral fat, then bowel loops: wall + gas / fluid / feces / gas over a fluid level / collapsed."""
    for e in an.visc_fat:
        cv.paint(e, an.hu_fat, where=_body)
    for p0, p1, rr, kind, lev in an.bowel:
        cv.paint(_Cap(p0, p1, rr), an.hu_muscle - 5, where=_body)
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


def _paint_abdominal_organs(an, cv):
    """Kidneys (in perirenal fat, with a medulla/pelvis in contrast phases), liver and spleen."""
    bs = an.bs
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
    cv.paint(_Ell(lc, np.array([0.62 * pl["cx"][0], 0.5 * pl["cyf"][0], 85 * bs])), an.hu_liver, where=_body)
    sc_ = np.array([pl["xs"][0] - 0.65 * pl["cx"][0], pl["ys"][0] + 0.15 * pl["cyf"][0], z_t11])
    cv.paint(_Ell(sc_, np.array([26, 48, 50]) * bs), an.hu_liver - 8, where=_body)


def _paint_lungs(an, cv, X, Y, Z):
    """Lungs inside the cage minus the spine, paraspinal and mediastinal keep-outs, above the diaphragm domes;
    anteroposterior density gradient; then the lung vessels."""
    z_apex = an.vtop_z(8) + 28
    z_low = an.vbot_z(19) + 5
    zi = np.nonzero((Z <= z_apex) & (Z >= z_low))[0]
    if len(zi):
        zs = slice(int(zi[0]), int(zi[-1]) + 1)
        Zs = Z[zs]
        xc, yc, rx, ry = an.cage_at(Zs)
        lung = _lung_mask(an, X, Y, Zs, xc, yc, rx, ry)
        lung &= Zs[None, None, :] >= _diaphragm(an, cv, X, Y, z_low)
        grad = (Y - _f32(yc - ry)) * _f32(1 / (2 * ry))  # 0 posterior .. 1 anterior
        lv = _F32(an.hu_lung + 70) - _F32(110) * grad
        sub = cv.hu[:, :, zs]
        np.copyto(sub, np.broadcast_to(lv, sub.shape), where=lung)
        del lung, grad, lv
    for v in an.lung_vessels:
        cv.paint(v, 35.0, where=lambda h, sl: h < -600)


def _lung_mask(an, X, Y, Zs, xc, yc, rx, ry):
    """Cage ellipse minus the vertebral body, posterior elements / paraspinal muscles and mediastinum."""
    # spine keep-out half widths (interpolated from the vertebra at that height)
    s_ = an.s_of_z(Zs)
    sm = np.array([an.smid[v] for v in range(1, 21)])
    ra_ = np.interp(s_, sm, [an.dims[v]["ra"] for v in range(1, 21)])
    rb_ = np.interp(s_, sm, [an.dims[v]["rb"] for v in range(1, 21)])
    kp = np.interp(s_, sm, [an.dims[v]["rca"] + an.dims[v]["pw"] + an.dims[v]["tpl"] * 0.9 for v in range(1, 21)])
    ys_ = np.interp(s_, an.ss, an.P[:, 1])
    xs_ = np.interp(s_, an.ss, an.P[:, 0])

    def ell(cx, cy, ax, by):
        return ((X - _f32(cx)) * _f32(1 / ax)) ** 2 + ((Y - _f32(cy)) * _f32(1 / by)) ** 2 <= 1

    lung = ell(xc, yc, rx - 1, ry - 1)
    lung &= ~ell(xs_, ys_ - 0.2 * rb_, ra_ + 5, 1.5 * rb_ + 4)  # vertebral body + paravertebral tissue
    lung &= ~ell(xs_, ys_ - 2.2 * rb_ - 8, kp + 5, rb_ + 16)  # posterior elements, paraspinal muscles
    front = yc + ry
    lung &= ~ell(xs_ - 6, (ys_ + front) / 2, 14 + 0.1 * rx, (front - ys_) / 2 + 2)  # mediastinum
    return lung


def _diaphragm(an, cv, X, Y, z_low):
    """Height of the diaphragm domes (right higher) over the axial plane, (nx, ny, 1)."""
    nx, ny, _ = cv.shape
    zb = an.vz(17)
    xcc, ycc, rxd, ryd = an.cage_at(np.array([zb]))
    xcc, ycc, rxd, ryd = float(xcc[0]), float(ycc[0]), float(rxd[0]), float(ryd[0])
    hd = an.vz(16) - z_low
    zdia = np.full((nx, ny, 1), z_low, np.float32)
    for s, extra in ((1, 12.0), (-1, 0.0)):
        qd = 1 - ((X[:, :, 0:1] - _F32(xcc + s * 0.45 * rxd)) / _F32(0.75 * rxd)) ** 2 - \
            ((Y[:, :, 0:1] - _F32(ycc + 0.15 * ryd)) / _F32(ryd)) ** 2
        zdia = np.maximum(zdia, _F32(z_low) + _F32(hd + extra) * np.sqrt(np.clip(qd, 0, 1)))
    return zdia


def _paint_heart(an, cv):
    """Pericardial fat, myocardium and one blood pool."""
    zh = an.vz(15)
    xc, yc, rx, ry = (float(v[0]) for v in an.cage_at(np.array([zh])))
    hc = np.array([xc - 0.18 * rx, yc + 0.32 * ry, zh])
    hr = np.array([0.48 * rx, 0.5 * ry, 58 * an.bs])
    cv.paint(_Ell(hc, hr + 5), an.hu_fat)
    cv.paint(_Ell(hc, hr), 45.0)
    cv.paint(_Ell(hc + [0, -3, 5], hr * 0.65), an.hu_aorta if an.phase == "arterial" else max(an.hu_vein, 45.0))


def _paint_neck(an, cv):
    """Esophagus, thyroid, carotids, trachea and main bronchi."""
    tra0, tra1 = an.verts[5][0], an.verts[12][0]

    def off(c, vid, dy):
        return c + np.array([0, an.dims[vid]["rb"] + dy, 0])

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


def _paint_vessels(an, cv):
    """Aorta, its calcified plaques and the IVC."""
    for a in an.aorta:
        cv.paint(a, an.hu_aorta)
    for e, v in an.calc:
        cv.paint(e, v)
    ivc0, ivc1 = an.verts[23][0], an.verts[18][0]
    ivc = _Cap(ivc0 + [24, an.dims[23]["rb"] + 12, 0], ivc1 + [22, an.dims[18]["rb"] + 14, 0], 10.0 * an.bs)
    cv.paint(ivc, an.hu_vein)


def _muscle_parts(an):
    """Psoas (capsule chains T12-S1) and paraspinal muscles (elliptic cylinders per vertebra)."""
    bs = an.bs
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
    cS1, _ = an.sacrum[0]
    for s, k in ((-1, 0), (1, 1)):
        musc.append(("cap", prev[0][k], cS1 + np.array([s * 58, 22, -10]), prev[1], prev[1] * 1.1))
    for v in an.ids[2:]:
        c, R = an.verts[v]
        g = an.dims[v]
        ax_, by_ = {"C": (17, 16), "T": (21, 18), "L": (30, 24)}[region(v)]
        ax_, by_ = ax_ * bs * an.muscle, by_ * bs * an.muscle
        bcx = -(g["rb"] + 2 * g["rcb"] + 4 + by_ * 0.75)
        for s in (-1, 1):
            musc.append(("ecyl", c, R, (s * (ax_ * 0.95 + 3.5), bcx, 0), ax_, by_, g["hh"] + g["disc"] / 2 + 3))
    return musc


def _paint_muscles(an, cv):
    """Muscles with fat planes: all fat sheaths first, then all muscle bellies."""
    musc = _muscle_parts(an)
    for fatpass in (True, False):
        for m in musc:
            if m[0] == "cap":
                _, a0, a1, r0, r1 = m
                cv.paint(_Cap(a0, a1, r0 + (2.0 if fatpass else 0), r1 + (2.0 if fatpass else 0)),
                         an.hu_fat if fatpass else an.hu_muscle, where=_body)
            else:
                _, c, R, ctr, ea, eb, hh = m
                e = 1.8 if fatpass else 0.0
                cv.paint(_ECyl(ctr, ea + e, eb + e, hh), an.hu_fat if fatpass else an.hu_muscle, c, R, where=_body)


def _paint_canal(an, cv):
    """Spinal canal: CSF (epidural fat in the lumbar canal), spinal cord down to L1."""
    bs = an.bs
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


def _paint_discs(an, cv):
    """Intervertebral discs C2/C3 .. last/S1: annulus with a darker nucleus."""
    bs = an.bs
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


# --- bone -------------------------------------------------------------------------------------------------
def _add_bone(an, cv, label_margin):
    """Vertebrae (labelled) and the distractor bone into the canvas's distance fields; the brain behind the
    skull base is painted before the skull."""
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
    cv.paint(_Ell(an.skull_center, an.skull_r - 4), 35.0)
    cv.add_other_bone(an.skull)
