"""Synthetic spine CT phantom generator: realistic HU volumes with VerSe-style vertebra labels.

The scene is modelled in world millimetres (RAS+: +x = patient right, +y = anterior, +z = superior) as
signed-distance primitives (capsules, ellipsoids, elliptic cylinders, extruded segments, smoothly deformed
ellipsoids). Each primitive is evaluated only inside its bounding box on the voxel grid. Soft tissue is painted
with priority (later overwrites earlier): body outline (thin to obese, varying width and outline), arms (up beside
the head or down beside the trunk), abdominal organs pressed into the visceral cavity, lungs, the heart with four
chambers, myocardium and great vessels, muscles against the spine. Bone is accumulated as two signed-distance
fields (labelled vertebrae with kidney-shaped bodies, varying endplates and osteophytes / unlabelled distractor
bone: ribs articulating with the vertebrae, sternum, clavicles, scapulae, humeri, sacrum, pelvis, skull base,
mandible) and converted to HU at the end (cortical shell + cancellous core with trabecular texture and focal
lesions; normal, osteoporotic or sclerotic). Contrast phase: native, arterial (with a dense bolus in the arm veins
in some cases) or portal venous. Some cases carry metal (sternal wires, pedicle screws) with streak artefacts.
Acquisition: random FOV (contiguous sub-range of the spine; spine-centred or a body FOV), in-plane spacing
0.6-1.0 mm, slice spacing 0.5-5 mm, Gaussian PSF, correlated Gaussian noise, HU offset, orientation RAS/LPS/PIR.

Labels: 1-7 C1-C7, 8-19 T1-T12, 20-25 L1-L6 (L6 only in ~5 % of cases); 0 everything else.
``generate_case(..., structures=True)`` also returns the structure map (:data:`STRUCTURES`: what each voxel was
painted as).

Modules: ``tables`` (anatomical sizes), ``sdf`` (primitives), ``structures`` (structure ids), ``anatomy`` (random
draws, column, outline tables), ``skeleton`` (vertebrae, distractor bone, arms, bone lesions), ``heart`` (chambers,
great vessels), ``viscera`` (aorta, organs, bowel, fat, lung vessels), ``metal`` (implants, streaks), ``canvas``
(voxel grid, painting, bone HU), ``scene`` (painting a case's anatomy), ``acquisition`` (scanner draws, grid, PSF,
noise, orientation), ``generator`` (``generate_case``), ``dataset`` (NIfTI files, cached data sets).

CLI::

    python -m scripts.data.phantom case --out_image x.nii.gz --out_label y.nii.gz --seed 3
    python -m scripts.data.phantom dataset --out_dir X --n_train 4
"""
from __future__ import annotations

from .acquisition import ORIENTATIONS
from .dataset import make_dataset, write_case
from .generator import GENERATOR_VERSION, generate_case
from .structures import STRUCTURES
from .tables import LEVEL_NAMES

__all__ = ["LEVEL_NAMES", "ORIENTATIONS", "GENERATOR_VERSION", "STRUCTURES", "generate_case", "write_case",
           "make_dataset"]
