"""Painting one case's anatomy into the canvas. Soft tissue is painted with priority (later overwrites earlier):
body outline, arms, visceral cavity, bowel, abdominal organs (inside the cavity), lungs, heart and great vessels,
neck, aorta and IVC, muscles, canal and discs, costal cartilage; then the bone is accumulated as distance fields
and converted to HU (:func:`.canvas._compose_bone`), and the metal implants are painted last. Every paint also
writes the structure map (:mod:`.structures`)."""
from __future__ import annotations

import numpy as np

from .canvas import _Canvas, _compose_bone
from .heart import paint_heart
from .metal import paint_implants
from .sdf import _F32, _Blob, _Cap, _ECyl, _Ell, _Grown
from .skeleton import _canal_b
from .structures import STRUCTURES as S
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
    inner = _paint_body_outline(an, cv, X, Y, Z, p)
    _paint_arms(an, cv)
    _paint_envelopes(an, cv)
    cv.cavity = _paint_cavity(an, cv, X, Y, p, inner)
    del inner
    _paint_bowel(an, cv)
    _paint_abdominal_organs(an, cv)
    _paint_lungs(an, cv, X, Y, Z)
    paint_heart(an, cv)
    _paint_neck(an, cv)
    _paint_vessels(an, cv)
    _paint_muscles(an, cv)
    _paint_canal(an, cv)
    _paint_discs(an, cv)
    for cpart in an.cartilage:
        cv.paint(cpart, 120.0, where=_body, sid=S["costal_cartilage"])
    _add_bone(an, cv, label_margin)
    _compose_bone(an, cv)
    paint_implants(an, cv)


# --- soft tissue ------------------------------------------------------------------------------------------
def _paint_body_outline(an, cv, X, Y, Z, p):
    """Skin / subcutaneous fat / muscle: per slice an outline round anteriorly and flatter posteriorly, its
    radius modulated by the case's angular harmonics. Returns the inside of the muscle wall (bool volume)."""
    F = an.fat * p["fatf"]
    xb = an.x_body + 0.3 * (p["xs"] - an.x_body)
    dx = X - _f32(xb)
    dy = Y - _f32(p["ys"])
    ant = dy > 0
    g2 = _outline_factor(an, cv, float(np.mean(xb)), float(np.mean(p["ys"])))

    def q(A, Ba, Bp):
        qa = (dx * _f32(1 / A)) ** 2
        ya = dy * np.where(ant, _f32(1 / Ba), _f32(1 / Bp))
        ya *= ya
        ya = np.where(ant, ya, ya * ya)
        return qa + ya

    skin = q(p["A"] + F * 1.15, p["Ba"] + F, p["Bp"] + F * 0.8) <= g2
    inner = q(p["A"], p["Ba"], p["Bp"]) <= g2
    _cover_the_cage(an, X, Y, Z, p, F, skin, inner)
    cv.fill(skin, an.hu_fat, S["subcutaneous_fat"])
    cv.fill(inner, an.hu_muscle, S["body_wall_muscle"])
    return inner


def _cover_the_cage(an, X, Y, Z, p, F, skin, inner):
    """Keeps the chest wall at least 16 mm of muscle (plus the fat layer) outside the rib cage: the outline's
    width factor and harmonics must not expose the ribs or the sternum."""
    zi = np.nonzero(p["thor"] > 0.5)[0]
    if not len(zi):
        return
    zs = slice(int(zi[0]), int(zi[-1]) + 1)
    xc, yc, rx, ry = an.cage_at(Z[zs])
    for mask, extra in ((inner, 16.0), (skin, 16.0 + F[zs])):
        ell = ((X - _f32(xc)) * _f32(1 / (rx + extra))) ** 2 + ((Y - _f32(yc)) * _f32(1 / (ry + extra))) ** 2 <= 1
        mask[:, :, zs] |= ell


def _outline_factor(an, cv, x0, y0):
    """(nx, ny, 1) squared radius factor of the outline: (1 + sum_n a_n cos(n theta + phi_n))^2 around (x0, y0)."""
    th = np.arctan2(cv.ax[1][None, :] - _F32(y0), cv.ax[0][:, None] - _F32(x0))
    g = np.ones_like(th)
    for n, a, ph in an.outline:
        g += _F32(a) * np.cos(_F32(n) * th + _F32(ph))
    return (g * g)[:, :, None]


def _paint_arms(an, cv):
    """Arm soft tissue (fat sleeve, muscle) where there is air or subcutaneous fat; the bones come with the bone."""
    outside = lambda h, sl: cv.st[sl] <= S["subcutaneous_fat"]  # noqa: E731
    for fat_chain, muscle_chain in an.arm_soft:
        for part in fat_chain:
            cv.paint(part, an.hu_fat, where=outside, sid=S["arm_fat"])
        arm = lambda h, sl: cv.st[sl] == S["arm_fat"]  # noqa: E731
        for part in muscle_chain:
            cv.paint(part, an.hu_muscle, where=arm, sid=S["arm_muscle"])


