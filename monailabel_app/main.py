"""MONAI Label app serving the spine CT segmentation bundle (auto-segmentation + training on the labels you save).

    monailabel start_server --app monailabel_app --studies /data/spine_ct \
        --conf bundle /path/to/bundle --conf zoo_source github --conf sam2 false --host 127.0.0.1 --port 8000

Conf keys (``--conf KEY VALUE``):
    bundle   the bundle folder (configs/, scripts/, models/); default ``<app>/model/spine_ct_segmentation``.
             Training writes the new best checkpoint to ``<bundle>/models/model.pt``: point it at a copy.
    models   the model name shown in the client; default the bundle folder's name.

MONAI Label's bundle tasks read one config each (``configs/inference.yaml`` and ``configs/train.yaml``), labels from
``metadata.json``'s ``channel_def`` (``{"spine": 1}``) and run the run id ``run``. Four things are added here:

* ``pretrained``: MONAI Label adds its own CheckpointLoader only when the bundle's ``train#handlers`` has none; ours
  has one (switched on by the bundle key ``pretrained``), so fine-tuning from ``models/<model_filename>`` is
  requested through that key instead.
* the bundle's case checks (``scripts.data.validation``) on the datastore's image/label lists.
* a few bundle keys as train options (``patch_size``, ``num_samples``, ``learning_rate``, ``val_interval``), empty
  = the bundle's value, so a short CPU run can use small patches. ``max_epochs``, ``val_split`` and ``device`` are
  MONAI Label's own options.
* request checks (``request_checks.py``): MONAI Label copies request values into the bundle's config, where a string
  starting with ``$`` would run as Python. Every /train/ key is whitelisted with a typed value, ``run_id`` is always
  ``run``, ``model_filename`` must be a file in ``models/``; /infer/ checks ``device`` and ``model_filename``. A
  refused request gets HTTP 422 with one line naming the key, before any training is queued.
"""
from __future__ import annotations

import logging
import os
import sys

from fastapi import HTTPException
from monailabel.interfaces.app import MONAILabelApp
from monailabel.tasks.activelearning.random import Random
from monailabel.tasks.infer.bundle import BundleInferTask
from monailabel.tasks.train.bundle import BundleTrainTask
from monailabel.utils.async_tasks.task import AsyncTask
from monailabel.utils.others.generic import device_list

if os.path.dirname(os.path.abspath(__file__)) not in sys.path:   # MONAI Label loads main.py by its file path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from request_checks import BUNDLE_TRAIN_OPTIONS, RequestRejected, check_infer_request, check_train_request  # noqa: E402

logger = logging.getLogger(__name__)

DEFAULT_BUNDLE = "spine_ct_segmentation"
# train options passed to the bundle as config overrides ("" or None = keep the bundle's value)
TRAIN_OPTIONS = {key: "" for key in BUNDLE_TRAIN_OPTIONS}   # patch_size, num_samples, learning_rate, val_interval


def _checked(check, request, bundle_dir: str) -> dict:
    """``check(request, models_dir, devices)``; a refusal becomes HTTP 422 with its one-line message."""
    try:
        return check(request, os.path.join(bundle_dir, "models"), [str(d) for d in device_list()])
    except RequestRejected as err:
        logger.error(str(err))
        raise HTTPException(status_code=422, detail=str(err)) from None


def _check_train_requests_when_queued(bundle_dir: str, model_names) -> None:
    """/train/ replies at once and trains in a background process (``AsyncTask.run``), so the task's own check
    would only fail the task later: check the request where it is queued too, so a refusal is the HTTP reply."""
    run = AsyncTask.run
    if getattr(run, "spine_request_check", False):
        return

    def checked_run(method, request=None, params=None, *args, **kwargs):
        if method == "train":
            # the deprecated POST /train/ nests each model's options under its name (and copies them up as well)
            nested = {k for k, v in (params or {}).items() if k in model_names and isinstance(v, dict)}
            _checked(check_train_request, {**(request or {}), **{k: v for k, v in (params or {}).items()
                                                                 if k not in nested}}, bundle_dir)
        return run(method, request, params, *args, **kwargs)

    checked_run.spine_request_check = True
    AsyncTask.run = staticmethod(checked_run)


