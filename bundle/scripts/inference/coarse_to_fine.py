"""Coarse-to-fine sliding-window inference: find the spine at 4 mm, run the 1 mm model only around it.

:class:`CoarseToFineInferer` is a :class:`monai.inferers.SlidingWindowInferer` (so ``inferer#roi_size``,
``#overlap`` and the other sliding-window overrides keep their meaning). It takes the CT at its **native** spacing
(RAS; inference.yaml leaves ``Spacingd`` and ``ScaleIntensityRanged`` to it on this path) and

1. resamples it with MONAI's ``Spacing`` to ``coarse_spacing`` (4 mm: ~1/64 of the voxels of the 1 mm grid), applies
   ``intensity`` and runs the small coarse model (``coarse_network`` + ``coarse_ckpt``, trained by train.yaml +
   configs/coarse.yaml) over the whole volume in one window;
2. takes the largest component of the coarse mask (``coarse_threshold``), dilates it by ``margin_mm`` and boxes it,
   on the 1 mm grid that ``Spacing(spacing)`` would make of the whole CT (grown to at least one window);
3. resamples only that box from the native image onto that grid with ``SpatialResample`` (so every value is the one
   ``Spacingd`` would give), applies ``intensity``, runs the fine sliding window there, and resamples the
   probabilities back onto the native voxels of the box as ``Invertd`` would; outside the box it is background.

The only difference from the paper's configuration inside the box is where the windows sit (the box is tiled from its
own corner). The result has the input's shape, so the post-processing (Invertd of the orientation, threshold,
largest component) applies unchanged, under the bundle's evaluator and under MONAI Label alike.

With ``coarse_to_fine=False`` it is exactly its parent: one sliding window over the whole (1 mm) input, which with
inference.yaml's ``--coarse_to_fine false`` is the paper's configuration. If the coarse weights are missing or the
coarse mask is empty, it logs a warning and runs the fine window over the whole 1 mm grid (the paper's windows).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.inferers import SlidingWindowInferer, sliding_window_inference
from monai.transforms import Spacing, SpatialResample
from monai.transforms.utils import generate_spatial_bounding_box, get_largest_connected_component_mask
from monai.transforms.utils_morphological_ops import dilate
from monai.utils import convert_to_dst_type
from torch import nn

from ..flags import as_bool
from .fold_bn import fold_batchnorm

logger = logging.getLogger(__name__)

__all__ = ["CoarseToFineInferer", "ChannelsLast"]

#: Logit written outside the fine box (when returning logits): sigmoid(-20) ~ 2e-9, far below any threshold.
BACKGROUND_LOGIT = -20.0
# How a sliding window that runs past the image's faces (a thin slab, a crop) is filled: the edge voxels continue.
# Zeros would be 500 HU (bone) after the paper's intensity window and air would cut the anatomy off, and both
# mislead the networks, which trained on crops inside their volumes: measured on the real CTs, replicate padding
# took the 20-slice DICOM slab from Dice 0.00 to 0.69 and tptbox_ct_crop from 0.50 to 0.80.
WINDOW_PADDING = "replicate"


class ChannelsLast(nn.Module):
    """Runs a 3D network in channels-last memory format (NDHWC), returned as a contiguous NCDHW tensor.

    On this 2-core CPU a 128x128x64 window of the BatchNorm-folded SpineContextResUNet takes 0.95 s channels-last
    against 1.29 s channels-first (and 1.13 s in ONNX Runtime); see docs/shipped_weights.json."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network.to(memory_format=torch.channels_last_3d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x.contiguous(memory_format=torch.channels_last_3d)).contiguous()


def _translate(affine: torch.Tensor, start: Sequence[int]) -> torch.Tensor:
    """The affine of the sub-grid that starts at voxel ``start`` of the grid with ``affine``."""
    shift = torch.eye(4, dtype=torch.float64)
    shift[:3, 3] = torch.as_tensor([float(s) for s in start], dtype=torch.float64)
    return torch.as_tensor(affine, dtype=torch.float64) @ shift


