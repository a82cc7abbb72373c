"""Naming the walked sequence: maximum likelihood over the start level, from volumes and the rib cue."""
import numpy as np
import pytest

from scripts.instances.naming import (
    DEFAULT_LEVEL_MODEL,
    NAMED_LEVELS,
    assign_levels,
    fit_level_model,
    level_names,
    rib_flags,
)


def test_volumes_alone_place_a_clear_sequence():
    model = {v: (float(v), 0.1) for v in NAMED_LEVELS}               # log volume = level id: unambiguous
    ids, scores = assign_levels(np.exp([10.0, 11.0, 12.0, 13.0, 14.0]), model)
    assert ids == [10, 11, 12, 13, 14]
    assert int(np.argmax(scores)) == 9 and scores[-1] == float("-inf")
    assert level_names(ids) == ["T3", "T4", "T5", "T6", "T7"]


def test_the_rib_cue_anchors_the_thoracolumbar_transition():
    flat = {v: (10.0, 0.3) for v in NAMED_LEVELS}                    # volumes say nothing
    ribs = [True, True, True, False, False, False]
    ids, _ = assign_levels([np.exp(10.0)] * 6, flat, ribs)
    assert ids == [17, 18, 19, 20, 21, 22]                          # T10 T11 T12 | L1 L2 L3
    ids, _ = assign_levels([np.exp(10.0)] * 4, flat, [False, False, True, True])
    assert ids == [6, 7, 8, 9]                                      # C6 C7 | T1 T2


def test_fit_level_model_and_the_default_model_grow_caudally():
    model = fit_level_model([{3: np.exp(9.5), 20: np.exp(11.0)}, {3: np.exp(9.7), 20: np.exp(11.2)}])
    assert model[3][0] == pytest.approx(9.6) and model[20][0] == pytest.approx(11.1)
    assert model[10][0] == pytest.approx(9.6 + (11.1 - 9.6) * 7 / 17)  # interpolated between seen levels
    with pytest.raises(ValueError, match="at least two levels"):
        fit_level_model([{3: 100.0}])
    assert DEFAULT_LEVEL_MODEL[22][0] - DEFAULT_LEVEL_MODEL[4][0] > 1.0  # L3 about 5x the volume of C4


def test_rib_flags_see_bone_beside_a_vertebra_only():
    ct = np.full((80, 40, 40), -100.0)
    inst = np.zeros(ct.shape, np.uint8)
    inst[30:50, 10:30, 5:15] = 1
    inst[30:50, 10:30, 25:35] = 2
    ct[inst > 0] = 400
    ct[55:70, 12:16, 26:30] = 600                                    # a rib beside vertebra 2
    assert rib_flags(ct, inst, bone_threshold=200) == [False, True]
