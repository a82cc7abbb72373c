"""nnU-Net v2's ``ExperimentPlanner`` (3d_fullres + 3d_lowres) re-implemented in numpy, plus the bundle's presets.

Ported rules (``nnunetv2/experiment_planning/experiment_planners/default_experiment_planner.py``,
``network_topology.py`` and ``residual_unets/residual_encoder_unet_planners.py``, nnunetv2 2.8.1):

* target spacing: per-axis median; if the coarsest axis is > 3x the others *and* has < 1/3 of their voxels, take the
  10th percentile of that axis instead (never finer than the in-plane spacing);
* ``transpose_forward``: coarsest axis first;
* patch: volume of 256^3 with aspect ~ 1/spacing, clipped to the median resampled shape, topology from
  ``get_pool_and_conv_props`` (bottleneck edge >= 4, a pool per axis while within 2x of the finest spacing, kernel 1 on
  a coarse axis until it catches up), padded up to ``2 ** n_pool`` per axis;
* "VRAM" = nnU-Net's ``compute_conv_feature_map_size`` in closed form (no torch model); while it exceeds the
  preset's reference, shrink the axis that is largest relative to the median shape by one divisibility step;
* batch size ``round(reference / estimate * 2)``, capped so a batch covers at most ``max_dataset_covered`` of the data
  set's voxels, at least 2;
* 3d_lowres when the fullres patch covers < 25 % of the median image: coarsen the spacing by 1.03 per step (first the
  finer axes until within 2x of the coarsest), re-plan, stop at >= 25 %; drop it if it is < 2x smaller than fullres;
* normalisation: ``CT`` -> ``CTNormalization`` (clip to the foreground 0.5/99.5 percentiles, z-score with the
  foreground mean/std); anything else -> ``ZScoreNormalization`` (mask used if cropping removed > 25 %);
* resampling: data order 3, seg order 1, probabilities order 1, ``order_z`` 0 (separate z when anisotropy > 3).

Everything is computed in nnU-Net's axis order (the fingerprint's ``(z, y, x)``, see :mod:`scripts.plan.fingerprint`),
so the ``configurations`` part of the plan can be diffed 1:1 with nnU-Net's ``nnUNetPlans.json``. The bundle's values
in RAS ``(x, y, z)`` order are in :func:`bundle_view`.

Presets (:data:`PRESETS`):

============== ===================== =================== ========= ============= ==================
preset          network estimated     reference (3D)      per GB    GPU target    max_dataset_covered
============== ===================== =================== ========= ============= ==================
nnunet_default  PlainConvUNet         560e6 at bs 2       8 GB      8 GB          0.05
resenc_m        ResidualEncoderUNet   680e6               8 GB      8 GB          1 (cap off)
resenc_l        ResidualEncoderUNet   2100e6              24 GB     24 GB         1 (cap off)
cpu             PlainConvUNet         :data:`CPU_REFERENCE_VAL_3D` (see below)    0.05
============== ===================== =================== ========= ============= ==================

The ``cpu`` budget: a forward pass must stay around 1-2 s on 2 CPU cores. The paper's 128x128x64 window costs
1.2-2.6 s per SpineContextResUNet forward here, and CPU conv time grows linearly with the voxels a forward touches,
which is what nnU-Net's estimate counts. So the budget is nnU-Net's estimate *of that window* (64x128x128 voxels in
(z, y, x) at 1 mm: PlainConvUNet, 6 stages, 26 labels = :data:`CPU_REFERENCE_VAL_3D` ~ 2.51e8 "feature-map voxels",
0.45x the default 8 GB reference of 5.6e8) for a batch of 2. Any plan under this preset
therefore gets a patch with at most the paper window's cost per sample (``patch_size`` <= ~1 M voxels on isotropic
data) and ``batch_size`` 2 unless the patch is smaller.

CLI (from the bundle root)::

    python -m scripts.plan.planner plan --fingerprint models/fingerprint.json [--preset cpu] [--num_labels 2]
    python -m scripts.plan.planner topology --spacing [3,0.7,0.7] --patch [48,192,192]
    python -m scripts.plan.planner fit --patch [80,160,160] --network swin_unetr
"""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from copy import deepcopy
from dataclasses import asdict, dataclass, replace

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "ANISO_THRESHOLD",
    "CPU_REFERENCE_VAL_3D",
    "PRESETS",
    "Preset",
    "bundle_view",
    "compute_new_shape",
    "determine_fullres_target_spacing",
    "determine_transpose",
    "estimate_feature_map_size",
    "fit_patch_to_network",
    "get_pool_and_conv_props",
    "get_preset",
    "network_divisor",
    "pad_shape",
    "plan_configuration",
    "plan_experiment",
]