def _paint_envelopes(an, cv):
    """Soft tissue around the bones the trunk outline does not reach: muscle and a fat layer around the clavicles
    and scapulae, the scalp and face over the skull base and mandible."""
    outside = lambda h, sl: cv.st[sl] <= S["subcutaneous_fat"]  # noqa: E731
    fat = 3 + 0.3 * an.fat
    for part in an.shoulder:
        cv.paint(_Grown(part, 4 + fat), an.hu_fat, where=outside, sid=S["subcutaneous_fat"])
    for pt, R, parts in an.scapulae:
        for part in parts:
            cv.paint(_Grown(part, 8 + fat), an.hu_fat, pt, R, where=outside, sid=S["subcutaneous_fat"])
    skin = lambda h, sl: cv.st[sl] == S["subcutaneous_fat"]  # noqa: E731
    for part in an.shoulder:
        cv.paint(_Grown(part, 4), an.hu_muscle, where=skin, sid=S["body_wall_muscle"])
    for pt, R, parts in an.scapulae:
        for part in parts:
            cv.paint(_Grown(part, 8), an.hu_muscle, pt, R, where=skin, sid=S["body_wall_muscle"])
    for part in an.skull:
        cv.paint(_Grown(part, 5 + fat), an.hu_fat, where=outside, sid=S["subcutaneous_fat"])
    for part in an.skull:
        cv.paint(_Grown(part, 5), an.hu_muscle - 5, where=skin, sid=S["body_wall_muscle"])


def _paint_cavity(an, cv, X, Y, p, inner):
    """Visceral compartment (thorax = rib cage, abdomen) filled with fat; returns it (bool volume)."""
    cavity = np.zeros(cv.shape, bool)
    zsel = np.nonzero(p["cx"] > 5)[0]
    if not len(zsel):
        return cavity
    zs = slice(int(zsel[0]), int(zsel[-1]) + 1)
    pc = {k: v[zs] for k, v in p.items()}
    ycen = pc["ys"] + (pc["cyb"] + pc["cyf"]) / 2
    ry = np.maximum((pc["cyf"] - pc["cyb"]) / 2, 1)
    cav = ((X - _f32(pc["xs"])) * _f32(1 / pc["cx"])) ** 2 + ((Y - _f32(ycen)) * _f32(1 / ry)) ** 2 <= 1
    cav &= inner[:, :, zs]
    val = np.where(pc["thor"] > 0.5, an.hu_fat * 0.85, an.hu_fat * 0.8).astype(np.float32)
    cv.fill(cav, val[None, None, :], S["visceral_fat"], (slice(None), slice(None), zs))
    cavity[:, :, zs] = cav
    return cavity


def _paint_bowel(an, cv):
    """Visceral fat, then bowel loops: wall + gas / fluid / feces / gas over a fluid level / collapsed."""
    for e in an.visc_fat:
        cv.paint(e, an.hu_fat, where=_body, sid=S["visceral_fat"])
    for p0, p1, rr, kind, lev in an.bowel:
        cv.paint(_Cap(p0, p1, rr), an.hu_muscle - 5, where=_body, sid=S["bowel_wall"])
        _paint_lumen(an, cv, _Cap(p0, p1, rr - 2.5), kind, (p0[1] + p1[1]) / 2 + (lev - 0.5) * rr,
                     S["bowel_content"])


def _paint_lumen(an, cv, part, kind, ylev, sid):
    """Content of a hollow organ: collapsed / gas / fluid / feces / gas above a fluid level at y = ylev (supine:
    anterior is up)."""
    if kind == "collapsed":
        return
    if kind == "mixed":
        cv.paint(part, an.hu_csf, sid=sid)
        cv.paint(part, -1000.0, where=lambda h, sl: np.broadcast_to(cv.xyz(sl)[1] > ylev, h.shape), sid=sid)
        return
    cv.paint(part, {"gas": -1000.0, "fluid": an.hu_csf, "feces": -60.0}[kind], sid=sid)


