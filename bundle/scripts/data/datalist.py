"""Turn a user's data into the image/label lists the bundle configs consume.

Entry point for configs: :func:`load_datalist` (exactly one of ``dataset_dir`` / ``datalist``), e.g.::

    "datalist": "$scripts.data.datalist.load_datalist(dataset_dir=@dataset_dir, fold=@fold)",
    "train_items": "$@datalist['training']",

Inputs supported:

* a Decathlon / nnU-Net folder (``imagesTr/``, ``labelsTr/``, optional ``imagesTs/``, ``labelsTs/``,
  optional ``dataset.json``); nnU-Net's ``_0000`` channel suffix is handled
  (``imagesTr/case_0000.nii.gz`` <-> ``labelsTr/case.nii.gz``);
* a MONAI datalist JSON (keys ``training`` / ``validation`` / ``testing`` (or ``test``); relative paths are
  resolved against ``base_dir`` or the JSON's folder), read with ``monai.data.load_decathlon_datalist``.

Every entry is ``{"image": abs_path, "label": abs_path}`` (no label in ``testing`` unless ``labelsTs/`` has
one); entries may carry an optional ``"label_map"`` (``"verse"``, ``"totalseg"`` or a dict, see
:mod:`scripts.data.label_maps`) which is passed through for :class:`scripts.data.transforms.RemapLabelsd`.

An ``image`` may be a folder holding one DICOM series. ``LoadImaged`` reads both NIfTI files and DICOM folders
with ``reader=READERS`` (``["PydicomReader", "NibabelReader"]``: NibabelReader is tried first, a folder falls
through to PydicomReader), or with ``reader=None`` (MONAI's default reader chain also ends in PydicomReader).

CLI::

    python -m scripts.data.datalist make --dataset_dir X --out datalist.json [--fold 0] [--n_folds 5]
"""
from __future__ import annotations

import functools
import json
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

from monai.data import load_decathlon_datalist, partition_dataset

__all__ = [
    "READERS",
    "IMAGE_SUFFIXES",
    "is_dicom_series",
    "image_reader_for",
    "load_image",
    "case_id",
    "list_images",
    "from_decathlon_dir",
    "from_datalist_json",
    "read_json",
    "kfold_split",
    "load_datalist",
    "make",
]

#: ``reader`` argument for ``LoadImaged`` that reads NIfTI files and DICOM series folders alike.
READERS: list[str] = ["PydicomReader", "NibabelReader"]
#: File endings recognised as images/labels when scanning a folder (besides DICOM series folders).
IMAGE_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii")
_CHANNEL_RE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


# ----------------------------------------------------------------------------------------------- DICOM / readers
def is_dicom_series(path: str | os.PathLike) -> bool:
    """True if ``path`` is a folder that directly contains at least one DICOM file (``pydicom.misc.is_dicom``)."""
    from pydicom.misc import is_dicom

    p = Path(path)
    if not p.is_dir():
        return False
    for f in sorted(p.iterdir()):
        if f.is_file() and not f.name.startswith(".") and is_dicom(str(f)):
            return True
    return False


def image_reader_for(path: str | os.PathLike) -> str:
    """Name of the MONAI reader for ``path``: ``"PydicomReader"`` for a DICOM folder / ``.dcm`` file,
    else ``"NibabelReader"``."""
    p = str(path)
    if is_dicom_series(p) or p.lower().endswith(".dcm"):
        return "PydicomReader"
    return "NibabelReader"


@functools.lru_cache(maxsize=4)
def _loader(reader: str, dtype):
    from monai.transforms import LoadImage

    with warnings.catch_warnings():  # MONAI registers its GPU DICOM reader by default and warns when it's absent
        warnings.filterwarnings("ignore", message=".*nvImageCodec.*")
        return LoadImage(reader=reader, image_only=True, dtype=dtype)


def load_image(path: str | os.PathLike, dtype=None):
    """Load a NIfTI file or a DICOM series folder as a MONAI ``MetaTensor`` (no channel dim added; native dtype,
    float32 for DICOM after rescale slope/intercept, unless ``dtype``). ``.affine`` is RAS (PydicomReader converts
    the DICOM LPS affine to RAS)."""
    return _loader(image_reader_for(path), dtype)(str(path))


# ----------------------------------------------------------------------------------------------- folder scanning
def _strip_suffix(name: str) -> str:
    for suf in IMAGE_SUFFIXES:
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return name


