"""The vertebra-instance configs, parsed as `monai.bundle run` would: mixins over train.yaml (networks, losses,
distillation wiring, the run folder's best model with its sidecar, the step 2 sample pipeline), the inference
components reading the weights' sidecars, and the sidecars of the shipped CPU-recipe weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.handlers import ValidationHandler

from scripts.checkpoints import BestModelSaver, LastCheckpoint, ResumeFromLast
from scripts.instances.losses import BoundaryWeightedFPFNLoss, DistillationLoss, DistillationPair, FPWeightRamp
from scripts.networks.serrador_unet3d import SerradorUNet3D, build_instance_network
from scripts.weights_sidecar import WeightsError, build_network_from_sidecar, read_sidecar, write_sidecar
from tests.conftest import BUNDLE

CFG = BUNDLE / "configs"
STEP2 = ("train.yaml", "vertebrae_train.yaml")                  # every vertebra training is a mixin over these
HEATMAP = STEP2 + ("vertebrae_heatmap.yaml",)
DISTILL = STEP2 + ("vertebrae_distill.yaml",)
QUICK = "vertebrae_quick.yaml"
SHIPPED = BUNDLE / "models" / "vertebrae_cpu"
WINDOW = {"a_min": -1024.0, "a_max": 3071.0, "b_min": -1.0, "b_max": 1.0}


def parsed(*files: str, **overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(CFG / f) for f in files])
    parser.update({"bundle_root": str(BUNDLE), "device": "$torch.device('cpu')", **overrides})
    return parser


def fake_weights(path, name: str, task: str = "vertebra_instance", **info) -> SerradorUNet3D:
    """Untrained ``name`` weights at ``path`` with a CPU-recipe sidecar (``info`` overrides its fields)."""
    net = build_instance_network(name)
    torch.save(net.state_dict(), path)
    write_sidecar(str(path), {"network": {"name": name, "out_channels": int(net.head.out_channels), "args": {}},
                              "task": task, "spacing": [2.0, 2.0, 2.0], "patch_size": [48, 48, 48],
                              "intensity": WINDOW, "threshold": 0.5, **info})
    return net


@pytest.mark.slow  # parses the evaluator, which generates the default phantom set when it is not cached (47 s measured)
@pytest.mark.parametrize("name, params", [("teacher", 1_475_345), ("student", 368_273), ("student_thin", 369_609)])
def test_step2_network_is_one_override_away(name, params):
    p = parsed(*STEP2, network_name=name)
    net = p.get_parsed_content("network_def")
    assert isinstance(net, SerradorUNet3D) and sum(x.numel() for x in net.parameters()) == params
    assert isinstance(p.get_parsed_content("loss"), BoundaryWeightedFPFNLoss)
    assert p.get_parsed_content("checkpoint_name") == f"{name}.pt"
    assert p.get_parsed_content("last_checkpoint") == str(BUNDLE / "models" / "vertebrae" / f"last_{name}.pt")
    handlers = [type(h) for h in p.get_parsed_content("train#handlers")]    # train.yaml's run folder, no LR steps
    assert handlers[:4] == [ResumeFromLast, FPWeightRamp, ValidationHandler, LastCheckpoint]
    saver = p.get_parsed_content("validate#best_model")
    assert isinstance(saver, BestModelSaver) and saver.tracker.metric_name == "val_dice"
    assert saver.network is p.get_parsed_content("network")
    assert saver.path == str(BUNDLE / "models" / "vertebrae" / f"{name}.pt")
    assert saver.sidecar == {"network": {"name": name, "out_channels": 1, "args": {}}, "task": "vertebra_instance",
                             "spacing": [1.0, 1.0, 1.0], "patch_size": [128, 128, 128], "intensity": WINDOW,
                             "threshold": 0.5, "training_record": ""}


@pytest.mark.slow  # parses the evaluator, which generates the default phantom set when it is not cached (105 s)
def test_heatmap_mixin_records_its_grid_and_walk_threshold():
    p = parsed(*HEATMAP)
    net = p.get_parsed_content("network_def")
    assert sum(x.numel() for x in net.parameters()) == 88_842
    saver = p.get_parsed_content("validate#best_model")
    assert saver.tracker.metric_name == "val_heat_dice" and saver.path.endswith("/models/vertebrae/heatmap.pt")
    assert saver.sidecar["network"] == {"name": "heatmap", "out_channels": 2, "args": {}}
    assert (saver.sidecar["task"], saver.sidecar["patch_size"], saver.sidecar["threshold"]) == \
        ("vertebra_heatmap", [64, 64, 128], 0.3)
    assert saver.sidecar["intensity"] == WINDOW and saver.sidecar["spacing"] == [1.0, 1.0, 1.0]   # step 2's
    assert not any(isinstance(h, FPWeightRamp) for h in p.get_parsed_content("train#handlers"))


@pytest.mark.parametrize("mode", ["soft", "logits"])
def test_distillation_mixin_wires_a_frozen_teacher_and_saves_the_student(tmp_path, mode):
    teacher = fake_weights(tmp_path / "teacher.pt", "teacher")
    p = parsed(*DISTILL, ckpt_dir=str(tmp_path), kd_mode=mode, kd_temperature=4.0, kd_alpha=0.3)
    pair = p.get_parsed_content("network_def")
    assert isinstance(pair, DistillationPair)
    assert torch.equal(pair.teacher.head.weight, teacher.head.weight)            # the saved teacher, loaded
    assert not any(x.requires_grad for x in pair.teacher.parameters())
    loss = p.get_parsed_content("loss")
    assert isinstance(loss, DistillationLoss) and (loss.mode, loss.temperature, loss.alpha) == (mode, 4.0, 0.3)
    assert p.get_parsed_content("checkpoint_name") == f"student_kd_{mode}.pt"
    saver = p.get_parsed_content("validate#best_model")
    assert saver.network is p.get_parsed_content("student")                     # the best model is the student's
    assert saver.sidecar["network"] == {"name": "student", "out_channels": 1, "args": {}}
    opt = p.get_parsed_content("optimizer")
    assert sum(x.numel() for g in opt.param_groups for x in g["params"]) == 368_273  # only the student learns


def test_distillation_without_a_teacher_names_the_missing_file(tmp_path):
    p = parsed(*DISTILL, ckpt_dir=str(tmp_path))
    with pytest.raises(RuntimeError) as err:                                   # monai.bundle wraps the cause
        p.get_parsed_content("network_def")
    assert isinstance(err.value.__cause__, WeightsError)
    assert str(err.value.__cause__) == (f"{tmp_path / 'teacher.pt'}: weights file does not exist (train them with "
                                        "configs/train.yaml + configs/vertebrae_train.yaml)")


def test_step2_training_samples_have_ct_and_memory_channels():
    from scripts.data.phantom import generate_case

    case = generate_case(5, spacing=(2.0, 2.0, 2.0), orientation="RAS", levels=(16, 21), size_scale=0.6)
    p = parsed(*STEP2, QUICK)
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


@pytest.mark.slow  # quick tier: > 9 s with one thread beside a 2-thread training
def test_step2_sampler_oversamples_the_rare_levels_of_the_training_scans(tmp_path):
    """``rare_level_oversampling`` (configs/vertebrae_train.yaml, one of train#handlers): at the training's start it
    gives the step 2 sampler the paper's weights max_count / count(r), r's count being the training scans that hold
    it, so a rare level is drawn more often; ``--oversample_rare_levels false`` leaves the draws uniform."""
    from types import SimpleNamespace

    import nibabel as nib

    held = {"a": (20, 21), "b": (20, 21), "c": (28, 20, 21), "d": (20,)}  # L1 in all 4 scans, L2 in 3, T13 in 1
    items = []
    for case, ids in held.items():
        lab = np.zeros((6, 6, 3 * len(ids)), np.int16)
        for k, vid in enumerate(ids):
            lab[..., 3 * k:3 * k + 3] = vid
        nib.save(nib.Nifti1Image(lab, np.eye(4)), str(tmp_path / f"{case}.nii.gz"))
        items.append({"image": str(tmp_path / f"{case}.nii.gz"), "label": str(tmp_path / f"{case}.nii.gz"),
                      "label_map": "verse"})
    trainer = SimpleNamespace(data_loader=SimpleNamespace(dataset=SimpleNamespace(data=items)))

    p = parsed(*STEP2, patch_size=[32, 32, 64])
    assert "@rare_level_oversampling" in p["train#handlers"]
    handler, sampler = p.get_parsed_content("rare_level_oversampling"), p.get_parsed_content("train#patch_sampler")
    assert handler.sampler is sampler and sampler.level_weights == {}      # nothing read while parsing
    handler(trainer)                                                       # Events.STARTED
    assert sampler.level_weights == {20: 1.0, 21: pytest.approx(4 / 3), 28: 4.0}
    # one scan holding all three (T13 above L1 above L2): T13 is drawn 4 / (1 + 4/3 + 4) = 63 % of the time, not 33 %
    lab = torch.zeros(1, 40, 40, 100, dtype=torch.int16)
    for k, vid in enumerate((28, 20, 21)):
        lab[0, 12:28, 12:28, 80 - 30 * k:96 - 30 * k] = vid
    sampler.set_random_state(0)
    draws = [s["vertebra_id"] for _ in range(150) for s in sampler({"image": lab.float(), "label": lab})]  # 2 each
    assert 0.55 <= draws.count(28) / 300 <= 0.72 and draws.count(28) > 2 * draws.count(20)

    off = parsed(*STEP2, oversample_rare_levels="false")
    off.get_parsed_content("rare_level_oversampling")(trainer)
    assert off.get_parsed_content("train#patch_sampler").level_weights == {}


def test_inference_takes_network_geometry_and_walk_threshold_from_the_sidecars(tmp_path):
    fake_weights(tmp_path / "heatmap.pt", "heatmap", task="vertebra_heatmap", patch_size=[32, 32, 64], threshold=0.2)
    fake_weights(tmp_path / "student_kd_soft.pt", "student")
    p = parsed("vertebrae_inference.yaml", ckpt_dir=str(tmp_path), checkpoint_name="student_kd_soft.pt")
    inferer = p.get_parsed_content("inferer")
    assert inferer.patch == (48, 48, 48) and inferer.spacing == 2.0 and inferer.min_voxels == 125
    assert inferer.heatmap_shape == (32, 32, 64) and inferer.threshold == 0.2 and inferer.pad_value == -1.0
    assert sum(x.numel() for x in p.get_parsed_content("network_def").parameters()) == 368_273
    spacing = [t for t in p.get_parsed_content("preprocessing").transforms if type(t).__name__ == "Spacingd"][0]
    assert spacing.spacing_transform.pixdim.tolist() == [2.0, 2.0, 2.0]
    # the CPU recipe merged over inference only chooses the weights' folder; the sidecars still rule
    quick = parsed("vertebrae_inference.yaml", QUICK, ckpt_dir=str(tmp_path), checkpoint_name="student_kd_soft.pt")
    assert quick.get_parsed_content("inferer").heatmap_shape == (32, 32, 64)
    assert parsed("vertebrae_inference.yaml", QUICK).get_parsed_content("ckpt_path") == str(SHIPPED / "teacher.pt")


def test_inference_without_weights_or_with_mismatched_ones_stops_with_one_line(tmp_path):
    missing = parsed("vertebrae_inference.yaml", ckpt_dir=str(tmp_path / "none"))
    with pytest.raises(RuntimeError) as err:
        missing.get_parsed_content("network_def")
    assert str(err.value.__cause__) == (f"{tmp_path / 'none' / 'teacher.pt'}: weights file does not exist (train one, "
                                        "or pass --ckpt_path)")
    fake_weights(tmp_path / "teacher.pt", "teacher")
    with pytest.raises(RuntimeError) as err:
        parsed("vertebrae_inference.yaml", ckpt_dir=str(tmp_path)).get_parsed_content("inferer")
    assert str(err.value.__cause__).startswith(f"{tmp_path / 'heatmap.pt'}: weights file does not exist (train them")
    fake_weights(tmp_path / "heatmap.pt", "heatmap", task="vertebra_heatmap", intensity={**WINDOW, "a_min": -1000.0})
    with pytest.raises(RuntimeError) as err:
        parsed("vertebrae_inference.yaml", ckpt_dir=str(tmp_path)).get_parsed_content("inferer")
    assert "heatmap.json: the heatmap's HU window" in str(err.value.__cause__)
    with pytest.raises(RuntimeError) as err:                                    # the heatmap as step 2 weights
        parsed("vertebrae_inference.yaml", ckpt_dir=str(tmp_path), checkpoint_name="heatmap.pt").get_parsed_content(
            "inferer")
    assert "records task 'vertebra_heatmap', not 'vertebra_instance'" in str(err.value.__cause__)


def test_evaluation_reads_the_step2_sidecar_over_the_recipe(tmp_path):
    fake_weights(tmp_path / "teacher.pt", "teacher", spacing=[1.5, 1.5, 1.5])
    fake_weights(tmp_path / "heatmap.pt", "heatmap", task="vertebra_heatmap")
    p = parsed(*STEP2, QUICK, "vertebrae_evaluate.yaml", ckpt_dir=str(tmp_path))
    assert p.get_parsed_content("spacing") == [1.5, 1.5, 1.5]                    # the weights', not the recipe's 2 mm
    assert p.get_parsed_content("validate#inferer").spacing == 1.5
    names = [type(t).__name__ for t in p.get_parsed_content("validate#preprocessing").transforms]
    assert names == ["LoadImaged", "RemapLabelsd", "Orientationd", "Spacingd", "ScaleIntensityRanged", "EnsureTyped"]


@pytest.mark.parametrize("name, files, overrides", [
    ("heatmap", HEATMAP + (QUICK,), {}),
    ("teacher", STEP2 + (QUICK,), {"network_name": "teacher"}),
    ("student", STEP2 + (QUICK,), {"network_name": "student"}),
    ("student_kd_soft", DISTILL + (QUICK,), {"kd_mode": "soft"}),
    ("student_kd_logits", DISTILL + (QUICK,), {"kd_mode": "logits"}),
])
def test_shipped_weights_have_the_sidecar_of_the_recipe_that_trained_them(name, files, overrides):
    weights = SHIPPED / f"{name}.pt"
    info = read_sidecar(str(weights))
    net = build_network_from_sidecar(info)
    net.load_state_dict(torch.load(weights, weights_only=True), strict=True)  # the sidecar names the right network
    with torch.no_grad():                                                      # and its grid fits it
        out = net.eval()(torch.zeros(1, 1 if name == "heatmap" else 2, *info["patch_size"]))
    assert out.shape == (1, info["network"]["out_channels"], *info["patch_size"])
    p = parsed(*files, **overrides)       # what the documented CPU-recipe command records for these weights
    assert p.get_parsed_content("checkpoint_name") == weights.name
    recorded = {k: v for k, v in p.get_parsed_content("weights_sidecar").items() if k != "training_record"}
    assert {k: info[k] for k in recorded} == recorded
    assert info["validation"]["metric"] == p.get_parsed_content("validate#best_model").tracker.metric_name


def test_shipped_sidecars_tell_the_students_from_the_teacher():
    for name in ("student", "student_kd_soft"):
        with pytest.raises(RuntimeError, match="size mismatch|Missing key|Unexpected key"):
            build_instance_network("teacher").load_state_dict(torch.load(SHIPPED / f"{name}.pt", weights_only=True))
    with pytest.raises(RuntimeError, match="size mismatch|Missing key|Unexpected key"):   # the thin one differs too
        build_instance_network("student_thin").load_state_dict(torch.load(SHIPPED / "student.pt", weights_only=True))