class CoarseToFineInferer(SlidingWindowInferer):
    """SlidingWindowInferer (the fine stage) preceded by a coarse whole-volume spine finder; see the module doc.

    Args (beyond :class:`SlidingWindowInferer`'s, which configure the fine window):
        coarse_network: the coarse model (un-loaded; e.g. ``build_network(base_filters=4, out_channels=1)``).
        coarse_ckpt: its state_dict file; missing -> whole-volume fallback with a warning.
        spacing: the fine model's spacing (mm, RAS), e.g. the plan's 1 mm.
        coarse_spacing: the coarse model's spacing (mm, RAS).
        coarse_roi_size: the coarse sliding window (voxels at ``coarse_spacing``); the default 512 mm cube takes
            most CTs in one window.
        coarse_overlap: its overlap.
        coarse_threshold: probability above which a coarse voxel counts as spine.
        coarse_cval: padding value of the coarse window: air after the intensity window (train.yaml pads with it).
        coarse_largest_component: keep only the largest connected component of the coarse mask (the final
            post-processing keeps only the largest component of the fine mask too).
        margin_mm: the coarse mask is dilated by this much before windows are chosen.
        snap_mm: a box face that ends up within this distance of the image's face is moved out to it: the spine
            is a column that usually leaves the field of view, and the coarse model sees its last centimetres
            at the image's faces least well (on ts_example_ct the clipped T11 in the top slice fell outside).
        align_windows: start the box on the whole-volume path's window grid (multiples of the window stride) and
            size it to whole strides, so that its windows are those of ``coarse_to_fine=False``; only voxels within
            a stride of an inner box face then see fewer windows than on the whole volume. Off by default: the
            box grows by up to a stride per face (Dice, box, time and memory against the default with the shipped
            weights: ``docs/align_windows.json``).
        coarse_to_fine: False = plain :class:`SlidingWindowInferer` on the input as given.
        fold_bn: fold BatchNorm into the convolutions of an eval-mode fine network (and of the coarse one).
        channels_last: run both networks in channels-last 3D memory format.
        num_threads: ``torch.set_num_threads`` for the call (None = leave torch's setting).
        out_dtype: dtype of the full-size logit volume returned (float16 halves the post-processing's memory: a
            logit is only compared with 0 after the sigmoid, and float16 resolves it to ~1e-3 near 0).
        intensity: applied to each resampled image (the 4 mm volume, the 1 mm box) before its network, e.g. the
            config's ``ScaleIntensityRange``: the paper's order (Spacingd before ScaleIntensityRanged), and no
            full-size float temporaries (on a 512x512x600 CT the whole-volume scaling alone peaked at 2.8 GB).
        probabilities: return sigmoid/softmax probabilities instead of logits (inference.yaml's fast path then
            skips ``Activationsd``, whose float32 temporaries cost ~0.7 GB at 512x512x600).
        padding_mode: how both windows are filled past the image's faces (:data:`WINDOW_PADDING`).
    """

    def __init__(
        self,
        roi_size: Sequence[int] | int,
        sw_batch_size: int = 1,
        overlap: float = 0.5,
        mode: str = "gaussian",
        coarse_network: nn.Module | None = None,
        coarse_ckpt: str | os.PathLike | None = None,
        spacing: Sequence[float] = (1.0, 1.0, 1.0),
        coarse_spacing: Sequence[float] = (4.0, 4.0, 4.0),
        coarse_roi_size: Sequence[int] = (128, 128, 128),
        coarse_overlap: float = 0.25,
        coarse_threshold: float = 0.6,
        coarse_cval: float = -1.0,
        coarse_largest_component: bool = True,
        margin_mm: float = 16.0,
        snap_mm: float = 32.0,
        align_windows: bool = False,
        coarse_to_fine: bool = True,
        fold_bn: bool = True,
        channels_last: bool = True,
        num_threads: int | None = None,
        out_dtype: torch.dtype = torch.float16,
        intensity=None,
        probabilities: bool = False,
        padding_mode: str = WINDOW_PADDING,
        **kwargs,
    ) -> None:
        super().__init__(roi_size=roi_size, sw_batch_size=sw_batch_size, overlap=overlap, mode=mode,
                         padding_mode=padding_mode, **kwargs)
        self.coarse_to_fine = as_bool(coarse_to_fine, "coarse_to_fine")
        self.spacing = [float(s) for s in spacing]
        self.coarse_spacing = [float(s) for s in coarse_spacing]
        self.coarse_roi_size = [int(r) for r in coarse_roi_size]
        self.coarse_overlap = float(coarse_overlap)
        self.coarse_threshold = float(coarse_threshold)
        self.coarse_cval = float(coarse_cval)
        self.coarse_largest_component = bool(coarse_largest_component)
        self.margin_mm = float(margin_mm)
        self.snap_mm = float(snap_mm)
        self.align_windows = bool(align_windows)
        self.fold_bn = bool(fold_bn)
        self.channels_last = bool(channels_last)
        self.num_threads = num_threads
        self.out_dtype = out_dtype
        self.intensity = intensity
        self.probabilities = bool(probabilities)
        self.coarse_ckpt = str(coarse_ckpt) if coarse_ckpt else ""
        self.coarse_network = self._load_coarse(coarse_network) if self.coarse_to_fine else None
        self.last_box: tuple[list[int], list[int]] | None = None  # its native-grid box (start, end); None = whole

    # ---- set-up -----------------------------------------------------------------------------------------------
    def _prepare(self, network: nn.Module, fold: bool) -> nn.Module:
        net = fold_batchnorm(network)[0] if fold else network  # a copy when folding: the caller's stays as it was
        return ChannelsLast(net) if self.channels_last else net

    def _load_coarse(self, network: nn.Module | None) -> nn.Module | None:
        if network is None or not self.coarse_ckpt or not os.path.isfile(self.coarse_ckpt):
            logger.warning("coarse-to-fine: no coarse weights at '%s'; the fine model will run on the whole volume",
                           self.coarse_ckpt)
            return None
        state = torch.load(self.coarse_ckpt, map_location="cpu", weights_only=True)
        network.load_state_dict(state.get("model", state) if isinstance(state, dict) else state)
        network.eval()
        return self._prepare(network, self.fold_bn)

    def _fine_network(self, network):
        if not isinstance(network, nn.Module) or network.training:
            return network
        return self._prepare(network, self.fold_bn)

    def _window(self, x, network, roi_size, overlap, cval=None):
        cval = self.cval if cval is None else cval
        if str(getattr(self.padding_mode, "value", self.padding_mode)) != "constant":
            cval = 0.0  # torch's pad takes a fill value only for constant padding
        return sliding_window_inference(
            x, roi_size, self.sw_batch_size, network, overlap=overlap, mode=self.mode, sigma_scale=self.sigma_scale,
            padding_mode=self.padding_mode, cval=cval, sw_device=self.sw_device,
            device=self.device, progress=self.progress, buffer_steps=self.buffer_steps, buffer_dim=self.buffer_dim,
        )

    # ---- the two stages ---------------------------------------------------------------------------------------
    def coarse_mask(self, img: MetaTensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The coarse spine mask ``(X, Y, Z)`` (bool, dilated by ``margin_mm``) of one native image ``(C, *spatial)``
        and the affine of its grid; None when there is no coarse model or it found nothing."""
        if self.coarse_network is None:
            return None
        small = self._intensity(Spacing(pixdim=self.coarse_spacing, mode="bilinear", dtype=torch.float32)(img))
        net = self.coarse_network.to(img.device)
        # one window for most CTs, sizes divisible by the network's 8, padded (if at all) with air as in training
        roi = [min(r, -(-n // 8) * 8) for r, n in zip(self.coarse_roi_size, small.shape[1:])]
        logits = self._window(small.as_tensor()[None], net, roi, self.coarse_overlap, self.coarse_cval)
        mask = torch.sigmoid(logits[0, :1]) > self.coarse_threshold
        if not bool(mask.any()):
            logger.warning("coarse-to-fine: the coarse model found no spine (threshold %.2f); the fine model will run "
                           "on the whole volume", self.coarse_threshold)
            return None
        if self.coarse_largest_component:  # the spine is one connected column at 4 mm; drops rib/pelvis blobs
            mask = get_largest_connected_component_mask(mask)
        radius = int(np.ceil(self.margin_mm / min(self.coarse_spacing)))
        if radius > 0:
            mask = dilate(mask[None].to(torch.uint8), 2 * radius + 1)[0] > 0
        return mask[0], torch.as_tensor(small.affine, dtype=torch.float64)

    def plan_box(self, shape: Sequence[int], affine: torch.Tensor, coarse=None) -> tuple[list[int], list[int]]:
        """The fine box ``(start, end)`` in voxels of the fine grid of ``shape``/``affine``: the bounding box of the
        (dilated) coarse mask, grown to at least one window and kept inside the grid; the whole grid without one."""
        ndim = len(shape)
        roi = list(self.roi_size) if isinstance(self.roi_size, Sequence) else [int(self.roi_size)] * ndim
        start, end = [0] * ndim, [int(n) for n in shape]
        if coarse is None:
            return start, end
        mask, coarse_affine = coarse
        to_fine = torch.linalg.inv(affine) @ coarse_affine  # coarse voxel -> fine voxel (diagonal: the same axes)
        scale, offset = to_fine.diagonal()[:3].numpy(), to_fine[:3, 3].numpy()
        lo, hi = generate_spatial_bounding_box(mask[None])
        for a in range(ndim):  # the outer faces of the box's coarse voxels, in fine voxels
            s, e = sorted(((lo[a] - 0.5) * scale[a] + offset[a], (hi[a] - 0.5) * scale[a] + offset[a]))
            s, e = int(np.floor(s)), int(np.ceil(e))
            grow = max(0, roi[a] - (e - s))
            s, e = s - grow // 2, e + grow - grow // 2
            s, e = (0, e - s) if s < 0 else (s, e)  # shift, rather than clip, at the grid's faces
            s, e = max(0, s - max(0, e - int(shape[a]))), min(e, int(shape[a]))
            snap = int(np.ceil(self.snap_mm / self.spacing[a]))  # a face this near: the column runs on to it
            s, e = (0 if s <= snap else s), (int(shape[a]) if int(shape[a]) - e <= snap else e)
            if self.align_windows:  # on the whole-volume window grid: the box's windows are the paper path's own
                stride = max(int(roi[a] * (1 - self.overlap[a] if isinstance(self.overlap, Sequence)
                                           else 1 - self.overlap)), 1)
                s = (s // stride) * stride
                e = min(s + roi[a] + int(np.ceil(max(0, e - s - roi[a]) / stride)) * stride, int(shape[a]))
                s = max(0, min(s, e - roi[a]))
            start[a], end[a] = s, e
        return start, end

    def __call__(self, inputs: torch.Tensor, network, *args, **kwargs):
        if not self.coarse_to_fine:
            return super().__call__(inputs, network, *args, **kwargs)
        if not isinstance(inputs, MetaTensor):
            raise ValueError("coarse-to-fine inference needs the image as a MetaTensor (its affine places the grids)")
        threads = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(int(self.num_threads))
        try:
            fine_net = self._fine_network(network)
            with torch.inference_mode():
                outs = [self._one(self._item(inputs, b), fine_net) for b in range(inputs.shape[0])]
        finally:
            torch.set_num_threads(threads)
        # built outside inference mode (clone), so the post-processing may modify it in place
        out = outs[0][None].clone() if len(outs) == 1 else torch.stack(outs).clone()
        return convert_to_dst_type(out, inputs, dtype=out.dtype)[0]  # keeps out_dtype

    def _intensity(self, x: MetaTensor) -> MetaTensor:
        return x if self.intensity is None else self.intensity(x)

    @staticmethod
    def _item(batch: MetaTensor, b: int) -> MetaTensor:
        """Item ``b`` of a batch as a MetaTensor carrying just its own affine (the batch's may be ``(B, 4, 4)``)."""
        affine = torch.as_tensor(batch.affine, dtype=torch.float64)
        return MetaTensor(batch.as_tensor()[b], affine=affine[b] if affine.ndim == 3 else affine)

    def _one(self, img: MetaTensor, network) -> torch.Tensor:
        """Logits of one native image ``(C, *spatial)`` on its own grid."""
        native_affine = torch.as_tensor(img.affine, dtype=torch.float64)
        grid = Spacing(pixdim=self.spacing, mode="bilinear", lazy=True)(img)  # the paper's 1 mm grid, not computed
        fine_shape, fine_affine = [int(s) for s in grid.peek_pending_shape()], grid.peek_pending_affine()
        del grid
        start, end = self.plan_box(fine_shape, fine_affine, self.coarse_mask(img))
        logger.info("coarse-to-fine: the fine model runs in the box %s..%s of the %s grid at %s mm", start, end,
                    "x".join(map(str, fine_shape)), "x".join(f"{v:g}" for v in self.spacing))
        box_affine = _translate(fine_affine, start)
        resample = SpatialResample(mode="bilinear", padding_mode="border", align_corners=False, dtype=torch.float32)
        x = self._intensity(resample(img, dst_affine=box_affine, spatial_size=[e - s for s, e in zip(start, end)]))

        logits = self._window(x.as_tensor()[None], network, self.roi_size, self.overlap)[0]
        del x
        binary = logits.shape[0] == 1
        prob = torch.sigmoid(logits) if binary else torch.softmax(logits, 0)
        del logits
        # the native voxels inside the box, and the box's probabilities resampled onto them (Invertd's Spacing step)
        to_native = torch.linalg.inv(native_affine) @ box_affine
        corners = np.array([[0.0] * 3, [float(e - s - 1) for s, e in zip(start, end)]])
        ends = (to_native[:3, :3].numpy() @ corners.T).T + to_native[:3, 3].numpy()
        lo = np.clip(np.ceil(ends.min(0) - 1e-6), 0, None).astype(int)
        hi = np.minimum(np.floor(ends.max(0) + 1e-6).astype(int) + 1, img.shape[1:])
        for ax in range(len(lo)):  # a box face on the grid's face: out to the image's face (Invertd pads "border")
            lo[ax] = 0 if start[ax] == 0 else lo[ax]
            hi[ax] = img.shape[1 + ax] if end[ax] == fine_shape[ax] else hi[ax]
        self.last_box = ([int(v) for v in lo], [int(v) for v in hi])
        back = resample(MetaTensor(prob, affine=box_affine), dst_affine=_translate(native_affine, lo),
                        spatial_size=[int(b - a) for a, b in zip(lo, hi)]).as_tensor()
        del prob
        if not self.probabilities:  # logits again, so that the post-processing's sigmoid/softmax gives them back
            back = torch.logit(back, 1e-6) if binary else torch.log(back.clamp_min(1e-6))
        bg = (0.0, 1.0) if self.probabilities else (BACKGROUND_LOGIT, -BACKGROUND_LOGIT)  # (foreground, background)
        out = torch.full((back.shape[0], *img.shape[1:]), bg[0], dtype=self.out_dtype)
        if not binary:
            out[0] = bg[1]  # multi-class: the background channel wins outside the box
        out[(slice(None), *(slice(int(a), int(b)) for a, b in zip(lo, hi)))] = back.to(self.out_dtype)
        return out