ANISO_THRESHOLD = 3
FEATUREMAP_MIN_EDGE_LENGTH = 4
BASE_NUM_FEATURES = 32
MAX_FEATURES_3D = 320
REF_BS_3D = 2
MIN_BATCH_SIZE = 2
LOWRES_CREATION_THRESHOLD = 0.25
SPACING_INCREASE_FACTOR = 1.03
#: ``cpu`` preset budget: nnU-Net's estimate of a 64x128x128 (z, y, x) patch at 1 mm (PlainConvUNet, 6 stages, 26
#: labels = the bundle's largest head), i.e. the paper's 128x128x64 RAS window. Checked against the formula in the tests.
CPU_REFERENCE_VAL_3D = 250_535_936
_PLAIN = "dynamic_network_architectures.architectures.unet.PlainConvUNet"
_RESENC = "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"


@dataclass(frozen=True)
class Preset:
    """One planner's constants (nnU-Net class names in ``nnunet_planner``)."""

    name: str
    nnunet_planner: str
    network_class_name: str
    reference_val_3d: float
    reference_val_corresp_gb: float
    gpu_memory_target_gb: float
    max_dataset_covered: float
    blocks_per_stage_encoder: tuple
    blocks_per_stage_decoder: tuple
    plans_name: str
    description: str = ""

    @property
    def reference(self) -> float:
        """The feature-map budget a patch must fit in (nnU-Net's ``reference``)."""
        return self.reference_val_3d * (self.gpu_memory_target_gb / self.reference_val_corresp_gb)


PRESETS: dict[str, Preset] = {
    "nnunet_default": Preset(
        "nnunet_default", "ExperimentPlanner", _PLAIN, 560e6, 8, 8, 0.05, (2,) * 14, (2,) * 13, "nnUNetPlans",
        "nnU-Net v2 default planner (PlainConvUNet, 8 GB GPU)"),
    "resenc_m": Preset(
        "resenc_m", "nnUNetPlannerResEncM", _RESENC, 680e6, 8, 8, 1.0, (1, 3, 4, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6),
        (1,) * 12, "nnUNetResEncUNetMPlans", "nnU-Net ResEnc M (9-11 GB GPU)"),
    "resenc_l": Preset(
        "resenc_l", "nnUNetPlannerResEncL", _RESENC, 2100e6, 24, 24, 1.0, (1, 3, 4, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6),
        (1,) * 12, "nnUNetResEncUNetLPlans", "nnU-Net ResEnc L (24 GB GPU)"),
    "cpu": Preset(
        "cpu", "ExperimentPlanner", _PLAIN, CPU_REFERENCE_VAL_3D, 8, 8, 0.05, (2,) * 14, (2,) * 13, "bundleCPUPlans",
        "2-core CPU: per-sample cost of the paper's 128x128x64 window (~1-2.6 s per SpineContextResUNet forward)"),
}


def get_preset(preset: str | Preset, gpu_memory_target_gb: float | None = None) -> Preset:
    """A preset by name (``nnunet_default``, ``resenc_m``, ``resenc_l``, ``cpu``), optionally with another GPU target
    (nnU-Net's ``-gpu_memory_target``)."""
    if isinstance(preset, Preset):
        p = preset
    else:
        if preset not in PRESETS:
            raise ValueError(f"unknown plan preset '{preset}': choose one of {', '.join(PRESETS)}")
        p = PRESETS[preset]
    if gpu_memory_target_gb is not None:
        p = replace(p, gpu_memory_target_gb=float(gpu_memory_target_gb))
    return p


