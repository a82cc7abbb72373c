"""benchmarks/cost.py: MAC counters, sliding-window patch count, energy arithmetic and one real (tiny) measurement."""
import csv
import json

import pytest
from torch import nn

from benchmarks import cost


def test_thop_style_rules_on_a_hand_counted_model():
    model = nn.Sequential(
        nn.Conv3d(2, 4, 3, padding=1),  # 4*8^3 outputs x 2 in x 27 = 110,592 (bias not counted, as in thop)
        nn.BatchNorm3d(4),  # 2 x 2048 inputs x 2 (affine) = 8,192
        nn.LeakyReLU(),  # 0
        nn.GroupNorm(2, 4),  # 0 (not in thop's table)
        nn.AvgPool3d(2),  # 4*4^3 outputs = 256
        nn.ConvTranspose3d(4, 2, 2, stride=2),  # 2*8^3 outputs x 4 in x 8 = 32,768
    )
    assert cost.thop_style_macs(model, (1, 2, 8, 8, 8)) == 110_592 + 8_192 + 256 + 32_768
    # conv + matmul only: conv 4*512*2*27 and transposed conv 4*64 inputs x 2 out x 8
    assert cost.matmul_macs(nn.Sequential(model[0], model[4], model[5]), (1, 2, 8, 8, 8)) == 110_592 + 4 * 64 * 16


def test_sliding_window_patch_count():
    # 300 x 300 x 400 voxels, 128 x 128 x 64 windows at overlap 0.5 (steps 64, 64, 32): 4 x 4 x 12
    assert cost.sliding_window_patches((300, 300, 400), (128, 128, 64), 0.5) == 192
    assert cost.sliding_window_patches((96, 96, 96), (96, 96, 96), 0.5) == 1
    assert cost.sliding_window_patches((50, 300, 400), (128, 128, 64), 0.5) == 48  # padded up to the window


def test_energy_arithmetic():
    e = cost.energy_per_ct(latency_s=2.0, n_patches=180, power_w=100.0, grid_gco2_per_kwh=400.0)
    assert e["s_per_ct"] == 360.0
    assert e["wh_per_ct"] == pytest.approx(10.0)  # 360 s x 100 W = 36 kJ = 10 Wh
    assert e["gco2_per_ct"] == pytest.approx(4.0)  # 0.01 kWh x 400 g/kWh


@pytest.mark.slow  # timed forward passes in a subprocess (49 s measured)
def test_run_measures_a_network_and_writes_the_table(tmp_path):
    report = cost.run(networks="unet3d", patch=(32, 32, 16), threads=1, warmup=0, repeats=2, ct_size_mm=(64, 64, 32),
                      cpu_power_w=50.0, grid_gco2_per_kwh=300.0, gpu=False, out=str(tmp_path / "cost"))
    assert "| unet3d | 32x32x16 | 1,788,274 |" in report
    rows = json.loads((tmp_path / "cost.json").read_text())["rows"]
    (row,) = rows
    for key in ("params", "gmacs_thop", "gmacs_matmul", "cpu_latency_s", "cpu_patches_per_s", "cpu_mvox_per_s",
                "cpu_peak_rss_mib", "patches_per_ct", "cpu_s_per_ct", "cpu_wh_per_ct", "cpu_gco2_per_ct"):
        assert row[key] > 0, key
    assert row["cpu_threads"] == 1 and len(row["cpu_times_s"]) == 2
    assert 0 <= row["cpu_peak_rss_delta_mib"] <= row["cpu_peak_rss_mib"]
    assert row["cpu_latency_min_s"] <= row["cpu_latency_s"]
    assert row["patches_per_ct"] == 3 * 3 * 3
    assert row["gmacs_thop"] > row["gmacs_matmul"]
    assert row["cpu_mvox_per_s"] == pytest.approx(32 * 32 * 16 / row["cpu_latency_s"] / 1e6)
    expected_g = row["cpu_latency_s"] * row["patches_per_ct"] * 50.0 / 3.6e6 * 300.0
    assert row["cpu_gco2_per_ct"] == pytest.approx(expected_g)
    with (tmp_path / "cost.csv").open() as fh:
        (csv_row,) = list(csv.DictReader(fh))
    assert csv_row["network"] == "unet3d" and float(csv_row["cpu_gco2_per_ct"]) == pytest.approx(expected_g)
    assert (tmp_path / "cost.md").read_text().startswith(report.splitlines()[0])


def test_patch_that_breaks_the_divisor_is_refused():
    with pytest.raises(ValueError, match="'swin_unetr' needs every patch dimension divisible by 32"):
        cost.cost_row("swin_unetr", patch=(48, 48, 48), timing=False)


def test_networks_tied_to_one_size_get_the_patch_as_img_size():
    row = cost.cost_row("slim_unetr", patch=(64, 64, 32), timing=False)
    assert row["params"] == 1_772_667 - 96 * (32 - 4)  # 2x2x1 deepest tokens instead of 4x4x2
