"""Structure ids of the phantom's structure map (``generate_case(..., structures=True)``): which tissue or organ
each voxel was painted as, before blur and noise. 0 is air outside the body. The vertebra label map is separate
(VerSe ids); here all vertebrae are one structure, ``vertebra``."""
from __future__ import annotations

STRUCTURE_NAMES: tuple[str, ...] = (
    "air", "subcutaneous_fat", "body_wall_muscle", "visceral_fat", "lung", "lung_vessel", "airway", "bowel_wall",
    "bowel_content", "stomach", "liver", "spleen", "kidney", "perirenal_fat", "pericardial_fat", "myocardium",
    "left_ventricle", "right_ventricle", "left_atrium", "right_atrium", "aorta", "pulmonary_artery",
    "pulmonary_vein", "svc", "ivc", "brachiocephalic_vein", "carotid", "calcification", "esophagus", "thyroid",
    "psoas", "paraspinal_muscle", "quadratus", "intermuscular_fat", "canal_csf", "epidural_fat", "spinal_cord", "disc",
    "costal_cartilage", "brain", "arm_fat", "arm_muscle", "vertebra", "rib", "sternum", "clavicle", "scapula",
    "sacrum", "pelvis", "skull", "arm_bone", "metal",
)
STRUCTURES: dict[str, int] = {n: i for i, n in enumerate(STRUCTURE_NAMES)}
