"""MONAI Label requests never put code into the bundle's config (issue 15, item 1).

monai.bundle runs a config string that starts with ``$`` as Python, and MONAI Label's BundleTrainTask copies request
values (``max_epochs``, ``device``, ...) into the ``monai.bundle run`` overrides. ``monailabel_app/request_checks.py``
whitelists every /train/ key with a typed value; ``main.py`` uses it in the train and infer tasks and where /train/
is queued. The checks are tested directly, and ``main.py`` is tested over small stand-ins for the monailabel and
fastapi modules (this venv has neither): the stand-in train task builds the overrides as BundleTrainTask does and
resolves them with monai's own ConfigParser, so a value that got through would run.
"""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest
from monai.bundle import ConfigParser

from tests.conftest import BUNDLE, REPO

APP = REPO / "monailabel_app"
sys.path.insert(0, str(APP))
from request_checks import RequestRejected, check_infer_request, check_train_request  # noqa: E402

MODELS = str(BUNDLE / "models")


def payload(marker: Path) -> str:
    return f"$__import__('pathlib').Path('{marker}').touch() or 1"


# ------------------------------------------------------------------------------------------------ the checks
def test_a_slicer_train_request_passes_typed():
    # what 3D Slicer sends back: MONAI Label's own options as the server listed them, and the app's train options
    request = {"model": "spine_ct_segmentation", "device": "cpu", "pretrained": True, "max_epochs": "2",
               "val_split": 0.2, "multi_gpu": True, "gpus": "all", "tracking": "None", "tracking_uri": "",
               "tracking_experiment_name": "", "run_id": "", "model_filename": ["model.pt", "coarse.pt"],
               "patch_size": "96,96,48", "num_samples": "", "learning_rate": "1e-4", "val_interval": 1,
               "client_id": "user-xyz"}
    checked = check_train_request(request, MODELS, devices=["NVIDIA H200:0"])
    assert checked == {"model": "spine_ct_segmentation", "device": "cpu", "pretrained": True, "max_epochs": 2,
                       "val_split": 0.2, "multi_gpu": True, "gpus": "all", "tracking": "", "run_id": "run",
                       "model_filename": "model.pt", "patch_size": [96, 96, 48], "learning_rate": 1e-4,
                       "val_interval": 1, "client_id": "user-xyz"}
    assert check_train_request({"device": "NVIDIA H200:0"}, MODELS, devices=["NVIDIA H200:0"])["device"] == \
        "NVIDIA H200:0"
    assert check_train_request({"device": "cuda:1"}, MODELS)["device"] == "cuda:1"


@pytest.mark.parametrize("key, value, problem", [
    ("max_epochs", "$__import__('os').system('id')", "expected an integer"),
    ("max_epochs", True, "expected an integer"),
    ("device", "$__import__('os').system('id')", "is not a device"),
    ("device", "@train#trainer", "is not a device"),
    ("val_split", "%configs/train.yaml#lr", "expected a number"),
    ("val_split", -0.5, "or -1"),
    ("learning_rate", "nan", "expected a number"),
    ("num_samples", "$1", "expected an integer"),
    ("patch_size", "$[96,96,48]", "expected 3 positive integers"),
    ("patch_size", "96,96", "expected 3 positive integers"),
    ("pretrained", "$True", "expected true or false"),
    ("gpus", "0;rm", "expected \"all\""),
    ("run_id", "initialize", "fixed to 'run'"),
    ("run_id", "$print(1)", "fixed to 'run'"),
    ("model_filename", "../configs/train.yaml", "is not a model file"),
    ("model_filename", "/etc/passwd", "is not a model file"),
    ("model_filename", "missing.pt", "is not a model file"),
    ("tracking", "mlflow", "tracking is not available"),
    ("tracking_uri", "$__import__('os')", "no value may start with"),
    ("model", "@network", "no value may start with"),
    ("train#trainer#max_epochs", 1, "unknown option"),
    ("bundle_root", "/tmp", "unknown option"),
])
def test_train_values_that_are_not_the_typed_option_are_refused(key, value, problem):
    with pytest.raises(RequestRejected) as err:
        check_train_request({"max_epochs": 1, key: value}, MODELS)
    msg = str(err.value)
    assert msg.startswith(f"/train/ {key}: ") and problem in msg and "\n" not in msg, msg


