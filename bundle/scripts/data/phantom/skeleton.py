"""Bone geometry: the vertebrae (kidney-shaped body with varying endplates, osteophytes, wedge fractures, pedicles,
laminae, articular, transverse and spinous processes, canal), focal bone lesions, and the unlabelled distractor
bone (ribs articulating with the vertebral bodies and transverse processes, costal cartilage, sternum, clavicles,
scapulae with the glenoid, humeri and forearm bones, sacrum, ilium, skull base, occipital condyles, mandible).
Builders take the case's ``_Anatomy`` and store their primitives on it."""
from __future__ import annotations

import math

import numpy as np

from .sdf import _F32, _Cap, _ECyl, _Ell, _Fn, _Plate
from .tables import _RIB_DROP, _RIB_END, _SAC_D, _SAC_H, _SAC_W, region


# --- vertebrae ----------------------------------------------------------------------------------------------
def draw_shape(r, vid, g, bone_class, osteophytes):
    """Random shape of one vertebra into its dims g: endplate concavity, waist, extra wedge (anterior height,
    mm; a wedge compression fracture in some osteoporotic vertebrae), posterior concavity of the body outline and
    the osteophytes (rim angle from anterior, top/bottom, length, base radius)."""
    reg = region(vid)
    g["conc"] = (0.5 if reg == "C" else 0.9) * r.uniform(0.5, 1.8)
    g["waist"] = r.uniform(0.02, 0.09)
    g["wedge_x"] = r.uniform(-0.8, 0.5) if reg == "T" else r.uniform(-0.4, 0.4)
    if bone_class == "osteoporotic" and reg != "C" and r.random() < 0.12:
        g["wedge_x"] -= r.uniform(0.15, 0.35) * 2 * g["hh"]
    g["kidney"] = r.uniform(0.0, 0.05) if reg == "C" else r.uniform(0.05, 0.16)
    g["spurs"] = []
    if osteophytes and vid >= 12 and r.random() < 0.6:
        for _ in range(int(r.integers(2, 6))):
            g["spurs"].append((r.uniform(-1.9, 1.9), 1 if r.random() < 0.5 else -1, r.uniform(2.0, 7.0),
                               r.uniform(1.8, 3.2)))


def vertebra_parts(an, vid):
    """(parts, [canal], transverse process tips {-1, 1}, n_body) of vertebra vid in its local frame; the first
    n_body parts are the body (with the dens of C2 and the osteophytes; none for C1)."""
    if vid == 1:
        return _atlas_parts(an)
    g = an.dims[vid]
    bs = an.bs
    reg = region(vid)
    parts = _body_parts(an, vid, reg)
    n_body = len(parts)
    info, bback = _arch_parts(an, vid, reg, parts)
    parts += _spinous_process(g, reg, vid, bs, bback)
    dis_up = an.dims[vid - 1]["disc"] if vid > 1 else 2.0
    canal = _ECyl((0, _canal_b(g), 0), g["rca"], g["rcb"], g["hh"] + dis_up + g["disc"] + 8)
    return parts, [canal], info, n_body


def _canal_b(g):
    """Local b of the canal centre: behind the (posteriorly concave) body."""
    return -(g["rb"] * (1 - g.get("kidney", 0.0)) + g["rcb"] - 1.5)


def _body_parts(an, vid, reg):
    g, bs = an.dims[vid], an.bs
    ra, rb, hh = g["ra"], g["rb"], g["hh"]
    last_lumbar = vid == an.ids[-1]
    wedge = {"C": 0.0, "T": -0.5, "L": 0.0}[reg] + (1.8 * bs if last_lumbar else 0.0) + g["wedge_x"]
    parts = [_ECyl((0, 0, 0), ra, rb, hh, conc=g["conc"], waist=g["waist"], wedge=wedge, kidney=g["kidney"])]
    for ang, side, length, rad in g["spurs"]:  # osteophytes: beaks at the endplate rim, curving towards the disc
        base = np.array([ra * math.sin(ang) * 0.97, rb * math.cos(ang) * 0.97, side * (hh - 0.6)])
        nrm = np.array([math.sin(ang) / ra, math.cos(ang) / rb, 0.0])
        nrm /= np.linalg.norm(nrm)
        tip = base + nrm * length * 0.8 + np.array([0, 0, side * length * 0.6])
        parts.append(_Cap(base - nrm * rad, tip, rad, rad * 0.35))
    if vid == 2:
        parts.append(_Cap((0, -1.0, hh - 3), (0, -1.5, hh + 13.5 * bs), 5.2 * bs, 4.2 * bs))
        for s in (-1, 1):
            parts.append(_Ell((s * ra * 0.85, -rb * 0.3, hh - 1.5), np.array([7, 8, 4.5]) * bs))
    return parts


