"""Validation Dice against CPU-hours for the candidate CPU recipes, from their run records (no training here).

Each candidate is a record of a run on the same data mix (``configs/data_mix.yaml``, default shares) from scratch,
validated on verse014 (never trained on, whole volume): the 2 mm row of ``docs/data_ablation.json`` and the
``record.json`` of a run folder made by ``benchmarks/training_record.py``. The output gives, per candidate, the
curve (step, machine-hours, Dice) and the best Dice reached within each budget of :data:`BUDGETS_H` hours, which
is what ``tools/docs_tables.py`` puts in the docs:

    python benchmarks/recipe_curves.py [--out bundle/docs/recipe_curves.json]
"""
from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "bundle" / "docs"
#: CPU-hour budgets at which the candidates are compared
BUDGETS_H = (0.25, 0.5, 1.0)


def ablation_curve(row: dict) -> list[dict]:
    """A data-ablation row's curve; its epochs are of equal length, so each gets an equal share of its seconds."""
    curve = row["val_curve_verse014"]
    steps_per_epoch = row["steps"] // len(curve)
    hours_per_epoch = row["train_seconds"] / 3600 / len(curve)
    return [{"step": (i + 1) * steps_per_epoch, "hours": round((i + 1) * hours_per_epoch, 4), "val_dice": d}
            for i, d in enumerate(curve)]


def record_curve(record: dict) -> list[dict]:
    return [{"step": p["step"], "hours": p["hours"], "val_dice": p["val_dice"]} for p in record["val_curve"]]


def candidates() -> list[dict]:
    out = []
    ablation = json.loads((DOCS / "data_ablation.json").read_text())
    row = next(r for r in ablation if r["row"] == "phantom_v2_synthesis_real")
    out.append({"recipe": "2 mm, 64^3", "spacing": row["recipe"]["spacing"],
                "patch": row["recipe"]["patch_size"], "source": "docs/data_ablation.json: phantom_v2_synthesis_real",
                "validation_padding": "0 (500 HU)", "curve": ablation_curve(row)})
    run = REPO / "training_runs" / "paper_1mm_mix" / "record.json"
    if run.is_file():
        record = json.loads(run.read_text())
        out.append({"recipe": "1 mm, 128x128x64 (paper)", "spacing": [1.0, 1.0, 1.0],
                    "patch": [128, 128, 64], "source": "training_runs/paper_1mm_mix/record.json",
                    "validation_padding": "edge voxels (replicate)", "curve": record_curve(record)})
    for c in out:
        c["best_within_h"] = {str(b): max((p["val_dice"] for p in c["curve"] if p["hours"] <= b), default=None)
                              for b in BUDGETS_H}
        c["hours_run"] = c["curve"][-1]["hours"] if c["curve"] else 0.0
        c["steps_per_hour"] = round(c["curve"][-1]["step"] / c["hours_run"]) if c["curve"] else None
    return out


def run(out: str = str(DOCS / "recipe_curves.json")) -> dict:
    record = {"validation": "verse014 (never trained on), whole volume, at each recipe's spacing",
              "data_mix": "configs/data_mix.yaml defaults (phantom 0.3, synthesis 0.5, real 0.2), from scratch",
              "hours_means": "machine-hours of the 2-core CPU, shared with other jobs, as the trainer logged them",
              "budgets_h": list(BUDGETS_H), "candidates": candidates()}
    Path(out).write_text(json.dumps(record, indent=1) + "\n")
    for c in record["candidates"]:
        best = ", ".join(f"{b} h: {v:.3f}" if v is not None else f"{b} h: -" for b, v in c["best_within_h"].items())
        print(f"{c['recipe']:<55} {c['steps_per_hour']} steps/h; best verse014 Dice within {best}")
    print(f"written {out}")
    return record


def main(out: str = str(DOCS / "recipe_curves.json")) -> None:
    run(out)


if __name__ == "__main__":
    import fire

    fire.Fire(main)