def _paint_abdominal_organs(an, cv):
    """Stomach, liver, spleen inside the visceral cavity (later = higher priority), then the kidneys in perirenal
    fat with renal sinus fat and, in contrast phases, a darker medulla / pelvis."""
    bs = an.bs
    in_cavity = lambda h, sl: cv.cavity[sl]  # noqa: E731
    for name, blob, hu in an.organs:
        cv.paint(blob, hu, where=in_cavity, sid=S[name])
        if name == "stomach":
            inner = _Blob(blob.c, blob.r - 4, blob.waves)
            _paint_lumen(an, cv, inner, str(an.stomach_fill), blob.c[1] + 0.2 * blob.r[1], S["stomach"])
    for s, kc, kr, waves in an.kidneys:
        cv.paint(_Blob(kc, kr + np.array([10, 10, 10]) * bs, waves), an.hu_fat, sid=S["perirenal_fat"])
        cv.paint(_Blob(kc, kr, waves), an.hu_kidney, sid=S["kidney"])
        sinus = kc + np.array([-s * 0.45 * kr[0], 2, 0])
        cv.paint(_Ell(sinus, kr * np.array([0.4, 0.35, 0.55])), an.hu_fat, sid=S["perirenal_fat"])
        if an.phase != "none":
            cv.paint(_Ell(kc + [s * -4, 2, 0], np.array([14, 11, 36]) * bs), an.hu_kidney * 0.6, sid=S["kidney"])


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
        cv.fill(lung, lv, S["lung"], (slice(None), slice(None), zs))
        del lung, grad, lv
    for v in an.lung_vessels:
        cv.paint(v, 35.0, where=lambda h, sl: h < -600, sid=S["lung_vessel"])


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


def _paint_neck(an, cv):
    """Esophagus, thyroid, carotids, trachea and main bronchi."""
    tra0, tra1 = an.verts[5][0], an.verts[12][0]

    def off(c, vid, dy):
        return c + np.array([0, an.dims[vid]["rb"] + dy, 0])

    t0, t1 = off(tra0, 5, 20), off(tra1, 12, 22)
    cv.paint(_Cap(off(an.verts[6][0], 6, 6), off(an.verts[18][0], 18, 4), 7.5), an.hu_muscle - 8,
             sid=S["esophagus"])
    for s in (-1, 1):
        cv.paint(_Ell(off(an.verts[7][0], 7, 22) + [s * 16, 0, 0], np.array([9, 10, 22])), 100.0, sid=S["thyroid"])
        cv.paint(_Cap(off(an.verts[2][0], 2, 12) + [s * 22, 0, 0], off(an.verts[8][0], 8, 15) + [s * 20, 0, 0], 4.0),
                 an.hu_aorta, sid=S["carotid"])
    cv.paint(_Cap(t0, t1, 9.5), 40.0, sid=S["airway"])
    cv.paint(_Cap(t0, t1, 7.5), -1000.0, sid=S["airway"])
    for s in (-1, 1):
        cv.paint(_Cap(t1, t1 + np.array([s * 38, 8, -22]), 6.5), -1000.0, sid=S["airway"])


def _paint_vessels(an, cv):
    """Aorta, its calcified plaques and the abdominal IVC."""
    for a in an.aorta:
        cv.paint(a, an.hu_aorta, sid=S["aorta"])
    for e, v in an.calc:
        cv.paint(e, v, sid=S["calcification"])
    ivc0, ivc1 = an.verts[23][0], an.verts[18][0]
    ivc = _Cap(ivc0 + [24, an.dims[23]["rb"] + 12, 0], ivc1 + [22, an.dims[18]["rb"] + 14, 0], 10.0 * an.bs)
    cv.paint(ivc, an.hu_vein, sid=S["ivc"])


def _muscle_parts(an):
    """[(kind, structure, ...)]: psoas (capsule chains T12-S1, against the vertebral bodies), quadratus lumborum
    (in front of the lumbar transverse process tips) and paraspinal muscles (elliptic cylinders per vertebra
    filling the groove between the spinous and transverse processes)."""
    bs = an.bs
    musc = []
    lum = [v for v in an.ids if v >= 20]
    prev = None
    for v in [19] + lum:
        c, R = an.verts[v]
        g = an.dims[v]
        rp = (5 + 19 * (v - 19) / (len(lum)) * bs) * an.muscle
        pts = [c + np.array([s * (g["ra"] + rp * 0.75), -g["rb"] * 0.05, 0]) @ R for s in (-1, 1)]
        if prev is not None:
            for s in range(2):
                musc.append(("cap", S["psoas"], prev[0][s], pts[s], prev[1], rp))
        prev = (pts, rp)
    cS1, _ = an.sacrum[0]
    for s, k in ((-1, 0), (1, 1)):
        musc.append(("cap", S["psoas"], prev[0][k], cS1 + np.array([s * 58, 22, -10]), prev[1], prev[1] * 1.1))
    for s in (-1, 1):
        qpts = []
        for v in lum:
            c, R = an.verts[v]
            _, _, tips, _ = an.vertebra_parts(v)
            qpts.append(c + (np.asarray(tips[s]) + np.array([s * 4, 9, 0])) @ R)
        for i, (a0, a1) in enumerate(zip(qpts[:-1], qpts[1:])):
            musc.append(("cap", S["quadratus"], a0, a1, (7 + 2.5 * i) * an.muscle, (9.5 + 2.5 * i) * an.muscle))
    for v in an.ids[2:]:
        c, R = an.verts[v]
        g = an.dims[v]
        ax_, by_ = {"C": (17, 16), "T": (21, 18), "L": (30, 24)}[region(v)]
        ax_, by_ = ax_ * bs * an.muscle, by_ * bs * an.muscle
        bcx = -(g["rb"] + 2 * g["rcb"] + 2 + by_ * 0.75)
        for s in (-1, 1):
            musc.append(("ecyl", S["paraspinal_muscle"], c, R, (s * (ax_ * 0.95 + 3.0), bcx, 0), ax_, by_,
                         g["hh"] + g["disc"] / 2 + 3))
    return musc


