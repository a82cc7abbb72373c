"""The documentation against the software it describes.

``bundle/docs/README.md``: its tables are the ones ``tools/docs_tables.py`` makes from the JSON records (so a new
or changed record forces a doc update), it stays within its word limit, every config, script and record path it
names exists, and every ``monai.bundle`` command in it parses against the merged configs (config files, run id and
every ``--key`` override); the inference command also runs for real on a small phantom. The top-level README's
Layout lists every file in ``bundle/configs/`` and only paths that exist.
"""
from __future__ import annotations

import ast
import glob
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import BUNDLE, REPO
from tools import docs_tables

DOC = BUNDLE / "docs" / "README.md"
TOP = REPO / "README.md"
#: counted as ``wc -w`` counts: every whitespace-separated token, tables and code blocks included
MAX_WORDS = 1800
#: arguments of ``monai.bundle run`` itself, not overrides of a config key
RUN_ARGS = {"config_file", "meta_file", "logging_file", "args_file", "tracking", "run_id", "init_id", "final_id"}
#: paths the README may name that must exist: configs, scripts, benchmarks, tools and records (outputs such as
#: models/model.ts or data/phantom/ are made by the commands, so they are not checked)
PATH = re.compile(r"(?<![\w./-])((?:\.\./)?(?:configs|scripts|benchmarks|tools|docs)/[\w./*-]*[\w/*])")
MODULE = re.compile(r"python -m (scripts(?:\.\w+)+)")


# ---- README text ------------------------------------------------------------------------------------------------
def code_lines(text: str) -> list[str]:
    """The lines of the fenced code blocks, with ``\\`` continuations joined."""
    lines = []
    for block in re.findall(r"```[^\n]*\n(.*?)```", text, re.S):
        lines += [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]
    return lines


def strip_comment(line: str) -> str:
    """``line`` without a shell comment: a ``#`` that starts a word outside quotes (``--a#b`` is a config id)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line


def bundle_commands(text: str) -> list[list[str]]:
    """Every ``monai.bundle`` command in ``text``'s code blocks, as its arguments after ``monai.bundle``."""
    commands = []
    for line in code_lines(text):
        tokens = shlex.split(strip_comment(line))
        if "monai.bundle" in tokens:
            commands.append(tokens[tokens.index("monai.bundle") + 1:])
    return commands


def parse_run(args: list[str]) -> tuple[str, list[str], dict[str, str]]:
    """``run [run_id] --config_file X --key value ...`` -> (run id, config files, overrides)."""
    assert args[0] == "run", args
    rest = args[1:]
    run_id = "run"
    if rest and not rest[0].startswith("--"):
        run_id, rest = rest[0], rest[1:]
    options, i = {}, 0
    while i < len(rest):
        assert rest[i].startswith("--"), f"not an option: {rest[i]!r} in {args}"
        key = rest[i][2:]
        has_value = i + 1 < len(rest) and not rest[i + 1].startswith("--")
        options[key] = rest[i + 1] if has_value else "True"
        i += 2 if has_value else 1
    files = options.pop("config_file", None)
    assert files, f"no --config_file in {args}"
    files = ast.literal_eval(files) if files.startswith("[") else [files]
    return options.pop("run_id", run_id), list(files), options


def merged_config(files: list[str]):
    from monai.bundle import ConfigParser

    missing = [f for f in files if not (BUNDLE / f).is_file()]
    assert not missing, f"--config_file names files that do not exist: {missing}"
    parser = ConfigParser()
    parser.read_config([str(BUNDLE / f) for f in files])
    return parser


DOC_COMMANDS = bundle_commands(DOC.read_text())
RUN_COMMANDS = [c for c in DOC_COMMANDS if c[0] == "run"]


# ---- tables -----------------------------------------------------------------------------------------------------
def test_tables_are_made_from_the_records():
    problems = docs_tables.differences(DOC.read_text(), docs_tables.tables())
    assert not problems, "\n".join(problems) + "\n(python tools/docs_tables.py --write rewrites the tables)"


def _copy_records(dst: Path) -> Path:
    for path in (BUNDLE / "docs").glob("*.json"):
        (dst / path.name).write_text(path.read_text())
    return dst


TRAINING_RECORD = {
    "steps": 1200,
    "cpu_hours": 3.46,
    "data_mix": {"phantom": 0.5, "synthesis": 0.5, "real": 0.0},
    "recipe": {"spacing": [2.0, 2.0, 2.0], "patch_size": [64, 64, 64], "batch_size": 1},
    "val_curve": [{"epoch": e, "step": 100 * e, "val_dice": d}
                  for e, d in enumerate([0.41, 0.52, 0.58, 0.71, 0.66, 0.69, 0.70, 0.68, 0.69, 0.70, 0.695, 0.69], 1)],
}


