"""The random anatomy of one case, independent of the acquisition grid: tissue HU and contrast phase, body habitus,
bone quality, arm position, the curved vertebral column (arc length s along the column, one frame per vertebra),
the soft-tissue outline tables and the other structures (built by :mod:`.skeleton`, :mod:`.heart`,
:mod:`.viscera` and :mod:`.metal`)."""
from __future__ import annotations

import numpy as np

from . import heart, metal, skeleton, viscera
from .sdf import _frame, world_box
from .tables import (
    _BODY_D,
    _BODY_H,
    _BODY_W,
    _CANAL_D,
    _CANAL_W,
    _DISC_H,
    _PED_H,
    _PED_W,
    _RIB_RX,
    _RIB_RY,
    _SAC_H,
    _SP_ANG,
    _SP_L,
    _TP_L,
)


class _Anatomy:
    """All random anatomy of one case (independent of the acquisition grid)."""

    def __init__(self, rng: np.random.Generator, force_l6: bool = False):
        self.rng = rng
        u_l6 = rng.random()
        self.has_l6 = bool(force_l6 or u_l6 < 0.05)
        self.ids = list(range(1, 25)) + ([25] if self.has_l6 else [])
        self.bs = rng.uniform(0.9, 1.1)  # bone size
        self._draw_curvature()
        self._draw_tissue()
        self._draw_habitus()
        self._draw_bone()
        self._draw_annotation_style()
        self._draw_contrast()
        self.arms = "up" if rng.random() < 0.5 else "down"
        self.world_shift = np.array([rng.uniform(-10, 10), rng.uniform(-60, -40), rng.uniform(-150, 150)])
        self._build_spine()
        self._build_soft_params()
        self._build_extras()

    # --- random draws -------------------------------------------------------------------------------------
    def _draw_curvature(self):
        """Spinal curvature (deg) and scoliosis."""
        r = self.rng
        self.kyph = r.uniform(20, 55)  # thoracic kyphosis T1-T12
        self.lord = r.uniform(40, 70)  # lumbar lordosis L1-S1 (2/3 of it below L4)
        self.cerv = r.uniform(-5, 40)  # cervical lordosis
        self.sacr = r.uniform(40, 60)  # sacral kyphosis
        self.tl = self.lord * r.uniform(0.25, 0.4)  # tangent at the thoracolumbar junction
        self.scol = r.uniform(5, 16) if r.random() < 0.3 else r.uniform(0, 2)
        self.scol_len = r.uniform(220, 420)
        self.scol_phase = r.uniform(0, 2 * np.pi)

    def _draw_tissue(self):
        """Soft-tissue HU."""
        r = self.rng
        self.hu_fat = r.uniform(-108, -82)
        self.hu_muscle = r.uniform(32, 58)  # lower = fatty infiltration
        self.muscle = r.uniform(0.85, 1.15)
        self.hu_visc = r.uniform(20, 38)
        self.hu_lung = r.uniform(-880, -790)
        self.hu_csf = r.uniform(5, 18)
        self.hu_cord = r.uniform(28, 40)
        self.hu_disc = r.uniform(70, 100)
        self.hu_liver = r.uniform(52, 68)
        self.hu_spleen = r.uniform(40, 55)

    def _draw_habitus(self):
        """Body habitus: thin (25 %), average (45 %) or obese (30 %) subcutaneous fat; trunk width / depth and an
        irregular outline (angular harmonics 2-5)."""
        r = self.rng
        u = r.random()
        self.habitus_class = "thin" if u < 0.25 else ("average" if u < 0.7 else "obese")
        self.fat = {"thin": r.uniform(3, 10), "average": r.uniform(10, 25), "obese": r.uniform(25, 60)}[
            self.habitus_class]  # subcutaneous fat thickness (mm) at the abdomen
        self.habitus = 0.92 + 0.2 * (min(self.fat, 45) - 5) / 35 + r.uniform(-0.04, 0.04)
        self.aspect = r.uniform(0.9, 1.2)  # trunk width factor (1 = the tables' outline)
        self.outline = [(n, r.uniform(0, 0.03), r.uniform(0, 2 * np.pi)) for n in (2, 3, 4, 5)]

    def _draw_bone(self):
        """Bone quality: normal (70 %), osteoporotic (18 %: cancellous 50-100 HU, thin cortex) or sclerotic (12 %:
        diffuse, or normal bone with focal blastic lesions); osteophytes at the endplate margins (30 %)."""
        r = self.rng
        u = r.random()
        self.bone_class = "normal" if u < 0.7 else ("osteoporotic" if u < 0.88 else "sclerotic")
        dens = r.uniform(0.75, 1.25)
        self.hu_canc = 195 * dens
        self.hu_cort = r.uniform(1200, 1800) * (0.8 + 0.2 * dens)
        self.hu_canc_other = 220 * dens
        self.tc = r.uniform(0.5, 1.1)  # cortical shell thickness (mm) of vertebral bodies
        self.tc_post = r.uniform(1.0, 2.0)  # posterior elements are denser
        self.tc_other = r.uniform(0.8, 1.6)
        self.sclerosis = "none"
        if self.bone_class == "osteoporotic":
            self.hu_canc = r.uniform(50, 100)
            self.hu_canc_other = self.hu_canc * r.uniform(1.0, 1.3)
            self.hu_cort = r.uniform(700, 1100)
            self.tc, self.tc_post, self.tc_other = r.uniform(0.3, 0.5), r.uniform(0.6, 1.0), r.uniform(0.5, 0.9)
        elif self.bone_class == "sclerotic":
            self.sclerosis = "diffuse" if r.random() < 0.5 else "focal"
            if self.sclerosis == "diffuse":
                self.hu_canc = r.uniform(350, 600)
                self.hu_canc_other = self.hu_canc * r.uniform(0.8, 1.1)
                self.tc, self.tc_post = r.uniform(1.0, 1.6), r.uniform(1.5, 2.5)
        self.osteophytes = r.random() < 0.3

    def _draw_annotation_style(self):
        """Label margin (mm beyond the bone surface) varying smoothly in space, sometimes < 0; bone texture."""
        r = self.rng
        self.label_margin = r.uniform(0.4, 1.3)
        self.label_margin_amp = r.uniform(0.4, 1.1)
        self.label_waves = [(r.normal(size=3), r.uniform(2 * np.pi / 40, 2 * np.pi / 15), r.uniform(0, 2 * np.pi))
                            for _ in range(3)]
        self.tex_sd = r.uniform(30, 60)
        self.tex_waves = [(r.normal(size=3), r.uniform(2 * np.pi / 9, 2 * np.pi / 3), r.uniform(0, 2 * np.pi))
                          for _ in range(10)]

    def _draw_contrast(self):
        """Contrast phase (none 45 % / arterial 30 % / portal venous 25 %) and the HU of blood and enhancing
        organs: native blood and myocardium ~40; arterial: left heart and aorta 250-450, myocardium 90-140, right
        heart 80-400, a dense bolus in the injected arm's veins in half the cases; venous: blood 130-200."""
        r = self.rng
        cp = r.random()
        self.phase = "none" if cp < 0.45 else ("arterial" if cp < 0.75 else "venous")
        ph = self.phase
        if ph == "none":
            blood = r.uniform(35, 52)
            self.hu_left, self.hu_right, self.hu_myo = blood, blood, r.uniform(35, 50)
            self.hu_aorta, self.hu_vein = blood + r.uniform(-3, 3), blood + r.uniform(-3, 3)
        elif ph == "arterial":
            self.hu_left = r.uniform(250, 450)
            self.hu_right = r.uniform(80, 400)
            self.hu_myo = r.uniform(90, 140)
            self.hu_aorta, self.hu_vein = self.hu_left * r.uniform(0.95, 1.05), r.uniform(45, 90)
        else:
            blood = r.uniform(130, 200)
            self.hu_left, self.hu_right, self.hu_myo = blood, blood * r.uniform(0.93, 1.07), r.uniform(90, 130)
            self.hu_aorta, self.hu_vein = blood * r.uniform(0.95, 1.08), blood * r.uniform(0.9, 1.05)
        self.hu_chamber = {"left_ventricle": self.hu_left, "left_atrium": self.hu_left * r.uniform(0.95, 1.02),
                           "right_ventricle": self.hu_right, "right_atrium": self.hu_right * r.uniform(0.9, 1.1)}
        self.hu_svc = self.hu_right * r.uniform(0.8, 1.2) if ph == "arterial" else self.hu_vein
        self.bolus_side = int(r.choice([-1, 1])) if ph == "arterial" and r.random() < 0.5 else 0
        self.hu_bolus, self.bolus_reach = r.uniform(700, 2500), r.uniform(0.3, 1.0)
        if ph == "venous":
            self.hu_liver += r.uniform(40, 60)
            self.hu_spleen += r.uniform(60, 80)
        elif ph == "arterial":
            self.hu_liver += r.uniform(5, 20)
            self.hu_spleen += r.uniform(40, 100)
        self.hu_kidney = {"none": r.uniform(25, 35), "arterial": r.uniform(140, 200), "venous": r.uniform(150, 200)}[ph]
        self.calcified = r.random() < 0.35

    # --- spine ------------------------------------------------------------------------------------------
    def _build_spine(self):
        self._vertebra_dims()
        self._stack_levels()
        self._column_curve()
        r = self.rng
        self.verts = {}
        for vid in self.ids:
            k = int(np.searchsorted(self.ss, self.smid[vid]))
            psi = 0.6 * self.phi[k] + np.radians(r.uniform(-2, 2))
            self.verts[vid] = self.frame_at(self.smid[vid], psi)
        self.sacrum = [self.frame_at((a + b) / 2) for a, b in self.sac_s]

    def _vertebra_dims(self):
        """Per-vertebra sizes (mm) from the tables, jittered."""
        r, bs = self.rng, self.bs
        self.dims = {}
        for vid in self.ids:
            i = vid - 1
            j = r.uniform(0.96, 1.04, size=3)
            g = dict(ra=_BODY_W[i] / 2 * bs * j[0], rb=_BODY_D[i] / 2 * bs * j[1], hh=_BODY_H[i] / 2 * bs * j[2],
                     disc=_DISC_H[i] * bs * r.uniform(0.85, 1.15), rca=_CANAL_W[i] / 2 * bs, rcb=_CANAL_D[i] / 2 * bs,
                     pw=_PED_W[i] * bs, ph=_PED_H[i] * bs, tpl=_TP_L[i] * bs * r.uniform(0.9, 1.1),
                     spl=_SP_L[i] * bs * r.uniform(0.9, 1.1), spa=_SP_ANG[i] + r.uniform(-5, 5))
            skeleton.draw_shape(r, vid, g, self.bone_class, self.osteophytes)
            self.dims[vid] = g
        if self.has_l6:  # L5 is then an ordinary lumbar vertebra, L6 the transitional one
            self.dims[25]["ra"] = self.dims[24]["ra"] * 1.01

    def _stack_levels(self):
        """Body tops / bottoms and sacral segments along the arc length s (s = 0: top of C1)."""
        bs = self.bs
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
        self.smid = {v: (tops[v] + bots[v]) / 2 for v in self.ids}

    def _column_curve(self):
        """Centre line P(s) and tangent of the column: sagittal curvature knots plus a tapered scoliosis."""
        tops, bots, sac, smid = self.tops, self.bots, self.sac_s, self.smid
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

    # --- geometry queries ---------------------------------------------------------------------------------
    def frame_at(self, sv, psi=0.0):
        """(origin, rows) of the column frame at arc length sv with axial rotation psi."""
        k = int(np.clip(np.searchsorted(self.ss, sv), 0, len(self.ss) - 1))
        return self.P[k].copy(), _frame(-self.tang[k], psi)

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
        lo, hi = world_box(c, R, -e, e)
        return lo[2], hi[2]

    def vertebra_parts(self, vid):
        """(parts, canal parts to subtract, transverse process tips {-1, 1}, number of body parts) in the
        vertebra's frame."""
        return skeleton.vertebra_parts(self, vid)

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
        self.soft_tab = np.array(self._soft_rows(rib_rx, rib_ry, rib_post), float)

    def _soft_rows(self, rib_rx, rib_ry, rib_post):
        """Anchors along s: (s, A, Ba, Bp, fat factor, cavity Rx, cavity y_back, cavity y_front, thoracic weight)."""
        hw = self.habitus
        sm = self.smid
        last = self.ids[-1]
        s_s2 = np.mean(self.sac_s[1])
        s_c7t1 = (self.bots[7] + self.tops[8]) / 2
        rows = [(-80, 72, 95, 80, 0.35, 0, 0, 0, 0), (sm[1], 62, 80, 72, 0.35, 0, 0, 0, 0),
                (sm[3], 56, 62, 68, 0.4, 0, 0, 0, 0), (sm[6], 55, 54, 68, 0.45, 0, 0, 0, 0),
                (s_c7t1, 85, 60, 72, 0.5, 0, 0, 0, 1)]
        for k in range(12):
            vid = 8 + k
            rx, ry, post = rib_rx[k], rib_ry[k], rib_post[k]
            A = rx + 18 if k > 1 else max(rx + 18, 150 * hw if k == 1 else 100)
            Ba = -post + 2 * ry + 16
            Bp = 65 + 8 * k / 11
            rows.append((sm[vid], A * (1 + 0.3 * (hw - 1)) * (1 + 0.6 * (self.aspect - 1)), Ba * (1 + 0.3 * (hw - 1)),
                         Bp, 0.7 + 0.2 * k / 11, rx, -post, -post + 2 * ry, 1.0))
        ab = [(sm[20], 148, 150, 75), (sm[22], 142, 135, 82), (sm[last], 152, 122, 86), (s_s2, 165, 110, 78),
              (self.sac_s[4][1] + 80, 170, 110, 70)]
        for s_, A, Ba, Bp in ab:
            A, Ba = A * hw * self.aspect, Ba * hw
            rows.append((s_, A, Ba, Bp, 1.1, A - 14, -5, Ba - 12, 0.0))
        return rows

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
        self.x_body = float(np.mean([self.verts[v][0][0] for v in range(8, 25)]))
        skeleton.build_ribs(self)
        skeleton.build_sternum(self)
        skeleton.build_shoulders(self)
        skeleton.build_arms(self)
        skeleton.build_sacrum(self)
        skeleton.build_ilium(self)
        skeleton.build_skull(self)
        skeleton.build_bone_lesions(self)
        heart.build_heart(self)
        heart.build_great_vessels(self)
        viscera.build_aorta(self)
        viscera.build_organs(self)
        viscera.build_bowel(self)
        viscera.build_visceral_fat(self)
        viscera.build_lung_vessels(self)
        metal.build_implants(self)
