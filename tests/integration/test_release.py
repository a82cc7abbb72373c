"""The release step (tools/make_release.py) and its zip, fetched the way users get a zoo bundle: offline, through
`monai.bundle.download` from a file:// URL, then `monai.bundle.load` and `download_large_files`."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.conftest import BUNDLE, REPO

NAME = "spine_ct_segmentation"
VERSION = json.loads((BUNDLE / "configs" / "metadata.json").read_text())["version"]
SHIPPED = BUNDLE / "models" / "model.pt"
# git-ignored outputs and caches that must stay out of a release
PROBES = ("eval/release_probe.txt", "models/quick/release_probe.pt", "scripts/__pycache__/release_probe.pyc",
          "data/release_probe.nii.gz")


def run(args: list[str], cwd: Path, **env) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=dict(os.environ, **env), capture_output=True,
                          text=True, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-4000:]}")
    return proc


def make_release(out_dir: Path, *extra: str) -> Path:
    """The release command as documented in the README."""
    run(["tools/make_release.py", "--out_dir", str(out_dir), *extra], cwd=REPO)
    (zip_path,) = out_dir.glob("*.zip")
    return zip_path


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def probes():
    created = []  # files and folders this fixture made, removed afterwards in reverse order
    for rel in PROBES:
        path = BUNDLE / rel
        missing = [p for p in reversed(path.relative_to(BUNDLE).parents) if not (BUNDLE / p).exists()]
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            created += [BUNDLE / p for p in missing] + [path]
            path.write_text("not for release")
    yield
    for path in reversed(created):
        path.unlink() if path.is_file() else path.rmdir()


@pytest.fixture(scope="module")
def release_zip(tmp_path_factory, probes) -> Path:
    return make_release(tmp_path_factory.mktemp("release"))


def test_release_zip_holds_the_bundle_under_one_folder(release_zip):
    from monai.bundle import ConfigParser

    assert release_zip.name == f"{NAME}_v{VERSION}.zip"
    with zipfile.ZipFile(release_zip) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        inference_json = json.loads(zf.read(f"{NAME}/configs/inference.json"))
    assert all(name.startswith(f"{NAME}/") for name in infos)
    names = {name[len(NAME) + 1:] for name in infos}
    assert {"LICENSE", "configs/metadata.json", "configs/inference.yaml", "configs/train.yaml", "configs/logging.conf",
            "models/model.pt", "docs/README.md", "scripts/__init__.py", "scripts/networks/__init__.py"} <= names
    assert not names & set(PROBES)
    assert not [n for n in names if n.split("/")[0] in ("data", "eval", "runs") or "__pycache__" in n]
    assert "large_files.yml" not in names  # the 6.6 MB weights are under the zoo's 25 MB limit
    assert max(i.file_size for i in infos.values()) <= 25 * 2**20
    assert infos[f"{NAME}/models/model.pt"].file_size == SHIPPED.stat().st_size
    assert inference_json == ConfigParser.load_config_file(BUNDLE / "configs" / "inference.yaml")


# load() runs in a fresh interpreter, from an empty folder, with only the downloaded bundle on PYTHONPATH (as for
# any scripts-module bundle): `scripts` must come from the zip, not from this repository.
LOAD_SCRIPT = """
import json, sys, torch
from monai.bundle import load
bundle_dir, shipped = sys.argv[1:]
net = load(name="{name}", bundle_dir=bundle_dir, workflow_type="inference", device="cpu")
import scripts
ref = torch.load(shipped, map_location="cpu", weights_only=True)
state = net.state_dict()
with torch.no_grad():
    shape = list(net.eval()(torch.zeros(1, 1, 32, 32, 32)).shape)
print("RESULT " + json.dumps({{
    "type": type(net).__name__, "scripts": scripts.__file__, "shape": shape,
    "same_keys": sorted(state) == sorted(ref), "equal": all(torch.equal(state[k], ref[k]) for k in ref),
}}))
""".format(name=NAME)


def test_downloaded_release_loads_the_shipped_network(release_zip, tmp_path):
    from monai.bundle import download

    bundles, cwd = tmp_path / "bundles", tmp_path / "cwd"
    cwd.mkdir()
    download(name=NAME, bundle_dir=str(bundles), url=release_zip.as_uri())
    assert (bundles / NAME / "configs" / "inference.json").is_file()
    proc = run(["-c", LOAD_SCRIPT, str(bundles), str(SHIPPED)], cwd=cwd,
               PYTHONPATH=str(bundles / NAME), OMP_NUM_THREADS="1")
    result = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert result["scripts"] == str(bundles / NAME / "scripts" / "__init__.py")
    assert result["type"] == "SpineContextResUNet"
    assert result["same_keys"] and result["equal"]
    assert result["shape"] == [1, 1, 32, 32, 32]


def test_files_over_the_size_limit_go_to_large_files_yml(tmp_path, probes):
    from monai.bundle import download

    # a 1 MB limit moves the 6.6 MB weights out of the zip; their "host" is the repository file itself
    url = "file://" + str(BUNDLE) + "/{path}"
    zip_path = make_release(tmp_path / "release", "--max_file_mb", "1", "--large_file_url", url)
    with zipfile.ZipFile(zip_path) as zf:
        names = set(zf.namelist())
        large = yaml.safe_load(zf.read(f"{NAME}/large_files.yml"))["large_files"]
    by_path = {entry["path"]: entry for entry in large}
    assert by_path["models/model.pt"] == {"path": "models/model.pt", "url": SHIPPED.as_uri(), "hash_val": md5(SHIPPED),
                                          "hash_type": "md5"}
    for path in by_path:                                  # every file over the limit, and only those, left the zip
        assert (BUNDLE / path).stat().st_size > 1024 * 1024 and f"{NAME}/{path}" not in names
    assert all(os.path.getsize(BUNDLE / n.split("/", 1)[1]) <= 1024 * 1024 for n in names
               if not n.endswith("/") and (BUNDLE / n.split("/", 1)[1]).is_file())

    download(name=NAME, bundle_dir=str(tmp_path / "bundles"), url=zip_path.as_uri())
    bundle = tmp_path / "bundles" / NAME
    assert not (bundle / "models" / "model.pt").exists()
    run(["-m", "monai.bundle", "download_large_files", "--bundle_path", str(bundle)], cwd=tmp_path)
    assert md5(bundle / "models" / "model.pt") == md5(SHIPPED)


def test_release_leaves_the_dev_tools_out():
    """Benchmarks and cost measurements are development tools in ``benchmarks/``, outside the bundle: the release's
    file list (the zip's contents) holds none of them, under any folder."""
    from tools.make_release import bundle_files

    files = bundle_files(BUNDLE)
    tools = {p.name for p in (REPO / "benchmarks").glob("*.py") if p.name != "__init__.py"}
    assert {"cost.py", "benchmark_inference.py"} <= tools and "scripts/__init__.py" in files
    assert not [f for f in files if Path(f).name in tools]


def test_release_refuses_a_version_without_changelog_entry(tmp_path):
    from tools.make_release import make_release as release

    bundle = tmp_path / "bundle"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "configs" / "metadata.json").write_text(json.dumps({"version": "9.9.9", "changelog": {"0.1.0": "x"}}))
    with pytest.raises(ValueError, match=r"metadata.json: changelog has no entry for version 9.9.9$"):
        release(bundle_dir=str(bundle), out_dir=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
