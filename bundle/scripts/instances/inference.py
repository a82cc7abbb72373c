"""The two-step vertebra-instance inference as MONAI components, for ``configs/vertebrae_inference.yaml``.

* :class:`TwoStepInferer` - a MONAI ``Inferer``: the evaluator's ``network`` is the step 2 segmenter; the step 1
  heatmap network is loaded by the inferer from its own checkpoint. It resizes the preprocessed CT to the heatmap
  network's grid, predicts the spine heatmap, resizes it back, walks the spine
  (:func:`scripts.instances.walk.walk_spine`), names the vertebrae (:func:`scripts.instances.naming.assign_levels`)
  and returns a (B, 1, X, Y, Z) map of VerSe ids. The geometry (spacing, patch, HU window, heatmap grid, walk
  threshold) is the weights' own, from their sidecars (:mod:`scripts.weights_sidecar`); the walk's settings are in mm.
* :class:`SaveVertebraTabled` - writes ``<name>_vertebrae.csv`` beside the NIfTI: id, name, voxel count, volume
  and centroid in world mm (from the output's affine, i.e. on the input's grid).
* :class:`VertebraMetricsCSV` - evaluation handler: per-vertebra Dice / Hausdorff, detection and identification.
"""
from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Hashable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from monai.data import MetaTensor
from monai.data.utils import affine_to_spacing
from monai.inferers import Inferer
from monai.transforms import MapTransform
from monai.utils import ImageMetaKey as Key

from ..atomic_files import atomic_output
from ..metrics import case_name
from ..weights_sidecar import build_network_from_sidecar, read_sidecar, sidecar_path
from .evaluation import summarise_vertebrae, vertebra_metrics, write_vertebra_csv
from .levels import LEVEL_NAME
from .levels import name as level_name
from .naming import assign_levels, load_level_model, rib_flags
from .walk import walk_spine

__all__ = ["TwoStepInferer", "SaveVertebraTabled", "VertebraMetricsCSV", "hu_to_unit", "load_network",
           "INSTANCE_TASK", "HEATMAP_TASK"]

logger = logging.getLogger(__name__)

#: The ``task`` the vertebra workflows record in their weights' sidecars (configs/vertebrae_train.yaml, _heatmap.yaml).
INSTANCE_TASK = "vertebra_instance"
HEATMAP_TASK = "vertebra_heatmap"
_STEP2_CONFIGS = "configs/train.yaml + configs/vertebrae_train.yaml"
_TRAIN_HINT = {INSTANCE_TASK: f"train them with {_STEP2_CONFIGS}",
               HEATMAP_TASK: f"train them with {_STEP2_CONFIGS} + configs/vertebrae_heatmap.yaml"}


def hu_to_unit(hu: float, intensity: Mapping) -> float:
    """A HU value on the network's scale: the ``ScaleIntensityRange`` window ``intensity`` (a_min, a_max -> b_min,
    b_max) of the weights' sidecar."""
    a_min, a_max = float(intensity["a_min"]), float(intensity["a_max"])
    b_min, b_max = float(intensity["b_min"]), float(intensity["b_max"])
    return (float(hu) - a_min) / (a_max - a_min) * (b_max - b_min) + b_min


