"""Label-map synthesis in the spirit of SynthSeg (Billot et al., Medical Image Analysis 2023): training CTs drawn from
real anatomy.

A **template** is a real case's full TotalSegmentator v2 map (``real_cases.RealCase.organ_map``: heart, great vessels,
organs, muscles, ribs, scapulae, sternum, ...) completed with the tissue the map does not name: outside air, fat,
soft tissue, unlabelled dense tissue and gas, from thresholds of the case's smoothed CT. Every bone is split into a
cortical shell and a cancellous core by erosion. The target is the case's own vertebra label (VerSe ids). The CT's
intensities are not used any further: each synthetic image draws its own.

Each **synthetic case** is one template under

1. a random affine (rotation, anisotropic scaling, translation) and elastic deformation (MONAI ``Rand3DElasticd``,
   nearest-neighbour on the label maps), on a random output grid of ``spacing_range`` mm;
2. per-tissue HU drawn from realistic ranges (:data:`TISSUE_HU`) in a random contrast phase (native, arterial, portal
   venous), with a per-case bone density (osteoporotic, normal, sclerotic), a per-structure offset and a smooth
   per-voxel texture (fine trabecular texture in cancellous bone);
3. an acquisition: Gaussian point-spread function, a random slice thickness (``SimulateLowResolution`` along z),
   Gaussian noise, clipping to the CT range and int16 storage.

A **phantom template** (``make_dataset(..., phantom_templates=n)``) is the same from one phantom anatomy
(``scripts.data.phantom``'s structure map, :data:`PHANTOM_TEMPLATE_IDS`): the phantom's parametric anatomy (levels,
habitus, arms, implants, ...) in every draw of appearance the real templates get, so no phantom intensity is left
for a network to recognise.

The label comes along with the deformation (the same resampling of one combined map), so image and label stay
aligned. The cases are written once into a cached Decathlon-style folder; ``GENERATOR_VERSION`` is part of the cache
key, so a change to the generator regenerates them.

    python -m scripts.data.synthesis dataset --out_dir data/synth --n_cases 24 [--seed 0] [--phantom_templates 24]
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from .label_maps import TOTALSEG_STRUCTURES, remap
from .real_cases import REAL_DIR, RealCase, available_cases

__all__ = ["GENERATOR_VERSION", "TISSUE_HU", "PHASES", "PHANTOM_TEMPLATE_IDS", "structure_tissue", "build_template",
           "phantom_template", "synthesize", "make_dataset", "template_cases"]

GENERATOR_VERSION = 2
PHASES = ("native", "arterial", "venous")

#: HU ranges (low, high) of each tissue's mean, per contrast phase (one range = every phase). Sources: standard CT
#: attenuation tables (fat -120..-70, muscle 35..65, liver 50..70 native / 100..140 portal venous, arterial aorta
#: 250..500, cortical bone 500..1300, cancellous bone 120..300, osteoporotic below 120).
TISSUE_HU: dict[str, dict[str, tuple[float, float]] | tuple[float, float]] = {
    "air": (-1010.0, -990.0),
    "gas": (-1000.0, -850.0),
    "lung": (-900.0, -780.0),
    "fat": (-125.0, -70.0),
    "soft_tissue": (15.0, 60.0),
    "muscle": (35.0, 65.0),
    "fluid": (-5.0, 20.0),
    "gi": (5.0, 50.0),
    "cord": (20.0, 45.0),
    "brain": (25.0, 45.0),
    "cartilage": (80.0, 220.0),
    "dense": (150.0, 500.0),
    "liver": {"native": (50.0, 70.0), "arterial": (65.0, 90.0), "venous": (100.0, 140.0)},
    "spleen": {"native": (40.0, 55.0), "arterial": (90.0, 160.0), "venous": (105.0, 135.0)},
    "kidney": {"native": (25.0, 40.0), "arterial": (140.0, 250.0), "venous": (150.0, 220.0)},
    "organ": {"native": (30.0, 50.0), "arterial": (70.0, 120.0), "venous": (80.0, 120.0)},
    "blood": {"native": (35.0, 55.0), "arterial": (250.0, 480.0), "venous": (130.0, 200.0)},
    "vein": {"native": (35.0, 55.0), "arterial": (60.0, 160.0), "venous": (130.0, 200.0)},
    "myocardium": {"native": (35.0, 55.0), "arterial": (90.0, 140.0), "venous": (90.0, 130.0)},
    "cortical": (500.0, 1300.0),
    "cancellous": {"osteoporotic": (40.0, 120.0), "normal": (120.0, 300.0), "sclerotic": (350.0, 700.0)},
}
#: per-voxel texture (HU std) of each tissue: (low, high) of the case's draw
TEXTURE_HU: dict[str, tuple[float, float]] = {"cancellous": (40.0, 110.0), "cortical": (60.0, 150.0),
                                               "lung": (20.0, 60.0), "fat": (5.0, 15.0), "gi": (10.0, 40.0)}
DEFAULT_TEXTURE_HU = (3.0, 12.0)
BONE_DENSITY_P = {"osteoporotic": 0.2, "normal": 0.65, "sclerotic": 0.15}

# derived classes (ids above every TotalSegmentator id)
AIR, FAT, SOFT, DENSE, GAS, MYOCARDIUM = 200, 201, 202, 203, 204, 205
#: a cortical-shell voxel of bone structure s is stored as s + CORTEX
CORTEX = 1000
#: thickness of the cortical shell: a template's one-voxel shell is partial-volumed to CORTEX_MM / its voxel size of
#: cortical bone over cancellous bone. With whole shell voxels at 500-1300 HU the synthetic vertebrae measured a median
#: 902 HU with 75 % of voxels above 500 HU, where the real CTs in ../shared measure 172-322 HU and 5-31 %; with 0.5 mm,
#: 327 HU and 28 % (2 mm grid, 3 seeds per template).
CORTEX_MM = 0.5
#: phantom templates draw their anatomy from seeds PHANTOM_TEMPLATE_SEED + seed + j, apart from the phantom sets'
PHANTOM_TEMPLATE_SEED = 100_000
#: elastic deformation: control points every ELASTIC_CONTROL_MM, each displaced by N(0, 1) x U(0, ELASTIC_MM) mm
ELASTIC_CONTROL_MM = 32.0
ELASTIC_MM = 4.0

_TS_TISSUE: dict[str, tuple[int, ...]] = {  # TotalSegmentator v2 ids by tissue (the named ones are label_maps')
    "lung": (10, 11, 12, 13, 14),
    "gas": (16,),  # trachea
    "gi": (6, 15, 18, 19, 20),
    "liver": TOTALSEG_STRUCTURES["liver"],
    "spleen": TOTALSEG_STRUCTURES["spleen"],
    "kidney": TOTALSEG_STRUCTURES["kidneys"],
    "organ": (7, 8, 9, 17, 22),
    "fluid": (4, 21, 23, 24),
    "blood": TOTALSEG_STRUCTURES["heart"] + TOTALSEG_STRUCTURES["aorta"] + (53, 54, 55, 56, 57, 58, 61, 65, 66),
    "vein": TOTALSEG_STRUCTURES["ivc"] + (59, 60, 62, 64, 67, 68),
    "muscle": tuple(range(80, 90)),
    "cord": TOTALSEG_STRUCTURES["spinal_cord"],
    "brain": (90,),
    "cartilage": TOTALSEG_STRUCTURES["costal_cartilages"],
    "bone": tuple(range(25, 51)) + tuple(range(69, 79)) + (91,) + TOTALSEG_STRUCTURES["ribs"]
    + TOTALSEG_STRUCTURES["sternum"],
}
_DERIVED_TISSUE = {AIR: "air", FAT: "fat", SOFT: "soft_tissue", DENSE: "dense", GAS: "gas", MYOCARDIUM: "myocardium"}

#: the template id of each phantom structure (``scripts.data.phantom.structures``): a TotalSegmentator v2 id of the
#: same tissue, or a derived class. Metal is drawn as cortical bone (the tissue tables have no metal).
PHANTOM_TEMPLATE_IDS: dict[str, int] = {
    "air": AIR, "subcutaneous_fat": FAT, "body_wall_muscle": 80, "visceral_fat": FAT, "lung": 10, "lung_vessel": 53,
    "airway": 16, "bowel_wall": 18, "bowel_content": 18, "stomach": 6, "liver": 5, "spleen": 1, "kidney": 2,
    "perirenal_fat": FAT, "pericardial_fat": FAT, "myocardium": MYOCARDIUM, "left_ventricle": 51,
    "right_ventricle": 51, "left_atrium": 51, "right_atrium": 51, "aorta": 52, "pulmonary_artery": 53,
    "pulmonary_vein": 53, "svc": 62, "ivc": 63, "brachiocephalic_vein": 59, "carotid": 57, "calcification": DENSE,
    "esophagus": 15, "thyroid": 17, "psoas": 88, "paraspinal_muscle": 86, "quadratus": 80, "intermuscular_fat": FAT,
    "canal_csf": 4, "epidural_fat": FAT, "spinal_cord": 79, "disc": SOFT, "costal_cartilage": 117, "brain": 90,
    "arm_fat": FAT, "arm_muscle": 80, "vertebra": 38, "rib": 92, "sternum": 116, "clavicle": 73, "scapula": 71,
    "sacrum": 25, "pelvis": 77, "skull": 91, "arm_bone": 69, "metal": 91,
}


def structure_tissue(structure_id: int) -> str:
    """The tissue of a template structure id (a TotalSegmentator id, a derived class, or a bone's cortex)."""
    sid = int(structure_id)
    if sid >= CORTEX:
        return "cortical"
    if sid in _DERIVED_TISSUE:
        return _DERIVED_TISSUE[sid]
    for tissue, ids in _TS_TISSUE.items():
        if sid in ids:
            return "cancellous" if tissue == "bone" else tissue
    return "soft_tissue"


def template_cases(root: Path | None = None) -> list[RealCase]:
    """The real cases that can serve as templates: trainable, with a full organ map (never verse014)."""
    return [c for c in available_cases(root) if c.trainable and c.organ_map]


# ---- templates --------------------------------------------------------------------------------------------------
def build_template(case: RealCase, root: Path | None = None) -> dict:
    """The template of one real case, RAS-canonical: ``structure`` (int16 ids, see the module doc), ``label``
    (VerSe ids), ``affine`` and ``spacing``."""
    import nibabel as nib

    def load(field):
        img = nib.as_closest_canonical(nib.load(str(case.path(field, root))))
        return np.asanyarray(img.dataobj), np.asarray(img.affine, dtype=float)

    ct, affine = load("image")
    organ, organ_affine = load("organ_map")
    label, label_affine = load("label")
    for what, a, aff in (("organ map", organ, organ_affine), ("label", label, label_affine)):
        if a.shape != ct.shape or not np.allclose(aff, affine, atol=1e-3):
            raise ValueError(f"{case.path(field='image', root=root)}: the {what} is not on the CT's grid")
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(0))
    smooth = ndi.gaussian_filter(ct.astype(np.float32), sigma=1.0 / spacing * 1.5)
    body = ndi.binary_fill_holes(smooth > -500, structure=np.ones((3, 3, 1), bool))  # slice-wise holes (lungs)
    lab, n = ndi.label(body)
    if n > 1:
        body = lab == (np.argmax(np.bincount(lab.ravel())[1:]) + 1)
    structure = organ.astype(np.int16)
    free = (structure == 0) & body
    structure[~body & (structure == 0)] = AIR
    structure[free & (smooth < -300)] = GAS
    structure[free & (smooth >= -300) & (smooth < -30)] = FAT
    structure[free & (smooth >= -30) & (smooth < 180)] = SOFT
    structure[free & (smooth >= 180)] = DENSE
    label = remap(label, case.label_map).astype(np.uint8)
    heart = np.isin(structure, TOTALSEG_STRUCTURES["heart"])
    if heart.any() and np.median(smooth[heart]) > 150:  # a contrast heart: its wall is darker than its blood
        structure[heart & (smooth < np.median(smooth[heart]) - 120)] = MYOCARDIUM
    return _finish_template(structure, label, affine, case.name)


