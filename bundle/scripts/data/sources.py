"""Where the configs' cases come from: a user's data set, or else the built-in phantom set (generated once, cached)."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from ..flags import as_bool

logger = logging.getLogger(__name__)


def training_data(
    dataset_dir: str | None = None,
    datalist: str | None = None,
    phantom_dir: str = "data/phantom",
    n_phantoms: int = 10,
    n_phantom_tests: int = 4,
    phantom_seed: int = 0,
    fold: int = 0,
    n_folds: int = 5,
    label_map: str | dict | None = "verse",
    phantom_kwargs: dict | None = None,
) -> dict:
    """The ``{"training", "validation", "testing"}`` lists a train/evaluate config reads.

    ``dataset_dir`` (Decathlon/nnU-Net layout) or ``datalist`` (MONAI datalist JSON) select user data; with neither,
    a phantom set of ``n_phantoms`` training and ``n_phantom_tests`` labelled test cases is generated into
    ``phantom_dir`` on first use and reused afterwards. ``label_map`` is the default for cases whose entry names
    none, so every case carries one (a batch mixing cases with and without the key would not collate).
    """
    from .datalist import load_datalist

    if dataset_dir and datalist:
        raise ValueError(f"give either dataset_dir ({dataset_dir}) or datalist ({datalist}), not both")
    if datalist:
        logger.info("data: datalist %s (fold %d of %d)", datalist, fold, n_folds)
        return load_datalist(datalist=datalist, fold=fold, n_folds=n_folds, label_map=label_map)
    if dataset_dir:
        logger.info("data: dataset folder %s (fold %d of %d)", dataset_dir, fold, n_folds)
        return load_datalist(dataset_dir=dataset_dir, fold=fold, n_folds=n_folds, label_map=label_map)
    logger.info("data: no dataset_dir or datalist given, using the built-in phantom set in %s", phantom_dir)
    import torch.distributed as dist

    from .phantom import make_dataset

    # Under torchrun (configs/multi_gpu_train.yaml) rank 0 generates the set while the other ranks wait, then they
    # find it cached: concurrent generators would swap the folder under each other's feet.
    ranks_wait = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    if ranks_wait and dist.get_rank() > 0:
        dist.barrier()
    root = make_dataset(
        str(phantom_dir), n_train=int(n_phantoms), n_test=int(n_phantom_tests), seed=int(phantom_seed),
        **(phantom_kwargs or {}),
    )
    if ranks_wait and dist.get_rank() == 0:
        dist.barrier()
    return load_datalist(dataset_dir=root, fold=fold, n_folds=n_folds, label_map=label_map)


def mixed_training_data(
    weights: dict,
    phantom_dir: str = "data/phantom",
    n_phantoms: int = 10,
    phantom_kwargs: dict | None = None,
    synthesis_dir: str = "data/synth",
    n_synthesis: int = 24,
    synthesis_kwargs: dict | None = None,
    real_dir: str | None = None,
    seed: int = 0,
    workers: int = 1,
) -> dict:
    """The data mix of configs/data_mix.yaml: phantoms, label-map synthesis and the trainable labelled real CTs.

    ``weights`` maps each source (``phantom``, ``synthesis``, ``real``) to its share of the training draws; a source
    with weight 0 is left out (and not generated). Every training entry carries ``"source"`` and ``"weight"``, the
    source's weight divided by its number of cases, for a ``WeightedRandomSampler``. Validation is always the
    development validation case (``real_cases.VALIDATION_CASE``, never trained on); ``testing`` holds the phantom
    test cases when phantoms are in the mix. ``workers`` processes generate the phantom and synthesis cases.
    """
    from .datalist import load_datalist
    from .real_cases import REAL_DIR, VALIDATION_CASE, available_cases, training_entries

    unknown = set(weights) - {"phantom", "synthesis", "real"}
    if unknown or not any(float(w) > 0 for w in weights.values()):
        raise ValueError(f"data mix weights must be positive for some of phantom, synthesis, real; got {weights}")
    root = Path(real_dir) if real_dir else REAL_DIR
    sources: dict[str, list[dict]] = {}
    testing: list[dict] = []
    if float(weights.get("phantom", 0)) > 0:
        from .phantom import make_dataset

        folder = make_dataset(str(phantom_dir), n_train=int(n_phantoms), n_test=4, seed=int(seed),
                              workers=workers, **(phantom_kwargs or {}))
        data = load_datalist(dataset_dir=folder, n_folds=0, label_map="verse")
        sources["phantom"], testing = data["training"], data["testing"]
    if float(weights.get("synthesis", 0)) > 0:
        from .synthesis import make_dataset as make_synthesis

        folder = make_synthesis(str(synthesis_dir), n_cases=int(n_synthesis), seed=int(seed), real_dir=str(root),
                                workers=workers, **(synthesis_kwargs or {}))
        sources["synthesis"] = load_datalist(dataset_dir=folder, n_folds=0, label_map="verse")["training"]
    if float(weights.get("real", 0)) > 0:
        sources["real"] = training_entries(root)
    training = []
    for name, items in sources.items():
        if not items:
            raise ValueError(f"data mix: the '{name}' source has no cases")
        for it in items:
            training.append({"image": it["image"], "label": it["label"], "label_map": it.get("label_map", "verse"),
                             "source": name, "weight": float(weights[name]) / len(items)})
    validation = [c.entry(root) for c in available_cases(root, [VALIDATION_CASE])]
    logger.info("data mix: %s; validation: %s", {k: f"{len(v)} cases, weight {weights[k]}" for k, v in sources.items()},
                [Path(v["image"]).name for v in validation] or "none")
    return {"training": training, "validation": validation, "testing": testing}


def evaluation_cases(data: dict) -> list[dict]:
    """Held-out labelled cases: the testing list when all its cases have labels (the phantom set's do), else the
    validation fold."""
    testing = data.get("testing") or []
    if testing and all("label" in case for case in testing):
        return testing
    return data["validation"]


def inference_inputs(image: str | None = None, datalist: str | None = None, dataset_dir: str | None = None,
                     output_dir: str | None = None, overwrite: bool | str = True, output_postfix: str = "seg",
                     output_ext: str = ".nii.gz") -> list[dict]:
    """The cases an inference run reads: one file or DICOM folder (``image``), the testing list of a datalist JSON,
    or ``dataset_dir/imagesTs`` (falling back to every image directly in ``dataset_dir``).

    Checked up front: no two inputs share an output name (``a/ct.nii.gz`` and ``b/ct.nii.gz`` would both write
    ``ct_seg.nii.gz``); with ``output_dir`` and ``overwrite`` false, no ``<name>_<output_postfix><output_ext>`` is in
    ``output_dir`` already (an earlier run's result)."""
    from .datalist import from_datalist_json, list_images
    from .validation import CaseError

    given = [name for name, value in (("image", image), ("datalist", datalist), ("dataset_dir", dataset_dir)) if value]
    if len(given) != 1:
        raise ValueError(f"inference needs exactly one of --image, --datalist or --dataset_dir (got {given or 'none'})")
    if image:
        if not os.path.exists(image):
            raise CaseError(f"{image}: no such file or folder")
        cases = [{"image": os.path.abspath(image)}]
    elif datalist:
        cases = from_datalist_json(datalist).get("testing") or []
        if not cases:
            raise CaseError(f"{datalist}: the datalist has no 'testing' cases to infer")
        cases = [{"image": case["image"]} for case in cases]
    else:
        folder = Path(dataset_dir) / "imagesTs"
        folder = folder if folder.is_dir() else Path(dataset_dir)
        images = list_images(folder)
        if not images:
            raise CaseError(f"{folder}: no .nii/.nii.gz images or DICOM series found")
        cases = [{"image": str(p.resolve())} for p in images]
    _check_unique_output_names(cases)
    if output_dir:
        check_output_dir(output_dir)
    if output_dir and not as_bool(overwrite, "overwrite"):
        _check_no_earlier_outputs(cases, output_dir, f"_{output_postfix}{output_ext}")
    return cases


def check_output_dir(output_dir: str) -> str:
    """Before any inference: ``output_dir`` is a folder we can write in, or can be created (one-line CaseError)."""
    import tempfile

    from .validation import CaseError

    path = os.path.abspath(str(output_dir))
    probe = path
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise CaseError(f"{output_dir}: {probe} is a file, not a folder; choose another --output_dir")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as e:
        raise CaseError(f"{output_dir}: the output folder is not writable ({e.strerror or e})") from None
    return path


def output_name(image: str) -> str:
    """The name an input's outputs start with, as MONAI's SaveImaged makes it (``create_file_basename``): the file or
    folder name without its extension (``.nii.gz`` counts as one)."""
    name, ext = os.path.splitext(os.path.basename(os.path.normpath(str(image))))
    return os.path.splitext(name)[0] if ext == ".gz" else name


def _check_unique_output_names(cases: list[dict]) -> None:
    from .validation import CaseError

    first: dict[str, str] = {}
    for case in cases:
        name = output_name(case["image"])
        if name in first:
            raise CaseError(f"{case['image']}: same output name '{name}' as {first[name]}, so one result would "
                            f"replace the other; rename one or infer them into separate output folders")
        first[name] = case["image"]


def _check_no_earlier_outputs(cases: list[dict], output_dir: str, suffix: str) -> None:
    from .validation import CaseError

    existing = [os.path.join(output_dir, output_name(c["image"]) + suffix) for c in cases]
    existing = [path for path in existing if os.path.exists(path)]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise CaseError(f"{existing[0]}: exists already{more}, from an earlier run; pass --overwrite true to replace "
                        f"it, or choose another --output_dir")