def _arch_parts(an, vid, reg, parts):
    """Pedicles, laminae, articular and transverse processes of both sides (appended to parts); returns the
    transverse process tips and the local b of the laminae's posterior surface (root of the spinous process)."""
    g, bs = an.dims[vid], an.bs
    ra, rb, hh, rca, rcb = g["ra"], g["rb"], g["hh"], g["rca"], g["rcb"]
    dis_dn = g["disc"]
    dis_up = an.dims[vid - 1]["disc"] if vid > 1 else 2.0
    last_lumbar = vid == an.ids[-1]
    bc = _canal_b(g)
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
        info[s] = _transverse_process(parts, reg, vid, s, xj, bj, hp, ra, rb, tpl, bs, last_lumbar)
    return info, bback


def _transverse_process(parts, reg, vid, s, xj, bj, hp, ra, rb, tpl, bs, last_lumbar):
    """Appends one side's transverse process (cervical: with the anterior bar of the foramen); returns its tip."""
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
    return tip


def _spinous_process(g, reg, vid, bs, bback):
    """The spinous process as a list of parts (two for the bifid C3-C6)."""
    b0, h0 = bback + 1.0, -g["hh"] * 0.15
    ang = math.radians(g["spa"])
    tipb, tiph = b0 - g["spl"] * math.cos(ang), h0 - g["spl"] * math.sin(ang)
    if reg == "C" and 3 <= vid <= 6:
        return [_Cap((0, b0, h0), (s * 3.5 * bs, tipb, tiph), 3.0 * bs) for s in (-1, 1)]
    if reg == "L":
        return [_Plate((1, 2), 0, (b0, h0), (tipb, tiph), 7.0 * bs, 0.0, 3.3 * bs)]
    return [_Cap((0, b0, h0), (0, tipb, tiph), 3.5 * bs, 4.5 * bs)]


def _atlas_parts(an):
    bs = an.bs
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
    return parts, [canal], info, 0


# --- thoracic cage ------------------------------------------------------------------------------------------
def build_ribs(an):
    """an.ribs: one capsule chain per rib (head against the posterolateral vertebral body at the costovertebral
    joint, tubercle against the transverse process tip, arc along the cage); an.cartilage: costal cartilage of
    ribs 1-10 towards the sternum."""
    an.ribs, an.cartilage = [], []
    for k in range(12):
        vid = 8 + k
        c, R = an.verts[vid]
        _, _, info, _ = an.vertebra_parts(vid)
        rr = (4.2 if k == 0 else 3.4) * an.bs
        for s in (-1, 1):
            pts, head = _rib_points(an, k, c, R, info[s], s, rr)
            chain = [_Cap(p, q, rr, rr * 0.9, scale=(1.0, 1.0, 0.62)) for p, q in zip(pts[:-1], pts[1:])]
            an.ribs.append([_Ell(head, np.full(3, rr * 1.45))] + chain)
            if k < 10:  # costal cartilage towards the sternum
                end = pts[-1]
                zst = min(end[2] + (10 if k < 7 else 25), an.vz(8 + min(k + 2, 9)))
                xc2, yc2, rx2, ry2 = an.cage_at(zst)
                stern = np.array([xc2 + s * (12 + 1.5 * k), yc2 + ry2 + 4, zst])
                an.cartilage.append(_Cap(end, stern, rr * 0.9))