def _finish_template(structure: np.ndarray, label: np.ndarray, affine: np.ndarray, name: str) -> dict:
    """A template from its structure map (template ids) and VerSe label: every vertebra voxel is bone, and every bone
    is split into a cortical shell and a cancellous core."""
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(0))
    structure = structure.astype(np.int16)
    structure[(label > 0) & ~np.isin(structure, _TS_TISSUE["bone"])] = 38  # a vertebra voxel is bone (any vertebra id)
    bone = np.isin(structure, _TS_TISSUE["bone"])
    core = ndi.binary_erosion(bone, structure=np.ones((3, 3, 3), bool))
    structure[bone & ~core] += CORTEX
    return {"structure": structure, "label": label.astype(np.uint8), "affine": affine, "spacing": spacing,
            "name": name, "cortex_fraction": float(np.clip(CORTEX_MM / float(np.mean(spacing)), 0.1, 1.0))}


def phantom_template(seed: int, spacing: float = 1.5) -> dict:
    """The template of one phantom anatomy (``generate_case(seed)`` on an isotropic RAS grid of ``spacing`` mm):
    its structure map through :data:`PHANTOM_TEMPLATE_IDS`, its vertebra label as the target."""
    from .phantom.generator import generate_case
    from .phantom.structures import STRUCTURE_NAMES

    case = generate_case(int(seed), spacing=(spacing,) * 3, orientation="RAS", structures=True)
    lut = np.array([PHANTOM_TEMPLATE_IDS[n] for n in STRUCTURE_NAMES], dtype=np.int16)
    return _finish_template(lut[case["structures"]], case["label"], np.asarray(case["affine"], float),
                            f"phantom_{int(seed)}")


