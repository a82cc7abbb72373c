"""Label contents are checked against the case's label map (issue 15, item 4).

The rule (``scripts.data.label_maps.known_ids``): a label may hold 0 and the ids of its map's convention: "verse"
1..28 (vertebrae, 26 sacrum, 27 coccyx), "totalseg" TotalSegmentator v2's 1..117 (organs map to 0), a dict's keys.
Any other value stops the run with the file, the values and the map's name. A label with no vertebra after mapping
is an error naming the file. A label mask given as the CT gets its own message.
"""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from scripts.data.validation import CaseError, validate_case, validate_datalist

AFFINE = np.diag([1.5, 1.5, 2.0, 1.0])
SHAPE = (16, 14, 10)


def ct(seed=0):
    a = np.random.default_rng(seed).normal(40, 300, size=SHAPE)
    a[0] = -1000
    a[-1, :2] = 1500
    return a.astype(np.int16)


def label(*values):
    lab = np.zeros(SHAPE, np.uint8)
    for i, v in enumerate(values):
        lab[2 + 2 * i:4 + 2 * i, 4:8, 3:7] = v
    return lab


def save(path, arr):
    nib.save(nib.Nifti1Image(arr, AFFINE), str(path))
    return str(path)


@pytest.fixture
def image(tmp_path):
    return save(tmp_path / "ct.nii.gz", ct())


def refused(*args, **kwargs) -> str:
    with pytest.raises(CaseError) as err:
        validate_case(*args, **kwargs)
    assert "\n" not in str(err.value), str(err.value)
    return str(err.value)


def test_values_outside_the_verse_map_name_file_values_and_map(tmp_path, image):
    lab = save(tmp_path / "lab.nii.gz", label(20, 21, 40, 99))
    msg = refused(image, lab)                      # no label_map: "verse", as RemapLabelsd's default
    assert msg.startswith(f"{lab}: label values 40, 99 are outside the 'verse' label map"), msg
    assert validate_case(image, save(tmp_path / "ok.nii.gz", label(20, 21, 26, 28)))["label"]   # 26 sacrum: VerSe's


def test_totalseg_organs_pass_and_ids_above_117_stop(tmp_path, image):
    organs = save(tmp_path / "organs.nii.gz", label(30, 31, 5, 79, 117))   # L1..., liver, cord, costal cartilage
    assert validate_case(image, organs, label_map="totalseg")["label"] == organs
    msg = refused(image, save(tmp_path / "lab.nii.gz", label(30, 118, 200)), label_map="totalseg")
    assert "label values 118, 200 are outside the 'totalseg' label map (its ids 1-117" in msg, msg


def test_a_dict_map_knows_only_its_keys(tmp_path, image):
    lab = save(tmp_path / "lab.nii.gz", label(1, 2, 3))
    msg = refused(image, lab, label_map={"1": 20, "2": 0})
    assert msg.startswith(f"{lab}: label values 3 are outside the label map {{1: 20, 2: 0}}"), msg


@pytest.mark.parametrize("values, label_map", [((), "verse"), ((26, 27), "verse"), ((5, 79), "totalseg")])
def test_a_label_without_vertebra_is_an_error(tmp_path, image, values, label_map):
    lab = save(tmp_path / "lab.nii.gz", label(*values))
    msg = refused(image, lab, label_map=label_map)
    assert msg.startswith(f"{lab}: label has no vertebra under the '{label_map}' label map"), msg


def test_float_and_large_int_labels_are_counted(tmp_path, image):
    lab = save(tmp_path / "f.nii.gz", label(20, 21).astype(np.float32))
    assert validate_case(image, lab)["label"] == lab
    big = label(20).astype(np.int32)
    big[0, 0, 0] = 70000
    assert "label values 70000 are outside" in refused(image, save(tmp_path / "big.nii.gz", big))


def test_a_label_given_as_the_ct_gets_its_own_message(tmp_path):
    mask = save(tmp_path / "mask_as_ct.nii.gz", label(20, 21, 22))
    msg = refused(mask)
    assert msg == (f"{mask}: image looks like a label map, not a CT: 4 distinct values 0, 20, 21, 22; "
                   f"give the CT in Hounsfield units as the image")
    # an intensity-normalised CT keeps its message
    norm = save(tmp_path / "norm.nii.gz", np.random.default_rng(0).random(SHAPE).astype(np.float32))
    assert "intensities look normalised" in refused(norm)


def test_datalist_entries_use_their_own_map_or_the_default(tmp_path, image):
    ts = save(tmp_path / "ts.nii.gz", label(30, 31, 5))
    assert validate_datalist([{"image": image, "label": ts, "label_map": "totalseg"}], progress=False)
    assert validate_datalist([{"image": image, "label": ts}], progress=False, label_map="totalseg")
    with pytest.raises(CaseError, match=r"label values 30, 31 are outside the 'verse' label map"):
        validate_datalist([{"image": image, "label": ts}], progress=False)


def test_train_config_stops_on_an_empty_validation_label(tmp_path, image, bundle_dir):
    """An empty validation label used to score val_mean_dice 0.0, be logged as a new best and save a checkpoint."""
    from monai.bundle import ConfigParser

    good = save(tmp_path / "good.nii.gz", label(20, 21))
    empty = save(tmp_path / "empty.nii.gz", label())
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"training": [{"image": image, "label": good}],
                                    "validation": [{"image": image, "label": empty}]}))
    parser = ConfigParser()
    parser.read_config(str(bundle_dir / "configs" / "train.yaml"))
    parser.update({"bundle_root": str(bundle_dir), "datalist": str(datalist), "output_dir": str(tmp_path / "eval"),
                   "ckpt_dir": str(tmp_path / "models")})
    assert parser.get_parsed_content("train#dataset#data", instantiate=True)
    with pytest.raises(RuntimeError) as err:           # monai's "Failed to instantiate component", from our error
        parser.get_parsed_content("validate#dataset#data", instantiate=True)
    cause = err.value.__cause__
    assert isinstance(cause, CaseError) and f"{empty}: label has no vertebra" in str(cause), repr(cause)


def test_the_real_labels_pass_with_their_maps(real_dir):
    from scripts.data.real_cases import available_cases

    cases = available_cases(real_dir)
    assert cases
    for case in cases:
        validate_case(case.path("image", real_dir), case.path("label", real_dir), label_map=case.label_map)