def _rib_head(an, k, s, rh):
    """Local centre of the rib head of rib k+1: touching (0.6 mm overlap) the posterolateral body wall, at the
    upper endplate / disc margin for ribs 2-9, lower on the body for ribs 1, 10-12."""
    r = an.rng
    g = an.dims[8 + k]
    phi = r.uniform(0.85, 1.0)  # angle from posterior (rad)
    dis_up = an.dims[7 + k]["disc"]
    h = g["hh"] - 0.3 + 0.25 * dis_up if 1 <= k <= 8 else 0.35 * g["hh"]
    narrow = 1 + g["waist"] * max(0.0, 1 - (h / g["hh"]) ** 2)  # the body's waist at that height
    ra, rb = g["ra"] / narrow, g["rb"] / narrow
    x0, y0 = s * ra * math.sin(phi), -rb * math.cos(phi)
    nrm = np.array([x0 / ra ** 2, y0 / rb ** 2])
    nrm /= np.linalg.norm(nrm)
    return np.array([x0 + nrm[0] * (rh - 0.6), y0 + nrm[1] * (rh - 0.6), h])


def _rib_points(an, k, c, R, tip, s, rr):
    """Centre line of rib k+1 on side s (head, tubercle, then 13 points along the cage dropping anteriorly) and the
    world centre of its head."""
    r = an.rng
    rh = rr * 1.45
    head = c + _rib_head(an, k, s, rh) @ R
    tip = np.asarray(tip, float)
    gap = -0.6 if k < 10 else 3.0  # costotransverse joint of ribs 1-10; the floating ribs stay clear
    neck = c + np.array([tip[0] - s * 1.5, tip[1] + 5.0 * an.bs + rr + gap, tip[2] - 1]) @ R
    z0 = neck[2]
    xc, yc, rx, ry = an.cage_at(z0)
    rx, ry = rx + rr + 1, ry + rr + 1
    ph0 = math.asin(float(np.clip(abs(neck[0] - xc) / rx, 0.05, 0.9)))
    ph1 = math.radians(_RIB_END[k] + r.uniform(-5, 5))
    drop = _RIB_DROP[k] * 1.35 * an.bs * r.uniform(0.85, 1.15)
    n = 14
    pts = [head, neck]
    for t in np.linspace(0, 1, n)[1:]:
        ph = ph0 + t * (ph1 - ph0)
        z = z0 - drop * t ** 1.4
        xc2, yc2, rx2, ry2 = an.cage_at(z)
        rx2, ry2 = rx2 + rr + 1, ry2 + rr + 1
        pts.append(np.array([xc2 + s * rx2 * math.sin(ph), yc2 - ry2 * math.cos(ph), z]))
    return pts, head


def build_sternum(an):
    an.zs_top = an.vtop_z(10) + 8
    zz = np.linspace(an.zs_top, an.vz(17), 6)
    spts = []
    for z in zz:
        xc, yc, rx, ry = an.cage_at(z)
        spts.append(np.array([an.x_body, yc + ry + 7 * an.bs, z]))
    an.sternum_top = spts[0]
    an.sternum_pts = spts
    an.sternum = [_Cap(p, q, 6 * an.bs, 5 * an.bs, scale=(0.4, 1, 1)) for p, q in zip(spts[:-1], spts[1:])]


def build_shoulders(an):
    """an.shoulder: clavicles (to the acromion); an.scapulae: (point, frame, parts) of both blades."""
    bs = an.bs
    an.shoulder = []
    zc = an.vtop_z(9)
    xc, yc, rx, ry = an.cage_at(zc)
    for s in (-1, 1):
        p0 = np.array([an.x_body + s * 18, an.sternum_top[1] + 4, an.zs_top + 6])
        p1 = np.array([an.x_body + s * (rx + 30), yc + 10, zc + 28])
        p2 = np.array([an.x_body + s * (rx + 48), yc - 15, zc + 35])
        an.shoulder += [_Cap(p0, p1, 7 * bs), _Cap(p1, p2, 6 * bs)]
    z5 = an.vz(12)
    xc5, yc5, rx5, ry5 = an.cage_at(z5)
    an.scapulae = []
    for s in (-1, 1):
        ph = math.radians(58)
        pt = np.array([xc5 + s * (rx5 + 14) * math.sin(ph), yc5 - (ry5 + 14) * math.cos(ph), z5])
        normal = np.array([s * math.sin(ph) / (rx5 + 14), -math.cos(ph) / (ry5 + 14), 0])
        normal /= np.linalg.norm(normal)
        tang = np.cross([0, 0, 1.0], normal) * s
        R = np.stack([tang, normal, [0, 0, 1.0]])
        parts = [_Plate((0, 2), 1, (-5, 45), (12, -55), 24 * bs, 0.0, 3.0),
                 _Cap((-35, 4, 55), (40, 8, 62), 5 * bs)]
        an.scapulae.append((pt, R, parts))
    _humeral_heads(an, zc, rx, yc)


