"""Step 1 target: Gaussians (sigma 10 voxels) at the vertebra centroids, scaled into the 64x64x128 grid."""
import math

import numpy as np
import pytest

from scripts.instances.heatmap import HEATMAP_SHAPE, CentroidHeatmapd, centroid_heatmap, vertebra_centroids


def test_one_centroid_is_a_unit_gaussian_of_sigma_10():
    heat = centroid_heatmap([(20, 30, 40)])
    assert heat.shape == HEATMAP_SHAPE and heat.dtype == np.float32
    assert heat[20, 30, 40] == pytest.approx(1.0)
    assert heat[20, 30, 50] == pytest.approx(math.exp(-0.5), abs=1e-3)   # one sigma away
    assert heat[20, 30, 60] == pytest.approx(math.exp(-2.0), abs=1e-3)   # two sigmas away
    assert heat.max() == pytest.approx(1.0)


def test_sum_of_gaussians_is_divided_by_its_maximum():
    heat = centroid_heatmap([(20, 30, 40), (20, 30, 70)])
    g = math.exp(-0.5 * 30 ** 2 / 100)
    assert heat.max() == pytest.approx(1.0)
    assert heat[20, 30, 40] == pytest.approx(1.0, abs=1e-4)
    assert heat[20, 30, 55] == pytest.approx(2 * math.exp(-0.5 * 15 ** 2 / 100) / (1 + g), abs=1e-3)
    assert centroid_heatmap([]).max() == 0.0


@pytest.mark.slow  # quick tier: > 9 s with one thread beside a 2-thread training
def test_centroids_come_from_the_label_and_are_scaled_into_the_heatmap_grid():
    lab = np.zeros((32, 32, 64), np.uint8)
    lab[10:14, 6:10, 20:30] = 20
    lab[10:14, 6:10, 40:50] = 28                                   # T13 is a vertebra too
    lab[0:2, 0:2, 0:2] = 26                                        # not a vertebra id: ignored
    cents = vertebra_centroids(lab)
    assert sorted(cents) == [20, 28]
    np.testing.assert_allclose(cents[20], [11.5, 7.5, 24.5])
    out = CentroidHeatmapd()({"label": lab[None]})
    heat = out["heatmap"].numpy()
    assert heat.shape == (2, 64, 64, 128)
    np.testing.assert_allclose(heat[0] + heat[1], 1.0, atol=1e-6)
    peak = np.unravel_index(np.argmax(heat[0][:, :, :80]), heat[0][:, :, :80].shape)
    # (c + 0.5) * (64/32, 64/32, 128/64) - 0.5 = (23.5, 15.5, 49.5): the peak is at a neighbouring voxel centre
    assert all(abs(a - b) <= 0.5 for a, b in zip(peak, (23.5, 15.5, 49.5)))
