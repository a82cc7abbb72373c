"""The performance tables of ``bundle/docs/README.md``, made from the JSON records in ``bundle/docs/``.

Each table lives in the README between ``<!-- table: NAME -->`` and ``<!-- /table -->``; the records are the only
place its figures are written. One function per table turns a record into markdown, :func:`tables` makes every
table whose record exists, and ``tests/test_docs.py`` fails when the README's blocks differ from it, so a new or
changed record forces a doc update:

    python tools/docs_tables.py            # check: lists the blocks that differ or are missing (exit 1 if any)
    python tools/docs_tables.py --write    # rewrite the blocks; a table with no block goes at the end of Performance

Records (all in ``bundle/docs/``): ``cost_cpu.json`` (``benchmarks/cost.py``), ``shipped_weights.json`` (how the shipped
weights were trained and scored), ``real_ct_shipped.json`` (``benchmarks/real_ct.py``), ``data_ablation.json``
(``benchmarks/data_ablation.py``), ``inference_speed.json`` (``benchmarks/benchmark_inference.py``), ``vertebrae_kd.json``
(``benchmarks/vertebrae_kd.py``), ``recipe_curves.json`` (``benchmarks/recipe_curves.py``), ``train_throughput.json``
(``benchmarks/train_throughput.py``) and, when a training run is described, ``training_record.json``.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "bundle" / "docs"
README = DOCS / "README.md"
BLOCK = re.compile(r"<!-- table: (?P<name>[\w-]+) -->\n(?P<body>.*?)\n?<!-- /table -->", re.S)
#: a structure holding at least this share of a prediction is named after its critical share
NAMED_STRUCTURE_SHARE = 0.25
#: rows of the training table's validation curve (evenly spaced, always with the first, best and last point)
CURVE_ROWS = 6


# ---- formatting -----------------------------------------------------------------------------------------------
def _num(value, digits: int = 3) -> str:
    """A number with ``digits`` decimals; ``-`` for a missing value."""
    if value is None:
        return "-"
    return f"{float(value):.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _mix(weights) -> str:
    """``{'phantom': 0.3, 'synthesis': 0.5}`` -> ``phantom 0.3, synthesis 0.5``; a string stays as it is."""
    if isinstance(weights, Mapping):
        return ", ".join(f"{k} {v:g}" if isinstance(v, (int, float)) else f"{k} {v}" for k, v in weights.items())
    return "-" if weights in (None, "") else str(weights)


def _recipe(recipe) -> str:
    """A recipe dict as ``key value`` pairs (lists as ``2x2x2``); a string stays as it is."""
    if not isinstance(recipe, Mapping):
        return "-" if recipe in (None, "") else str(recipe)
    parts = []
    for k, v in recipe.items():
        if isinstance(v, (list, tuple)):
            v = "x".join(f"{x:g}" if isinstance(x, (int, float)) else str(x) for x in v)
        parts.append(f"{k} {v}")
    return ", ".join(parts)


# ---- one function per table -------------------------------------------------------------------------------------
def networks(cost: Mapping, throughput: Mapping | None = None, recipe: str = "iso_2mm") -> str:
    """The selectable networks (``cost_cpu.json``): parameters and the CPU time of one patch (the least disturbed
    of the repeats); with ``throughput`` (``train_throughput.json``), each network's training step at ``recipe``,
    channels-last (as trained) and compiled."""
    threads = cost.get("settings", {}).get("threads")
    steps = {(r["network"], r["mode"]): r.get("s_per_step") for r in (throughput or {}).get("rows", [])
             if r["recipe"] == recipe}
    header = ["network", "parameters", f"CPU s/patch ({threads} threads)"]
    if steps:
        spacing, patch = next((r["spacing"][0], "x".join(map(str, r["patch"])))
                              for r in throughput["rows"] if r["recipe"] == recipe)
        header += [f"train s/step ({spacing:g} mm, {patch})", "compiled"]
    rows = []
    for r in cost["rows"]:
        row = [f"`{r['network']}`", f"{r['params']:,}", _num(r["cpu_latency_min_s"], 2)]
        if steps:
            row += [_num(steps.get((r["network"], m)), 2) for m in ("channels_last", "compile")]
        rows.append(row)
    return _table(header, rows)


def shipped_eval(shipped: Mapping, weights: str = "models/model.pt") -> str:
    """The evaluate mixin's figures for the shipped weights (``shipped_weights.json``)."""
    rows = [(r["cases"], "yes" if r["seen_in_training"] else "no", _num(r["dice"]), _num(r["hd95_mm"], 1),
             _num(r["ari"])) for r in shipped["weights"][weights]["evaluate"]["rows"]]
    return _table(("cases", "seen in training", "Dice", "HD95 mm", "ARI"), rows)