def test_training_record_adds_a_training_table(tmp_path):
    docs = _copy_records(tmp_path)
    (docs / "training_record.json").unlink(missing_ok=True)
    # the README as it would be before any training record: no training block
    text = re.sub(r"<!-- table: training -->.*?<!-- /table -->\n*", "", DOC.read_text(), flags=re.S)
    assert "training" not in docs_tables.tables(docs)
    (docs / "training_record.json").write_text(json.dumps(TRAINING_RECORD))
    made = docs_tables.tables(docs)
    table = made["training"]
    assert "| 1,200 | 3.5 | phantom 0.5, synthesis 0.5, real 0 | spacing 2x2x2, patch_size 64x64x64, batch_size 1 |" \
           " 0.710 (epoch 4, step 400) |" in table
    curve = [row.split(" | ")[0].strip("| ") for row in table.split("\n\n")[1].splitlines()[2:]]
    assert len(curve) == docs_tables.CURVE_ROWS and {"1", "4", "12"} <= set(curve)   # first, best, last
    assert curve == sorted(curve, key=int)
    # a record the README does not show yet fails the check, and --write puts the table into Performance
    assert any(p.startswith("training: a record exists") for p in docs_tables.differences(text, made))
    written = docs_tables.write(text, made)
    assert docs_tables.differences(written, made) == []
    perf, rest = written.split("# Performance\n", 1)[1].split("\n# ", 1)
    assert "<!-- table: training -->" in perf and "<!-- table: training -->" not in rest
    # its data mix has no real share: the real-CT table marks no case as seen in training
    assert [r.rstrip(" |").rsplit("| ", 1)[1] for r in made["real_ct"].splitlines()[2:]] == \
           ["no"] * len(json.loads((docs / "real_ct_shipped.json").read_text())["cases"])


def test_training_table_tolerates_a_sparse_record():
    table = docs_tables.training({"steps": 50})
    assert table.splitlines()[2] == "| 50 | - | - | - | - |"
    assert "\n\n" not in table                      # no curve, no curve table
    short = docs_tables.training({"val_curve": [{"epoch": 1, "val_dice": 0.5}], "data_mix": "phantoms only"})
    assert "| - | - | phantoms only | - | 0.500 (epoch 1, step -) |" in short and "| 1 | - | 0.500 |" in short


def test_throughput_and_recipe_tables():
    """One row per network and recipe with a column per memory format; one row per recipe candidate with its best
    Dice by each CPU-hour budget (a budget it never reached shows as ``-``)."""
    rows = [{"network": "resunet", "recipe": "iso_2mm", "spacing": [2.0] * 3, "patch": [64, 64, 64], "mode": m,
             "s_per_step": t, "data_s_per_batch": 0.4} for m, t in (("channels_first", 7.0), ("channels_last", 6.3))]
    table = docs_tables.train_throughput({"rows": rows}, network=None)
    assert table.splitlines()[0] == "| network | spacing, patch | channels-first s/step | channels-last s/step | data s/batch |"
    assert table.splitlines()[2] == "| `resunet` | 2 mm, 64x64x64 | 7.00 | 6.30 | 0.40 |"
    assert len(docs_tables.train_throughput({"rows": rows}).splitlines()) == 2   # the default network only
    cost = {"settings": {"threads": 2}, "rows": [{"network": "resunet", "params": 10, "cpu_latency_min_s": 1.5}]}
    assert docs_tables.networks(cost, {"rows": rows}).splitlines()[2] == "| `resunet` | 10 | 1.50 | 6.30 | - |"
    record = {"budgets_h": [0.25, 1.0], "candidates": [
        {"recipe": "2 mm", "steps_per_hour": 938, "best_within_h": {"0.25": 0.647, "1.0": None}, "hours_run": 0.64}]}
    assert docs_tables.recipes(record).splitlines()[2] == "| 2 mm | 938 | 0.647 | - | 0.64 |"


def test_shipped_weights_record_matches_the_weights():
    record = json.loads((BUNDLE / "docs" / "shipped_weights.json").read_text())
    for rel, entry in record["weights"].items():
        digest = hashlib.md5((BUNDLE / rel).read_bytes()).hexdigest()
        assert digest == entry["md5"], (f"{rel} is not the file docs/shipped_weights.json describes: new weights "
                                        "need a new record (update or delete it, then its README table)")


# ---- length, paths, commands ------------------------------------------------------------------------------------
def test_word_count():
    words = len(DOC.read_text().split())
    assert words <= MAX_WORDS, f"{DOC.relative_to(REPO)} has {words} words, more than {MAX_WORDS}"


def _exists(path: str) -> bool:
    for base in (BUNDLE, REPO):
        target = str(base / path)
        if glob.glob(target) if "*" in path else os.path.exists(target):
            return True
    return False


def test_every_path_the_readme_names_exists():
    text = DOC.read_text()
    paths = sorted(set(PATH.findall(text)))
    assert len(paths) > 20                                        # the pattern finds the README's paths
    assert not [p for p in paths if not _exists(p)]
    modules = sorted(set(MODULE.findall(text)))
    missing = [m for m in modules if not any((BUNDLE / (m.replace(".", "/") + s)).is_file()
                                             for s in (".py", "/__init__.py", "/__main__.py"))]
    assert not missing


