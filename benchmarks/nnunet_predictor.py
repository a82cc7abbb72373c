"""Row (c) of the inference benchmark: nnU-Net v2's own predictor running the bundle's fine network, TTA off.

Runs with the nnU-Net peer venv's python (``tests/integration/make_nnunet_venv.sh``: torch 2.13.0 + nnunetv2 2.8.1, no
MONAI), called by ``benchmarks/benchmark_inference.py`` (config ``nnunet``), one process per volume:

    <peer-venv>/bin/python benchmarks/nnunet_predictor.py job.json

``job.json``: ``{"image", "output", "bundle", "ckpt", "spacing", "patch_size", "intensity", "threads"}`` with the mask
path (``.nii.gz``) and the spacing, patch size and intensity window the bundle's inference.yaml resolved. The network
is the bundle's SpineContextResUNet with the weights of ``ckpt``; everything else is nnU-Net's:
``NibabelIOWithReorient`` I/O, ``DefaultPreprocessor`` (CT normalisation, third-order resampling to the bundle's
spacing), ``nnUNetPredictor`` sliding window (step 0.5, Gaussian, no mirroring), resampling of the logits back,
softmax/argmax (see ``_zyx_wrapper``), export on the input's grid. The bundle's intensity window becomes nnU-Net's
``CTNormalization`` with ``percentile_00_5 = a_min``, ``percentile_99_5 = a_max``, mean and std chosen so that
``(clip(x) - mean) / std`` equals ``ScaleIntensityRange(a_min, a_max, b_min, b_max, clip=True)``. No largest-component
step: nnU-Net applies post-processing only when its cross-validation chose it.

Prints the same ``BENCH {"wall_s", "cpu_s", "peak_rss_mib"}`` line as the bundle rows (``bench_line``).
"""
import json
import os
import sys
import time
import types
from pathlib import Path


def bundle_network(bundle: Path, ckpt: Path):
    """The bundle's SpineContextResUNet with the checkpoint's weights, imported without ``scripts.networks``'s
    ``__init__`` (which needs MONAI): the networks folder is registered as a bare package."""
    import torch

    pkg = types.ModuleType("bundle_networks")
    pkg.__path__ = [str(bundle / "scripts" / "networks")]
    sys.modules["bundle_networks"] = pkg
    from bundle_networks.spine_context_resunet import SpineContextResUNet

    net = SpineContextResUNet(in_channels=1, out_channels=1)
    net.load_state_dict(torch.load(str(ckpt), map_location="cpu", weights_only=True))
    return net.eval()


def _zyx_wrapper(net):
    """nnU-Net arrays are (z, y, x) of the RAS-reoriented image; the bundle's network was trained on (x, y, z).

    The network's one sigmoid logit z becomes the two softmax logits (0, z): nnU-Net's label manager treats a
    one-element region as a plain label, and softmax(0, z)[1] = sigmoid(z), so its argmax is exactly z > 0."""
    import torch

    class ZYXtoXYZ(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.net = inner

        def forward(self, x):
            z = self.net(x.permute(0, 1, 4, 3, 2)).permute(0, 1, 4, 3, 2)
            return torch.cat([torch.zeros_like(z), z], dim=1)

    return ZYXtoXYZ(net).eval()


def plans_and_dataset(spacing, patch_size, intensity) -> tuple[dict, dict]:
    """A minimal nnU-Net v2 plans dict (one ``3d_fullres`` configuration) and dataset.json for the bundle's geometry."""
    scale = (intensity["a_max"] - intensity["a_min"]) / (intensity["b_max"] - intensity["b_min"])
    fg = {"mean": intensity["a_min"] - intensity["b_min"] * scale, "std": scale,
          "percentile_00_5": intensity["a_min"], "percentile_99_5": intensity["a_max"],
          "min": intensity["a_min"], "max": intensity["a_max"], "median": 0.0}
    resampling = {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None}  # nnU-Net's defaults
    config = {
        "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
        "patch_size": list(patch_size)[::-1], "spacing": list(spacing)[::-1],
        "median_image_size_in_voxels": list(patch_size)[::-1],
        "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False],
        "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_data_kwargs": resampling,
        "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_seg_kwargs": {**resampling, "is_seg": True, "order": 1},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {**resampling, "order": 1},
        "architecture": {"network_class_name": "SpineContextResUNet (bundle, built by this script)",
                         "arch_kwargs": {}, "_kw_requires_import": []},
        "batch_dice": False,
    }
    plans = {"dataset_name": "Dataset999_Spine", "plans_name": "nnUNetPlans",
             "original_median_spacing_after_transp": list(spacing)[::-1],
             "original_median_shape_after_transp": list(patch_size)[::-1],
             "image_reader_writer": "NibabelIOWithReorient", "transpose_forward": [0, 1, 2],
             "transpose_backward": [0, 1, 2], "configurations": {"3d_fullres": config},
             "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
             "foreground_intensity_properties_per_channel": {"0": fg}}
    dataset = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "spine": 1}, "numTraining": 0,
               "file_ending": ".nii.gz"}
    return plans, dataset


def main(job_file: str) -> None:
    job = json.loads(Path(job_file).read_text())
    import torch

    torch.set_num_threads(int(job.get("threads", 2)))
    from nnunetv2.imageio.nibabel_reader_writer import NibabelIOWithReorient
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    sys.path.insert(0, job["bundle"])
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchmark_inference import bench_line  # standard library only at import: fine in this venv

    t0 = time.perf_counter()
    net = _zyx_wrapper(bundle_network(Path(job["bundle"]), Path(job["ckpt"])))
    plans, dataset = plans_and_dataset(job["spacing"], job["patch_size"], job["intensity"])
    manager = PlansManager(plans)
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                perform_everything_on_device=False, device=torch.device("cpu"), allow_tqdm=True)
    predictor.manual_initialization(net, manager, manager.get_configuration("3d_fullres"),
                                    [net.state_dict()], dataset, "bundle", None)
    data, props = NibabelIOWithReorient().read_images([job["image"]])
    # nnU-Net appends dataset["file_ending"] to the truncated name
    predictor.predict_single_npy_array(data, props, None, job["output"][: -len(".nii.gz")], False)
    print(bench_line(time.perf_counter() - t0), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {os.path.basename(sys.argv[0])} job.json")
    main(sys.argv[1])