def test_bundle_path_only_the_served_bundle():
    """MONAI Label's AsyncTask adds ``bundle_path`` to the request before the training subprocess checks it again: the
    served bundle passes, any other folder is refused."""
    assert check_train_request({"bundle_path": str(BUNDLE)}, MODELS)["bundle_path"] == str(BUNDLE)
    with pytest.raises(RequestRejected, match="bundle_path: .* is not the served bundle"):
        check_train_request({"bundle_path": "/tmp"}, MODELS)


def test_model_filename_cannot_leave_models_by_a_link(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "model.pt").write_bytes(b"x")
    (tmp_path / "outside.pt").write_bytes(b"x")
    (models / "link.pt").symlink_to(tmp_path / "outside.pt")
    assert check_train_request({"model_filename": "model.pt"}, str(models))["model_filename"] == "model.pt"
    with pytest.raises(RequestRejected, match="points outside"):
        check_train_request({"model_filename": "link.pt"}, str(models))


def test_infer_checks_device_model_file_and_every_string():
    ok = {"model": "spine_ct_segmentation", "image": "spine_a", "device": ["cpu", "cuda"], "label_tag": "original",
          "client_id": "user-xyz", "session": {"image": "/tmp/x.nii.gz"}, "model_filename": "model.pt"}
    assert check_infer_request(ok, MODELS) == {**ok, "device": "cpu"}
    for key, value in [("device", "$__import__('os').system('id')"), ("model_filename", "../../x.pt"),
                       ("label_tag", "@device"), ("session", {"image": "$print(1)"}), ("roi_size", ["%x"])]:
        with pytest.raises(RequestRejected) as err:
            check_infer_request({**ok, key: value}, MODELS)
        assert str(err.value).startswith(f"/infer/ {key}") and "\n" not in str(err.value), str(err.value)


# ------------------------------------------------------------------------------------------------ main.py
class HTTPException(Exception):
    def __init__(self, status_code: int, detail: str = ""):
        super().__init__(f"{status_code}: {detail}")
        self.status_code, self.detail = status_code, detail


class StandInTrainTask:
    """BundleTrainTask's part that matters here: request values copied into the overrides, then resolved by monai."""

    runs: list = []

    def __init__(self, path, conf):
        self.bundle_path, self.conf = path, conf
        self.const = types.SimpleNamespace(model_pytorch=lambda: "model.pt",
                                           key_train_dataset_data=lambda: "train#dataset#data",
                                           key_validate_dataset_data=lambda: "validate#dataset#data")

    def config(self):
        return {"max_epochs": 50}

    def __call__(self, request, datastore):
        overrides = {"train#trainer#max_epochs": request.get("max_epochs", 50), "device": request.get("device", "cpu"),
                     "train#dataset#data": [{"image": "a.nii.gz", "label": "a_seg.nii.gz"}]}
        self._update_overrides(overrides)
        parser = ConfigParser({"train": {"trainer": {"max_epochs": 5}}, "device": "cpu"})
        parser.update({k: v for k, v in overrides.items() if "data" not in k})
        resolved = {k: parser.get_parsed_content(k) for k in overrides if "data" not in k}
        StandInTrainTask.runs.append((request.get("run_id", "run"), resolved))
        return {}

    def _update_overrides(self, overrides):
        return overrides


class StandInInferTask:
    """BundleInferTask's part that matters here: the request's ``device`` goes into the bundle config, resolved."""

    def __init__(self, path, conf, type=""):
        self.bundle_path = path

    def __call__(self, request, callbacks=None):
        parser = ConfigParser({"device": "cpu"})
        parser.update({"device": request.get("device", "cpu")})
        return str(parser.get_parsed_content("device")), {}


class StandInAsyncTask:
    queued: list = []

    @staticmethod
    def run(method, request=None, params=None, force_sync=False, enqueue=False):
        StandInAsyncTask.queued.append((method, {**(request or {}), **(params or {})}))
        return {"id": "task"}, None


class StandInApp:
    def __init__(self, app_dir, studies, conf, name="", description="", version=""):
        self.conf = conf