def _paint_muscles(an, cv):
    """Muscles with thin fat planes: all fat sheaths first, then all muscle bellies."""
    musc = _muscle_parts(an)
    for fatpass in (True, False):
        hu = an.hu_fat if fatpass else an.hu_muscle
        for m in musc:
            sid = S["intermuscular_fat"] if fatpass else m[1]
            if m[0] == "cap":
                _, _, a0, a1, r0, r1 = m
                e = 2.0 if fatpass else 0.0
                cv.paint(_Cap(a0, a1, r0 + e, r1 + e), hu, where=_body, sid=sid)
            else:
                _, _, c, R, ctr, ea, eb, hh = m
                e = 1.2 if fatpass else 0.0
                cv.paint(_ECyl(ctr, ea + e, eb + e, hh), hu, c, R, where=_body, sid=sid)


def _paint_canal(an, cv):
    """Spinal canal: CSF (epidural fat in the lumbar canal), spinal cord down to L1."""
    bs = an.bs
    for v in an.ids:
        c, R = an.verts[v]
        g = an.dims[v]
        if v == 1:
            bc, rca, rcb = -22 * bs, 12 * bs, 11 * bs
        else:
            bc, rca, rcb = _canal_b(g), g["rca"], g["rcb"]
        hh = g["hh"] + g["disc"] / 2 + 2
        if v >= 20:
            cv.paint(_ECyl((0, bc, 0), rca, rcb, hh), an.hu_fat * 0.8, c, R, sid=S["epidural_fat"])
            cv.paint(_ECyl((0, bc + rcb * 0.15, 0), rca * 0.75, rcb * 0.7, hh), an.hu_csf, c, R, sid=S["canal_csf"])
        else:
            cv.paint(_ECyl((0, bc, 0), rca * 0.95, rcb * 0.95, hh), an.hu_csf, c, R, sid=S["canal_csf"])
        if v <= 20:
            cv.paint(_ECyl((0, bc + rcb * 0.1, 0), min(rca * 0.45, 6.5), min(rcb * 0.45, 4.5), hh), an.hu_cord, c, R,
                     sid=S["spinal_cord"])


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
        cv.paint(_ECyl((0, 0, 0), ra, rb, hh, kidney=gu["kidney"]), an.hu_disc, c, R, sid=S["disc"])
        cv.paint(_ECyl((0, -rb * 0.1, 0), ra * 0.55, rb * 0.5, hh), an.hu_disc - 12, c, R, sid=S["disc"])


# --- bone -------------------------------------------------------------------------------------------------
def _add_bone(an, cv, label_margin):
    """Vertebrae (labelled) and the distractor bone into the canvas's distance fields; the brain behind the
    skull base is painted before the skull."""
    for v in an.ids:
        c, R = an.verts[v]
        parts, sub, _, n_body = an.vertebra_parts(v)
        cv.add_vertebra(v, parts, c, R, sub, label_margin, n_body=n_body)
    for chain in an.ribs:
        cv.add_other_bone(chain, sid=S["rib"])
    cv.add_other_bone(an.sternum, sid=S["sternum"])
    cv.add_other_bone(an.shoulder, sid=S["clavicle"])
    for pt, R, parts in an.scapulae:
        cv.add_other_bone(parts, pt, R, sid=S["scapula"])
    cv.add_other_bone(an.glenoid, sid=S["scapula"])
    for bones in an.arm_bones:
        cv.add_other_bone(bones, sid=S["arm_bone"])
    for c, R, parts, sub in an.sacrum_parts:
        cv.add_other_bone(parts, c, R, sub, sid=S["sacrum"])
    cv.add_other_bone(an.ilium, sid=S["pelvis"])
    cv.paint(_Ell(an.skull_center, an.skull_r - 4), 35.0, sid=S["brain"])
    cv.add_other_bone(an.skull, sid=S["skull"])
