"""The plateau scheduler counts validations, not epochs: it steps every epoch on the last validation's Dice, so a
patience in epochs would cut the LR while the metric simply had not been measured again (coarse.yaml validates
every 10 epochs)."""
from pathlib import Path

import pytest
from monai.bundle import ConfigParser

BUNDLE = Path(__file__).resolve().parents[1] / "bundle"


@pytest.mark.parametrize("mixins, lr_patience, val_interval", [
    ([], 5, 1),
    (["coarse.yaml"], 5, 10),
    (["data_mix.yaml", "cpu_recipe.yaml"], 10, 1),
])
def test_plateau_patience_is_in_validations(mixins, lr_patience, val_interval):
    parser = ConfigParser()
    parser.read_config([str(BUNDLE / "configs" / f) for f in ["train.yaml", *mixins]])
    assert parser.get_parsed_content("lr_patience") == lr_patience
    assert parser.get_parsed_content("val_interval") == val_interval
    parser["network_def"] = {"_target_": "torch.nn.Linear", "in_features": 1, "out_features": 1}
    parser["network"] = "$@network_def"
    scheduler = parser.get_parsed_content("lr_scheduler")
    assert scheduler.patience == lr_patience * val_interval