# ------------------------------------------------------------------------------------------------------ topology
def pad_shape(shape, must_be_divisible_by) -> np.ndarray:
    """nnU-Net's ``pad_shape``: round each entry of ``shape`` *up* to a multiple of ``must_be_divisible_by``."""
    if not isinstance(must_be_divisible_by, (tuple, list, np.ndarray)):
        must_be_divisible_by = [must_be_divisible_by] * len(shape)
    new = [shape[i] + must_be_divisible_by[i] - shape[i] % must_be_divisible_by[i] for i in range(len(shape))]
    for i in range(len(shape)):
        if shape[i] % must_be_divisible_by[i] == 0:
            new[i] -= must_be_divisible_by[i]
    return np.array(new).astype(int)


def get_pool_and_conv_props(spacing, patch_size, min_feature_map_size: int = FEATUREMAP_MIN_EDGE_LENGTH,
                            max_numpool: int = 999999):
    """nnU-Net's ``get_pool_and_conv_props``: ``(num_pool_per_axis, strides, kernel_sizes, patch_size, divisible_by)``.

    ``strides`` starts with ``[1, 1, 1]``; ``kernel_sizes`` ends with the ``[3, 3, 3]`` bottleneck; ``patch_size`` is
    padded up to ``divisible_by = 2 ** num_pool_per_axis``.
    """
    dim = len(spacing)
    current_spacing = list(spacing)
    current_size = list(patch_size)
    pool_op_kernel_sizes = [[1] * dim]
    conv_kernel_sizes = []
    num_pool_per_axis = [0] * dim
    kernel_size = [1] * dim
    while True:
        valid = [i for i in range(dim) if current_size[i] >= 2 * min_feature_map_size]
        if len(valid) < 1:
            break
        min_spacing_of_valid = min(current_spacing[i] for i in valid)
        valid = [i for i in valid if current_spacing[i] / min_spacing_of_valid < 2]
        valid = [i for i in valid if num_pool_per_axis[i] < max_numpool]
        if len(valid) == 1 and current_size[valid[0]] < 3 * min_feature_map_size:
            break
        if len(valid) < 1:
            break
        for d in range(dim):
            if kernel_size[d] != 3 and current_spacing[d] / min(current_spacing) < 2:
                kernel_size[d] = 3
        pool = [1] * dim
        for v in valid:
            pool[v] = 2
            num_pool_per_axis[v] += 1
            current_spacing[v] *= 2
            current_size[v] = np.ceil(current_size[v] / 2)
        pool_op_kernel_sizes.append(pool)
        conv_kernel_sizes.append(list(kernel_size))
    must_be_divisible_by = 2 ** np.array(num_pool_per_axis)
    patch = pad_shape(patch_size, must_be_divisible_by)
    conv_kernel_sizes.append([3] * dim)
    return (num_pool_per_axis, [list(p) for p in pool_op_kernel_sizes], conv_kernel_sizes,
            [int(p) for p in patch], must_be_divisible_by)


def _features_per_stage(n_stages: int) -> list[int]:
    return [min(MAX_FEATURES_3D, BASE_NUM_FEATURES * 2 ** i) for i in range(n_stages)]


