"""Tests of the phantom's anatomy through its structure map (``generate_case(..., structures=True)``): heart
chambers and great vessels in each contrast phase, organs and muscles that touch, vertebra labels on bone, ribs
articulating with the thoracic vertebrae, metal with streaks, and the variation of arms, habitus and bone quality
across seeds. Cases whose draws a test needs are found among the first seeds from their metadata."""
import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

from scripts.data import phantom

TINY = dict(shape=(16, 16, 16), spacing=(4.0, 4.0, 4.0), levels=(14, 14))  # draws only: the metadata
N_SEEDS = 40
BODY = dict(orientation="RAS", structures=True)  # + an explicit shape wider than the trunk: the whole body in view


@pytest.fixture(scope="module")
def metas():
    return {s: phantom.generate_case(s, **TINY)["meta"] for s in range(N_SEEDS)}


def seeds_where(metas, **want):
    out = [s for s, m in metas.items() if all((v(m[k]) if callable(v) else m[k] == v) for k, v in want.items())]
    assert out, f"no seed among the first {N_SEEDS} has {want}"
    return out


def case(seed, **kw):
    res = phantom.generate_case(seed, **{**BODY, **kw})
    return res, res["image"].astype(np.float32), res["structures"], res["structure_ids"]


def core_median(img, st, ids, name, erode=1):
    m = ndi.binary_erosion(st == ids[name], iterations=erode) if erode else st == ids[name]
    assert m.sum() >= 20, f"{name}: only {int(m.sum())} voxels"
    return float(np.median(img[m]))


def touches(st, ids, a, b, iterations=1):
    return bool((ndi.binary_dilation(st == ids[a], iterations=iterations) & (st == ids[b])).any())


def test_structure_map_on_the_image_grid():
    ras, _, st_ras, ids = case(21, spacing=(2.0, 2.0, 3.0), size_scale=0.4, levels=(19, 21))
    assert st_ras.dtype == np.uint8 and st_ras.shape == ras["image"].shape
    assert set(np.unique(st_ras)) <= set(ids.values()) and ids["air"] == 0
    lps = phantom.generate_case(21, spacing=(2.0, 2.0, 3.0), size_scale=0.4, levels=(19, 21), orientation="LPS",
                                structures=True)
    back = nib.Nifti1Image(lps["structures"], lps["affine"]).as_reoriented(
        nib.orientations.ornt_transform(nib.orientations.io_orientation(lps["affine"]),
                                        nib.orientations.axcodes2ornt(("R", "A", "S"))))
    assert np.array_equal(np.asanyarray(back.dataobj), st_ras)
    plain = phantom.generate_case(21, spacing=(2.0, 2.0, 3.0), size_scale=0.4, levels=(19, 21), orientation="RAS")
    assert "structures" not in plain and np.array_equal(plain["image"], ras["image"])


# native: blood ~ myocardium ~ 40; arterial: left heart + aorta 250-450, myocardium 90-140; venous: blood 130-200
PHASE_HU = {"none": dict(blood=(25, 65), myocardium=(25, 62)),
            "arterial": dict(left=(230, 470), myocardium=(80, 150), right=(60, 420)),
            "venous": dict(blood=(115, 215), myocardium=(80, 140))}
CHAMBERS = ("left_ventricle", "right_ventricle", "left_atrium", "right_atrium")


@pytest.mark.parametrize("phase", ["none", "arterial", "venous"])
def test_heart_chambers_and_great_vessels_by_phase(metas, phase):
    seed = seeds_where(metas, phase=phase)[0]
    res, img, st, ids = case(seed, shape=(128, 128, 36), spacing=(2.8, 2.8, 3.0), levels=(13, 17))
    hu = {n: core_median(img, st, ids, n) for n in CHAMBERS + ("myocardium", "aorta", "pulmonary_artery")}
    rng = PHASE_HU[phase]
    lo, hi = rng["myocardium"]
    assert lo <= hu["myocardium"] <= hi, hu
    if phase == "arterial":
        for n in ("left_ventricle", "left_atrium", "aorta"):
            assert rng["left"][0] <= hu[n] <= rng["left"][1], (n, hu)
        for n in ("right_ventricle", "right_atrium", "pulmonary_artery"):
            assert rng["right"][0] <= hu[n] <= rng["right"][1], (n, hu)
        assert hu["left_ventricle"] > hu["myocardium"] + 100, hu
    else:
        for n in CHAMBERS + ("aorta", "pulmonary_artery"):
            assert rng["blood"][0] <= hu[n] <= rng["blood"][1], (n, hu)
    if phase == "none":
        assert abs(hu["left_ventricle"] - hu["myocardium"]) < 25, hu
    # the myocardium wraps the left ventricle and forms the septum against the right ventricle
    assert touches(st, ids, "left_ventricle", "myocardium") and touches(st, ids, "right_ventricle", "myocardium")
    for n in ("svc", "ivc", "pulmonary_vein", "pericardial_fat"):
        assert (st == ids[n]).any(), n