def case_id(path: str | os.PathLike) -> str:
    """Case name of an image/label path by nnU-Net naming: file name without extension and without a trailing
    4-digit channel suffix (``case_0000.nii.gz`` -> ``case``). Folder pairing also accepts images whose own stem
    (``patient_2019``) names the label, see :func:`from_decathlon_dir`."""
    stem = _strip_suffix(Path(path).name)
    m = _CHANNEL_RE.match(stem)
    return m.group("case") if m else stem


def list_images(folder: Path) -> list[Path]:
    """NIfTI files and DICOM series sub-folders of ``folder``, sorted; hidden files (e.g. MSD's ``._x``) skipped."""
    if not folder.is_dir():
        return []
    out = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if (p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES)) or (p.is_dir() and is_dicom_series(p)):
            out.append(p)
    return out


def _find_label(label_dir: Path, cid: str) -> Path | None:
    for suf in IMAGE_SUFFIXES:
        p = label_dir / f"{cid}{suf}"
        if p.is_file():
            return p
    p = label_dir / cid
    return p if p.is_dir() else None


def _pair_folder(image_dir: Path, label_dir: Path, require_labels: bool) -> list[dict]:
    """Pair ``image_dir`` entries with ``label_dir`` files: ``case_0000`` -> ``case`` (nnU-Net), else same stem."""
    images = list_images(image_dir)
    stems = {_strip_suffix(p.name) for p in images}
    items, seen = [], {}
    for img in images:
        stem = _strip_suffix(img.name)
        m = _CHANNEL_RE.match(stem)
        nn_case = m.group("case") if m else None
        lab, cid = None, stem
        if nn_case is not None and (_find_label(label_dir, nn_case) or f"{nn_case}_0000" in stems):
            cid, lab = nn_case, _find_label(label_dir, nn_case)  # nnU-Net naming
            if m.group("channel") != "0000":
                raise ValueError(
                    f"{img}: nnU-Net channel {m.group('channel')} of case {cid!r}: "
                    "only single-channel CT (channel 0000) is supported"
                )
        if lab is None and cid == stem:
            lab = _find_label(label_dir, stem)
        if lab is None and require_labels:
            expected = label_dir / f"{cid}.nii.gz"
            if nn_case is not None and cid == stem:
                expected = f"{label_dir / (nn_case + '.nii.gz')} or {expected}"
            raise FileNotFoundError(f"{img}: no label found for case {cid!r} (expected {expected})")
        if cid in seen:
            raise ValueError(f"{img}: case {cid!r} also has image {seen[cid]}")
        seen[cid] = img
        items.append({"image": str(img)} if lab is None else {"image": str(img), "label": str(lab)})
    return items


def _with_channel_suffix(path: str) -> str:
    """``.../case.nii.gz`` -> ``.../case_0000.nii.gz`` if the given path is missing and the nnU-Net name exists."""
    if os.path.exists(path):
        return path
    p = Path(path)
    stem = _strip_suffix(p.name)
    cand = p.with_name(f"{stem}_0000{p.name[len(stem):]}")
    return str(cand) if cand.exists() else path


def from_decathlon_dir(dataset_dir: str | os.PathLike) -> dict[str, list[dict]]:
    """Read a Decathlon / nnU-Net layout folder.

    If ``dataset.json`` lists ``training`` entries (Decathlon style) it is used (nnU-Net-converted image names
    with ``_0000`` are found when the JSON names ``case.nii.gz``); otherwise (no JSON, or nnU-Net v2's JSON
    without file lists) images and labels are paired by case name. Returns ``{"training": [...],
    "testing": [...]}`` with absolute paths. Raises ``FileNotFoundError`` naming the image whose label is missing.
    """
    root = Path(dataset_dir).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    js = root / "dataset.json"
    meta = read_json(js) if js.is_file() else {}
    if not isinstance(meta, Mapping):
        raise ValueError(f"{js}: dataset.json must be an object, got {type(meta).__name__}")
    if isinstance(meta.get("training"), list) and meta["training"]:
        _check_entries(js, "training", meta["training"])
        training = load_decathlon_datalist(js, True, "training", base_dir=root)
        for it in training:
            it["image"] = _with_channel_suffix(it["image"]) if isinstance(it["image"], str) else it["image"]
            lab = it.get("label")
            if lab is None or (isinstance(lab, str) and not os.path.exists(lab)):
                raise FileNotFoundError(f"{it['image']}: label {lab} listed in {js} does not exist")
    else:
        training = _pair_folder(root / "imagesTr", root / "labelsTr", require_labels=True)
    if not training and not (root / "imagesTr").is_dir():
        raise FileNotFoundError(f"{root}: no imagesTr/ folder and no training list in dataset.json")

    test_key = next((k for k in ("test", "testing") if isinstance(meta.get(k), list) and meta[k]), None)
    if (root / "imagesTs").is_dir() or test_key is None:
        testing = _pair_folder(root / "imagesTs", root / "labelsTs", require_labels=False)
    else:
        testing = _load_list(js, test_key, root, meta[test_key])
        for it in testing:
            it["image"] = _with_channel_suffix(it["image"]) if isinstance(it["image"], str) else it["image"]
    return {"training": training, "testing": testing}


