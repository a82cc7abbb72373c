"""Teacher vs students (scratch, distilled by soft outputs, distilled by logits), measured in one run.

For every step 2 network it runs the bundle's own evaluation workflow (``train.yaml`` + ``vertebrae_train.yaml``
[+ the CPU recipe ``vertebrae_quick.yaml``] + ``vertebrae_evaluate.yaml``; network, spacing and HU window from the
weights' sidecars) on the held-out phantoms of the recipe's phantom set and on ../shared/data/real/verse014 (read in
place through a datalist JSON written to a temporary folder), then prints one table: parameters, inference seconds
per CT (heatmap + walk + naming, from the workflow's log), detection and identification rates and mean per-vertebra
Dice.

    python benchmarks/vertebrae_kd.py [--quick true] [--shared ../shared] [--out eval/vertebrae_kd]
"""
from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fire

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundle"
MODELS = [  # (row name, network_name, checkpoint name without .pt)
    ("teacher", "teacher", "teacher"),
    ("student (scratch)", "student", "student"),
    ("student KD soft (T=10)", "student", "student_kd_soft"),
    ("student KD logits", "student", "student_kd_logits"),
]
TIME_RE = re.compile(r"two-step inference: (\d+) vertebrae .* in ([0-9.]+) s")


def _evaluate(ckpt_name: str, quick: bool, out: Path, datalist: str | None) -> dict:
    configs = ["configs/train.yaml", "configs/vertebrae_train.yaml"] \
        + (["configs/vertebrae_quick.yaml"] if quick else []) + ["configs/vertebrae_evaluate.yaml"]
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(configs), "--bundle_root", str(BUNDLE),
           "--checkpoint_name", f"{ckpt_name}.pt", "--output_dir", str(out)]
    if datalist:
        cmd += ["--datalist", datalist]
    proc = subprocess.run(cmd, cwd=BUNDLE, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    if proc.returncode:
        raise RuntimeError(f"{ckpt_name}: evaluation failed:\n{log[-3000:]}")
    times = [float(m.group(2)) for m in TIME_RE.finditer(log)]
    with open(out / "vertebrae_metrics.csv") as f:
        rows = list(csv.DictReader(f))
    n = len(rows)
    return {"cases": len(times), "s_per_ct": sum(times) / max(len(times), 1), "vertebrae": n,
            "detection": sum(r["detected"] == "True" for r in rows) / max(n, 1),
            "identification": sum(r["identified"] == "True" for r in rows) / max(n, 1),
            "dice": sum(float(r["dice"]) for r in rows) / max(n, 1)}


def main(quick: bool = True, shared: str = str(REPO.parent / "shared"), out: str = "eval/vertebrae_kd") -> None:
    sys.path.insert(0, str(BUNDLE))
    from scripts.networks.serrador_unet3d import build_instance_network

    verse = Path(shared) / "data" / "real" / "verse014"
    out_dir = (BUNDLE / out).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        dl = Path(tmp) / "verse014.json"
        dl.write_text(json.dumps({"training": [], "testing": [
            {"image": str(verse / "sub-verse014_ct.nii.gz"), "label": str(verse / "sub-verse014_seg-vert_msk.nii.gz")}]}))
        table = []
        t0 = time.time()
        for row, net, ckpt in MODELS:
            params = sum(p.numel() for p in build_instance_network(net).parameters())
            ph = _evaluate(ckpt, quick, out_dir / ckpt / "phantoms", None)
            ve = _evaluate(ckpt, quick, out_dir / ckpt / "verse014", str(dl)) if verse.is_dir() else None
            table.append((row, params, ph, ve))
            print(f"{row}: done ({time.time() - t0:.0f} s)", flush=True)
    head = ("| step 2 network | params | phantoms: s/CT | det | id | Dice | verse014: s/CT | det | id | Dice |\n"
            "|---|---|---|---|---|---|---|---|---|---|")
    print(head)
    for row, params, ph, ve in table:
        v = (f"{ve['s_per_ct']:.1f} | {ve['detection']:.2f} | {ve['identification']:.2f} | {ve['dice']:.3f}"
             if ve else "n/a | | |")
        print(f"| {row} | {params:,} | {ph['s_per_ct']:.1f} | {ph['detection']:.2f} | {ph['identification']:.2f} | "
              f"{ph['dice']:.3f} | {v} |")
    print(f"(phantoms: {table[0][2]['cases']} held-out cases, {table[0][2]['vertebrae']} vertebrae; verse014: "
          f"{table[0][3]['vertebrae'] if table[0][3] else 0} vertebrae; seconds per CT = heatmap + walk + naming)")


if __name__ == "__main__":
    fire.Fire(main)