def test_contrast_bolus_in_the_injected_arm_veins(metas):
    seed = seeds_where(metas, phase="arterial", bolus=True)[0]
    res, img, st, ids = case(seed, shape=(128, 128, 30), spacing=(2.8, 2.8, 3.0), levels=(8, 10))
    veins = st == ids["brachiocephalic_vein"]
    assert veins.any()
    assert np.percentile(img[veins], 95) > 600  # dense contrast on the injected side
    assert np.median(img[ndi.binary_erosion(st == ids["aorta"])]) < 470


def test_abdominal_organs_and_muscles_touch(metas):
    res, img, st, ids = case(1, shape=(160, 160, 30), spacing=(2.5, 2.5, 3.0), levels=(18, 21))
    ranges = {"subcutaneous_fat": (-130, -60), "body_wall_muscle": (15, 75), "paraspinal_muscle": (15, 75),
              "psoas": (15, 75), "liver": (35, 150), "spleen": (30, 180), "kidney": (15, 230), "disc": (40, 130)}
    for name, (lo, hi) in ranges.items():
        assert lo <= core_median(img, st, ids, name) <= hi, name
    for name in ("stomach", "quadratus", "perirenal_fat", "aorta", "ivc"):
        assert (st == ids[name]).any(), name
    assert touches(st, ids, "liver", "body_wall_muscle")  # pressed against the body wall
    assert touches(st, ids, "psoas", "vertebra")  # psoas against the vertebral bodies
    assert touches(st, ids, "paraspinal_muscle", "vertebra")  # paraspinal muscles on the posterior elements
    assert touches(st, ids, "kidney", "perirenal_fat")


def test_thoracic_structures(metas):
    res, img, st, ids = case(2, shape=(144, 144, 30), spacing=(2.5, 2.5, 3.0), levels=(12, 15))
    assert core_median(img, st, ids, "lung") < -650
    for name in ("rib", "sternum", "scapula", "costal_cartilage", "esophagus", "aorta", "myocardium"):
        assert (st == ids[name]).any(), name
    assert np.median(img[st == ids["rib"]]) > 150


@pytest.mark.parametrize("bone", ["normal", "osteoporotic", "sclerotic"])
def test_vertebra_labels_lie_on_bone(metas, bone):
    seed = seeds_where(metas, bone=bone)[0]
    res, img, st, ids = case(seed, spacing=(1.5, 1.5, 2.0), size_scale=0.5, levels=(17, 21))
    lab = res["label"]
    assert set(np.unique(lab)) - {0} <= set(range(1, 26))
    vert, labelled = st == ids["vertebra"], lab > 0
    assert labelled[vert].mean() > 0.99  # every vertebra voxel carries a label ...
    near = ndi.binary_dilation(vert, iterations=3)
    assert near[labelled].mean() > 0.99  # ... and the labels hug the vertebrae (annotation margin of a few mm)
    other = np.isin(st, [ids[n] for n in ("rib", "sternum", "scapula", "sacrum", "pelvis", "metal", "arm_bone")])
    assert other[labelled].mean() < 0.02  # only vertebrae are labelled


def test_ribs_touch_the_thoracic_vertebrae():
    for seed in (0, 1):
        res, img, st, ids = case(seed, spacing=(1.5, 1.5, 2.0), size_scale=0.5, levels=(10, 17))
        lab = res["label"]
        contact = ndi.binary_dilation(st == ids["rib"]) & (st == ids["vertebra"])
        for v in range(11, 17):  # T4-T9, well inside the field of view
            x = np.nonzero(lab == v)[0]
            xc = x.mean()
            cx = np.nonzero(contact & (lab == v))[0]
            left, right = int((cx < xc - 3).sum()), int((cx > xc + 3).sum())
            assert left > 5 and right > 5, (seed, v, left, right)


