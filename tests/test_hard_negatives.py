"""configs/hard_negatives.yaml: the hard-negative branch centres its background patches on voxels at or above
hard_negative_hu outside the spine, and the plain branch keeps train.yaml's sampling."""
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.transforms import Compose

BUNDLE = Path(__file__).resolve().parents[1] / "bundle"
CONFIGS = [str(BUNDLE / "configs" / name) for name in ("train.yaml", "quick.yaml", "hard_negatives.yaml")]


def _sampler(share: float) -> Compose:
    parser = ConfigParser()
    parser.read_config(CONFIGS)
    parser.update({"bundle_root": str(BUNDLE), "patch_size": [8, 8, 8], "num_samples": 64,
                   "hard_negative_share": share})
    return Compose([parser.get_parsed_content("train#sampling_transforms#2"),
                    parser.get_parsed_content("train#random_transforms#0")]).set_random_state(0)


def _case(hu_to_unit) -> dict:
    """A 48^3 soft-tissue (40 HU) volume: a spine block (label 1, 300 HU) at one end and a bright non-spine block
    (a 'sacrum', 300 HU, label 0) at the other."""
    image = np.full((1, 48, 48, 48), hu_to_unit(40.0), np.float32)
    label = np.zeros_like(image)
    image[:, 2:10, 20:28, 20:28] = hu_to_unit(300.0)
    label[:, 2:10, 20:28, 20:28] = 1
    image[:, 38:46, 20:28, 20:28] = hu_to_unit(300.0)
    return {"image": torch.from_numpy(image), "label": torch.from_numpy(label)}


def _unit():
    parser = ConfigParser()
    parser.read_config(CONFIGS)
    parser.update({"bundle_root": str(BUNDLE)})
    window = parser.get_parsed_content("intensity")
    return lambda hu: (hu - window["a_min"]) / (window["a_max"] - window["a_min"]) * (
        window["b_max"] - window["b_min"]) + window["b_min"]


def test_the_threshold_is_hard_negative_hu_in_the_network_s_intensity_units():
    parser = ConfigParser()
    parser.read_config(CONFIGS)
    parser.update({"bundle_root": str(BUNDLE)})
    assert parser.get_parsed_content("hard_negative_threshold") == pytest.approx(_unit()(150.0))


@pytest.mark.parametrize("share, bright_negatives", [(1.0, True), (0.0, False)])
def test_background_patches_centre_on_bright_non_spine_voxels_only_in_the_hard_branch(share, bright_negatives):
    unit = _unit()
    patches = _sampler(share)(_case(unit))
    negatives = [p for p in patches if p["label"].sum() == 0]
    assert len(negatives) >= 5 and len(patches) - len(negatives) >= 20   # pos 0.7 / neg 0.3 of 64 draws
    # a patch centred anywhere in the 8^3 bright block overlaps it by at least 4^3 of its 8^3 voxels (1/8)
    bright = [float((p["image"] > unit(150.0)).float().mean()) for p in negatives]
    if bright_negatives:
        assert min(bright) >= 0.1
    else:   # centres anywhere in the background: most land in plain soft tissue
        assert np.median(bright) == 0.0
