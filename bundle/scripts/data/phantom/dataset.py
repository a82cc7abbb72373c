"""Writing phantoms: one case as NIfTI (``write_case``) and a cached Decathlon/nnU-Net style data set
(``make_dataset``)."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .acquisition import _check_args
from .generator import GENERATOR_VERSION, generate_case
from .tables import LEVEL_NAMES


def _save_nifti(arr, affine, path):
    import nibabel as nib

    img = nib.Nifti1Image(arr, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_data_dtype(arr.dtype)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))


def write_case(out_image: str, out_label: str | None = None, seed: int = 0, **kw) -> dict:
    """Generate a case and write it as NIfTI (.nii.gz, qform+sform set). Returns the metadata (no arrays)."""
    res = generate_case(seed, **kw)
    _save_nifti(res["image"], res["affine"], out_image)
    if out_label:
        _save_nifti(res["label"], res["affine"], out_label)
    meta = {k: v for k, v in res.items() if k not in ("image", "label")}
    meta["affine"] = res["affine"].tolist()
    meta["shape"] = tuple(int(s) for s in res["image"].shape)
    meta["out_image"], meta["out_label"] = str(out_image), (str(out_label) if out_label else None)
    meta["centroids_mm"] = {int(k): list(v) for k, v in res["centroids_mm"].items()}
    return meta


def _jsonable(v):
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v


def _write_task(task: tuple) -> dict:
    image, label, seed, kw = task
    return write_case(image, label, seed, **kw)


def make_dataset(out_dir: str, n_train: int = 8, n_test: int = 2, seed: int = 0, progress: bool = True,
                 workers: int = 1, **kw) -> str:
    """Write a Decathlon/nnU-Net style dataset of phantoms (cached; atomic).

    Layout: imagesTr/phantom_000.nii.gz, labelsTr/..., imagesTs/..., labelsTs/..., dataset.json,
    phantom_params.json. Case i (train first, then test) uses seed + i; `kw` goes to every generate_case.
    If out_dir already holds a complete dataset made with the same arguments, it returns at once. ``workers``
    processes write the cases (the same files; not part of the cache key).
    """
    n_train, n_test, seed = int(n_train), int(n_test), int(seed)
    if n_train < 0 or n_test < 0 or n_train + n_test == 0:
        raise ValueError(f"need n_train >= 0, n_test >= 0 and at least one case, got {n_train}, {n_test}")
    _check_args(kw.get("spacing"), kw.get("shape"), kw.get("orientation"), kw.get("levels"), kw.get("size_scale", 1.0))
    unknown = set(kw) - {"spacing", "shape", "orientation", "levels", "size_scale"}
    if unknown:
        raise ValueError(f"unknown arguments for generate_case: {sorted(unknown)}")
    out = Path(out_dir)
    params = _jsonable({"generator_version": GENERATOR_VERSION, "n_train": n_train, "n_test": n_test, "seed": seed,
                        "kw": {k: kw[k] for k in sorted(kw)}})
    names = [f"phantom_{i:03d}.nii.gz" for i in range(n_train + n_test)]
    rel = ([("imagesTr", "labelsTr", nm) for nm in names[:n_train]]
           + [("imagesTs", "labelsTs", nm) for nm in names[n_train:]])
    pfile = out / "phantom_params.json"
    if _is_cached(out, params, rel):
        return str(out)
    if out.exists() and not pfile.is_file() and any(out.iterdir()):
        raise ValueError(f"{out} exists, is not empty and is not a phantom dataset; refusing to overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        from ..workers import map_cases

        tasks = [(str(tmp / a / nm), str(tmp / b / nm), seed + i, kw) for i, (a, b, nm) in enumerate(rel)]
        cases = []
        for (a, b, nm), meta in zip(rel, map_cases(_write_task, tasks, workers, "phantoms", progress)):
            cases.append({"image": f"./{a}/{nm}", "label": f"./{b}/{nm}", "levels": meta["levels"],
                          "orientation": meta["orientation"], "spacing": meta["spacing"]})
        (tmp / "dataset.json").write_text(json.dumps(_jsonable(_dataset_json(cases, n_train, n_test)), indent=2))
        (tmp / "phantom_params.json").write_text(json.dumps(params, indent=2))
        _swap_in(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return str(out)


def _is_cached(out: Path, params: dict, rel) -> bool:
    """Whether out holds a complete data set made with the same parameters."""
    pfile = out / "phantom_params.json"
    if not pfile.is_file():
        return False
    try:
        old = json.loads(pfile.read_text())
    except (OSError, ValueError):
        return False
    return old == params and (out / "dataset.json").is_file() and all(
        (out / a / nm).is_file() and (out / b / nm).is_file() for a, b, nm in rel)


def _dataset_json(cases: list, n_train: int, n_test: int) -> dict:
    return {
        "name": "SpinePhantom",
        "description": "Synthetic spine CT phantoms (HU) with VerSe vertebra labels",
        "reference": "scripts/data/phantom",
        "licence": "CC0",
        "release": str(GENERATOR_VERSION),
        "tensorImageSize": "3D",
        "modality": {"0": "CT"},
        "labels": {"0": "background", **{str(i + 1): n for i, n in enumerate(LEVEL_NAMES)}},
        "numTraining": n_train,
        "numTest": n_test,
        "training": [{"image": c["image"], "label": c["label"]} for c in cases[:n_train]],
        "test": [{"image": c["image"], "label": c["label"]} for c in cases[n_train:]],
        "cases": cases,
    }


def _swap_in(tmp: Path, out: Path) -> None:
    """Replace out by the finished folder tmp (renames; an old out is removed after the swap)."""
    if out.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, trash / "old")
        os.replace(tmp, out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, out)


def _case_cli(out_image: str, out_label: str | None = None, seed: int = 0, spacing=None, shape=None,
              orientation=None, levels=None, size_scale: float = 1.0) -> None:
    """CLI for write_case: writes the NIfTI files and prints the metadata as JSON."""
    meta = write_case(out_image, out_label, seed, spacing=spacing, shape=shape, orientation=orientation,
                      levels=levels, size_scale=size_scale)
    print(json.dumps(_jsonable(meta), indent=1))
