"""A bad datalist JSON gives one line naming the file and the entry (issue 15, item 10's datalist part).

Before: a wrong entry key gave a bare ``KeyError: 'image'`` (at inference, for a test entry), a string entry a
``TypeError: Every item in items must be a dict but got str.`` and broken JSON a ``JSONDecodeError`` without the file.
"""
from __future__ import annotations

import json

import pytest

from scripts.data.datalist import load_datalist
from scripts.data.sources import inference_inputs


def write(tmp_path, content, name="datalist.json"):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def one_line_error(load, path) -> str:
    with pytest.raises(ValueError) as err:      # not KeyError / TypeError / a bare JSONDecodeError
        load(path)
    msg = str(err.value)
    assert type(err.value) is ValueError and msg.startswith(f"{path}: ") and "\n" not in msg, repr(err.value)
    return msg


LOADERS = {"train": lambda p: load_datalist(datalist=str(p)), "infer": lambda p: inference_inputs(datalist=str(p))}


@pytest.mark.parametrize("use", LOADERS)
def test_a_wrong_entry_key_names_the_entry(tmp_path, use):
    path = write(tmp_path, {"training": [{"image": "a.nii.gz", "label": "a_seg.nii.gz"}],
                            "testing": [{"image": "b.nii.gz"}, {"img": "c.nii.gz"}]})
    msg = one_line_error(LOADERS[use], path)
    assert msg == f"""{path}: 'testing' entry 2 {{"img": "c.nii.gz"}} has no 'image' key (keys: img)"""
    path = write(tmp_path, {"training": [{"image": "a.nii.gz", "lable": "a_seg.nii.gz"}]}, "no_label.json")
    assert "'training' entry 1 " in one_line_error(LOADERS[use], path)
    assert "has no 'label' key (keys: image, lable)" in one_line_error(LOADERS[use], path)


@pytest.mark.parametrize("use", LOADERS)
def test_a_string_entry_is_one_line(tmp_path, use):
    path = write(tmp_path, {"training": [{"image": "a.nii.gz", "label": "a_seg.nii.gz"}, "b.nii.gz"]})
    msg = one_line_error(LOADERS[use], path)
    assert msg == f"""{path}: 'training' entry 2 "b.nii.gz" is not an object like {{"image": ..., "label": ...}}"""
    mixed = write(tmp_path, {"testing": [{"image": "a.nii.gz"}, "b.nii.gz"]}, "mixed.json")
    assert "'testing' mixes path strings and objects" in one_line_error(LOADERS[use], mixed)
    number = write(tmp_path, {"testing": [{"image": 3}]}, "number.json")
    assert "'testing' entry 1 {\"image\": 3}: 'image' must be a path, got 3" in one_line_error(LOADERS[use], number)


def test_a_test_list_of_path_strings_still_works(tmp_path):
    path = write(tmp_path, {"testing": ["a.nii.gz", "sub/b.nii.gz"]})
    assert load_datalist(datalist=str(path))["testing"] == [{"image": str(tmp_path / "a.nii.gz")},
                                                            {"image": str(tmp_path / "sub" / "b.nii.gz")}]


@pytest.mark.parametrize("use", LOADERS)
def test_broken_json_names_the_file_line_and_column(tmp_path, use):
    path = write(tmp_path, '{"training": [\n  {"image": "a.nii.gz", "label": "a_seg.nii.gz"},\n]}\n')
    assert one_line_error(LOADERS[use], path) == f"{path}: not valid JSON: Expecting value at line 3 column 1"


def test_a_broken_dataset_json_names_the_file(tmp_path):
    (tmp_path / "imagesTr").mkdir()
    path = write(tmp_path, '{"name": "spine",\n "training": [}', "dataset.json")
    with pytest.raises(ValueError) as err:
        load_datalist(dataset_dir=str(tmp_path))
    assert str(err.value) == f"{path}: not valid JSON: Expecting value at line 2 column 15"
