"""Batches keep going: one bad case in a folder or datalist costs that case, not the run.

``configs/inference.yaml`` key ``on_error``:

* ``skip`` (the default for ``--dataset_dir`` and ``--datalist``): a case that fails the up-front checks is logged in
  one line (``<file>: <problem>``) and left out; a case that passes them but fails while it is loaded, inferred or
  saved is named, its outputs of this attempt are removed, and the run goes on with the next case. At the end every
  failed case is listed (one line each), ``<output_dir>/inference_failures.json`` is written (atomically), and the run
  ends with exit code 2 (``scripts.errors``) and the last line ``<k> of <n> cases failed ...; the list is in ...``.
* ``stop`` (the default for one ``--image``): the first bad case ends the run, as before.

The pieces, all in the config: :class:`CaseFailures` (``case_failures``) collects the failures;
``scripts.data.validation.validate_datalist(on_error=..., report=@case_failures.failed_checks)`` leaves out the cases
that fail the checks; :class:`CaseDataset` turns a loading failure into a marker item instead of an exception;
:meth:`CaseFailures.iteration` is the evaluator's ``iteration_update`` (MONAI's own ``_iteration`` inside a
``try``); :meth:`CaseFailures.finish` is the last item of ``run``.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence

from monai.data import Dataset

from ..atomic_files import atomic_output
from ..errors import CaseFailed, InputError, _case_name, failure_text

__all__ = ["ON_ERROR", "BatchFailed", "CaseDataset", "CaseFailures", "FAILURES_FILE", "on_error_mode"]

logger = logging.getLogger(__name__)

ON_ERROR = ("skip", "stop")
FAILURES_FILE = "inference_failures.json"
#: key of the item :class:`CaseDataset` returns for a case that could not be loaded
FAILED_KEY = "case_failed"


def on_error_mode(value) -> str:
    mode = str(value).strip().lower()
    if mode not in ON_ERROR:
        raise InputError(f"on_error: must be 'skip' or 'stop', got {value!r}")
    return mode


class BatchFailed(InputError):
    """Some cases of a batch failed; ``str()`` lists one line per case, :attr:`summary_line` is the run's last line."""

    def __init__(self, lines: Sequence[str], summary_line: str):
        super().__init__("\n".join([*lines, summary_line]))
        self.summary_line = summary_line


class CaseDataset(Dataset):
    """MONAI ``Dataset`` whose items that fail in the transforms (``LoadImaged`` ... ) become
    ``{"image": <path>, "case_failed": "<problem>"}`` with ``on_error="skip"``; with ``"stop"`` the failure is raised
    as :class:`CaseFailed` naming the file (the engine's batch is not set yet when the loader fails, so the
    evaluator's handlers could not name it)."""

    def __init__(self, data: Sequence, transform=None, on_error: str = "skip"):
        super().__init__(data=data, transform=transform)
        self.on_error = on_error_mode(on_error)

    def _transform(self, index: int):
        try:
            return super()._transform(index)
        except Exception as e:  # noqa: BLE001 - any failure of one case
            item = self.data[index]
            image = str(item.get("image")) if isinstance(item, dict) else str(item)
            problem = f"failed while loading: {failure_text(e)}"
            if self.on_error == "stop":
                raise CaseFailed(f"{image}: {problem}") from e
            return {"image": image, FAILED_KEY: problem}


class CaseFailures:
    """The failed cases of one inference run (``on_error``: ``skip`` or ``stop``, see the module docstring).

    Args:
        on_error: ``skip`` or ``stop``.
        output_dir: where the outputs and ``inference_failures.json`` go.
        output_suffixes: a case's outputs, ``<name><suffix>`` in ``output_dir``; those written by a failed attempt
            are removed.
    """

    def __init__(self, on_error: str = "skip", output_dir: str = ".",
                 output_suffixes: Sequence[str] = ("_seg.nii.gz", "_qc.png")):
        self.on_error = on_error_mode(on_error)
        self.output_dir = str(output_dir)
        self.output_suffixes = tuple(output_suffixes)
        self.failures: list[dict] = []
        self.n_cases = 0          # cases seen: failed checks + every case the evaluator was handed

    @property
    def skip(self) -> bool:
        return self.on_error == "skip"

    def add(self, image: str, message: str, stage: str) -> None:
        """Record one failed case; ``message`` is its line ``"<file>: <problem>"``."""
        self.failures.append({"image": str(image), "stage": stage, "error": message})

    def failed_checks(self, image: str, message: str) -> None:
        """``report`` callback of ``validate_datalist``: a case left out by the up-front checks."""
        self.n_cases += 1
        self.add(image, message, "checks")

    def _outputs(self, image: str) -> list[str]:
        from ..data.sources import output_name

        name = output_name(image)
        return [os.path.join(self.output_dir, name + suffix) for suffix in self.output_suffixes]

    def _remove_new_outputs(self, before: dict[str, float | None]) -> list[str]:
        removed = []
        for path, mtime in before.items():
            if os.path.isfile(path) and (mtime is None or os.path.getmtime(path) != mtime):
                os.remove(path)      # written by the failed attempt: a case has all its outputs or none
                removed.append(path)
        return removed

    def iteration(self, engine, batch):
        """The evaluator's ``iteration_update``: MONAI's ``SupervisedEvaluator._iteration`` (inference and the
        post-processing, which saves), with a failing case recorded and skipped under ``skip``."""
        self.n_cases += 1
        if isinstance(batch, dict) and FAILED_KEY in batch:     # CaseDataset could not load it
            image = batch["image"][0] if isinstance(batch["image"], (list, tuple)) else batch["image"]
            problem = batch[FAILED_KEY][0] if isinstance(batch[FAILED_KEY], (list, tuple)) else batch[FAILED_KEY]
            self._skipped(str(image), f"{image}: {problem}", "loading")
            return None
        if not self.skip:
            return engine._iteration(engine, batch)
        image = _case_name(batch)
        before = {p: (os.path.getmtime(p) if os.path.exists(p) else None) for p in self._outputs(image)}
        try:
            return engine._iteration(engine, batch)
        except Exception as e:  # noqa: BLE001 - one case's failure, whatever it is
            removed = self._remove_new_outputs(before)
            if removed:
                logger.info("removed the outputs of the failed case: %s", ", ".join(removed))
            self._skipped(image, f"{image}: failed during inference: {failure_text(e)}", "inference")
            return None

    def _skipped(self, image: str, message: str, stage: str) -> None:
        logger.error("skipped: %s", message)
        self.add(image, message, stage)

    def finish(self) -> None:
        """Last item of ``run``: nothing failed -> return; else write ``inference_failures.json`` and raise
        :class:`BatchFailed` (exit code 2 through ``scripts.errors.install_error_hook``)."""
        if not self.failures:
            return
        n_failed, n = len(self.failures), max(self.n_cases, len(self.failures))
        path = os.path.join(self.output_dir, FAILURES_FILE)
        record = {"n_cases": n, "n_failed": n_failed, "n_written": n - n_failed, "on_error": self.on_error,
                  "failures": self.failures}
        with atomic_output(path) as tmp:
            with open(tmp, "w") as f:
                json.dump(record, f, indent=2)
                f.write("\n")
        summary = (f"{path}: {n_failed} of {n} cases failed and have no output ({n - n_failed} written to "
                   f"{self.output_dir}); the list above is in this file")
        raise BatchFailed([f["error"] for f in self.failures], summary)
