"""The step 1 / step 2 networks of Serrador et al. (2024): exact parameter counts of the spec and shapes."""
import pytest
import torch

from scripts.networks.serrador_unet3d import SerradorUNet3D, serrador_heatmap, serrador_student, serrador_teacher

from .conftest import n_params


@pytest.mark.parametrize("build, expected", [
    (serrador_teacher, 1_475_345),
    (lambda: serrador_student("shallow"), 368_273),
    (lambda: serrador_student("thin"), 369_609),
    (serrador_heatmap, 88_842),
])
def test_parameter_counts_match_the_spec(build, expected):
    assert n_params(build()) == expected


def test_students_have_75_percent_fewer_parameters_than_the_teacher():
    teacher = n_params(serrador_teacher())
    for variant in ("shallow", "thin"):
        assert 0.74 <= 1 - n_params(serrador_student(variant)) / teacher <= 0.76


def test_shapes_and_divisor():
    net = serrador_teacher().eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 2, 16, 16, 24)).shape == (1, 1, 16, 16, 24)
        assert serrador_heatmap().eval()(torch.zeros(1, 1, 8, 8, 16)).shape == (1, 2, 8, 8, 16)
    with pytest.raises(ValueError, match="divisible by 8"):
        net(torch.zeros(1, 2, 16, 16, 12))
    with pytest.raises(ValueError, match="unknown student variant"):
        serrador_student("wide")
    with pytest.raises(ValueError, match="full_res_convs"):
        SerradorUNet3D(full_res_convs=3)