@pytest.mark.parametrize("implant", ["pedicle_screws", "sternal_wires"])
def test_metal_implants_have_metal_hu_and_streaks(metas, implant):
    seed = seeds_where(metas, implants=lambda v: implant in v)[0]
    levels = metas[seed]["implant_levels"][implant]
    res, img, st, ids = case(seed, shape=(144, 144, 40), spacing=(2.5, 2.5, 2.5), levels=levels)
    metal = st == ids["metal"]
    assert metal.any()
    assert img[metal].max() > 2000 and np.median(img[metal]) > 1000
    zs = metal.any(axis=(0, 1))
    soft = ndi.binary_erosion(np.isin(st, [ids["body_wall_muscle"], ids["paraspinal_muscle"]]), iterations=2)
    soft &= ~ndi.binary_dilation(metal, iterations=6)

    def mad(z):
        v = img[:, :, z][soft[:, :, z]]
        return float(np.median(np.abs(v - np.median(v)))) if v.size > 50 else np.nan

    with_metal = np.nanmedian([mad(z) for z in np.nonzero(zs)[0]])
    without = np.nanmedian([mad(z) for z in np.nonzero(~zs)[0]])
    assert with_metal > 1.5 * without, (with_metal, without)  # streaks through the slices holding metal


def test_arms_up_or_down_and_habitus_vary_across_seeds(metas):
    assert {m["arms"] for m in metas.values()} == {"up", "down"}
    assert {m["habitus"] for m in metas.values()} == {"thin", "average", "obese"}
    fat = [m["fat_mm"] for m in metas.values()]
    assert max(fat) - min(fat) > 30
    wide = dict(shape=(160, 160, 16), spacing=(3.0, 3.0, 3.0), levels=(15, 15))
    down = seeds_where(metas, arms="down")[0]
    up = seeds_where(metas, arms="up")[0]
    _, _, st_down, ids = case(down, **wide)
    _, _, st_up, _ = case(up, **wide)
    assert (st_down == ids["arm_bone"]).sum() > 50 and (st_down == ids["arm_muscle"]).sum() > 500  # beside the chest
    assert not (st_up == ids["arm_bone"]).any()  # raised beside the head, out of a chest field of view
    # habitus: the subcutaneous fat share and the trunk outline differ between seeds (L2, whole body in view)
    share, ratio = {}, []
    for s in seeds_where(metas, habitus="thin")[:2] + seeds_where(metas, habitus="obese")[:2]:
        _, _, st, _ = case(s, shape=(160, 160, 16), spacing=(3.0, 3.0, 3.0), levels=(21, 21))
        trunk = np.isin(st, [ids["subcutaneous_fat"], ids["body_wall_muscle"], ids["visceral_fat"]]) | (
            (st > 0) & (st != ids["arm_fat"]) & (st != ids["arm_muscle"]) & (st != ids["arm_bone"]))
        share[metas[s]["habitus"]] = share.get(metas[s]["habitus"], []) + [
            (st == ids["subcutaneous_fat"]).sum() / trunk.sum()]
        xs, ys = np.nonzero(trunk[:, :, 8])
        ratio.append((np.ptp(xs) + 1) / (np.ptp(ys) + 1))
    assert min(share["obese"]) > 1.5 * max(share["thin"]), share
    assert np.ptp(ratio) > 0.05, ratio


def test_bone_quality_variants(metas):
    assert {m["bone"] for m in metas.values()} == {"normal", "osteoporotic", "sclerotic"}
    assert any(m["osteophytes"] for m in metas.values()) and not all(m["osteophytes"] for m in metas.values())
    cores = {}
    for cls, extra in (("normal", {}), ("osteoporotic", {}), ("sclerotic", {"sclerosis": "diffuse"})):
        seed = seeds_where(metas, bone=cls, **extra)[0]
        res, img, st, ids = case(seed, spacing=(1.0, 1.0, 1.5), size_scale=0.45, levels=(20, 21))
        cores[cls] = core_median(img, st, ids, "vertebra", erode=3)  # cancellous core of the bodies
    assert 110 < cores["normal"] < 300, cores
    assert 30 < cores["osteoporotic"] < 120, cores
    assert cores["sclerotic"] > 320, cores


def test_bones_are_covered_by_soft_tissue(metas):
    """Clavicles, scapulae, ribs, sternum, arm bones and skull lie inside the body, never against the air."""
    for seed in (seeds_where(metas, arms="up")[0], seeds_where(metas, arms="down")[0]):
        res, img, st, ids = case(seed, shape=(128, 128, 48), spacing=(3.5, 3.5, 3.5), levels=(3, 12))
        air = ndi.binary_dilation(st == ids["air"])
        for name in ("clavicle", "scapula", "rib", "sternum", "arm_bone", "skull"):
            assert (air & (st == ids[name])).sum() <= 3, (seed, name)
