"""`kseq.training.recipe`: every "auto" value resolved by the documented rule, checked by hand-computed cases."""

import math

import numpy as np
import pytest

from kseq.training import recipe
from kseq.config import load_config
from kseq.utils.errors import InputError


def generic(**data):
    config = load_config("resnet")
    config["data"].update(data)
    return config


@pytest.mark.parametrize("counts, expected", [((2, 2), 0.0), ((99, 500), 0.0), ((100, 500), 0.1), ((641, 72471), 0.1)])
def test_validation_only_when_a_tenth_holds_ten_series_of_every_class(counts, expected):
    y = np.repeat(np.arange(len(counts)), counts)
    assert recipe.resolve_validation(generic(), y) == expected


def test_a_given_validation_split_is_kept():
    assert recipe.resolve_validation(generic(validation_split=0.25), np.array([0, 0, 1, 1])) == 0.25


@pytest.mark.parametrize(
    "n, length, batch, steps",
    [
        # 20 series of 24 steps (Chinatown): batch 2, 10 steps an epoch, the 2,000-step cap.
        (20, 24, 2, 2000),
        # 104 series of 2,000 steps: batch 10, the compute budget allows 2e7 / (10 * 2000) = 1,000.
        (104, 2000, 10, 1001),  # rounded up to whole epochs of 11 steps: 91 epochs
        # 1,000 x 500: batch 64, 625 affordable steps, 16 steps an epoch -> 40 epochs = 640.
        (1000, 500, 64, 640),
        # 80,000 heartbeats: the 10-epoch floor (1,250 steps an epoch) beats the compute budget.
        (80000, 187, 64, 12500),
    ],
)
def test_batch_size_and_step_budget(n, length, batch, steps):
    config = recipe.resolve(generic(), num_train=n, sequence_length=length, validation=False)
    per_epoch = math.ceil(n / batch)
    assert config["sampler"]["batch_size"] == batch
    assert config["train"]["steps"] == steps
    assert config["train"]["epochs"] * per_epoch == steps


def test_monitor_patience_and_steps_per_execution():
    without = recipe.resolve(generic(), num_train=100, sequence_length=100, validation=False)
    assert without["train"]["monitor"] == "loss"
    # 100 series: batches of 10 (a tenth), 10 steps an epoch; 2,000 steps are 200 epochs, and a
    # quarter of them is a patience of 50.
    assert without["train"]["epochs"] == 200 and without["train"]["early_stopping_patience"] == 50
    assert without["train"]["steps_per_execution"] == 10  # all 10 steps of an epoch in one call
    with_validation = recipe.resolve(generic(), num_train=5000, sequence_length=100, validation=True)
    assert with_validation["train"]["monitor"] == "val_macro_f1"
    assert with_validation["train"]["steps_per_execution"] == 16


def test_resolution_leaves_numbers_and_the_input_config_alone():
    config = generic()
    resolved = recipe.resolve(config, num_train=50, sequence_length=60, validation=False)
    assert config["train"]["steps"] == "auto" and config["sampler"]["batch_size"] == "auto"
    for section, keys in recipe.AUTO_KEYS.items():
        for key in keys if section != "data" else ():  # data.validation_split: resolve_validation
            assert not recipe.is_auto(resolved[section].get(key)), (section, key)


def test_fixed_recipes_keep_their_epochs():
    config = load_config("ecg_cnn")
    resolved = recipe.resolve(config, num_train=1000, sequence_length=187, validation=True)
    assert resolved["train"]["epochs"] == config["train"]["epochs"]
    assert resolved["sampler"]["batch_size"] == config["sampler"]["batch_size"]


@pytest.mark.parametrize("length, pool", [(24, 1), (64, 1), (65, 2), (512, 2), (513, 3), (2000, 4)])
def test_hybrid_pooling_leaves_at_most_64_recurrent_steps(length, pool):
    config = recipe.resolve(load_config("gru"), num_train=100, sequence_length=length, validation=False)
    assert config["model"]["pool_size"] == pool
    assert length / pool ** 3 <= recipe.MAX_RECURRENT_STEPS


def test_a_validation_monitor_without_validation_is_an_error():
    config = generic()
    config["train"]["monitor"] = "val_macro_f1"
    with pytest.raises(InputError, match="needs a validation split"):
        recipe.resolve(config, num_train=20, sequence_length=24, validation=False)


def test_summary_names_every_resolved_value():
    config = recipe.resolve(generic(), num_train=20, sequence_length=24, validation=False)
    line = recipe.summary(config, num_train=20, num_validation=0)
    assert line.startswith("resolved: 20 training examples, batch_size=2, steps=2000 (200 epochs of 10)")
    assert "lowest training loss" in line and "normalize=series" in line and "\n" not in line
