"""HU statistics to compare synthetic phantoms with real spine CT.

    python -m scripts.data.realism compare                 # phantom (mean over N cases at 1 mm) vs verse014
    python -m scripts.data.realism compare --n 5 --real_image X.nii.gz --real_label Y.nii.gz
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

_DEFAULT_REAL = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "real" / "verse014"
_DEFAULT_IMAGE = _DEFAULT_REAL / "sub-verse014_ct.nii.gz"
_DEFAULT_LABEL = _DEFAULT_REAL / "sub-verse014_seg-vert_msk.nii.gz"

KEYS = ["label_mean", "label_sd", "label_p5", "label_p25", "label_p50", "label_p75", "label_p95",
        "shell_mean", "shell_sd", "soft_mean", "soft_sd", "fat_frac", "bone_unlabelled_frac"]


def hu_stats(image_hu: np.ndarray, label: np.ndarray, spacing) -> dict:
    """HU statistics of a CT with vertebra labels.

    label_*: voxels with label > 0; shell_*: voxels within 3 mm outside the labels; soft_*: voxels in
    -100..100 HU farther than 10 mm from any label; fat_frac: fraction of all voxels in -150..-50 HU;
    bone_unlabelled_frac: fraction of voxels > 400 HU that are unlabelled (distractor bone).
    """
    img = np.asarray(image_hu, dtype=np.float32)
    lab = np.asarray(label) > 0
    if img.shape != lab.shape:
        raise ValueError(f"image {img.shape} and label {lab.shape} differ in shape")
    sp = tuple(float(s) for s in spacing)[:3]
    out = {}
    v = img[lab]
    if v.size:
        out["label_mean"], out["label_sd"] = float(v.mean()), float(v.std())
        for p, q in zip((5, 25, 50, 75, 95), np.percentile(v, [5, 25, 50, 75, 95])):
            out[f"label_p{p}"] = float(q)
    else:
        out.update({k: float("nan") for k in KEYS[:7]})
    if v.size:
        dist = ndi.distance_transform_edt(~lab, sampling=sp)
        shell = img[(dist > 0) & (dist <= 3.0)]
        soft_m = (dist > 10.0) & (img > -100) & (img < 100)
    else:
        shell = np.zeros(0, np.float32)
        soft_m = (img > -100) & (img < 100)
    soft = img[soft_m]
    out["shell_mean"] = float(shell.mean()) if shell.size else float("nan")
    out["shell_sd"] = float(shell.std()) if shell.size else float("nan")
    out["soft_mean"] = float(soft.mean()) if soft.size else float("nan")
    out["soft_sd"] = float(soft.std()) if soft.size else float("nan")
    out["fat_frac"] = float(((img > -150) & (img < -50)).mean())
    bone = img > 400
    out["bone_unlabelled_frac"] = float((bone & ~lab).sum() / max(bone.sum(), 1))
    out["n_label"] = int(lab.sum())
    return out


def _load(path):
    import nibabel as nib

    im = nib.load(str(path))
    return np.asanyarray(im.dataobj), im.header.get_zooms()[:3]


def compare_table(n: int = 4, seed: int = 0, real_image: str = str(_DEFAULT_IMAGE),
                  real_label: str = str(_DEFAULT_LABEL), spacing: float = 1.0, levels=(20, 24),
                  random_levels: bool = True) -> str:
    """Markdown table: real case vs phantoms (mean over n cases at `spacing` mm isotropic).

    Rows: the real case, phantoms with `levels` (default L1-L5 like verse014), and (random_levels) phantoms
    with random spine ranges. Also prints the mean generation time per case.
    """
    from scripts.data.phantom import generate_case

    rows = []
    img, sp = _load(real_image)
    lab, _ = _load(real_label)
    rows.append((f"real {Path(real_image).name}", hu_stats(img, lab, sp), None))
    settings = [("phantom L%s" % ("-".join(str(x) for x in levels)), levels)] if levels else []
    if random_levels:
        settings.append(("phantom random levels", None))
    for name, lv in settings:
        stats, times = [], []
        for i in range(int(n)):
            t0 = time.perf_counter()
            res = generate_case(int(seed) + i, spacing=(spacing,) * 3, levels=lv)
            times.append(time.perf_counter() - t0)
            stats.append(hu_stats(res["image"], res["label"], res["spacing"]))
        mean = {k: float(np.nanmean([s[k] for s in stats])) for k in KEYS}
        rows.append((f"{name} (n={n}, {spacing:g} mm)", mean, float(np.mean(times))))
    ref = rows[0][1]
    hdr = ["case"] + KEYS + ["s/case"]
    lines = ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    for name, st, t in rows:
        cells = [name] + [f"{st[k]:.3f}" if k.endswith("frac") else f"{st[k]:.0f}" for k in KEYS]
        cells.append("" if t is None else f"{t:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("relative deviation from the real case (phantom/real - 1) for the means/sds:")
    for name, st, _ in rows[1:]:
        dev = {k: st[k] / ref[k] - 1 for k in ("label_mean", "label_sd", "shell_mean", "shell_sd", "soft_sd")}
        lines.append(f"- {name}: " + ", ".join(f"{k} {v:+.0%}" for k, v in dev.items())
                     + f", soft_mean {st['soft_mean'] - ref['soft_mean']:+.0f} HU")
    return "\n".join(lines)


def compare(n: int = 4, seed: int = 0, real_image: str = str(_DEFAULT_IMAGE), real_label: str = str(_DEFAULT_LABEL),
            spacing: float = 1.0, levels=(20, 24), random_levels: bool = True) -> None:
    """Print the markdown table of `compare_table` (CLI entry point)."""
    print(compare_table(n, seed, real_image, real_label, spacing, levels, random_levels))


if __name__ == "__main__":
    import fire

    fire.Fire({"compare": compare})