class SpineBundleInferTask(BundleInferTask):
    """The bundle's inference config; drops every ``Save*`` post transform (SaveImaged and the bundle's QC PNG writer):
    MONAI Label returns the mask to the client itself."""

    def __call__(self, request, *args, **kwargs):
        return super().__call__(_checked(check_infer_request, request, self.bundle_path), *args, **kwargs)

    def run_pre_transforms(self, data, transforms):
        # MONAI 1.6's Spacingd copies the image's metadata into every "image_*" key of the data dict, including
        # MONAI Label's "image_path" string (AttributeError: 'str' object has no attribute 'update'): hide the
        # string-valued ones while the bundle's transforms run; the writer reads image_path afterwards
        hidden = {k: data.pop(k) for k in [k for k, v in data.items()
                                           if isinstance(k, str) and k.startswith(f"{self.key_image}_")
                                           and isinstance(v, str)]}
        data = super().run_pre_transforms(data, transforms)
        data.update(hidden)
        return data

    def _filter_transforms(self, transforms, filters):
        kept = super()._filter_transforms(transforms, filters)
        if filters and kept:
            kept = [t for t in kept if not type(t).__name__.startswith("Save")]
        return kept


class SpineBundleTrainTask(BundleTrainTask):
    """The bundle's train config, fine-tuning through the bundle's own ``pretrained`` key, with TRAIN_OPTIONS."""

    def config(self):
        return {**super().config(), **TRAIN_OPTIONS}

    def __call__(self, request, datastore):
        self._request = _checked(check_train_request, request, self.bundle_path)   # typed values, run_id "run"
        return super().__call__(self._request, datastore)

    def _update_overrides(self, overrides):
        request = getattr(self, "_request", {})
        checkpoint = os.path.join(self.bundle_path, "models", request.get("model_filename", self.const.model_pytorch()))
        if request.get("pretrained", True) and os.path.exists(checkpoint):
            overrides["pretrained"] = checkpoint
        # a /train/ request is the explicit choice to replace the served models/model.pt (the bundle's run-folder
        # check stops any other run that would land on it); the run still writes it only atomically, at a new best
        overrides["overwrite"] = True
        for key in TRAIN_OPTIONS:
            if key in request:   # checked and typed by check_train_request
                overrides[key] = request[key]
        # the datastore's lists replace the bundle's validated datalists: keep the bundle's case checks (same grid,
        # 3D, HU range, ...; one error naming every bad file) in front of them
        for key in (self.const.key_train_dataset_data(), self.const.key_validate_dataset_data()):
            if overrides.get(key):
                overrides[key] = {"_target_": "scripts.data.validation.validate_datalist", "items": overrides[key],
                                  "progress": False}
        logger.info(f"Bundle overrides: { {k: v for k, v in overrides.items() if 'data' not in k} }")
        return overrides


class SpineApp(MONAILabelApp):
    def __init__(self, app_dir, studies, conf):
        # not `bundle_path`: MONAILabelApp.bundle_path(model) is a method that /train/ calls
        self._bundle_dir = os.path.abspath(conf.get("bundle") or os.path.join(app_dir, "model", DEFAULT_BUNDLE))
        if not os.path.isfile(os.path.join(self._bundle_dir, "configs", "metadata.json")):
            raise FileNotFoundError(f"{self._bundle_dir}: not a bundle (no configs/metadata.json); pass --conf bundle")
        self._model_name = conf.get("models") or os.path.basename(self._bundle_dir)
        _check_train_requests_when_queued(self._bundle_dir, {self._model_name})
        super().__init__(app_dir=app_dir, studies=studies, conf=conf, name="Spine CT segmentation",
                         description="The spine_ct_segmentation MONAI bundle served by MONAI Label", version="0.1")

    def init_infers(self):
        task = SpineBundleInferTask(self._bundle_dir, self.conf, type="segmentation")
        if not task.is_valid():
            raise RuntimeError(f"{self._bundle_dir}: MONAI Label cannot serve this bundle (no configs/inference.yaml "
                               f"or models/model.pt)")
        return {self._model_name: task}

    def init_trainers(self):
        task = SpineBundleTrainTask(self._bundle_dir, self.conf)
        return {self._model_name: task} if task.is_valid() else {}

    def init_strategies(self):
        return {"random": Random()}
