"""benchmarks/training_record.py: the run record's curve, hours and segments from a constructed two-segment log."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from training_record import parse_log  # noqa: E402

LOG = """\
Epoch [1/400]: [100/100]\r2026-12-02 02:41:20,100 - INFO - Epoch[1] Metrics -- val_mean_dice: 0.6000 
2026-12-02 02:41:20,001 - ignite.engine.engine.SupervisedEvaluator - INFO - Epoch[1] Complete. Time taken: 00:00:36.000
2026-12-02 02:41:20,200 - ignite.engine.engine.SupervisedTrainer - INFO - Current learning rate: 0.001
2026-12-02 02:41:20,300 - INFO - Epoch[1] Metrics -- train_mean_dice: 0.5000 
2026-12-02 02:41:20,301 - ignite.engine.engine.SupervisedTrainer - INFO - Epoch[1] Complete. Time taken: 00:10:00.000
Epoch [2/400]: [50/100]
2026-12-02 03:41:00,000 - scripts.checkpoints - INFO - resuming at epoch 2 (iteration 100) of 400
2026-12-02 03:51:21,100 - INFO - Epoch[2] Metrics -- val_mean_dice: 0.7000 
2026-12-02 03:51:21,001 - ignite.engine.engine.SupervisedEvaluator - INFO - Epoch[2] Complete. Time taken: 00:00:36.000
2026-12-02 03:51:21,200 - ignite.engine.engine.SupervisedTrainer - INFO - Current learning rate: 0.0005
2026-12-02 03:51:21,301 - ignite.engine.engine.SupervisedTrainer - INFO - Epoch[2] Complete. Time taken: 00:10:00.000
"""


def test_record_of_a_resumed_run():
    rec = parse_log(LOG, steps_per_epoch=100)
    # 2 trainer epochs of 600 s + 2 validations of 36 s (an epoch cut short by a stop never logs its time)
    assert rec["machine_hours"] == round((2 * 600 + 2 * 36) / 3600, 3)
    assert rec["steps"] == 200
    assert rec["segments"] == 2 and rec["resumes"] == [{"resumed_at_epoch": 2, "iteration": 100}]
    assert [(p["epoch"], p["step"], p["val_dice"], p["lr"]) for p in rec["val_curve"]] == [
        (1, 100, 0.6, None), (2, 200, 0.7, 0.001)]
    assert rec["best"] == {"epoch": 2, "step": 200, "val_dice": 0.7}
    assert rec["val_curve"][0]["hours"] == round((600 + 36) / 3600, 4)       # through epoch 1 and its validation


def test_paused_seconds_are_not_training_time():
    full = parse_log(LOG, steps_per_epoch=100)
    paused = parse_log(LOG, steps_per_epoch=100, paused_s={2: 300})
    assert paused["machine_hours"] == pytest.approx(full["machine_hours"] - 300 / 3600, abs=1e-3)
    assert paused["val_curve"][0]["hours"] == pytest.approx(full["val_curve"][0]["hours"], abs=1e-4)  # before the pause
    assert paused["val_curve"][1]["hours"] == pytest.approx(full["val_curve"][1]["hours"] - 300 / 3600, abs=1e-4)
