"""Coarse-to-fine sliding-window inference: find the spine at 4 mm, run the 1 mm model only around it.

:class:`CoarseToFineInferer` is a :class:`monai.inferers.SlidingWindowInferer` (so ``inferer#roi_size`` and the
other sliding-window overrides keep their meaning) that takes the pre-processed CT at its **native** spacing (RAS,
intensity-scaled; inference.yaml drops ``Spacingd`` on this path) and

1. resamples it in torch to ``coarse_spacing`` (4 mm, ~1/50 of the voxels of a 1 mm grid) and runs the small coarse
   model (``coarse_network`` + ``coarse_ckpt``, trained by train.yaml + configs/coarse.yaml) over the whole volume;
2. takes the bounding box of the coarse spine mask (``coarse_threshold``), adds ``margin_mm`` and grows it to at
   least one fine window;
3. crops that box from the native image, resamples only the crop to ``spacing`` (1 mm) in torch, runs the fine
   network's sliding window there (BatchNorm folded, see :mod:`.fold_bn`), resamples the logits back to the native
   crop and pastes them into a volume of background logits on the native grid.

The result has the input's shape, so the usual post-processing (sigmoid, Invertd of the orientation, threshold,
largest component) applies unchanged, under the bundle's evaluator and under MONAI Label's BundleInferTask alike.

With ``coarse_to_fine=False`` it is exactly its parent: one sliding window over the whole (1 mm) input, which with
inference.yaml's ``--coarse_to_fine false`` is the paper's configuration. If the coarse weights are missing or the
coarse mask is empty, it logs a warning and runs the fine window over the whole volume (at ``spacing``).
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.inferers import SlidingWindowInferer, sliding_window_inference
from monai.transforms.utils import generate_spatial_bounding_box, get_largest_connected_component_mask
from monai.utils import convert_to_dst_type
from torch import nn

from .fold_bn import fold_batchnorm

logger = logging.getLogger(__name__)

__all__ = ["CoarseToFineInferer", "native_spacing"]

#: Logit written outside the fine box: sigmoid(-20) ~ 2e-9, far below any threshold.
BACKGROUND_LOGIT = -20.0


def native_spacing(img: torch.Tensor, default: Sequence[float] | None = None) -> np.ndarray:
    """Voxel size (mm) of a (batched) MetaTensor from its affine; ``default`` when it carries none."""
    affine = getattr(img, "affine", None)
    if affine is None:
        if default is None:
            raise ValueError("coarse-to-fine inference needs the image affine (a MetaTensor) or a default spacing")
        return np.asarray(default, float)
    aff = np.asarray(affine.detach().cpu() if torch.is_tensor(affine) else affine, float)
    if aff.ndim == 3:
        aff = aff[0]
    return np.linalg.norm(aff[:3, :3], axis=0)


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    size = [int(s) for s in size]
    if list(x.shape[2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="trilinear", align_corners=False)


def _grid_size(shape: Sequence[int], src: Sequence[float], dst: Sequence[float]) -> list[int]:
    return [max(1, int(round(n * s / d))) for n, s, d in zip(shape, src, dst)]


class _OrtNetwork:
    """A torch network exported to ONNX (in memory) and run by ONNX Runtime's CPU provider, called like the network."""

    def __init__(self, network: nn.Module, num_threads: int | None = None, patch=(32, 32, 32)) -> None:
        import io

        import onnxruntime as ort

        buf = io.BytesIO()
        x = torch.zeros(1, 1, *patch)
        dyn = {0: "b", 2: "x", 3: "y", 4: "z"}
        with torch.no_grad():
            torch.onnx.export(network.cpu(), (x,), buf, input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": dyn, "y": dyn}, dynamo=False)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(num_threads or torch.get_num_threads())
        opts.inter_op_num_threads = 1
        opts.enable_cpu_mem_arena = False  # the arena kept ~GBs of activations after the call
        self.session = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = self.session.run(None, {"x": x.detach().cpu().numpy().astype(np.float32, copy=False)})[0]
        return torch.from_numpy(y)


class CoarseToFineInferer(SlidingWindowInferer):
    """SlidingWindowInferer (the fine stage) preceded by a coarse whole-volume spine finder; see the module doc.

    Args (beyond :class:`SlidingWindowInferer`'s, which configure the fine window):
        coarse_network: the coarse model (un-loaded; e.g. ``build_network(base_filters=8)``).
        coarse_ckpt: its state_dict file; missing -> whole-volume fallback with a warning.
        spacing: the fine model's spacing (mm, RAS), e.g. the plan's 1 mm.
        coarse_spacing: the coarse model's spacing (mm, RAS).
        coarse_roi_size: the coarse sliding window (voxels at ``coarse_spacing``); the default 512 mm cube takes
            most CTs in one window, which measured ~7x faster than 64^3 windows at overlap 0.25.
        coarse_overlap: its overlap.
        coarse_threshold: probability above which a coarse voxel counts as spine.
        coarse_cval: padding value of the coarse window: air after the intensity window (train.yaml pads with it).
        coarse_largest_component: box only the largest connected component of the coarse mask (the final
            post-processing keeps only the largest component of the fine mask too).
        margin_mm: added on every side of the coarse box.
        coarse_to_fine: False = plain :class:`SlidingWindowInferer` on the input as given.
        fold_bn: fold BatchNorm into the convolutions of an eval-mode fine network (and of the coarse one).
        num_threads: ``torch.set_num_threads`` for the call (None = leave torch's setting).
        backend: ``torch`` or ``onnxruntime`` (the folded fine network exported to ONNX once per network and run
            by ONNX Runtime's CPU provider; CPU inputs only).
        out_dtype: dtype of the full-size logit volume returned (float16 halves the post-processing's memory: a
            logit is only compared with 0 after the sigmoid, and float16 resolves it to ~1e-3 near 0).
    """

    def __init__(
        self,
        roi_size: Sequence[int] | int,
        sw_batch_size: int = 1,
        overlap: float = 0.25,
        mode: str = "gaussian",
        coarse_network: nn.Module | None = None,
        coarse_ckpt: str | os.PathLike | None = None,
        spacing: Sequence[float] = (1.0, 1.0, 1.0),
        coarse_spacing: Sequence[float] = (4.0, 4.0, 4.0),
        coarse_roi_size: Sequence[int] = (128, 128, 128),
        coarse_overlap: float = 0.25,
        coarse_threshold: float = 0.5,
        coarse_cval: float = -1.0,
        coarse_largest_component: bool = True,
        margin_mm: float = 16.0,
        coarse_to_fine: bool = True,
        fold_bn: bool = True,
        num_threads: int | None = None,
        backend: str = "torch",
        out_dtype: torch.dtype = torch.float16,
        **kwargs,
    ) -> None:
        super().__init__(roi_size=roi_size, sw_batch_size=sw_batch_size, overlap=overlap, mode=mode, **kwargs)
        self.coarse_to_fine = bool(coarse_to_fine)
        self.spacing = np.asarray([float(s) for s in spacing])
        self.coarse_spacing = np.asarray([float(s) for s in coarse_spacing])
        self.coarse_roi_size = [int(r) for r in coarse_roi_size]
        self.coarse_overlap = float(coarse_overlap)
        self.coarse_threshold = float(coarse_threshold)
        self.coarse_cval = float(coarse_cval)
        self.coarse_largest_component = bool(coarse_largest_component)
        self.margin_mm = float(margin_mm)
        self.fold_bn = bool(fold_bn)
        self.num_threads = num_threads
        if backend not in ("torch", "onnxruntime"):
            raise ValueError(f"CoarseToFineInferer: backend must be 'torch' or 'onnxruntime', got '{backend}'")
        self.backend = backend
        self.out_dtype = out_dtype
        self._ort: dict[str, tuple[int, object]] = {}  # "fine"/"coarse" -> (id of the exported module, runner)
        self.coarse_ckpt = str(coarse_ckpt) if coarse_ckpt else ""
        self.coarse_network = self._load_coarse(coarse_network) if self.coarse_to_fine else None
        self.last_box: tuple[list[int], list[int]] | None = None  # native-grid box of the last call (None = whole)

    # ---- set-up -----------------------------------------------------------------------------------------------
    def _load_coarse(self, network: nn.Module | None) -> nn.Module | None:
        if network is None or not self.coarse_ckpt or not os.path.isfile(self.coarse_ckpt):
            logger.warning("coarse-to-fine: no coarse weights at '%s'; the fine model will run on the whole volume",
                           self.coarse_ckpt)
            return None
        state = torch.load(self.coarse_ckpt, map_location="cpu", weights_only=True)
        network.load_state_dict(state.get("model", state) if isinstance(state, dict) else state)
        network.eval()
        return fold_batchnorm(network, inplace=True)[0] if self.fold_bn else network

    def _runner(self, key: str, module: nn.Module, device: torch.device, fold: bool):
        """``module`` as run by the chosen backend: ONNX Runtime (exported once per module, BatchNorm folded) or
        torch (a BatchNorm-folded copy when ``fold``)."""
        if self.backend == "onnxruntime" and device.type == "cpu":
            cached = self._ort.get(key)
            if cached is None or cached[0] != id(module):
                try:
                    cached = (id(module), _OrtNetwork(fold_batchnorm(module)[0], self.num_threads))
                except ImportError as err:  # onnxruntime/onnx not installed: torch does the same job
                    logger.warning("coarse-to-fine: %s; using the torch backend", err)
                    self.backend = "torch"
                    return self._runner(key, module, device, fold)
                self._ort[key] = cached
            return cached[1]
        return fold_batchnorm(module)[0] if fold else module

    def _fine_network(self, network, device: torch.device):
        if not isinstance(network, nn.Module) or network.training:
            return network
        return self._runner("fine", network, device, self.fold_bn)  # a copy: the caller's network stays as it was

    def _window(self, x, network, roi_size, overlap, cval=None):
        return sliding_window_inference(
            x, roi_size, self.sw_batch_size, network, overlap=overlap, mode=self.mode, sigma_scale=self.sigma_scale,
            padding_mode=self.padding_mode, cval=self.cval if cval is None else cval, sw_device=self.sw_device,
            device=self.device,
            progress=self.progress, buffer_steps=self.buffer_steps, buffer_dim=self.buffer_dim,
        )

    # ---- the two stages ---------------------------------------------------------------------------------------
    def find_box(self, img: torch.Tensor, sp: np.ndarray) -> tuple[list[int], list[int]] | None:
        """Native-grid ``(start, end)`` of the spine box of one image ``(1, C, *spatial)``; None if nothing found."""
        if self.coarse_network is None:
            return None
        shape = list(img.shape[2:])
        small = _resize(img, _grid_size(shape, sp, self.coarse_spacing))
        net = self._runner("coarse", self.coarse_network.to(img.device), img.device, fold=False)  # folded at load
        # one window for most CTs, sizes divisible by the network's 8, padded (if at all) with air as in training
        roi = [min(r, -(-n // 8) * 8) for r, n in zip(self.coarse_roi_size, small.shape[2:])]
        prob = torch.sigmoid(self._window(small, net, roi, self.coarse_overlap, self.coarse_cval)[0, :1])
        if not bool((prob > self.coarse_threshold).any()):
            logger.warning("coarse-to-fine: the coarse model found no spine (threshold %.2f); the fine model will run "
                           "on the whole volume", self.coarse_threshold)
            return None
        mask = prob > self.coarse_threshold
        if self.coarse_largest_component:  # the spine is one connected column at 4 mm; drops rib/pelvis blobs
            mask = get_largest_connected_component_mask(mask)
        lo, hi = generate_spatial_bounding_box(mask)
        scale = np.asarray(shape, float) / np.asarray(small.shape[2:], float)  # native voxels per coarse voxel
        margin = self.margin_mm / sp
        min_size = np.asarray(self.roi_size, float) * self.spacing / sp  # at least one fine window
        start, end = [], []
        for a in range(len(shape)):
            s, e = lo[a] * scale[a] - margin[a], hi[a] * scale[a] + margin[a]
            grow = max(0.0, min_size[a] + 1 - (e - s)) / 2  # +1: the resampled crop must not round below a window
            s, e = math.floor(s - grow), math.ceil(e + grow)
            if s < 0:  # shift rather than clip at the image's faces, so the window never needs padding inside it
                s, e = 0, e - s
            if e > shape[a]:
                s, e = max(0, s - (e - shape[a])), shape[a]
            start.append(int(s))
            end.append(int(e))
        return start, end

    def fine(self, img: torch.Tensor, sp: np.ndarray, network) -> torch.Tensor:
        """Fine logits of one native-grid image (or crop) ``(1, C, *spatial)``, on that same grid."""
        shape = list(img.shape[2:])
        x = _resize(img, _grid_size(shape, sp, self.spacing))
        out = self._window(x, network, self.roi_size, self.overlap)
        return _resize(out, shape)

    def __call__(self, inputs: torch.Tensor, network, *args, **kwargs):
        if not self.coarse_to_fine:
            return super().__call__(inputs, network, *args, **kwargs)
        threads = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(int(self.num_threads))
        try:
            fine_net = self._fine_network(network, inputs.device)
            sp = native_spacing(inputs, default=self.spacing)
            outs = [self._one(inputs[b: b + 1], sp, fine_net) for b in range(inputs.shape[0])]
            out = outs[0] if len(outs) == 1 else torch.cat(outs, 0)
        finally:
            torch.set_num_threads(threads)
        return convert_to_dst_type(out, inputs, dtype=out.dtype)[0]  # keeps out_dtype

    def _one(self, img: torch.Tensor, sp: np.ndarray, network) -> torch.Tensor:
        x = img.as_tensor() if hasattr(img, "as_tensor") else img
        with torch.inference_mode():
            box = self.find_box(x, sp)
            self.last_box = box
            start, end = box if box is not None else ([0] * (x.ndim - 2), list(x.shape[2:]))
            sl = (slice(None), slice(None), *(slice(s, e) for s, e in zip(start, end)))
            crop = self.fine(x[sl], sp, network)
        # built outside inference mode, so the post-processing may modify it in place
        out = torch.full((1, crop.shape[1], *x.shape[2:]), BACKGROUND_LOGIT, dtype=self.out_dtype, device=crop.device)
        if crop.shape[1] > 1:
            out[:, 0] = -BACKGROUND_LOGIT  # multi-class: the background channel wins outside the box
        out[sl] = crop
        return out