# ---- one synthetic case -------------------------------------------------------------------------------------------
def _deform(template: dict, rng: np.random.Generator, spacing: float, rotate_deg: float, scale: float,
            elastic: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The template's structure and label maps under one random affine + elastic deformation, on an isotropic grid of
    ``spacing`` mm; -> (structure, label, affine).

    MONAI's 2D elastic recipe (``Rand2DElastic``) in 3D: ``RandDeformGrid`` displaces control points every
    :data:`ELASTIC_CONTROL_MM` by N(0, 1) x up to :data:`ELASTIC_MM`, ``RandAffineGrid`` applies the affine, the grid is
    upsampled (trilinear) and ``Resample`` draws the maps nearest-neighbour (a dense 3D Gaussian-smoothed field, as
    ``Rand3DElastic`` makes, costs ~30 s per case here)."""
    import torch
    from monai.data import MetaTensor
    from monai.transforms import CenterSpatialCrop, RandAffineGrid, RandDeformGrid, Resample, Spacing

    combined = template["structure"].astype(np.int32) * 64 + template["label"].astype(np.int32)  # one map, one resample
    img = MetaTensor(torch.as_tensor(combined[None].astype(np.float32)), affine=torch.as_tensor(template["affine"]))
    img = Spacing(pixdim=(spacing,) * 3, mode="nearest", padding_mode="border")(img)
    size = [int(s) for s in img.shape[1:]]
    ctrl = max(2, int(round(ELASTIC_CONTROL_MM / spacing)))
    deform = RandDeformGrid(spacing=(ctrl,) * 3, magnitude_range=(0.0, ELASTIC_MM / spacing if elastic else 0.0))
    rad = float(np.deg2rad(rotate_deg))
    affine_grid = RandAffineGrid(rotate_range=(rad, rad, rad), scale_range=(scale, scale, scale),
                                 translate_range=tuple(0.05 * s for s in size))
    for t in (deform, affine_grid):
        t.set_random_state(seed=int(rng.integers(2**31)))
    grid = affine_grid(grid=deform(spatial_size=size))
    grid = torch.nn.functional.interpolate(grid[None], scale_factor=(ctrl,) * 3, mode="trilinear", align_corners=False,
                                           recompute_scale_factor=True)
    grid = CenterSpatialCrop(roi_size=size)(grid[0])
    out = Resample()(img, grid, mode="nearest", padding_mode="border")
    arr = np.rint(np.asarray(out.as_tensor() if hasattr(out, "as_tensor") else out)[0]).astype(np.int32)
    return (arr // 64).astype(np.int16), (arr % 64).astype(np.uint8), np.asarray(img.affine, dtype=float)


def _smooth_noise(rng, shape, sigma_vox: float) -> np.ndarray:
    """Unit-std Gaussian noise smoothed by ``sigma_vox`` voxels."""
    field = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma=sigma_vox)
    return field / max(float(field.std()), 1e-6)


def synthesize(template: dict, seed: int, spacing_range=(1.2, 2.0), rotate_deg: float = 15.0, scale: float = 0.15,
               elastic: bool = True, phase: str | None = None, density: str | None = None,
               thick_slice_prob: float = 0.5, thickness_range=(1.5, 5.0)) -> dict:
    """One synthetic CT from a template; -> ``image`` (int16 HU), ``label`` (uint8 VerSe ids), ``affine`` and the
    draws (``phase``, ``density``, ``tissue_hu``: the mean HU drawn for each tissue; ``structure``: the deformed
    template map). With ``thick_slice_prob`` a case gets a slice thickness from ``thickness_range`` (mm), a z blur
    of FWHM = thickness."""
    rng = np.random.default_rng(int(seed))
    spacing = float(rng.uniform(*spacing_range))
    structure, label, affine = _deform(template, rng, spacing, rotate_deg, scale, elastic)
    phase = phase or str(rng.choice(PHASES))
    density = density or str(rng.choice(list(BONE_DENSITY_P), p=list(BONE_DENSITY_P.values())))

    def draw(tissue):
        ranges = TISSUE_HU[tissue]
        if isinstance(ranges, dict):
            ranges = ranges[density] if tissue == "cancellous" else ranges[phase]
        return float(rng.uniform(*ranges))

    tissues = sorted(set(TISSUE_HU))
    tissue_hu = {t: draw(t) for t in tissues}
    texture = {t: float(rng.uniform(*TEXTURE_HU.get(t, DEFAULT_TEXTURE_HU))) for t in tissues}
    ids = np.unique(structure)
    mean_lut = np.zeros(int(ids.max()) + 1, np.float32)
    std_lut = np.zeros_like(mean_lut)
    coarse_lut = np.zeros_like(mean_lut)
    shell = template.get("cortex_fraction", 1.0)
    for sid in ids:
        tissue = structure_tissue(sid)
        jitter = 0.08 * abs(tissue_hu[tissue]) + 5.0  # each structure (each bone, each organ) its own offset
        mean = tissue_hu[tissue]
        if tissue == "cortical":  # a partial-volumed shell voxel: part cortex, part cancellous core
            mean = shell * mean + (1.0 - shell) * tissue_hu["cancellous"]
        mean_lut[sid] = mean + float(rng.uniform(-jitter, jitter))
        std_lut[sid] = texture[tissue]
        coarse_lut[sid] = 0.0 if tissue in ("cancellous", "cortical", "lung") else 1.0
    fine = _smooth_noise(rng, structure.shape, sigma_vox=0.6 / spacing)     # trabecular-scale texture
    broad = _smooth_noise(rng, structure.shape, sigma_vox=6.0 / spacing)    # slow in-organ variation
    mix = coarse_lut[structure]
    image = mean_lut[structure] + std_lut[structure] * (mix * broad + (1.0 - mix) * fine)
    del fine, broad, mix
    # acquisition: point-spread function, slice thickness, noise
    psf_mm = rng.uniform(0.4, 1.0)
    thickness = float(rng.uniform(*thickness_range)) if rng.uniform() < thick_slice_prob else 0.0
    sigma_z = max(psf_mm, thickness / 2.355)
    image = ndi.gaussian_filter(image, sigma=(psf_mm / spacing, psf_mm / spacing, sigma_z / spacing))
    noise = _smooth_noise(rng, image.shape, sigma_vox=0.5) * float(rng.uniform(5.0, 40.0))
    image = np.clip(image + noise, -1024, 3071).astype(np.int16)
    return {"image": image, "label": label, "affine": affine, "spacing": spacing, "phase": phase, "density": density,
            "tissue_hu": tissue_hu, "structure": structure, "template": template["name"], "thickness_mm": thickness}


# ---- the cached data set ------------------------------------------------------------------------------------------
_TEMPLATES: dict = {}   # the templates of make_dataset's worker processes, handed over once per process


def _set_templates(templates: dict) -> None:
    _TEMPLATES.clear()
    _TEMPLATES.update(templates)


def _synthesize_task(task: tuple) -> dict:
    """Synthesize and write one case; its record for synthesis_cases.json."""
    from .phantom.dataset import _save_nifti

    template, seed, image, label, kw = task
    t0 = time.perf_counter()
    anatomy = phantom_template(template[1]) if isinstance(template, tuple) else _TEMPLATES[template]
    case = synthesize(anatomy, seed=seed, **kw)
    _save_nifti(case["image"], case["affine"], image)
    _save_nifti(case["label"], case["affine"], label)
    return {"template": case["template"], "phase": case["phase"], "density": case["density"],
            "spacing_mm": case["spacing"], "thickness_mm": case["thickness_mm"], "seconds": time.perf_counter() - t0}


def make_dataset(out_dir: str, n_cases: int = 24, seed: int = 0, real_dir: str | None = None,
                 progress: bool = True, workers: int = 1, phantom_templates: int = 0, **kw) -> str:
    """Write ``n_cases`` synthetic cases, cycling over the templates, as ``imagesTr/`` + ``labelsTr/`` with a
    ``dataset.json`` (cached: a folder made with the same arguments and ``GENERATOR_VERSION`` is reused; written
    atomically), and ``synthesis_cases.json``: each case's template, draws and generation time. ``kw`` goes to
    :func:`synthesize`. Case ``i`` uses seed ``seed + i``. ``phantom_templates`` more cases follow, each from its
    own phantom anatomy (:func:`phantom_template`, anatomy seed ``PHANTOM_TEMPLATE_SEED + seed + j``); the first
    ``n_cases`` stay as they are without them. ``workers`` processes write the cases (the same files; not part of the
    cache key)."""
    from .phantom.dataset import _jsonable

    root = Path(real_dir) if real_dir else REAL_DIR
    cases = template_cases(root)
    if not cases:
        raise ValueError(f"{root}: no template (a trainable real case with a full TotalSegmentator map) found")
    out = Path(out_dir)
    params = {"generator_version": GENERATOR_VERSION, "n_cases": int(n_cases), "seed": int(seed),
              "templates": [c.name for c in cases], "kw": {k: kw[k] for k in sorted(kw)}}
    if phantom_templates:   # absent when 0, so the data sets made before the option keep their cache key
        from .phantom import GENERATOR_VERSION as phantom_version

        params.update(phantom_templates=int(phantom_templates), phantom_generator_version=phantom_version)
    params = _jsonable(params)
    pfile = out / "synthesis_params.json"
    total = int(n_cases) + int(phantom_templates)
    names = [f"synth_{i:03d}.nii.gz" for i in range(total)]
    if pfile.is_file() and json.loads(pfile.read_text()) == params and all(
            (out / d / nm).is_file() for d in ("imagesTr", "labelsTr") for nm in names):
        return str(out)
    if out.exists() and not pfile.is_file() and any(out.iterdir()):
        raise ValueError(f"{out} exists, is not empty and is not a synthesis data set; refusing to overwrite")
    templates = {c.name: build_template(c, root) for c in cases}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        from .workers import map_cases

        sources = [cases[i % len(cases)].name for i in range(int(n_cases))] + [
            ("phantom", PHANTOM_TEMPLATE_SEED + int(seed) + j) for j in range(int(phantom_templates))]
        tasks = [(source, int(seed) + i, str(tmp / "imagesTr" / names[i]), str(tmp / "labelsTr" / names[i]), kw)
                 for i, source in enumerate(sources)]
        try:
            done = map_cases(_synthesize_task, tasks, workers, "synthesis", progress, _set_templates, (templates,))
        finally:
            _TEMPLATES.clear()
        records = [{"image": f"./imagesTr/{nm}", "label": f"./labelsTr/{nm}", **r} for nm, r in zip(names, done)]
        (tmp / "dataset.json").write_text(json.dumps({
            "name": "spine_synthesis", "description": "label-map synthesis from TotalSegmentator maps (synthesis.py)",
            "labels": {"0": "background"}, "modality": {"0": "CT"}, "numTraining": len(records),
            "training": [{"image": r["image"], "label": r["label"]} for r in records], "testing": []}, indent=1))
        (tmp / "synthesis_cases.json").write_text(json.dumps(records, indent=1))  # each case's draws and time
        pfile_tmp = tmp / "synthesis_params.json"
        pfile_tmp.write_text(json.dumps(params, indent=1))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return str(out)


def dataset(out_dir: str = "data/synth", n_cases: int = 24, seed: int = 0, real_dir: str | None = None,
            phantom_templates: int = 0) -> None:
    """CLI: write (or reuse) a synthetic data set and print where it is."""
    print(make_dataset(out_dir, n_cases=n_cases, seed=seed, real_dir=real_dir, phantom_templates=phantom_templates))


if __name__ == "__main__":
    import fire

    fire.Fire({"dataset": dataset})