@pytest.mark.parametrize("args", RUN_COMMANDS, ids=[" ".join(c)[:90] for c in RUN_COMMANDS])
def test_run_command_parses(args):
    run_id, files, overrides = parse_run(args)
    parser = merged_config(files)
    assert run_id in parser, f"run id {run_id!r} is not in {files}"
    unknown = [k for k in overrides if k not in RUN_ARGS and k not in parser]
    assert not unknown, f"overrides that are no key of {files}: {unknown}"


@pytest.mark.parametrize("args", [c for c in DOC_COMMANDS if c[0] != "run"], ids=lambda c: " ".join(c)[:90])
def test_other_bundle_command_names_existing_files(args):
    options = dict(zip(args, args[1:]))   # each token with the one after it
    for key in ("--config_file", "--meta_file"):
        if key in options:
            assert (BUNDLE / options[key]).is_file(), f"{options[key]} does not exist"
    if len(args) > 1 and not args[1].startswith("--") and "--config_file" in options:
        assert args[1] in merged_config([options["--config_file"]]), f"{args[1]} is not in {options['--config_file']}"


def test_readme_commands_cover_the_workflows():
    runs = [parse_run(c) for c in RUN_COMMANDS]
    assert any(files == ["configs/inference.yaml"] for _, files, _ in runs)
    assert any(run_id == "training" and files[0] == "configs/train.yaml" for run_id, files, _ in runs)
    assert any("configs/evaluate.yaml" in files for _, files, _ in runs)


@pytest.mark.slow  # a whole-volume inference in a subprocess: about 45 s
def test_inference_command_runs_on_a_small_phantom(tmp_path):
    """The README's first inference command, its --image and --output_dir replaced, with --coarse_to_fine false
    (the paper's whole-volume path: about 45 s with one thread on a loaded 2-core machine)."""
    import nibabel as nib

    from scripts.data.phantom import write_case

    args = next(c for c in RUN_COMMANDS if parse_run(c)[1] == ["configs/inference.yaml"])
    image, out = tmp_path / "phantom.nii.gz", tmp_path / "out"
    write_case(str(image), None, seed=1, size_scale=0.5)
    _, _, options = parse_run(args)
    options.update(image=str(image), output_dir=str(out), coarse_to_fine="false")
    argv = [sys.executable, "-m", "monai.bundle", *args[:args.index("--config_file") + 2]]
    for key, value in options.items():
        argv += [f"--{key}", value]
    env = dict(os.environ, PYTHONPATH=str(BUNDLE), OMP_NUM_THREADS="1")
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=BUNDLE, env=env, capture_output=True, text=True, timeout=600)
    sys.stderr.write(f"\n[docs] README inference command: {time.perf_counter() - start:.0f} s\n")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    seg = nib.load(str(out / "phantom_seg.nii.gz"))
    meta = json.loads((BUNDLE / "configs" / "metadata.json").read_text())
    written = meta["network_data_format"]["post_processed_outputs"]["pred"]
    assert seg.shape == nib.load(str(image)).shape
    assert seg.get_data_dtype() == np.dtype(written["dtype"])
    assert set(np.unique(np.asarray(seg.dataobj)).tolist()) <= {int(k) for k in written["channel_def"]}
    assert (out / "phantom_qc.png").is_file()


# ---- the top-level README's Layout ------------------------------------------------------------------------------
LISTED = re.compile(r"(?<![\w./-])([\w.*+-]+(?:/[\w.*+-]+)*(?:/|\.(?:py|yaml|json|conf|md|txt|pt|sh|csv)))(?![\w/])")


def layout() -> dict[str, set[str]]:
    """The Layout block: each line starting in column 0 names a folder, then paths relative to it; indented lines
    continue the folder above. Returns {folder: the paths listed under it}."""
    text = TOP.read_text()
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```\n(.*?)```", section, re.S)[1]
    listed, folder = {}, None
    for line in block.splitlines():
        if line and not line[0].isspace():
            folder, line = line.split(None, 1)[0], line.split(None, 1)[1] if " " in line else ""
            listed.setdefault(folder, set())
        listed[folder] |= set(LISTED.findall(line))
    return listed


def test_layout_lists_every_config():
    configs = sorted(p.name for p in (BUNDLE / "configs").iterdir() if p.is_file())
    listed = layout()["bundle/configs/"]
    assert not [c for c in configs if c not in listed], "bundle/configs/ files missing from README.md's Layout"


def test_layout_paths_exist():
    listed = layout()
    assert not [f for f in listed if not (REPO / f).is_dir()]
    missing = []
    for folder, paths in listed.items():
        for path in paths:
            target = str(REPO / folder / path)
            if not (glob.glob(target) if "*" in path else os.path.exists(target)):
                missing.append(f"{folder}{path}")
    assert not missing, f"README.md's Layout lists paths that do not exist: {missing}"