def _critical(case: Mapping) -> str:
    share = case.get("critical_share")
    if share is None:
        return "-"
    text = _num(share)
    structures = case.get("on_structure_voxels") or {}
    pred = case.get("pred_voxels") or 0
    if structures and pred:
        name, voxels = max(structures.items(), key=lambda kv: kv[1])
        if voxels >= NAMED_STRUCTURE_SHARE * pred:
            text += f" ({name.replace('_', ' ')})"
    return text


def real_ct(record: Mapping, trained_on: Sequence[str] | None = None) -> str:
    """The real-CT benchmark (``real_ct_shipped.json``): one row per case; the coarse box's share of the reference
    spine on the fast path; ``seen in training`` when the weights' training cases are known (``trained_on``)."""
    box = any("box_spine_share" in c for c in record["cases"])
    header = ["case", "Dice", "HD95 mm", "recall", "critical"]
    header += ["box: spine"] if box else []
    header += ["seen in training"] if trained_on is not None else []
    rows = []
    for c in record["cases"]:
        row = [c["case"], _num(c["dice"]), _num(c["hd95_mm"], 1), _num(c["recall"]), _critical(c)]
        row += [_num(c.get("box_spine_share"))] if box else []
        row += ["yes" if c["case"] in trained_on else "no"] if trained_on is not None else []
        rows.append(row)
    return _table(header, rows)


def _data_label(row: Mapping) -> str:
    versions = {"phantom": row.get("phantom_generator_version"), "synthesis": row.get("synthesis_generator_version")}
    used = [(k, w) for k, w in row["mix_weights"].items() if w]
    label = " + ".join(f"{k} v{versions[k]}" if versions.get(k) else k for k, _ in used)
    if len(used) > 1:
        label += " (" + "/".join(f"{w:g}" for _, w in used) + ")"
    return label


def data_ablation(rows: Sequence[Mapping]) -> str:
    """The data ablation (``data_ablation.json``): Dice per real case for each training data mix made by the newest
    phantom generator of the record (the rows of earlier generators, which the bundle no longer makes, stay in the
    record)."""
    newest = max((r.get("phantom_generator_version") or 0 for r in rows), default=0)
    rows = [r for r in rows if not r["mix_weights"].get("phantom") or (r.get("phantom_generator_version") or 0) == newest]
    cases = list(rows[0]["benchmark"])
    table = [[_data_label(r), *(_num(r["benchmark"].get(c, {}).get("dice")) for c in cases)] for r in rows]
    return _table(("training data", *cases), table)


def inference_speed(rows: Sequence[Mapping], configs: Sequence[str] = ("paper", "fast")) -> str:
    """The inference benchmark (``inference_speed.json``), one row per volume: wall time, peak memory and Dice of
    the paper's configuration and of the fast path, and the fast path's speed-up in wall time. The record's other
    rows (``nnunet``, ``fast_o25``) stay in the record."""
    paper, fast = configs
    volumes = list(dict.fromkeys(r["volume"] for r in rows))
    by = {(r["volume"], r["config"]): r for r in rows}
    table = []
    for v in volumes:
        p, f = by.get((v, paper)), by.get((v, fast))
        if f is None:
            continue
        get = lambda r, k, d: _num(r[k], d) if r is not None else "-"  # noqa: E731
        speed = f"{p['wall_s'] / f['wall_s']:.1f}x" if p is not None else "-"
        table.append([v, get(p, "wall_s", 1), get(f, "wall_s", 1), speed, get(p, "peak_rss_mib", 0),
                      get(f, "peak_rss_mib", 0), get(p, "dice", 3), get(f, "dice", 3)])
    return _table(("volume", f"{paper} s", f"{fast} s", "speed-up", f"{paper} MiB", f"{fast} MiB", f"{paper} Dice",
                   f"{fast} Dice"), table)


