"""Release step: zip the bundle as ``<name>_v<version>.zip``, the layout the MONAI model zoo publishes.

    python tools/make_release.py                       # -> dist/spine_ct_segmentation_v<version>.zip
    python tools/make_release.py --out_dir /tmp/rel --large_file_url "https://host/{name}/v{version}/{path}"

The zip holds one top-level ``<name>/`` folder (``monai.bundle.download`` extracts it into ``bundle_dir/<name>``):
every file of ``bundle/`` except outputs and caches (``data/``, ``eval/``, ``runs/``, ``models/quick/``,
``__pycache__/``, ``*.pyc`` and anything git ignores). It adds:

* ``configs/inference.json``, exported from ``configs/inference.yaml``, because ``monai.bundle.load`` only reads
  ``configs/<workflow_type>.json``; with it, ``load(name, workflow_type="inference")`` returns the network with the
  shipped weights instead of a bare state dict.
* ``large_files.yml``: a file over ``max_file_mb`` (the zoo's 25 MB limit) is left out of the zip and listed with its
  ``url`` (``large_file_url`` formatted with ``name``, ``version`` and ``path``), md5 ``hash_val`` and ``hash_type``,
  so ``python -m monai.bundle download_large_files --bundle_path <bundle>`` fetches it.

The version comes from ``configs/metadata.json``; it must have a changelog entry.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

import yaml

ROOT = Path(__file__).resolve().parents[1]
NAME = "spine_ct_segmentation"
MAX_FILE_MB = 25.0
LARGE_FILE_URL = "https://example.invalid/{name}/v{version}/{path}"  # placeholder: where the release hosts them
EXCLUDED_DIRS = ("data", "eval", "runs", "models/quick")
EXCLUDED_PARTS = ("__pycache__", ".pytest_cache", ".ipynb_checkpoints")
JSON_CONFIGS = ("inference",)

if str(ROOT / "bundle") not in sys.path:  # the bundle's ``scripts`` package, as in a bundle run
    sys.path.insert(0, str(ROOT / "bundle"))
from scripts.file_digest import file_md5  # noqa: E402


def release_version(bundle_dir: Path) -> str:
    """``version`` of ``configs/metadata.json``; a one-line ValueError if it is missing or has no changelog entry."""
    meta_file = bundle_dir / "configs" / "metadata.json"
    if not meta_file.is_file():
        raise ValueError(f"{meta_file}: no metadata.json, {bundle_dir} is not a bundle")
    meta = json.loads(meta_file.read_text())
    version = meta.get("version")
    if not version:
        raise ValueError(f"{meta_file}: metadata has no 'version'")
    if version not in meta.get("changelog", {}):
        raise ValueError(f"{meta_file}: changelog has no entry for version {version}")
    return str(version)


def _git_visible(bundle_dir: Path) -> set[str] | None:
    """Bundle-relative paths git tracks or would track (not ignored); None outside a git work tree."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "."],
            cwd=bundle_dir, capture_output=True, check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return {p for p in out.decode().split("\0") if p}


def _excluded(rel: PurePosixPath) -> bool:
    text = rel.as_posix()
    return (
        any(text == d or text.startswith(d + "/") for d in EXCLUDED_DIRS)
        or any(part in EXCLUDED_PARTS for part in rel.parts)
        or rel.suffix == ".pyc"
    )


def bundle_files(bundle_dir: str | os.PathLike) -> list[str]:
    """The bundle-relative POSIX paths that go into a release, sorted."""
    bundle_dir = Path(bundle_dir)
    visible = _git_visible(bundle_dir)
    files = []
    for path in bundle_dir.rglob("*"):
        if not path.is_file():
            continue
        rel = PurePosixPath(path.relative_to(bundle_dir).as_posix())
        if _excluded(rel) or (visible is not None and rel.as_posix() not in visible):
            continue
        files.append(rel.as_posix())
    return sorted(files)


def make_release(
    bundle_dir: str = str(ROOT / "bundle"),
    out_dir: str = str(ROOT / "dist"),
    name: str = NAME,
    max_file_mb: float = MAX_FILE_MB,
    large_file_url: str = LARGE_FILE_URL,
) -> str:
    """Write ``out_dir/<name>_v<version>.zip`` and return its path (see the module docstring)."""
    from monai.bundle import ConfigParser

    bundle = Path(bundle_dir).resolve()
    version = release_version(bundle)
    files = bundle_files(bundle)
    large_file = bundle / "large_files.yml"
    large = yaml.safe_load(large_file.read_text())["large_files"] if large_file.is_file() else []
    limit = float(max_file_mb) * 2**20
    kept = []
    for rel in files:
        path = bundle / rel
        if rel == "large_files.yml":
            continue
        if path.stat().st_size > limit:
            url = large_file_url.format(name=name, version=version, path=rel)
            large = [e for e in large if e.get("path") != rel]
            large.append({"path": rel, "url": url, "hash_val": file_md5(path), "hash_type": "md5"})
        else:
            kept.append(rel)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{name}_v{version}.zip"
    tmp = tempfile.NamedTemporaryFile(dir=out, suffix=".zip.part", delete=False)
    tmp.close()
    try:
        with zipfile.ZipFile(tmp.name, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for rel in kept:
                zf.write(bundle / rel, f"{name}/{rel}")
            for cfg in JSON_CONFIGS:
                src, dst = f"configs/{cfg}.yaml", f"configs/{cfg}.json"
                if src in kept and dst not in kept:
                    config = ConfigParser.load_config_file(bundle / src)
                    zf.writestr(f"{name}/{dst}", json.dumps(config, indent=4) + "\n")
            if large:
                zf.writestr(f"{name}/large_files.yml", yaml.safe_dump({"large_files": large}, sort_keys=False))
        os.replace(tmp.name, target)  # no partial zip under the release name
    finally:
        if os.path.exists(tmp.name):
            os.remove(tmp.name)
    moved = ", ".join(e["path"] for e in large) or "none"
    print(f"{target}: {len(kept)} files, {target.stat().st_size / 2**20:.1f} MB; in large_files.yml: {moved}")
    return str(target)


if __name__ == "__main__":
    import fire

    fire.Fire(make_release)