def _humeral_heads(an, zc, rx, yc):
    """an.humeral_head {side: (centre, radius)} under the acromion; an.glenoid: the glenoid fossa and scapular neck
    of both sides (world parts) joining it to the blade."""
    bs = an.bs
    an.humeral_head, an.glenoid, an.acromion = {}, [], {}
    for s in (-1, 1):
        acromion = np.array([an.x_body + s * (rx + 48), yc - 15, zc + 35])
        an.acromion[s] = acromion
        rh = 22 * bs * an.rng.uniform(0.92, 1.08)
        head = acromion + np.array([s * 6, 10, -rh - 8])
        an.humeral_head[s] = (head, rh)
        glen = head - np.array([s * (rh + 4), 2, 0])
        blade = next(pt for pt, R, _ in an.scapulae if np.sign(pt[0] - an.x_body) == s)
        an.glenoid += [_Ell(glen, np.array([5, 12, 17]) * bs), _Cap(glen, blade + np.array([0, 0, 40]), 7 * bs)]


def build_arms(an):
    """Arms up (humerus from the shoulder up beside the head) or down (humerus beside the chest, forearm beside
    the abdomen): an.arm_soft [(fat chain, muscle chain)], an.arm_bones [parts] (humerus shaft, radius, ulna)."""
    r = an.rng
    an.arm_soft, an.arm_bones = [], []
    r_arm = r.uniform(34, 46) + 0.45 * an.fat
    fat_arm = 2 + 0.5 * an.fat
    for s in (-1, 1):
        head, rh = an.humeral_head[s]
        if an.arms == "up":
            elbow = head + np.array([s * r.uniform(15, 50), r.uniform(-10, 30), r.uniform(270, 310) * an.bs])
            path = [head, elbow]
        else:
            z_el = an.vz(20) - r.uniform(0, 40)
            elbow = np.array([an.x_body + s * (_skin_halfwidth(an, z_el) + r_arm + r.uniform(0, 15)),
                              an.soft_at(np.array([z_el]))["ys"][0] + r.uniform(10, 50), z_el])
            z_wr = z_el - r.uniform(220, 260) * an.bs
            wrist = np.array([an.x_body + s * (_skin_halfwidth(an, z_wr) + 0.7 * r_arm),
                              an.soft_at(np.array([z_wr]))["ys"][0] + r.uniform(40, 110), z_wr])
            path = [head, elbow, wrist]
        radii = [r_arm, r_arm * 0.8, r_arm * 0.6][:len(path)]
        # the shoulder (trapezius, deltoid): from the base of the neck over the acromion to the humeral head
        acromion = an.acromion[s]
        neck = np.array([an.x_body + s * 35, acromion[1] - 5, acromion[2] - 12])
        top = acromion + np.array([s * 4, 4, -14])
        path, radii = [neck, top] + path, [0.75 * r_arm, 0.8 * r_arm] + radii
        if an.arms == "down":
            path[2] = head - np.array([0, 0, 0.4 * rh])
        an.arm_soft.append(([_Cap(p, q, a, b) for p, q, a, b in zip(path[:-1], path[1:], radii[:-1], radii[1:])],
                            [_Cap(p, q, a - fat_arm, b - fat_arm)
                             for p, q, a, b in zip(path[:-1], path[1:], radii[:-1], radii[1:])]))
        bones = [_Ell(head, np.full(3, rh)), _Cap(head, elbow, 11 * an.bs, 10 * an.bs)]
        if an.arms == "down":
            d = np.cross(elbow - wrist, [0, 0, 1.0])
            d = d / (np.linalg.norm(d) + 1e-9) * 7
            bones += [_Cap(elbow + d, wrist + d, 7 * an.bs, 8 * an.bs),  # radius and ulna
                      _Cap(elbow - d, wrist - d, 7 * an.bs, 5 * an.bs)]
        an.arm_bones.append(bones)