# ----------------------------------------------------------------------------------------------- datalist JSON
def read_json(path: str | os.PathLike):
    """A JSON file's content; broken JSON is a ``ValueError`` naming the file, the line and the column."""
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None


def _shown(entry) -> str:
    text = " ".join(json.dumps(entry, default=str).split())
    return text if len(text) <= 100 else text[:97] + "..."


_ENTRY_FORM = {True: '{"image": ..., "label": ...}', False: '{"image": ...}'}


def _check_entries(path: Path, key: str, raw: list) -> None:
    """Each entry of list ``key`` is an object with ``image`` (and ``label`` in training / validation), or, in a
    test list, a path string; else a ``ValueError`` naming the file and the entry (1-based)."""
    labelled = key in ("training", "validation")
    kinds = set()
    for i, entry in enumerate(raw, start=1):
        where = f"{path}: '{key}' entry {i} {_shown(entry)}"
        if isinstance(entry, str) and not labelled:
            kinds.add("a path string")
            continue
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where} is not an object like {_ENTRY_FORM[labelled]}")
        kinds.add("an object")
        for field in ("image", "label") if labelled else ("image",):
            if field not in entry:
                raise ValueError(f"{where} has no '{field}' key (keys: {', '.join(map(str, entry)) or 'none'})")
            value = entry[field]
            if not (isinstance(value, str) or (isinstance(value, list) and value and
                                               all(isinstance(v, str) for v in value))):
                raise ValueError(f"{where}: '{field}' must be a path, got {_shown(value)}")
    if len(kinds) > 1:
        raise ValueError(f"{path}: '{key}' mixes path strings and objects; give every entry as {_ENTRY_FORM[False]}")


def _load_list(path: Path, key: str, base_dir: Path, raw: list) -> list[dict]:
    """One list (``raw``, as read from ``path``) via ``load_decathlon_datalist``; plain-string lists become
    ``{"image": ...}``; a ``label_map`` value is passed through verbatim (MONAI would join it to base_dir if such a
    file existed)."""
    _check_entries(path, key, raw)
    if raw and not isinstance(raw[0], Mapping):
        return [{"image": os.path.normpath(os.path.join(base_dir, os.path.expanduser(str(p))))} for p in raw]
    items = load_decathlon_datalist(path, True, key, base_dir=base_dir)
    for it, r in zip(items, raw):
        if "label_map" in r:
            it["label_map"] = r["label_map"]
    return items