def load_network(path: str, task: str = INSTANCE_TASK, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The vertebra network a weight file's sidecar describes, with those weights (strict), in eval mode; a one-line
    :class:`scripts.weights_sidecar.WeightsError` when the file, its sidecar or the right ``task`` is missing."""
    info = read_sidecar(str(path), task=task, hint=_TRAIN_HINT.get(task, "train them"))
    net = build_network_from_sidecar(info)
    net.load_state_dict(torch.load(str(path), map_location="cpu", weights_only=True))
    return net.to(device).eval()


class TwoStepInferer(Inferer):
    """Step 1 heatmap + step 2 walk + naming; see the module docstring.

    Args:
        heatmap_ckpt: state_dict of the step 1 network, with its sidecar (task ``vertebra_heatmap``): the network,
            its input grid (``patch_size``), the walk threshold and the HU window. Missing -> one-line WeightsError.
        info: the sidecar of the step 2 weights (task ``vertebra_instance``): the (isotropic) spacing of the
            preprocessed CT, the step 2 patch and the HU window. The heatmap's window must be the same (both
            networks see one preprocessed CT).
        threshold: the walk's heat threshold; ``None`` takes the heatmap sidecar's.
        max_delta_mm, max_iterations, max_vertebrae, min_volume_mm3: the walk's other settings.
        level_model: JSON path of a fitted naming model, '' = the default one.
        bone_hu: the bone threshold of the rib cue, in HU.
        name_levels: False numbers the vertebrae 1..n in detection order instead of naming them.
    """

    def __init__(self, heatmap_ckpt: str, info: Mapping, threshold: float | None = None, max_delta_mm: float = 2.0,
                 max_iterations: int = 20, max_vertebrae: int = 26, min_volume_mm3: float = 1000.0,
                 level_model: str = "", bone_hu: float = 200.0, name_levels: bool = True,
                 device: str | torch.device = "cpu") -> None:
        super().__init__()
        if info.get("task") != INSTANCE_TASK:
            raise ValueError(f"the step 2 weights' sidecar records task '{info.get('task')}', not '{INSTANCE_TASK}'")
        heat_info = read_sidecar(str(heatmap_ckpt), task=HEATMAP_TASK, hint=_TRAIN_HINT[HEATMAP_TASK])
        intensity = {k: float(info["intensity"][k]) for k in ("a_min", "a_max", "b_min", "b_max")}
        if {k: float(heat_info["intensity"][k]) for k in intensity} != intensity:
            raise ValueError(f"{sidecar_path(heatmap_ckpt)}: the heatmap's HU window {heat_info['intensity']} is not "
                             f"the step 2 weights' {info['intensity']}; both networks read one preprocessed CT")
        spacing = sorted({float(s) for s in info["spacing"]})
        if len(spacing) != 1:
            raise ValueError(f"the two-step walk needs isotropic step 2 weights, their spacing is {info['spacing']}")
        self.heatmap_net = load_network(heatmap_ckpt, HEATMAP_TASK, device)
        self.heatmap_shape = tuple(int(v) for v in heat_info["patch_size"])
        self.spacing = spacing[0]
        self.patch = tuple(int(v) for v in info["patch_size"])
        self.threshold = float(heat_info["threshold"] if threshold is None else threshold)
        self.max_iterations, self.max_vertebrae = int(max_iterations), int(max_vertebrae)
        self.max_delta = float(max_delta_mm) / self.spacing
        self.min_voxels = int(round(float(min_volume_mm3) / self.spacing**3))
        self.level_model = load_level_model(level_model or None)
        self.bone = hu_to_unit(bone_hu, intensity)
        self.pad_value = intensity["b_min"]   # air, outside the scan
        self.name_levels = bool(name_levels)

    @torch.inference_mode()
    def heatmap(self, ct: torch.Tensor) -> torch.Tensor:
        """(X, Y, Z) spine heatmap in [0, 1] for a (X, Y, Z) CT."""
        dev = next(self.heatmap_net.parameters()).device
        small = F.interpolate(ct[None, None].to(dev), size=self.heatmap_shape, mode="trilinear", align_corners=False)
        heat = torch.softmax(self.heatmap_net(small), 1)[:, :1]
        return F.interpolate(heat, size=ct.shape, mode="trilinear", align_corners=False)[0, 0].cpu()

    @torch.inference_mode()
    def __call__(self, inputs: torch.Tensor, network, *args, **kwargs) -> torch.Tensor:
        out = torch.zeros((inputs.shape[0], 1, *inputs.shape[2:]), dtype=torch.float32)
        dev = next(network.parameters()).device
        for b in range(inputs.shape[0]):
            t0 = time.perf_counter()
            ct = torch.as_tensor(inputs[b, 0]).detach().cpu().float()

            def segment(ct_patch, mem_patch):
                x = torch.stack([ct_patch, mem_patch.float()])[None].to(dev)
                return (torch.sigmoid(network(x)) > 0.5)[0, 0].cpu()

            res = walk_spine(ct, self.heatmap(ct), segment, self.patch, self.threshold, self.max_delta,
                             self.max_iterations, self.max_vertebrae, self.min_voxels, self.pad_value)
            inst = res.instances
            ids = list(range(1, len(res.records) + 1))
            if self.name_levels and res.records:
                vols = [rec["voxels"] * self.spacing**3 for rec in res.records]
                ribs = rib_flags(ct.numpy(), inst.numpy(), self.bone, gap=max(1, round(3 / self.spacing)),
                                 width=max(2, round(25 / self.spacing)))
                ids, _ = assign_levels(vols, self.level_model, ribs)
            lut = torch.zeros(len(res.records) + 1, dtype=torch.float32)
            lut[1:] = torch.as_tensor(ids, dtype=torch.float32)
            out[b, 0] = lut[inst.long()]
            logger.info("two-step inference: %d vertebrae (%s) in %.1f s; the walk stopped because %s",
                        len(ids), " ".join(level_name(v) for v in ids), time.perf_counter() - t0, res.stop_reason)
        result = out.to(inputs.device)
        if isinstance(inputs, MetaTensor):
            result = MetaTensor(result, affine=inputs.affine, meta=inputs.meta)
        return result


class SaveVertebraTabled(MapTransform):
    """Write ``output_dir/<case>_vertebrae.csv``: verse_id, name, voxels, volume_mm3, centroid x/y/z (world mm)."""

    def __init__(self, keys="pred", output_dir: str = "./", image_key: str = "image") -> None:
        super().__init__(keys)
        self.output_dir, self.image_key = str(output_dir), image_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            pred = d[key]
            affine = np.asarray(pred.affine if isinstance(pred, MetaTensor) else np.eye(4), dtype=np.float64)
            lab = np.asarray(torch.as_tensor(pred).detach().cpu()).squeeze().astype(np.int64)
            vox_mm3 = float(np.prod(affine_to_spacing(affine, r=3)))
            src = getattr(d.get(self.image_key), "meta", {}).get(Key.FILENAME_OR_OBJ) or "case"
            path = os.path.join(self.output_dir, f"{case_name(src)}_vertebrae.csv")
            os.makedirs(self.output_dir, exist_ok=True)
            rows = []
            for vid in [int(v) for v in np.unique(lab) if v > 0]:
                idx = np.argwhere(lab == vid)
                c = affine @ np.append(idx.mean(0), 1.0)
                rows.append([vid, LEVEL_NAME.get(vid, str(vid)), len(idx),
                             f"{len(idx) * vox_mm3:.0f}", f"{c[0]:.1f}", f"{c[1]:.1f}", f"{c[2]:.1f}"])
            with atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["verse_id", "name", "voxels", "volume_mm3", "centroid_x_mm", "centroid_y_mm",
                            "centroid_z_mm"])
                w.writerows(rows)
            logger.info("%d vertebrae -> %s", len(rows), path)
        return d


class VertebraMetricsCSV:
    """Evaluation handler: per-vertebra rows of every case into ``output_dir/filename`` and a one-line summary."""

    def __init__(self, output_dir: str = "./", filename: str = "vertebrae_metrics.csv", pred_key: str = "pred",
                 label_key: str = "label", image_key: str = "image") -> None:
        self.output_dir, self.filename = str(output_dir), filename
        self.pred_key, self.label_key, self.image_key = pred_key, label_key, image_key
        self.rows: list[dict] = []
        self.summary: dict = {}
        self.false_positives = 0

    def attach(self, engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_STARTED, lambda e: self.rows.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.write)

    def __call__(self, engine) -> None:
        output = engine.state.output
        for item in output if isinstance(output, (list, tuple)) else [output]:
            pred, label = item[self.pred_key], item[self.label_key]
            spacing = affine_to_spacing(pred.affine, r=3).tolist() if isinstance(pred, MetaTensor) else None
            src = getattr(item.get(self.image_key), "meta", {}).get(Key.FILENAME_OR_OBJ) or f"case_{len(self.rows)}"
            rows, fp = vertebra_metrics(pred, label, spacing, case=case_name(src))
            self.rows.extend(rows)
            self.false_positives += fp

    def write(self, engine=None) -> str:
        path = write_vertebra_csv(self.rows, os.path.join(self.output_dir, self.filename))
        self.summary = summarise_vertebrae(self.rows)
        line = (f"vertebrae: detection {self.summary['detection_rate']:.3f}, identification "
                f"{self.summary['identification_rate']:.3f}, mean Dice {self.summary['mean_dice']:.3f} over "
                f"{self.summary['vertebrae']} vertebrae ({self.false_positives} extra segments) -> {path}")
        logger.info(line)
        print(line)
        return path