def _skin_halfwidth(an, z):
    """Half width (mm) of the trunk's skin outline at height z."""
    p = an.soft_at(np.array([z]))
    return float(p["A"][0] + an.fat * p["fatf"][0] * 1.15)


def build_bone_lesions(an):
    """an.bone_lesions [(centre, semi-axes, dHU)]: blastic lesions in vertebral bodies (focal sclerosis: 3-8) and
    occasional bone islands (10 % of the others: 1-2)."""
    r = an.rng
    an.bone_lesions = []
    n = int(r.integers(3, 9)) if an.sclerosis == "focal" else (int(r.integers(1, 3)) if r.random() < 0.1 else 0)
    for _ in range(n):
        vid = int(r.choice(an.ids[1:]))
        c, R = an.verts[vid]
        g = an.dims[vid]
        loc = np.array([g["ra"], g["rb"], g["hh"]]) * r.uniform(-0.55, 0.55, size=3)
        big = an.sclerosis == "focal"
        rad = r.uniform(4, 12, size=3) if big else r.uniform(2, 5, size=3)
        an.bone_lesions.append((c + loc @ R, rad * an.bs, r.uniform(400, 900) if big else r.uniform(600, 1000)))


# --- pelvis ---------------------------------------------------------------------------------------------------
def build_sacrum(an):
    """an.sacrum_parts: (c, R, parts, [canal]) per sacral segment S1-S5 (alae on S1-S3)."""
    bs = an.bs
    an.sacrum_parts = []
    for k, (c, R) in enumerate(an.sacrum):
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
        an.sacrum_parts.append((c, R, parts, [canal]))


def build_ilium(an):
    """an.ilium: both iliac wings (shell of an ellipsoid, posterolateral half, cut at the crest) and the posterior
    iliac masses."""
    r = an.rng
    cS1, _ = an.sacrum[0]
    ps = r.uniform(0.92, 1.08) * an.bs * an.habitus ** 0.3
    z_crest = an.vz(an.ids[-1]) + r.uniform(-2, 14)
    an.ilium = []
    for s in (-1, 1):
        an.ilium.append(_iliac_wing(np.array([cS1[0] + s * 66 * ps, cS1[1] + 30 * ps, z_crest - 8]),
                                    np.array([54, 50, 100]) * ps, 3.6 * an.bs, s, z_crest))
        an.ilium.append(_Ell(cS1 + np.array([s * 50, -22, -12]) * ps, np.array([13, 16, 30]) * ps))


def _iliac_wing(C, rad, th, s, z_crest):
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
    return _Fn(fn, lo, hi)


# --- head ------------------------------------------------------------------------------------------------------
def build_skull(an):
    """an.skull: skull base shell with the foramen magnum, occipital condyles and mandible; an.skull_center and
    an.skull_r: the ellipsoid the brain fills."""
    bs = an.bs
    c1, _ = an.verts[1]
    c2, _ = an.verts[2]
    c4, _ = an.verts[4]
    top1 = an.pos_at_s(0.0)
    an.skull = []
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

    an.skull.append(_Fn(skull_fn, Cs - rs - 5, Cs + rs + 5))
    an.skull_center, an.skull_r = Cs, rs
    for s in (-1, 1):
        an.skull.append(_Ell(top1 + np.array([s * 17, -7, 5]) * bs, np.array([7, 10, 5.5]) * bs))
        m0 = np.array([c1[0] + s * 48 * bs, c1[1] + 22 * bs, top1[2] + 8])
        m1 = np.array([c2[0] + s * 46 * bs, c2[1] + 22 * bs, c2[2] - 18])
        m2 = np.array([c4[0] + s * 36 * bs, c4[1] + 58 * bs, c4[2] - 2])
        m3 = np.array([c4[0], c4[1] + 78 * bs, c4[2] - 4])
        an.skull += [_Cap(m0, m1, 5.5 * bs, 6 * bs), _Cap(m1, m2, 6 * bs, 7 * bs), _Cap(m2, m3, 7 * bs)]
