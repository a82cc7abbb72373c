"""Errors a person can read: a bad input ends ``monai.bundle run`` with exit code 2 and, as the last line of stderr,
one line that names the file and the problem, without a traceback.

The bundle's own checks raise :class:`InputError` subclasses (``CaseError`` for cases, ``RunFolderError`` for run
folders, ``WeightsError`` for weights) with ``"<path>: <problem>"`` messages. MONAI's config parser wraps them in
``RuntimeError("Failed to instantiate component ...")``; :func:`install_error_hook`, the first item of each
workflow's ``run`` list, replaces Python's ``sys.excepthook`` so that an uncaught exception whose chain holds an
``InputError`` prints that message instead. Any other exception keeps its full traceback, and so does every
exception when debugging is asked for (``--debug true`` or ``SPINE_DEBUG=1``).
"""
from __future__ import annotations

import os
import re
import sys

from ignite.engine import Engine, Events

from .flags import as_bool

EXIT_CODE = 2


class InputError(ValueError):
    """A bad input, setting or folder; the message is ``"<path>: <problem>"`` (more lines may list further cases)."""


class CaseFailed(InputError):
    """A case that passed the input checks but failed while it was processed."""


def input_error_in(exc: BaseException | None) -> InputError | None:
    """The first :class:`InputError` in ``exc``'s chain of causes and contexts."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, InputError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def final_line(error: InputError) -> str:
    """The one line that ends the output: the message, or for a multi-line summary its head and first case (an
    error with a ``summary_line``, a batch's list of failed cases, ends with that line)."""
    if getattr(error, "summary_line", None):
        return error.summary_line
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if len(lines) == 1:
        return lines[0]
    return lines[1] if len(lines) == 2 else f"{lines[0].rstrip(':')}; first: {lines[1]}"   # one case: its own line


def install_error_hook(debug: bool = False) -> bool:
    """Make uncaught input errors end the process with one line and exit code 2; returns whether it is installed
    (false when debugging: tracebacks stay)."""
    if as_bool(debug, "debug") or os.environ.get("SPINE_DEBUG", "").strip() not in ("", "0"):
        return False
    previous = sys.excepthook

    def hook(kind, value, tb):
        error = input_error_in(value)
        if error is None:
            return previous(kind, value, tb)
        lines = [line.rstrip() for line in str(error).strip().splitlines()]
        summary = getattr(error, "summary_line", None)
        for line in (lines[:-1] if summary else lines[1:]):    # a batch: every failed case, then its summary
            print(line, file=sys.stderr)
        print(final_line(error), file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_CODE)   # the exception has unwound every frame already; only the exit code is left to set

    sys.excepthook = hook
    return True


def _case_name(batch) -> str:
    try:
        item = batch[0] if isinstance(batch, (list, tuple)) else batch
        meta = item["image"].meta
        name = meta.get("filename_or_obj")
        return str(name[0] if isinstance(name, (list, tuple)) else name)
    except Exception:
        return "<unknown case>"


_MONAI_WRAPPER = re.compile(r"applying transform <(?:[\w]+\.)*(\w+) object")


def failure_text(e: BaseException) -> str:
    """``"<Type>: <first line>"`` of the innermost cause of ``e``, and the MONAI transform it failed in: MONAI wraps a
    transform's exception in ``RuntimeError("applying transform <monai...Compose object at 0x...>")``, once per
    nesting level, which says neither what failed nor where."""
    where, cause = None, e
    while True:
        wrapper = _MONAI_WRAPPER.match(str(cause))
        if wrapper:
            where = wrapper.group(1)
        if cause.__cause__ is None or not wrapper:
            break
        cause = cause.__cause__
    first = " ".join((str(cause).strip().splitlines() or [""])[0].split())[:300]
    return f"{type(cause).__name__}: {first}" + (f" (in {where})" if where and where != "Compose" else "")


class NameFailingCase:
    """Evaluator handler: an exception while a case is processed (after it passed the checks) is raised again as
    :class:`CaseFailed` naming that case's file, e.g. ``ct.nii.gz: failed during inference: ValueError: ...``."""

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EXCEPTION_RAISED, self)

    def __call__(self, engine: Engine, e: BaseException) -> None:
        if isinstance(e, InputError):
            raise e
        raise CaseFailed(f"{_case_name(engine.state.batch)}: failed during inference: {failure_text(e)}") from e
