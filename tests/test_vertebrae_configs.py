"""The vertebra-instance configs, parsed as `monai.bundle run` would: networks, losses, distillation wiring, the
step 2 sample pipeline and the inference components."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from scripts.instances.losses import BoundaryWeightedFPFNLoss, DistillationLoss, DistillationPair, FPWeightRamp
from scripts.networks.serrador_unet3d import SerradorUNet3D, build_instance_network
from tests.conftest import BUNDLE

CFG = BUNDLE / "configs"


def parsed(*files: str, **overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(CFG / f) for f in files])
    parser.update({"bundle_root": str(BUNDLE), "device": "$torch.device('cpu')", **overrides})
    return parser


@pytest.mark.parametrize("name, params", [("teacher", 1_475_345), ("student", 368_273), ("student_thin", 369_609)])
def test_step2_network_is_one_override_away(name, params):
    p = parsed("vertebrae_train.yaml", network_name=name)
    net = p.get_parsed_content("network_def")
    assert isinstance(net, SerradorUNet3D) and sum(x.numel() for x in net.parameters()) == params
    assert isinstance(p.get_parsed_content("loss"), BoundaryWeightedFPFNLoss)
    assert p.get_parsed_content("ckpt_name") == name
    assert any(isinstance(h, FPWeightRamp) for h in p.get_parsed_content("train#handlers"))


@pytest.mark.parametrize("mode", ["soft", "logits"])
def test_distillation_mixin_wires_a_frozen_teacher_and_saves_the_student(tmp_path, mode):
    teacher = build_instance_network("teacher")
    torch.save(teacher.state_dict(), tmp_path / "teacher.pt")
    p = parsed("vertebrae_train.yaml", "vertebrae_distill.yaml", ckpt_dir=str(tmp_path), kd_mode=mode,
               kd_temperature=4.0, kd_alpha=0.3)
    pair = p.get_parsed_content("network_def")
    assert isinstance(pair, DistillationPair)
    assert torch.equal(pair.teacher.head.weight, teacher.head.weight)            # the saved teacher, loaded
    assert not any(x.requires_grad for x in pair.teacher.parameters())
    loss = p.get_parsed_content("loss")
    assert isinstance(loss, DistillationLoss) and (loss.mode, loss.temperature, loss.alpha) == (mode, 4.0, 0.3)
    assert p.get_parsed_content("ckpt_name") == f"student_kd_{mode}"
    saver = p.get_parsed_content("validate#handlers")[-1]
    assert saver.save_dict["model"] is p.get_parsed_content("student")            # the checkpoint is the student's
    opt = p.get_parsed_content("optimizer")
    assert sum(x.numel() for g in opt.param_groups for x in g["params"]) == 368_273  # only the student learns


def test_distillation_without_a_teacher_names_the_missing_file(tmp_path):
    p = parsed("vertebrae_train.yaml", "vertebrae_distill.yaml", ckpt_dir=str(tmp_path))
    with pytest.raises(RuntimeError) as err:                                   # monai.bundle wraps the cause
        p.get_parsed_content("network_def")
    assert "teacher.pt: no 'teacher' weights; train them with configs/vertebrae_train.yaml" in str(err.value.__cause__)


def test_step2_training_samples_have_ct_and_memory_channels():
    from scripts.data.phantom import generate_case

    case = generate_case(5, spacing=(2.0, 2.0, 2.0), orientation="RAS", levels=(16, 21), size_scale=0.6)
    p = parsed("vertebrae_train.yaml", "vertebrae_quick.yaml")
    random_part = p.get_parsed_content("train#random_transforms")
    from monai.transforms import Compose

    image = torch.as_tensor(np.clip((case["image"] + 1024.0) / 4095.0 * 2 - 1, -1, 1)[None], dtype=torch.float32)
    samples = Compose(random_part).set_random_state(0)({"image": image, "label": torch.as_tensor(case["label"][None])})
    assert len(samples) == 2                                                    # num_samples of the CPU recipe
    for s in samples:
        assert s["image"].shape == (2, 48, 48, 48) and s["label"].shape == (1, 48, 48, 48)
        mem = s["image"][1]
        assert set(torch.unique(mem).tolist()) <= {0.0, 1.0}                      # memory stays binary (nearest)
        assert s["label"].sum() > 0 and not (mem.bool() & s["label"][0].bool()).any()


def test_inference_config_components(tmp_path):
    torch.save(build_instance_network("heatmap").state_dict(), tmp_path / "heatmap.pt")
    p = parsed("vertebrae_inference.yaml", "vertebrae_quick.yaml", ckpt_dir=str(tmp_path))
    inferer = p.get_parsed_content("inferer")
    assert inferer.patch == (48, 48, 48) and inferer.spacing == 2.0 and inferer.min_voxels == 125
    assert p.get_parsed_content("ckpt_path") == str(tmp_path / "teacher.pt")
    missing = parsed("vertebrae_inference.yaml", ckpt_dir=str(tmp_path / "none"))
    with pytest.raises(RuntimeError) as err:
        missing.get_parsed_content("inferer")
    assert "heatmap.pt: no 'heatmap' weights" in str(err.value.__cause__)
