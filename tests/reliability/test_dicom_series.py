"""DICOM series with broken geometry stop with one line; DICOM inputs get their QC picture (issue 15, item 8).

Before: MONAI's PydicomReader stacked a series with a missing slice, two slices at one position, or slices of
another orientation into one volume with an averaged slice spacing (the 20-slice series without its 10th slice
loaded as 19 slices of 2.11 mm), and ``SaveQCPngd`` skipped DICOM inputs (it re-read the CT with ``nib.load`` and
needed a file). Now ``scripts.data.dicom_series.check_series`` reads only the headers and names the folder and
the problem, and the QC picture reads a series folder the way ``LoadImaged`` does.
"""
from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
import torch
from monai.data import MetaTensor
from skimage import io as skio

from scripts.data.dicom_series import check_series
from scripts.data.validation import CaseError, validate_case


@pytest.fixture
def series(real_dir, tmp_path):
    folder = tmp_path / "series"
    shutil.copytree(real_dir / "ts_example_ct_dicom" / "dicom", folder)
    return folder


def slices(folder):
    """The files sorted by position along the slice normal (z descends here: -766.5 .. -804.5)."""
    files = sorted(folder.iterdir())
    return sorted(files, key=lambda f: -float(pydicom.dcmread(str(f), stop_before_pixels=True)
                                              .ImagePositionPatient[2]))


def refused(folder, **kwargs) -> str:
    with pytest.raises(CaseError) as err:
        validate_case(str(folder), **kwargs)
    assert "\n" not in str(err.value), str(err.value)
    return str(err.value)


def test_the_intact_series_passes(series):
    geometry = check_series(series)
    assert (geometry.rows, geometry.columns, geometry.n_slices) == (512, 512, 20)
    assert geometry.slice_spacing == pytest.approx(2.0)
    assert validate_case(str(series))["shape"] == (512, 512, 20)


def test_a_missing_slice_is_a_gap(series):
    files = slices(series)
    files[10].unlink()
    msg = refused(series)
    assert msg.startswith(f"{series}: slice gap of 4 mm at z=-788.5..-784.5 mm (after {files[11].name}), "
                          f"expected 2 mm; a slice is missing")


def test_a_duplicate_slice_is_named(series):
    files = slices(series)
    shutil.copy(files[5], series / "copy_of_slice_5")
    msg = refused(series)
    assert msg.startswith(f"{series}: duplicate slice position z=-776.5 mm (")
    assert "copy_of_slice_5" in msg and files[5].name in msg


def rewrite(path, **tags):
    ds = pydicom.dcmread(str(path))
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.save_as(str(path))


def test_a_tilted_slice_is_refused(series):
    files = slices(series)
    rewrite(files[7], ImageOrientationPatient=[1, 0, 0, 0, 0.9, 0.43589])
    msg = refused(series)
    assert msg.startswith(f"{series}: {files[7].name} has orientation [1.0, 0.0, 0.0, 0.0, 0.9, 0.4359], ")
    assert msg.endswith("(ImageOrientationPatient); the slices are not parallel")


def test_another_pixel_spacing_is_refused(series):
    files = slices(series)
    rewrite(files[3], PixelSpacing=[0.8, 0.8])
    assert f"{files[3].name} has pixel spacing 0.8 x 0.8 mm" in refused(series)


def test_the_memory_budget_reads_rows_columns_and_files(series):
    msg = refused(series, max_input_gb=0.05)
    assert msg == (f"{series}: 512x512x20 voxels would need about 0.1 GB to infer (4 bytes x 4 copies per voxel), "
                   f"over the memory budget of 0.05 GB; crop or downsample it, or raise --max_input_gb")


def test_a_dicom_input_gets_its_qc_png(series, tmp_path):
    from scripts.data.datalist import load_image
    from scripts.qc import SaveQCPngd

    ct = load_image(series)                   # the grid LoadImaged gives, which Invertd brings the mask back onto
    mask = torch.zeros((1, *ct.shape), dtype=torch.uint8)
    mask[0, 200:300, 250:330, 4:16] = 1
    pred = MetaTensor(mask, affine=ct.affine, meta={"filename_or_obj": str(series)})
    image = MetaTensor(torch.zeros(1, 8, 8, 8), meta={"filename_or_obj": str(series)})
    out = tmp_path / "out"
    SaveQCPngd(keys=["image", "pred"], output_dir=str(out))({"image": image, "pred": pred})
    png = skio.imread(str(out / "series_qc.png"))
    assert png.ndim == 3 and png.shape[2] == 3
    red = (png[..., 0] > 200) & (png[..., 1] < 80)
    assert red.any() and np.ptp(png[..., 1][~red]) > 50    # the mask's outline over a grey CT


@pytest.mark.slow  # quick tier: > 9 s with one thread beside a 2-thread training
def test_a_bundle_run_on_a_dicom_folder_writes_mask_and_qc_png(real_dir, tmp_path):
    """Through ``monai.bundle run`` (about 12 s on a shared CPU); before, the log said "SaveQCPngd: no QC picture:
    FileNotFoundError" and only dicom_seg.nii.gz was written."""
    import os
    import subprocess
    import sys

    from tests.conftest import BUNDLE

    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "SPINE_DEBUG"}
    proc = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.yaml",
                           "--image", str(real_dir / "ts_example_ct_dicom" / "dicom"), "--output_dir", str(out)],
                          cwd=BUNDLE, env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["dicom_qc.png", "dicom_seg.nii.gz"]
    assert "no QC picture" not in proc.stdout + proc.stderr
    assert skio.imread(str(out / "dicom_qc.png"))[..., 0].max() > 200     # the red overlay is there


def test_a_multi_frame_file_counts_its_frames(series, tmp_path):
    """Enhanced multi-frame DICOM keeps its geometry per frame (functional groups): only its size is read here, and
    the memory budget counts frames, not files."""
    folder = tmp_path / "multi"
    folder.mkdir()
    one = slices(series)[0]
    shutil.copy(one, folder / "frames")
    rewrite(folder / "frames", NumberOfFrames=300)
    geometry = check_series(folder)
    assert (geometry.rows, geometry.columns, geometry.n_slices) == (512, 512, 300)