def from_datalist_json(path: str | os.PathLike, base_dir: str | os.PathLike | None = None) -> dict[str, list[dict]]:
    """Read a MONAI datalist JSON -> ``{"training": [...], "validation": [...], "testing": [...]}``
    (keys present in the file only, ``test`` is returned as ``testing``; ``training`` always present).
    Relative paths are resolved against ``base_dir`` or the JSON's folder."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: datalist JSON not found")
    base = Path(base_dir).expanduser().resolve() if base_dir is not None else path.parent
    raw = read_json(path)
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path}: a datalist JSON must be an object with a 'training' list")
    out: dict[str, list[dict]] = {"training": []}
    for key, dst in (("training", "training"), ("validation", "validation"), ("test", "testing"), ("testing", "testing")):
        if key not in raw:
            continue
        if not isinstance(raw[key], list):
            raise ValueError(f"{path}: '{key}' must be a list")
        out[dst] = out.get(dst, []) + (_load_list(path, key, base, raw[key]) if raw[key] else [])
    return out


# ----------------------------------------------------------------------------------------------- folds
def _sort_key(item: Mapping) -> str:
    img = item.get("image", "")
    return str(img[0] if isinstance(img, (list, tuple)) and img else img)


def kfold_split(items: Sequence[dict], n_folds: int = 5, fold: int = 0, seed: int = 0) -> tuple[list, list]:
    """Deterministic k-fold split -> ``(train, val)``.

    Items are sorted by image path (so the split does not depend on input order), shuffled with ``seed`` and
    dealt into ``n_folds`` folds with ``monai.data.partition_dataset``; every case is in exactly one val fold.
    With fewer cases than folds (but at least 2), ``len(items)`` folds are used (leave-one-out, fold index taken
    modulo) and a warning says so. Fewer than 2 cases -> ``ValueError``.
    """
    n_folds, fold = int(n_folds), int(fold)
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    if not 0 <= fold < n_folds:
        raise ValueError(f"fold must be in [0, {n_folds - 1}], got {fold}")
    n = len(items)
    if n < 2:
        raise ValueError(f"cannot split {n} case(s) into train and validation: need at least 2")
    k = n_folds
    if n < n_folds:
        k = n
        warnings.warn(
            f"only {n} cases for {n_folds} folds: using {n} folds (one validation case each); "
            f"fold {fold} -> fold {fold % n}",
            stacklevel=2,
        )
        fold = fold % n
    ordered = sorted(items, key=_sort_key)
    parts = partition_dataset(list(range(n)), num_partitions=k, shuffle=True, seed=seed)
    val_idx = set(parts[fold])
    train = [it for i, it in enumerate(ordered) if i not in val_idx]
    val = [it for i, it in enumerate(ordered) if i in val_idx]
    return train, val


# ----------------------------------------------------------------------------------------------- entry point
def load_datalist(
    dataset_dir: str | os.PathLike | None = None,
    datalist: str | os.PathLike | None = None,
    fold: int = 0,
    n_folds: int | None = 5,
    seed: int = 0,
    base_dir: str | os.PathLike | None = None,
    label_map: str | Mapping | None = None,
) -> dict[str, list[dict]]:
    """The single entry point for configs -> ``{"training", "validation", "testing"}`` lists.

    Exactly one of ``dataset_dir`` (Decathlon / nnU-Net folder) or ``datalist`` (MONAI datalist JSON, relative
    paths against ``base_dir`` or the JSON's folder) must be given. Validation cases:

    * the JSON's ``validation`` list if it has a non-empty one (kept as is, no folding);
    * else training entries with a ``"fold"`` key (MONAI convention): those with ``fold == fold`` are validation;
    * else :func:`kfold_split` (``n_folds=None`` or ``0``: no split, empty validation; a single training case:
      empty validation with a warning).

    ``label_map`` (optional) is set as the ``"label_map"`` of every entry that does not carry its own.
    """
    if (dataset_dir is None) == (datalist is None):
        raise ValueError("give exactly one of dataset_dir= or datalist=")
    if dataset_dir is not None:
        data = from_decathlon_dir(dataset_dir)
    else:
        data = from_datalist_json(datalist, base_dir=base_dir)
    training = list(data.get("training", []))
    validation = list(data.get("validation", []))
    if not validation and training:
        if any("fold" in it for it in training):
            validation = [it for it in training if int(it.get("fold", -1)) == int(fold)]
            training = [it for it in training if int(it.get("fold", -1)) != int(fold)]
        elif n_folds and len(training) >= 2:
            training, validation = kfold_split(training, n_folds=n_folds, fold=fold, seed=seed)
        elif n_folds:
            warnings.warn("only one training case: the validation list is empty", stacklevel=2)
    out = {"training": training, "validation": validation, "testing": list(data.get("testing", []))}
    if label_map is not None:
        for items in out.values():
            for it in items:
                it.setdefault("label_map", label_map)
    return out


def make(
    dataset_dir: str | None = None,
    datalist: str | None = None,
    out: str = "datalist.json",
    fold: int = 0,
    n_folds: int = 5,
    seed: int = 0,
    base_dir: str | None = None,
    label_map: str | None = None,
) -> str:
    """CLI: write the ``load_datalist`` result (absolute paths) to ``out``; returns the output path."""
    data = load_datalist(
        dataset_dir=dataset_dir, datalist=datalist, fold=fold, n_folds=n_folds, seed=seed, base_dir=base_dir,
        label_map=label_map,
    )
    out_path = Path(out).expanduser().resolve()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(data, f, indent=2)
    print(
        f"wrote {out_path}: {len(data['training'])} training, {len(data['validation'])} validation, "
        f"{len(data['testing'])} testing"
    )
    return str(out_path)


if __name__ == "__main__":
    import fire

    fire.Fire({"make": make})