def vertebrae_kd(record: Mapping) -> str:
    """The step 2 networks of the vertebra method (``vertebrae_kd.json``): detection, identification and Dice on
    phantoms and on verse014 (seconds per CT stay in the record)."""
    sets = [s for s in ("phantoms", "verse014") if any(s in r for r in record["rows"])]
    header = ["step 2 network", "params"]
    for s in sets:
        header += [f"{s}: det", "id", "Dice"]
    rows = []
    for r in record["rows"]:
        row = [r["network"], f"{r['params']:,}"]
        for s in sets:
            m = r.get(s) or {}
            row += [_num(m.get("detection"), 2), _num(m.get("identification"), 2), _num(m.get("dice"))]
        rows.append(row)
    return _table(header, rows)


def train_throughput(record: Mapping, network: str | None = "spine_context_resunet") -> str:
    """Training throughput (``train_throughput.json``, ``benchmarks/train_throughput.py``): seconds per optimiser
    step of ``network`` (``None``: every network) at each recipe in each memory format, and the data pipeline's
    seconds per batch. The other networks' steps are a column of :func:`networks`."""
    rows: dict[tuple, dict] = {}
    for r in record["rows"]:
        if network is not None and r["network"] != network:
            continue
        key = (r["network"], r["recipe"])
        rows.setdefault(key, {"patch": "x".join(map(str, r["patch"])), "spacing": r["spacing"][0]})
        rows[key][r["mode"]] = _num(r.get("s_per_step"), 2) if "s_per_step" in r else "-"
        if "data_s_per_batch" in r:
            rows[key]["data"] = _num(r["data_s_per_batch"], 2)
    modes = [m for m in ("channels_first", "channels_last", "compile") if any(m in v for v in rows.values())]
    return _table(("network", "spacing, patch", *[f"{m.replace('_', '-')} s/step" for m in modes],
                   "data s/batch"),
                  [(f"`{n}`", f"{v['spacing']:g} mm, {v['patch']}", *[v.get(m, "-") for m in modes],
                    v.get("data", "-")) for (n, _), v in rows.items()])


def recipes(record: Mapping) -> str:
    """The CPU recipe candidates (``recipe_curves.json``, ``benchmarks/recipe_curves.py``): steps per CPU-hour and
    the best verse014 Dice reached within each budget of CPU-hours."""
    budgets = [str(b) for b in record["budgets_h"]]
    return _table(("recipe (1x2 patches/step)", "steps/h", *[f"by {b} h" for b in budgets], "hours run"),
                  [(c["recipe"], str(c["steps_per_hour"]), *[_num(c["best_within_h"].get(b)) for b in budgets],
                    _num(c["hours_run"], 2)) for c in record["candidates"]])


def _curve_points(curve: Sequence[Mapping], n: int = CURVE_ROWS) -> list[Mapping]:
    """At most ``n`` points of a validation curve: evenly spaced, with the first, the best and the last."""
    if len(curve) <= n:
        return list(curve)
    best = max(range(len(curve)), key=lambda i: curve[i].get("val_dice") or 0.0)
    keep = {0, len(curve) - 1, best}
    for i in range(n):
        if len(keep) >= n:
            break
        keep.add(round(i * (len(curve) - 1) / (n - 1)))
    return [curve[i] for i in sorted(keep)]


def training(record: Mapping) -> str:
    """A training run (``training_record.json``: ``steps``, ``cpu_hours``, ``data_mix``, ``val_curve`` as
    ``[{epoch, step, val_dice}]``, ``recipe``, optionally ``shipped``, else the curve's best): one summary row, then the validation curve (at most
    :data:`CURVE_ROWS` points). Missing fields show as ``-``."""
    curve = [p for p in (record.get("val_curve") or []) if p.get("val_dice") is not None]
    # the weights' own point ("shipped": {epoch, step, val_dice}) when the curve spans runs validated differently
    best = record.get("shipped") or (max(curve, key=lambda p: p["val_dice"]) if curve else None)
    best_text = (f"{best['val_dice']:.3f} (epoch {best.get('epoch', '-')}, step {best.get('step', '-')})"
                 if best else "-")
    steps = record.get("steps")
    summary = _table(("steps", "CPU hours", "data mix", "recipe", "val Dice of the weights"),
                     [(f"{steps:,}" if isinstance(steps, int) else "-", _num(record.get("cpu_hours"), 1),
                       _mix(record.get("data_mix")), _recipe(record.get("recipe")), best_text)])
    if not curve:
        return summary
    points = [(str(p.get("epoch", "-")), str(p.get("step", "-")), _num(p["val_dice"])) for p in _curve_points(curve)]
    return summary + "\n\n" + _table(("epoch", "step", "val Dice"), points)


