"""The heart and the great vessels: four chambers as blood pools (ellipsoids in a heart frame whose long axis points
to the apex, anterior-left-inferior), their myocardium (thick left ventricle, interventricular septum, thin right
ventricle and atria), pericardial fat, the aortic root (the aorta itself is built in :mod:`.viscera`), the
pulmonary trunk with both pulmonary arteries, the pulmonary veins, the superior vena cava with the brachiocephalic and subclavian veins and
the inferior vena cava into the right atrium. HU follow the contrast phase (``_Anatomy._draw_contrast``), with a
dense bolus in the veins of the injected arm in some arterial cases."""
from __future__ import annotations

import numpy as np

from .sdf import _Cap, _Ell, _frame
from .structures import STRUCTURES as S

# chambers: world offset of the centre from the heart centre (mm, x right, y anterior, z superior), semi-axes in the
# heart frame (across, anterior, along the long axis) in mm, wall thickness in mm
_CHAMBERS = {
    "right_atrium": ((34.0, -6.0, 8.0), (23.0, 21.0, 26.0), 2.0),
    "left_atrium": ((-8.0, -30.0, 22.0), (25.0, 16.0, 21.0), 2.0),
    "right_ventricle": ((2.0, 22.0, -14.0), (30.0, 13.0, 40.0), 3.5),
    "left_ventricle": ((-22.0, -2.0, -8.0), (21.0, 20.0, 37.0), 10.0),
}


def build_heart(an):
    """an.heart: centre, frame, scale and the chambers (local centre, semi-axes, wall) of this case."""
    r = an.rng
    zh = an.vz(15) - r.uniform(0, 12)
    xc, yc, rx, ry = (float(v[0]) for v in an.cage_at(np.array([zh])))
    ys = float(an.spine_xy(np.array([zh]))[1][0])
    front = ys + an.dims[15]["rb"]
    depth = yc + ry - front  # vertebral body front .. inner chest wall
    hs = r.uniform(0.85, 1.12) * an.cage_w
    H = np.array([xc - r.uniform(0.08, 0.22) * rx, front + r.uniform(0.52, 0.6) * depth, zh])
    apex = np.array([-0.55, 0.55, -0.6]) + r.normal(0, 0.12, size=3)
    R = _frame(apex, r.uniform(-0.4, 0.4))
    ch = {}
    for name, (off, rad, wall) in _CHAMBERS.items():
        j = r.uniform(0.88, 1.12, size=3)
        ch[name] = (R @ (np.asarray(off) * hs), np.asarray(rad) * hs * j, wall * r.uniform(0.8, 1.2))
    an.heart = dict(c=H, R=R, hs=hs, chambers=ch, fat=r.uniform(2.0, 4.0) + 6.0 * (an.fat - 3) / 57,
                    front=front, depth=depth, zh=zh)


def heart_point(an, name, off=(0.0, 0.0, 0.0)):
    """World point: the centre of a chamber plus a world offset (mm)."""
    h = an.heart
    return h["c"] + h["R"].T @ h["chambers"][name][0] + np.asarray(off, float) * h["hs"]


def build_great_vessels(an):
    """an.great_vessels: [(name, capsule chain, HU, structure id)] of the pulmonary arteries and veins, the SVC
    with the brachiocephalic and subclavian veins and the intrathoracic IVC (the aorta is in viscera)."""
    h, hs = an.heart, an.heart["hs"]
    z5, z1 = an.vz(12), an.vtop_z(8)
    xc, _, rx, _ = (float(v[0]) for v in an.cage_at(np.array([z5])))
    mid = lambda f: h["front"] + f * h["depth"]  # noqa: E731  depth fraction -> world y
    out = []
    rvo = heart_point(an, "right_ventricle", (-14, 8, 30))
    bif = np.array([xc - 6, mid(0.42), z5 - 2])
    pa = [_Cap(rvo, bif, 13 * hs, 12 * hs),
          _Cap(bif, np.array([xc + 42, mid(0.3), z5 - 8]), 10 * hs, 8 * hs),
          _Cap(bif, np.array([xc - 44, mid(0.25), z5 + 2]), 10 * hs, 8 * hs)]
    out.append(("pulmonary_artery", pa, an.hu_right, S["pulmonary_artery"]))
    la = heart_point(an, "left_atrium")
    pv = [_Cap(la, la + np.array([s * 42, 4, dz]) * hs, 6.5 * hs, 5 * hs) for s in (-1, 1) for dz in (-10, 10)]
    out.append(("pulmonary_vein", pv, an.hu_left, S["pulmonary_vein"]))
    svc_top = np.array([xc + 24 * hs, mid(0.55), z1 + 2])
    ra_top = heart_point(an, "right_atrium", (0, 0, 18))
    out.append(("svc", [_Cap(svc_top, ra_top, 9.5 * hs, 10 * hs)], an.hu_svc, S["svc"]))
    for s in (-1, 1):  # brachiocephalic + subclavian veins, s = +1: right
        lat = np.array([xc + s * 62, mid(0.45 if s > 0 else 0.62), z1 + 8])
        sub = np.array([xc + s * (rx + 45), mid(0.35), z1 + 22])
        hu = an.hu_bolus if an.bolus_side == s else an.hu_svc
        out.append(("brachiocephalic_vein", [_Cap(lat, svc_top, 6.5, 8.0), _Cap(sub, lat, 5.0, 6.5)], hu,
                    S["brachiocephalic_vein"]))
    if an.bolus_side:
        out.append(("svc", [_Cap(svc_top, svc_top + (ra_top - svc_top) * an.bolus_reach, 7.0, 6.0)], an.hu_bolus,
                    S["svc"]))
    ivc_lo = an.verts[18][0] + np.array([22, an.dims[18]["rb"] + 14, 0])
    out.append(("ivc", [_Cap(ivc_lo, heart_point(an, "right_atrium", (-2, -4, -20)), 10 * an.bs, 11 * hs)],
                an.hu_vein, S["ivc"]))
    an.great_vessels = out


def aortic_root(an):
    """(valve, ascending) world points of the aorta: from the LV outflow, up and slightly right."""
    valve = heart_point(an, "left_ventricle", (22, 4, 30))
    asc = np.array([valve[0] + 10, valve[1] + 2, an.vz(11)])
    return valve, asc


def paint_heart(an, cv):
    """Pericardial fat, myocardium of every chamber (the LV wall last: it forms the septum), blood pools."""
    h = an.heart
    c, R = h["c"], h["R"]
    ch = h["chambers"]
    for name in _CHAMBERS:
        off, rad, wall = ch[name]
        cv.paint(_Ell(off, rad + wall + h["fat"]), an.hu_fat, c, R, sid=S["pericardial_fat"])
    for name in ("right_atrium", "left_atrium", "right_ventricle"):
        off, rad, wall = ch[name]
        cv.paint(_Ell(off, rad + wall), an.hu_myo, c, R, sid=S["myocardium"])
    for name in ("right_atrium", "left_atrium", "right_ventricle"):
        off, rad, wall = ch[name]
        cv.paint(_Ell(off, rad), an.hu_chamber[name], c, R, sid=S[name])
    off, rad, wall = ch["left_ventricle"]
    cv.paint(_Ell(off, rad + wall), an.hu_myo, c, R, sid=S["myocardium"])
    cv.paint(_Ell(off, rad), an.hu_chamber["left_ventricle"], c, R, sid=S["left_ventricle"])
    for _, chain, hu, sid in an.great_vessels:
        for part in chain:
            cv.paint(part, hu, sid=sid)