def estimate_feature_map_size(patch_size, strides, num_labels: int, preset: str | Preset = "nnunet_default",
                              features_per_stage: Sequence[int] | None = None) -> int:
    """nnU-Net's "VRAM" estimate, ``net.compute_conv_feature_map_size(patch_size)``, in closed form: the sum of
    output voxels x channels of every conv (deep supervision off).

    PlainConvUNet: encoder ``sum_s n_conv_s F_s V_s``; decoder ``sum_{s<n-1} (n_conv_dec F_s V_s + F_s V_s)``
    (convs + transposed conv) ``+ K V_0``. ResidualEncoderUNet: stem ``F_0 V_0`` + ``sum_s (2 blocks_s F_s V_s +
    [s>0] F_s V_s)`` (two convs per BasicBlockD, 1x1 skip projection) + the same decoder. ``V_s`` = voxels after the
    cumulative strides (floor division per stage, as the network does), ``K`` = labels incl. background.
    """
    p = get_preset(preset)
    n = len(strides)
    feats = list(features_per_stage) if features_per_stage is not None else _features_per_stage(n)
    sizes = []
    size = [int(s) for s in patch_size]
    for s in range(n):
        size = [a // int(b) for a, b in zip(size, strides[s])]
        sizes.append(int(np.prod(size, dtype=np.int64)))
    enc_blocks = p.blocks_per_stage_encoder[:n]
    dec_convs = p.blocks_per_stage_decoder[: n - 1]
    total = 0
    if p.network_class_name == _RESENC:
        total += feats[0] * sizes[0]  # stem
        for s in range(n):
            total += 2 * enc_blocks[s] * feats[s] * sizes[s] + (feats[s] * sizes[s] if s > 0 else 0)
    else:
        for s in range(n):
            total += enc_blocks[s] * feats[s] * sizes[s]
    for s in range(n - 1):
        total += dec_convs[n - 2 - s] * feats[s] * sizes[s] + feats[s] * sizes[s]
    total += int(num_labels) * sizes[0]
    return int(total)


# ------------------------------------------------------------------------------------------------------- spacing
def determine_fullres_target_spacing(spacings, shapes, aniso_threshold: float = ANISO_THRESHOLD) -> np.ndarray:
    """Per-axis median spacing, with nnU-Net's anisotropy rule (10th percentile of the coarse axis when both its
    spacing is > 3x and its voxel count < 1/3 of the other axes)."""
    spacings = np.vstack(spacings).astype(float)
    target = np.percentile(spacings, 50, 0)
    target_size = np.percentile(np.vstack(shapes), 50, 0)
    worst = int(np.argmax(target))
    others = [i for i in range(len(target)) if i != worst]
    other_spacings = [target[i] for i in others]
    other_sizes = [target_size[i] for i in others]
    has_aniso_spacing = target[worst] > (aniso_threshold * max(other_spacings))
    has_aniso_voxels = target_size[worst] * aniso_threshold < min(other_sizes)
    if has_aniso_spacing and has_aniso_voxels:
        t = np.percentile(spacings[:, worst], 10)
        if t < max(other_spacings):
            t = max(max(other_spacings), t) + 1e-5
        target[worst] = t
    return target


def determine_transpose(target_spacing) -> tuple[list[int], list[int]]:
    """``transpose_forward`` (coarsest axis first, others in order) and its inverse."""
    worst = int(np.argmax(target_spacing))
    forward = [worst] + [i for i in range(3) if i != worst]
    backward = [int(np.argwhere(np.array(forward) == i)[0][0]) for i in range(3)]
    return forward, backward


def compute_new_shape(old_shape, old_spacing, new_spacing) -> np.ndarray:
    return np.array([round(i / j * k) for i, j, k in zip(old_spacing, new_spacing, old_shape)], dtype=int)


# ------------------------------------------------------------------------------------------------ configurations
def _normalization(modality: str, median_relative_size_after_cropping: float):
    scheme = {"ct": "CTNormalization", "nonorm": "NoNormalization", "zscore": "ZScoreNormalization",
              "rescale_to_0_1": "RescaleTo01Normalization", "rgb_to_0_1": "RGBTo01Normalization"}.get(
        str(modality).casefold(), "ZScoreNormalization")
    # only ZScoreNormalization leaves the outside of the mask at zero, hence may use the mask
    use_mask = bool(median_relative_size_after_cropping < 0.75 and scheme == "ZScoreNormalization")
    return [scheme], [use_mask]


def _resampling() -> dict:
    fn = "resample_data_or_seg_to_shape"
    return {
        "resampling_fn_data": fn,
        "resampling_fn_seg": fn,
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
        "resampling_fn_probabilities": fn,
        "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
    }


def _architecture(preset: Preset, n_stages: int, kernels, strides) -> dict:
    enc_key = "n_blocks_per_stage" if preset.network_class_name == _RESENC else "n_conv_per_stage"
    return {
        "network_class_name": preset.network_class_name,
        "arch_kwargs": {
            "n_stages": n_stages,
            "features_per_stage": _features_per_stage(n_stages),
            "conv_op": "torch.nn.modules.conv.Conv3d",
            "kernel_sizes": [list(k) for k in kernels],
            "strides": [list(s) for s in strides],
            enc_key: list(preset.blocks_per_stage_encoder[:n_stages]),
            "n_conv_per_stage_decoder": list(preset.blocks_per_stage_decoder[: n_stages - 1]),
            "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
            "norm_op_kwargs": {"eps": 1e-05, "affine": True},
            "dropout_op": None,
            "dropout_op_kwargs": None,
            "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True},
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }


def plan_configuration(spacing, median_shape, approximate_n_voxels_dataset: float, num_labels: int,
                       preset: str | Preset = "nnunet_default", data_identifier: str = "3d_fullres",
                       modality: str = "CT", median_relative_size_after_cropping: float = 1.0) -> dict:
    """nnU-Net's ``get_plans_for_configuration`` for 3D: ``spacing`` and ``median_shape`` already transposed."""
    p = get_preset(preset)
    spacing = np.asarray(spacing, dtype=float)
    if not all(s > 0 for s in spacing):
        raise ValueError(f"spacing must be > 0, got {list(spacing)}")
    tmp = 1 / spacing
    initial = [round(i) for i in tmp * (256 ** 3 / np.prod(tmp)) ** (1 / 3)]
    initial = np.array([min(i, j) for i, j in zip(initial, median_shape)])
    _, strides, kernels, patch, divisible = get_pool_and_conv_props(spacing, initial)
    estimate = estimate_feature_map_size(patch, strides, num_labels, p)
    reference = p.reference
    while estimate / REF_BS_3D * 2 > reference:
        axis = int(np.argsort([i / j for i, j in zip(patch, median_shape)])[-1])
        patch = list(patch)
        tmp_patch = deepcopy(patch)
        tmp_patch[axis] -= divisible[axis]
        divisible = get_pool_and_conv_props(spacing, tmp_patch)[-1]
        patch[axis] -= divisible[axis]
        _, strides, kernels, patch, divisible = get_pool_and_conv_props(spacing, patch)
        estimate = estimate_feature_map_size(patch, strides, num_labels, p)
    batch_size = round((reference / estimate) * REF_BS_3D)
    bs_cap = round(approximate_n_voxels_dataset * p.max_dataset_covered / np.prod(patch, dtype=np.float64))
    batch_size = int(max(min(batch_size, bs_cap), MIN_BATCH_SIZE))
    schemes, use_mask = _normalization(modality, median_relative_size_after_cropping)
    plan = {
        # the ResEnc planners reuse the default planner's preprocessed 3d_fullres data (same spacing)
        "data_identifier": ("nnUNetPlans" if p.network_class_name == _RESENC and data_identifier == "3d_fullres"
                            else p.plans_name) + f"_{data_identifier}",
        "preprocessor_name": "DefaultPreprocessor",
        "batch_size": batch_size,
        "patch_size": [int(i) for i in patch],
        "median_image_size_in_voxels": [float(i) for i in median_shape],
        "spacing": [float(i) for i in spacing],
        "normalization_schemes": schemes,
        "use_mask_for_norm": use_mask,
        **_resampling(),
        "architecture": _architecture(p, len(strides), kernels, strides),
        "vram_estimate": int(estimate),
        "vram_reference": float(reference),
    }
    return plan


def _fingerprint_props(fingerprint: Mapping) -> dict:
    props = fingerprint["foreground_intensity_properties_per_channel"]
    return {str(k): dict(v) for k, v in props.items()}


def plan_experiment(fingerprint: Mapping, preset: str | Preset = "nnunet_default", num_labels: int | None = None,
                    num_training: int | None = None, target_spacing: Sequence[float] | None = None,
                    modality: str = "CT", gpu_memory_target_gb: float | None = None,
                    dataset_name: str = "spine_ct") -> dict:
    """nnU-Net's ``plan_experiment`` (3D configurations only) on a fingerprint (``(z, y, x)`` order).

    ``num_labels``: labels incl. background (nnU-Net: ``len(dataset.json["labels"])``), default the label values
    found by the fingerprint. ``num_training``: default the fingerprint's case count. ``target_spacing`` (z, y, x)
    replaces the fullres target spacing (nnU-Net's ``-overwrite_target_spacing``).
    Returns a dict in ``nnUNetPlans.json`` form (plus ``preset``, ``axis_order`` and the per-configuration
    ``vram_estimate``/``vram_reference``).
    """
    p = get_preset(preset, gpu_memory_target_gb)
    spacings = [list(map(float, s)) for s in fingerprint["spacings"]]
    shapes = [list(map(float, s)) for s in fingerprint["shapes_after_crop"]]
    if not spacings or len(spacings) != len(shapes):
        raise ValueError("fingerprint: 'spacings' and 'shapes_after_crop' must be non-empty and of equal length")
    if any(len(s) != 3 for s in spacings + shapes):
        raise ValueError("fingerprint: only 3D data can be planned (3 spacings / sizes per case)")
    if num_labels is None:
        labels = fingerprint.get("labels")
        if not labels:
            raise ValueError("num_labels not given and the fingerprint has no 'labels' (nnU-Net's own fingerprint "
                             "does not): pass num_labels (labels incl. background)")
        num_labels = len(labels)
    num_training = int(num_training if num_training is not None else fingerprint.get("n_cases", len(spacings)))
    mrs = float(fingerprint.get("median_relative_size_after_cropping", 1.0))

    if target_spacing is not None:
        if len(target_spacing) != 3 or not all(float(t) > 0 for t in target_spacing):
            raise ValueError(f"target_spacing must be 3 positive numbers (z, y, x), got {target_spacing}")
        fullres_spacing = np.array([float(t) for t in target_spacing])
    else:
        fullres_spacing = determine_fullres_target_spacing(spacings, shapes)
    forward, backward = determine_transpose(fullres_spacing)
    spacing_t = fullres_spacing[forward]
    new_shapes = [compute_new_shape(j, i, fullres_spacing) for i, j in zip(spacings, shapes)]
    median_t = np.median(new_shapes, 0)[forward]
    n_vox = float(np.prod(median_t, dtype=np.float64) * num_training)
    common = {"num_labels": num_labels, "preset": p, "modality": modality, "median_relative_size_after_cropping": mrs}

    fullres = plan_configuration(spacing_t, median_t, n_vox, data_identifier="3d_fullres", **common)
    median_num_voxels = np.prod(median_t, dtype=np.float64)
    num_voxels_in_patch = np.prod(fullres["patch_size"], dtype=np.float64)
    lowres = None
    lowres_spacing = np.array(fullres["spacing"], dtype=float)
    n_iter = 0
    while num_voxels_in_patch / median_num_voxels < LOWRES_CREATION_THRESHOLD:
        max_spacing = max(lowres_spacing)
        if np.any((max_spacing / lowres_spacing) > 2):
            lowres_spacing[(max_spacing / lowres_spacing) > 2] *= SPACING_INCREASE_FACTOR
        else:
            lowres_spacing *= SPACING_INCREASE_FACTOR
        ratio = np.array(fullres["spacing"]) / lowres_spacing * median_t
        median_num_voxels = np.prod(ratio, dtype=np.float64)
        lowres = plan_configuration(lowres_spacing, tuple(round(i) for i in ratio),
                                    float(np.prod(median_num_voxels) * num_training),
                                    data_identifier="3d_lowres", **common)
        num_voxels_in_patch = np.prod(lowres["patch_size"], dtype=np.int64)
        n_iter += 1
    if lowres is not None and np.prod(median_t, dtype=np.float64) / median_num_voxels < 2:
        logger.info("plan: dropping 3d_lowres (image size difference to 3d_fullres < 2x)")
        lowres = None
    configurations = {}
    if lowres is not None:
        lowres["batch_dice"] = False
        lowres["next_stage"] = "3d_cascade_fullres"
        lowres["lowres_iterations"] = n_iter
        fullres["batch_dice"] = True
        configurations["3d_lowres"] = lowres
    else:
        fullres["batch_dice"] = False
    configurations["3d_fullres"] = fullres
    if lowres is not None:
        configurations["3d_cascade_fullres"] = {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"}

    median_spacing = np.median(spacings, 0)[forward]
    median_shape = np.median(shapes, 0)[forward]
    return {
        "dataset_name": dataset_name,
        "plans_name": p.plans_name,
        "original_median_spacing_after_transp": [float(i) for i in median_spacing],
        "original_median_shape_after_transp": [round(i) for i in median_shape],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [int(i) for i in forward],
        "transpose_backward": [int(i) for i in backward],
        "configurations": configurations,
        "experiment_planner_used": p.nnunet_planner,
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": _fingerprint_props(fingerprint),
        "preset": asdict(p) | {"reference": p.reference},
        "num_labels": int(num_labels),
        "num_training": num_training,
        "axis_order": fingerprint.get("axis_order", "zyx as nnU-Net/SimpleITK reads the files"),
        "axes": fingerprint.get("axes", "file"),
    }


# --------------------------------------------------------------------------------------------------- bundle side
def _to_ras(values_t, backward) -> list:
    """A per-axis value in transposed nnU-Net order -> fingerprint (z, y, x) order -> RAS (x, y, z)."""
    zyx = [values_t[b] for b in backward]
    return list(zyx[::-1])


def network_divisor(network: str) -> int:
    """``2 ** n_poolings`` of a registered network (``scripts.networks.patch_divisor``)."""
    from scripts.networks import NETWORKS, patch_divisor

    if network not in NETWORKS:
        raise ValueError(f"unknown network '{network}': choose one of {', '.join(sorted(NETWORKS))}")
    return int(patch_divisor(network))


def fit_patch_to_network(patch_size: Sequence[int], divisor: int | None = None, network: str | None = None,
                         mode: str = "floor", max_voxels: float | None = None) -> list[int]:
    """Round ``patch_size`` so every dimension is a multiple of a network's divisibility (``2 ** n_poolings``).

    Give ``divisor`` (8 for SpineContextResUNet/ResUNet, 16 for the 3D U-Net baselines, 32 for Swin/Slim nets) or a
    registered ``network`` name (``scripts.networks.patch_divisor``). ``mode``: ``floor`` (default: never more
    compute than planned), ``nearest`` or ``ceil``; a dimension never drops below one ``divisor`` (smaller images are
    padded by the transforms). With ``max_voxels`` (e.g. the plan's budget) a rounded patch that needs more voxels
    raises ``ValueError``.
    """
    if (divisor is None) == (network is None):
        raise ValueError("fit_patch_to_network needs exactly one of divisor= or network=")
    if network is not None:
        divisor = network_divisor(network)
    who = f"network '{network}'" if network else "the network"
    if isinstance(divisor, bool) or not isinstance(divisor, (int, np.integer)) or divisor < 1:
        raise ValueError(f"divisor must be a positive integer, got {divisor!r}")
    if mode not in ("floor", "nearest", "ceil"):
        raise ValueError(f"mode must be 'floor', 'nearest' or 'ceil', got {mode!r}")
    patch = [int(p) for p in patch_size]
    if len(patch) != 3 or any(p < 1 for p in patch):
        raise ValueError(f"patch_size must be 3 positive sizes, got {list(patch_size)}")
    rnd = {"floor": math.floor, "ceil": math.ceil, "nearest": lambda x: math.floor(x + 0.5)}[mode]
    out = [max(int(divisor), rnd(p / divisor) * int(divisor)) for p in patch]
    if max_voxels is not None and np.prod(out, dtype=np.float64) > max_voxels:
        raise ValueError(
            f"cannot fit patch {patch} to {who}: multiples of {divisor} give {out} = "
            f"{int(np.prod(out, dtype=np.int64))} voxels, over the budget of {int(max_voxels)}")
    return out


def bundle_view(plans: Mapping, configuration: str = "3d_fullres", network: str | None = None,
                divisor: int | None = None, mode: str = "floor") -> dict:
    """The values the bundle configs need, in RAS ``(x, y, z)`` order: ``spacing``, ``patch_size`` (rounded to the
    network's divisibility when ``network``/``divisor`` is given; the planned one is ``patch_size_planned``),
    ``batch_size`` and the CT normalisation as clip bounds + mean/std (and the equivalent ``ScaleIntensityRanged``
    ``a_min/a_max/b_min/b_max``)."""
    configs = plans["configurations"]
    if configuration not in configs:
        raise ValueError(f"plan has no configuration '{configuration}' (has: {', '.join(configs)})")
    cfg = configs[configuration]
    if "inherits_from" in cfg:
        cfg = {**configs[cfg["inherits_from"]], **{k: v for k, v in cfg.items() if k != "inherits_from"}}
    backward = plans["transpose_backward"]
    if plans.get("axes", "file") != "ras":
        logger.warning("plan: the fingerprint is in file (SimpleITK) axis order, not RAS; its RAS values assume "
                       "axially stored images (RAS/LPS-like files)")
    spacing = [float(s) for s in _to_ras(cfg["spacing"], backward)]
    patch = [int(s) for s in _to_ras(cfg["patch_size"], backward)]
    median = [float(s) for s in _to_ras(cfg["median_image_size_in_voxels"], backward)]
    fitted = patch
    if network is not None:
        divisor = network_divisor(network)
    if divisor is not None:
        fitted = fit_patch_to_network(patch, divisor=divisor, mode=mode)
    props = plans["foreground_intensity_properties_per_channel"]["0"]
    scheme = cfg["normalization_schemes"][0]
    norm = {"scheme": scheme}
    if scheme == "CTNormalization":
        lo, hi = float(props["percentile_00_5"]), float(props["percentile_99_5"])
        mean, std = float(props["mean"]), max(float(props["std"]), 1e-8)
        norm.update({"clip": [lo, hi], "mean": mean, "std": std,
                     "a_min": lo, "a_max": hi, "b_min": (lo - mean) / std, "b_max": (hi - mean) / std})
    return {
        "axis_order": "RAS (x, y, z)",
        "configuration": configuration,
        "spacing": spacing,
        "patch_size": fitted,
        "patch_size_planned": patch,
        "batch_size": int(cfg["batch_size"]),
        "median_image_size_in_voxels": median,
        "normalization": norm,
        "network": network,
        "divisor": None if divisor is None else int(divisor),
    }


# ------------------------------------------------------------------------------------------------------------ CLI
def _cli_plan(fingerprint: str, preset: str = "nnunet_default", num_labels: int | None = None,
              target_spacing: Sequence[float] | None = None, network: str | None = None) -> str:
    """Plan from a fingerprint JSON; prints the configurations (nnU-Net order) and the bundle view (RAS)."""
    from .fingerprint import load_fingerprint

    plans = plan_experiment(load_fingerprint(fingerprint), preset=preset, num_labels=num_labels,
                            target_spacing=target_spacing)
    out = {name: {k: c.get(k) for k in ("spacing", "patch_size", "batch_size", "median_image_size_in_voxels")}
           | {"strides": c["architecture"]["arch_kwargs"]["strides"]}
           for name, c in plans["configurations"].items() if "architecture" in c}
    out["transpose_forward"] = plans["transpose_forward"]
    out["bundle"] = bundle_view(plans, network=network)
    return json.dumps(out, indent=2)


def _cli_topology(spacing: Sequence[float], patch: Sequence[int]) -> str:
    n_pool, strides, kernels, padded, div = get_pool_and_conv_props(list(spacing), list(patch))
    return json.dumps({"num_pool_per_axis": n_pool, "strides": strides, "kernel_sizes": kernels,
                       "patch_size": padded, "divisible_by": [int(d) for d in div]})


def _cli_fit(patch: Sequence[int], network: str | None = None, divisor: int | None = None, mode: str = "floor"):
    return fit_patch_to_network(patch, divisor=divisor, network=network, mode=mode)


if __name__ == "__main__":
    import fire

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    fire.Fire({"plan": _cli_plan, "topology": _cli_topology, "fit": _cli_fit})