@pytest.fixture
def main(monkeypatch):
    """monailabel_app/main.py imported over stand-ins for the monailabel and fastapi modules."""
    modules = {
        "fastapi": {"HTTPException": HTTPException},
        "monailabel": {}, "monailabel.interfaces": {}, "monailabel.tasks": {}, "monailabel.tasks.activelearning": {},
        "monailabel.tasks.infer": {}, "monailabel.tasks.train": {}, "monailabel.utils": {},
        "monailabel.utils.async_tasks": {}, "monailabel.utils.others": {},
        "monailabel.interfaces.app": {"MONAILabelApp": StandInApp},
        "monailabel.tasks.activelearning.random": {"Random": object},
        "monailabel.tasks.infer.bundle": {"BundleInferTask": StandInInferTask},
        "monailabel.tasks.train.bundle": {"BundleTrainTask": StandInTrainTask},
        "monailabel.utils.async_tasks.task": {"AsyncTask": StandInAsyncTask},
        "monailabel.utils.others.generic": {"device_list": lambda: ["cpu"]},
    }
    for name, attrs in modules.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(StandInAsyncTask, "run", StandInAsyncTask.run)   # main.py wraps it; undone afterwards
    StandInTrainTask.runs.clear()
    StandInAsyncTask.queued.clear()
    spec = importlib.util.spec_from_file_location("spine_monailabel_main", APP / "main.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_task_refuses_code_in_a_request_and_runs_nothing(main, tmp_path):
    task = main.SpineBundleTrainTask(str(BUNDLE), {})
    for request in ({"max_epochs": payload(tmp_path / "epochs"), "device": "cpu"},
                    {"max_epochs": 1, "device": payload(tmp_path / "device")},
                    {"max_epochs": 1, "run_id": "initialize"},
                    {"max_epochs": 1, "model_filename": "../../../etc/passwd"}):
        with pytest.raises(HTTPException) as err:
            task(request, datastore=None)
        assert err.value.status_code == 422 and err.value.detail.startswith("/train/ "), err.value.detail
        assert "\n" not in err.value.detail
    assert not list(tmp_path.iterdir()), "a request value ran as Python"
    assert StandInTrainTask.runs == []
    task({"max_epochs": "3", "device": "cpu", "patch_size": "64,64,32", "run_id": ""}, datastore=None)
    # overwrite: a /train/ request is the explicit choice to replace the served model (the run-folder check of
    # scripts/checkpoints.py stops every other run that would land on models/model.pt)
    assert StandInTrainTask.runs == [("run", {"train#trainer#max_epochs": 3, "device": "cpu", "patch_size": [64, 64, 32],
                                              "pretrained": str(BUNDLE / "models" / "model.pt"), "overwrite": True})]


def test_infer_task_refuses_code_in_the_device(main, tmp_path):
    task = main.SpineBundleInferTask(str(BUNDLE), {})
    with pytest.raises(HTTPException) as err:
        task({"model": "spine_ct_segmentation", "image": "a", "device": payload(tmp_path / "pwned")})
    assert err.value.status_code == 422 and err.value.detail.startswith("/infer/ device: ")
    assert not (tmp_path / "pwned").exists()
    assert task({"model": "spine_ct_segmentation", "image": "a", "device": "cpu"})[0] == "cpu"


def test_a_bad_train_request_is_refused_when_queued(main, tmp_path):
    """POST /train/<model> queues the task (AsyncTask.run) and replies at once: the refusal must be that reply."""
    main.SpineApp(str(tmp_path), str(tmp_path), {"bundle": str(BUNDLE)})
    queue = sys.modules["monailabel.utils.async_tasks.task"].AsyncTask
    with pytest.raises(HTTPException) as err:
        queue.run("train", request={"model": "spine_ct_segmentation"},
                  params={"max_epochs": 1, "device": payload(tmp_path / "pwned")}, force_sync=False, enqueue=False)
    assert err.value.status_code == 422 and err.value.detail.startswith("/train/ device: ")
    assert StandInAsyncTask.queued == [] and not (tmp_path / "pwned").exists()
    queue.run("train", request={"model": "spine_ct_segmentation"}, params={"max_epochs": 1, "device": "cpu"})
    # the deprecated POST /train/ nests each model's options under its name
    queue.run("train", request={"model": "spine_ct_segmentation", "max_epochs": 1},
              params={"bundle": {"max_epochs": 1}})
    queue.run("scoring", request={}, params={"anything": "$not checked here"})
    assert [m for m, _ in StandInAsyncTask.queued] == ["train", "train", "scoring"]