# ---- all tables, and the README's blocks -----------------------------------------------------------------------
def _load(docs: Path, name: str):
    path = docs / name
    return json.loads(path.read_text()) if path.is_file() else None


def trained_on(docs: Path = DOCS) -> list[str] | None:
    """The real cases the documented weights were trained on: ``training_record.json``'s
    ``real_cases_trained_on``, else its data mix (a real share > 0 trains on every case the real-CT record marks
    ``trained_on_allowed``), else ``shipped_weights.json``'s; ``None`` when no record says."""
    record = _load(docs, "training_record.json")
    if record is not None:
        if "real_cases_trained_on" in record:
            return list(record["real_cases_trained_on"])
        mix = record.get("data_mix")
        real = _load(docs, "real_ct_shipped.json")
        if isinstance(mix, Mapping) and real is not None:
            if not float(mix.get("real") or 0) > 0:
                return []
            return [c["case"] for c in real["cases"] if c.get("trained_on_allowed")]
        return None
    shipped = _load(docs, "shipped_weights.json")
    if shipped is not None:
        return list(shipped["weights"].get("models/model.pt", {}).get("real_cases_trained_on", [])) or None
    return None


def tables(docs: Path = DOCS) -> dict[str, str]:
    """Every table whose record exists in ``docs``, by block name."""
    out = {}
    if (cost := _load(docs, "cost_cpu.json")) is not None:
        out["networks"] = networks(cost, _load(docs, "train_throughput.json"))
    if (shipped := _load(docs, "shipped_weights.json")) is not None and \
            "evaluate" in shipped["weights"].get("models/model.pt", {}):
        out["shipped_eval"] = shipped_eval(shipped)
    if (real := _load(docs, "real_ct_shipped.json")) is not None:
        out["real_ct"] = real_ct(real, trained_on(docs))
    if (record := _load(docs, "training_record.json")) is not None:
        out["training"] = training(record)
    if (recipe_curves := _load(docs, "recipe_curves.json")) is not None:
        out["recipes"] = recipes(recipe_curves)
    if (throughput := _load(docs, "train_throughput.json")) is not None:
        out["train_throughput"] = train_throughput(throughput)
    if (ablation := _load(docs, "data_ablation.json")) is not None:
        out["data_ablation"] = data_ablation(ablation)
    if (speed := _load(docs, "inference_speed.json")) is not None:
        out["inference_speed"] = inference_speed(speed)
    if (kd := _load(docs, "vertebrae_kd.json")) is not None:
        out["vertebrae_kd"] = vertebrae_kd(kd)
    return out


def readme_tables(text: str) -> dict[str, str]:
    """The README's table blocks, by name (their body, stripped)."""
    return {m["name"]: m["body"].strip() for m in BLOCK.finditer(text)}


def differences(text: str, made: Mapping[str, str]) -> list[str]:
    """One line per README block that differs from its record, has no record, or per table with no block."""
    have = readme_tables(text)
    out = [f"{n}: the README's table differs from the record's" for n in made if n in have and have[n] != made[n]]
    out += [f"{n}: a record exists but the README has no <!-- table: {n} --> block" for n in made if n not in have]
    out += [f"{n}: the README has a table block but no record makes it" for n in have if n not in made]
    return out


def write(text: str, made: Mapping[str, str]) -> str:
    """``text`` with every block replaced by its table; tables without a block are added at the end of the
    Performance section (before the next top-level heading). Blocks without a record are left for a person."""
    text = BLOCK.sub(lambda m: (f"<!-- table: {m['name']} -->\n{made[m['name']]}\n<!-- /table -->"
                                if m["name"] in made else m[0]), text)
    missing = [n for n in made if n not in readme_tables(text)]
    if missing:
        added = "".join(f"<!-- table: {n} -->\n{made[n]}\n<!-- /table -->\n\n" for n in missing)
        perf = re.search(r"^# Performance\n", text, re.M)
        nxt = re.search(r"^# ", text[perf.end():], re.M) if perf else None
        at = perf.end() + nxt.start() if nxt else len(text)
        text = text[:at] + added + text[at:]
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the README's table blocks")
    parser.add_argument("--readme", default=str(README))
    parser.add_argument("--docs", default=str(DOCS))
    args = parser.parse_args(argv)
    readme, made = Path(args.readme), tables(Path(args.docs))
    text = readme.read_text()
    if args.write:
        readme.write_text(write(text, made))
        text = readme.read_text()
    problems = differences(text, made)
    for line in problems:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
