"""Config lint: a fact is written once. The same literal HU window, voxel spacing, patch grid or id list (VerSe ids,
levels) defined in two places of bundle/configs/*.yaml is a copy that can drift; a second workflow must reference
the first (a mixin over it, or the weights' sidecar). Only literal values count: '@id' references and '$'
expressions are the way to reuse one."""
from __future__ import annotations

import collections
import numbers

import pytest
import yaml

from tests.conftest import BUNDLE

CONFIGS = sorted((BUNDLE / "configs").glob("*.yaml"))
SPACING_KEYS = ("spacing", "pixdim")
GRID_KEYS = ("patch_size", "heatmap_shape", "roi_size", "spatial_size")
# Independent choices that happen to coincide, each the recipe of its own workflow: the binary demo (quick.yaml),
# the binary CPU training recipe (cpu_recipe.yaml, which a long resumable run reads, so it stays as it is) and the
# vertebra CPU recipe (vertebrae_quick.yaml) all train at 2 mm. A reference between them would make one recipe's
# change move the others. Listed with their exact places, so that a third copy still fails.
COINCIDENT = {
    ("spacing", (2.0, 2.0, 2.0)): {"cpu_recipe.yaml:spacing", "quick.yaml:spacing", "vertebrae_quick.yaml:spacing"},
}


def _number(value) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def _numbers(value) -> bool:
    return isinstance(value, list) and bool(value) and all(_number(v) for v in value)


def _walk(node, path=()):
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, path + tuple(str(key).split("#")))   # 'train#handlers' = train: {handlers: }
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, path + (str(i),))


def literal_facts(text: str) -> list[tuple[tuple, str]]:
    """``((kind, value), id)`` for every literal HU window, spacing, patch grid and id list in one YAML config."""
    found = []
    for path, value in _walk(yaml.safe_load(text) or {}):
        key = path[-1] if path else ""
        where = "#".join(path)
        if isinstance(value, dict) and _number(value.get("a_min")) and _number(value.get("a_max")):
            found.append((("HU window", float(value["a_min"]), float(value["a_max"])), where))
        if any(k in key for k in SPACING_KEYS) and (_number(value) or _numbers(value)):
            found.append((("spacing", tuple(float(v) for v in (value if isinstance(value, list) else [value]))), where))
        if key.endswith(GRID_KEYS) and _numbers(value):
            found.append((("patch grid", tuple(value)), where))
        if isinstance(value, list) and len(value) >= 4 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                for v in value):
            found.append((("id list", tuple(value)), where))
    return found


def duplicates(files) -> dict[tuple, set[str]]:
    places = collections.defaultdict(set)
    for f in files:
        for fact, where in literal_facts(f.read_text()):
            places[fact].add(f"{f.name}:{where}")
    return {fact: where for fact, where in places.items() if len(where) > 1}


def test_the_lint_sees_literal_copies_and_not_references(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("intensity: {a_min: -1024, a_max: 3071, b_min: -1.0, b_max: 1.0}\nspacing: [1.0, 1.0, 1.0]\n"
                 "levels: [20, 21, 22, 23, 24]\n")
    b.write_text("train#deterministic_transforms:\n  - {_target_: ScaleIntensityRanged, a_min: -1024.0, a_max: 3071}\n"
                 "  - {_target_: Spacingd, pixdim: [1, 1, 1]}\nids: [20, 21, 22, 23, 24]\npatch_size: '@patch_size'\n")
    found = duplicates([a, b])
    assert set(found) == {("HU window", -1024.0, 3071.0), ("spacing", (1.0, 1.0, 1.0)),
                          ("id list", (20, 21, 22, 23, 24))}
    assert found[("HU window", -1024.0, 3071.0)] == {"a.yaml:intensity", "b.yaml:train#deterministic_transforms#0"}
    b.write_text("intensity: \"$@weights_sidecar['intensity']\"\nspacing: '@spacing'\n")
    assert duplicates([a, b]) == {}


def test_no_hu_window_spacing_grid_or_id_list_is_written_twice():
    found = duplicates(CONFIGS)
    unexpected = {fact: where for fact, where in found.items() if COINCIDENT.get(fact) != where}
    assert not unexpected, "written more than once (reference one of them instead):\n" + "\n".join(
        f"  {fact}: {sorted(where)}" for fact, where in unexpected.items())


@pytest.mark.parametrize("fact", sorted(COINCIDENT))
def test_every_listed_coincidence_still_exists(fact):
    assert duplicates(CONFIGS).get(fact) == COINCIDENT[fact], f"{fact}: no longer as listed; update COINCIDENT"
