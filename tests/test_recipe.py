"""`kseq.training.recipe`: every "auto" value resolved by the documented rule, checked by hand-computed cases."""

import functools
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
    "n, length, real_steps, batch, steps",
    [
        # 20 series of 24 steps (Chinatown): batch 2, 10 steps an epoch, the 2,000-step cap.
        (20, 24, None, 2, 2000),
        # 104 series of 2,000 steps: batch 10 (already under 16), the compute budget allows
        # 2e7 / (10 * 2000) = 1,000, rounded up to whole epochs of 11 steps: 91 epochs.
        (104, 2000, None, 10, 1001),
        # 1,000 x 500: at batch 64 the budget decides (625 steps, 39 epochs), so the batch shrinks
        # to the 2e7 / (2000 * 500) = 20 that buys 2,000 steps: 50 steps an epoch, 40 epochs.
        (1000, 500, None, 20, 2000),
        # 537 series padded to 1,344 steps, 330 real on average, cut to their longest per batch:
        # costed by the 330, batch 53 buys 1,143 steps; batch 2e7 / (2000 * 330) = 30 buys 2,020,
        # capped at 2,000 = 111.1 epochs of 18 -> 112 epochs.
        (537, 1344, 330.0, 30, 2016),
        # The same series costed padded: batch 53 buys 280 steps; the batch stops at 16
        # (2e7 / (2000 * 1344) = 7 would be smaller), which buys 930 = 27.4 epochs of 34 -> 28.
        (537, 1344, None, 16, 952),
        # 80,000 heartbeats: the 10-epoch floor (1,250 steps an epoch) beats the compute budget,
        # so the batch stays 64.
        (80000, 187, None, 64, 12500),
    ],
)
def test_batch_size_and_step_budget(n, length, real_steps, batch, steps):
    config = recipe.resolve(generic(), num_train=n, sequence_length=length, validation=False, real_steps=real_steps)
    per_epoch = math.ceil(n / batch)
    assert config["sampler"]["batch_size"] == batch
    assert config["train"]["steps"] == steps
    assert config["train"]["epochs"] * per_epoch == steps


@pytest.mark.parametrize(
    "name, n, length, native, policy",
    [
        # 104 series of 2,000 steps: batches of 10 x 2,000 series-steps are arithmetic.
        ("resnet", 104, 2000, True, "mixed_bfloat16"),
        ("fcn", 104, 2000, True, "mixed_bfloat16"),
        # inception_time gained too little in it (and the seeds' cnn nothing).
        ("inception_time", 104, 2000, True, "float32"),
        # The same data without native bfloat16: emulated, slower than float32.
        ("resnet", 104, 2000, False, "float32"),
        # Trace's shape: 10 x 275 = 2,750 series-steps a batch; Covid3Month_disc's 14 x 84 = 1,176.
        ("resnet", 100, 275, True, "mixed_bfloat16"),
        ("fcn", 140, 84, True, "mixed_bfloat16"),
        # Coffee's 2 x 286 = 572 and Chinatown_subset's 2 x 24 = 48: under the threshold.
        ("resnet", 28, 286, True, "float32"),
        ("resnet", 20, 24, True, "float32"),
        # 99 series of 84 steps: batches of 9 x 84 = 756, just under the threshold of 1,000.
        ("resnet", 99, 84, True, "float32"),
        # 80,000 heartbeats: 64 x 187 = 11,968 series-steps a batch.
        ("resnet", 80000, 187, True, "mixed_bfloat16"),
        # A recurrent model on long series keeps float32 (not measured in bfloat16).
        ("gru", 104, 2000, True, "float32"),
    ],
)
def test_mixed_bfloat16_only_for_large_network_batches_on_native_hardware(name, n, length, native, policy):
    config = recipe.resolve(load_config(name), num_train=n, sequence_length=length, validation=False,
                            native_bfloat16=native)
    assert config["train"]["dtype_policy"] == policy
    assert f"dtype_policy={policy}" in recipe.summary(config, num_train=n, num_validation=0)


def test_mixed_bfloat16_threshold_counts_real_steps_not_padding():
    """Series padded to 2,000 steps that hold 80 real steps each cost batches of 10 x 80 = 800
    series-steps when batches are cut to their longest member: float32. At 120 real steps, 1,200."""
    resolve = functools.partial(recipe.resolve, load_config("resnet"), num_train=100, sequence_length=2000,
                                validation=False, native_bfloat16=True)
    assert resolve(real_steps=80)["train"]["dtype_policy"] == "float32"
    assert resolve(real_steps=120)["train"]["dtype_policy"] == "mixed_bfloat16"
    assert resolve()["train"]["dtype_policy"] == "mixed_bfloat16"  # padded: 10 x 2,000


def test_a_set_dtype_policy_and_the_fixed_recipes_float32_are_kept():
    config = generic()
    config["train"]["dtype_policy"] = "mixed_bfloat16"
    resolved = recipe.resolve(config, num_train=20, sequence_length=24, validation=False, native_bfloat16=False)
    assert resolved["train"]["dtype_policy"] == "mixed_bfloat16"
    resolved = recipe.resolve(load_config("ecg_cnn"), num_train=1000, sequence_length=5000, validation=True,
                              native_bfloat16=True)
    assert resolved["train"]["dtype_policy"] == "float32"


@pytest.mark.parametrize(
    "name, n, length, native, unequal, accelerator, expected",
    [
        # Chinatown_subset's 2 x 24 and Coffee's 2 x 286 series-steps a batch: per-step overhead,
        # in float32 (under the bfloat16 threshold), one length: compiled, for each conv network.
        ("resnet", 20, 24, True, False, False, True),
        ("fcn", 28, 286, True, False, False, True),
        ("inception_time", 20, 24, False, False, False, True),
        ("cnn", 28, 286, False, False, False, True),
        # 99 x 84 steps: batches of 9 x 84 = 756, under 1,000; 10 x 84 = 840 on 100 series too.
        ("resnet", 99, 84, False, False, False, True),
        # Trace's 10 x 275 = 2,750 and PigCVP's 10 x 2,000: arithmetic. XLA sped up the float32 steps
        # of cnn, fcn and resnet there too, not inception_time's (Keras' choice, off on a CPU) ...
        ("cnn", 100, 275, True, False, False, True),
        ("resnet", 100, 275, False, False, False, True),
        ("fcn", 104, 2000, False, False, False, True),
        ("inception_time", 100, 275, False, False, False, "keras"),
        # ... nor the bfloat16 steps of fcn and resnet, on hardware that computes bfloat16 natively.
        ("resnet", 100, 275, True, False, False, "keras"),
        ("fcn", 104, 2000, True, False, False, "keras"),
        # Series of unequal lengths: batches in several lengths, each of which XLA would compile.
        ("resnet", 20, 24, True, True, False, False),
        ("resnet", 104, 2000, True, True, True, False),
        # A recurrent model (XLA slowed its training, benchmarks/README.md) and a GPU: Keras' choice.
        ("gru", 20, 24, False, False, False, "keras"),
        ("resnet", 20, 24, False, False, True, "keras"),
    ],
)
def test_xla_for_float32_network_steps_of_one_length(name, n, length, native, unequal, accelerator, expected):
    config = recipe.resolve(load_config(name), num_train=n, sequence_length=length, validation=False,
                            native_bfloat16=native, unequal_lengths=unequal, accelerator=accelerator)
    assert config["train"]["jit_compile"] is expected if isinstance(expected, bool) else \
        config["train"]["jit_compile"] == expected
    assert ("training steps compiled by XLA" in recipe.summary(config, num_train=n, num_validation=0)) is \
        (expected is True)


def test_a_set_jit_compile_and_the_fixed_recipes_keras_choice_are_kept():
    config = generic()
    config["train"]["jit_compile"] = False
    assert recipe.resolve(config, num_train=20, sequence_length=24, validation=False)["train"]["jit_compile"] is False
    resolved = recipe.resolve(load_config("ecg_cnn"), num_train=20, sequence_length=24, validation=True)
    assert resolved["train"]["jit_compile"] == "keras"


def test_monitor_patience_and_steps_per_execution():
    without = recipe.resolve(generic(), num_train=100, sequence_length=100, validation=False)
    assert without["train"]["monitor"] == "loss"
    # 100 series: batches of 10 (a tenth), 10 steps an epoch; 2,000 steps are 200 epochs, and a
    # quarter of them is a patience of 50.
    assert without["train"]["epochs"] == 200 and without["train"]["early_stopping_patience"] == 50
    assert without["train"]["steps_per_execution"] == 10  # all 10 steps of an epoch in one call
    assert without["train"]["min_delta"] == recipe.FLAT_LOSS  # gains under it on the training loss are flat
    with_validation = recipe.resolve(generic(), num_train=4096, sequence_length=100, validation=True)
    assert with_validation["train"]["monitor"] == "val_macro_f1"
    assert with_validation["train"]["min_delta"] == 0.0  # any gain in validation macro-F1 is a gain
    chosen = recipe.resolve(load_config("resnet", ["train.min_delta=0.01"]), num_train=100, sequence_length=100,
                            validation=False)
    assert chosen["train"]["min_delta"] == 0.01
    assert with_validation["train"]["steps_per_execution"] == 16  # 64 steps an epoch, 16 at most a call
    odd = recipe.resolve(generic(), num_train=64 * 20, sequence_length=100, validation=True)
    assert odd["train"]["steps_per_execution"] == 10  # 20 steps an epoch: 16 would run 32


@pytest.mark.parametrize("steps,at_most,expected", [(10, 16, 10), (20, 16, 10), (24, 16, 12), (32, 16, 16),
                                                    (17, 16, 1), (7, 3, 1), (1, 16, 1), (12, 1, 1)])
def test_steps_per_execution_divide_the_epochs_steps(steps, at_most, expected):
    assert recipe.whole_executions(steps, at_most) == expected


def test_resolution_leaves_numbers_and_the_input_config_alone():
    config = generic()
    resolved = recipe.resolve(config, num_train=50, sequence_length=60, validation=False)
    assert config["train"]["steps"] == "auto" and config["sampler"]["batch_size"] == "auto"
    for section, keys in recipe.AUTO_KEYS.items():
        # data: resolve_validation; preprocess: resolve_normalize; sampler.kind and decisions: resolve_imbalance;
        # model.length_scale: resolve_length_scale (it reads the batches the resolved batch size makes)
        for key in keys if section not in ("data", "preprocess", "decisions") else ():
            if (section, key) in (("sampler", "kind"), ("model", "length_scale")):
                continue
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
    config["preprocess"]["normalize"] = recipe.resolve_normalize(config, np.full((20, 24, 2), 3.0))
    config = recipe.resolve_imbalance(config, np.repeat([0, 1], [18, 2]), validation=False)
    line = recipe.summary(config, num_train=20, num_validation=0)
    assert line.startswith("resolved: 20 training examples, batch_size=2, steps=2000 (200 epochs of 10)")
    assert "final weights" in line and "normalize=series+channel" in line and "\n" not in line
    assert "sampler=class_weight" in line and line.endswith("decisions on out-of-fold predictions (2 folds)")


def test_summary_of_a_solved_head_names_no_training_loop():
    """A ridge head takes no optimizer step: the line names none, and says the sampler's weighting
    reaches the solve (it used to print 2,000 steps and a learning rate for a closed-form fit)."""
    config = load_config("multirocket_hydra")
    config = recipe.resolve(config, num_train=50, sequence_length=300, validation=False)
    config = recipe.resolve_imbalance(config, np.repeat([0, 1], [45, 5]), validation=False)
    config["preprocess"]["normalize"] = "none"
    line = recipe.summary(config, num_train=50, num_validation=0)
    assert config["model"]["head"] == "ridge" and "head=ridge (solved in closed form" in line
    assert not any(word in line for word in ("steps=", "learning_rate", "patience", "dtype_policy", "final weights"))
    assert "sampler=class_weight (as weights in the ridge)" in line and "folds" not in line  # the config's 0
    config["model"]["head"] = "logistic"
    trained = recipe.summary(config, num_train=50, num_validation=0)
    assert "steps=" in trained and "head=logistic" in trained and "as weights" not in trained


def z_normalised(x):
    return (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, ddof=1, keepdims=True)  # the archive's ddof=1


def test_auto_normalisation_keeps_series_on_already_z_normalised_data():
    x = z_normalised(np.random.default_rng(0).normal(5.0, 3.0, (10, 24, 1)))  # std sqrt(23/24) = 0.979 with ddof=0
    assert recipe.resolve_normalize(generic(), x) == "series"
    padded = x.copy()
    padded[3, 20:] = 0.0  # a padded tail is not part of the series: still z-normalised
    padded[3, :20] = z_normalised(padded[3:4, :20])[0]
    assert recipe.resolve_normalize(generic(), padded) == "series"


@pytest.mark.parametrize("level, scale", [(0.2, 1.0), (0.0, 1.2), (500.0, 40.0)])
def test_auto_normalisation_keeps_the_level_when_any_series_has_one(level, scale):
    x = z_normalised(np.random.default_rng(1).normal(size=(10, 24, 2)))
    x[7, :, 1] = x[7, :, 1] * scale + level  # one channel of one series off mean 0 / std 1
    assert recipe.resolve_normalize(generic(), x) == "series+channel"


def test_auto_normalisation_z_normalises_univariate_series_whatever_their_level():
    """The archive's convention, under which the published univariate figures were made."""
    x = np.random.default_rng(3).normal(500.0, 40.0, (10, 24, 1))
    assert recipe.resolve_normalize(generic(), x) == "series"
    assert recipe.resolve_normalize(generic(), np.concatenate([x, x], axis=-1)) == "series+channel"


def test_random_kernel_models_take_raw_series():
    """Levels in physical units would give any other generic model series+channel; the random kernels take them raw."""
    config = generic()
    config["model"] = {"name": "multirocket_hydra"}
    x = np.random.default_rng(2).normal(200.0, 5.0, (10, 24, 2))
    assert recipe.resolve_normalize(config, x) == "none"
    assert recipe.resolve_normalize(generic(), x) == "series+channel"


def test_a_set_normalisation_is_kept():
    config = generic()
    config["preprocess"]["normalize"] = "none"
    assert recipe.resolve_normalize(config, np.full((3, 5, 1), 7.0)) == "none"



@pytest.mark.parametrize(
    "counts, validation, sampler, folds",
    [
        ((14, 14, 14), False, "none", 0),  # balanced: plain shuffling, the argmax
        ((31, 21), False, "none", 0),  # 1.48 < 9
        ((75, 29, 36), False, "none", 0),  # 2.6 < 9: the argmax, no extra models
        ((90, 10), False, "class_weight", 3),  # ratio 9, small data: class weights, 3-fold decisions
        ((89, 10), False, "none", 0),  # 8.9
        ((70, 7, 22), False, "class_weight", 3),
        ((31, 3, 2), False, "class_weight", 2),  # only 2 series of the smallest class: 2 folds
        ((5000, 200), True, "rejection", 0),  # large data: balanced batches, a validation split fits the decisions
        ((5000, 2000), True, "none", 0),  # 2.5: plain batches, the argmax
        ((5000, 600), True, "none", 0),  # 8.3
    ],
)
def test_imbalance_tools_resolve_from_the_class_counts(counts, validation, sampler, folds):
    y = np.repeat(np.arange(len(counts)), counts)
    config = generic()
    resolved = recipe.resolve_imbalance(config, y, validation=validation)
    assert resolved["sampler"]["kind"] == sampler and resolved["decisions"]["folds"] == folds
    assert config["sampler"]["kind"] == "auto" and config["decisions"]["folds"] == "auto"


def test_a_class_id_with_no_series_is_no_class():
    y = np.repeat([0, 2], [900, 100])  # class 1 absent: a gap in the ids, not a class of 0 series
    assert recipe.class_counts(y).tolist() == [900, 100]
    assert recipe.imbalance_ratio(y) == 9.0
    assert recipe.resolve_validation(generic(), y) == 0.1  # 100 series of the smallest present class
    resolved = recipe.resolve_imbalance(generic(), y, validation=False)
    assert resolved["sampler"]["kind"] == "class_weight" and resolved["decisions"]["folds"] == 3


def test_set_imbalance_values_are_kept():
    config = generic()
    config["sampler"]["kind"], config["decisions"]["folds"] = "class_weight", 0
    resolved = recipe.resolve_imbalance(config, np.repeat([0, 1], [50, 2]), validation=False)
    assert resolved["sampler"]["kind"] == "class_weight" and resolved["decisions"]["folds"] == 0


def test_the_budget_counts_real_steps_of_series_cut_to_their_length():
    from kseq.data.sequence_set import SequenceSet
    from kseq.training.trainer import resolve_recipe

    # 100 series padded to 2,000 steps, 250 of them real: batch 10. Costed by real steps the budget
    # buys 2e7 / (10 * 250) = 8,000, capped at 2,000; costed padded it would buy 1,000.
    x = np.zeros((100, 2000, 1), "float32")
    x[:, :250] = np.random.default_rng(0).normal(size=(100, 250, 1))
    data = SequenceSet(x, np.repeat([0, 1], 50), ("a", "b"))
    config = generic()
    assert resolve_recipe(config, data, None, announce=False)["train"]["steps"] == 2000
    windows = {**config, "preprocess": {**config["preprocess"], "window": 2000}}  # one length: padded cost
    assert resolve_recipe(windows, data, None, announce=False)["train"]["steps"] == 1000


@pytest.mark.parametrize("tied, expected", [
    (True, "random batches (sorted by length they would tell"),
    (False, "batches sorted by length (they tell")])
def test_resolved_line_says_how_batches_group_unequal_lengths(tied, expected, capsys):
    """Class 1 all longer than class 0 (tied), or lengths drawn apart from the class: the line names
    `pipeline.length_grouping`'s choice and its figure, which equals the pipeline's own."""
    from kseq.data.pipeline import bucket_lengths, sorted_batches_class_information
    from kseq.data.sequence_set import SequenceSet
    from kseq.training.trainer import resolve_recipe

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    lengths = np.sort(rng.integers(20, 200, 80)) if tied else rng.integers(20, 200, 80)
    x = np.where(np.arange(200)[None, :, None] < lengths[:, None, None], 1.0 + rng.random((80, 200, 1)), 0.0)
    config = resolve_recipe(generic(), SequenceSet(x.astype("float32"), y, ("a", "b")), None)
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("resolved: ")]
    information = sorted_batches_class_information(bucket_lengths(lengths, 200, 80), y,
                                                   config["sampler"]["batch_size"])
    assert f"{expected} {information:.2f} of the class)" in line
    assert (information > 0.25) == tied


def test_length_feature_only_where_the_training_lengths_differ():
    """`model.length_feature`: on for a model trained on series of unequal lengths (the run's
    `resolve_recipe` reads them from the data), off for equal lengths and for windows (one length);
    a set value is kept, and the `resolved:` line names it."""
    from kseq.data.sequence_set import SequenceSet
    from kseq.training.trainer import resolve_recipe

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 60, 1)).astype("float32")
    data = SequenceSet(x, np.repeat([0, 1], 20), ("a", "b"))
    assert resolve_recipe(generic(), data, None, announce=False)["model"]["length_feature"] is False
    x[::3, 45:] = 0
    unequal = SequenceSet(x, data.y, data.class_names)
    config = resolve_recipe(generic(), unequal, None, announce=False)
    assert config["model"]["length_feature"] is True
    assert "length_feature (each series' log length" in recipe.summary(config, num_train=40, num_validation=0)
    windows = generic()
    windows["preprocess"]["window"] = 20
    assert resolve_recipe(windows, unequal, None, announce=False)["model"]["length_feature"] is False
    kept = generic()
    kept["model"]["length_feature"] = False
    assert resolve_recipe(kept, unequal, None, announce=False)["model"]["length_feature"] is False
    assert "length_feature" not in recipe.resolve(load_config("cnn"), num_train=40, sequence_length=60,
                                                  validation=False, unequal_lengths=True)["model"]


def test_length_scale_only_where_the_lengths_give_the_class_away():
    """`model.length_scale`: on where batches sorted by length would tell more of the class than
    `length_grouping` allows (so they stay random), here every series of class 1 longer than any
    of class 0; off where lengths are equal or tell nothing of the class, as
    `kseq.data.pipeline.length_grouping` computes it on the same data; a set value is kept, and
    the `resolved:` line names it."""
    from kseq.data.pipeline import bucket_lengths, length_grouping
    from kseq.data.sequence_set import SequenceSet
    from kseq.training.trainer import resolve_recipe

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    x = rng.normal(size=(40, 60, 1)).astype("float32")
    assert resolve_recipe(generic(), SequenceSet(x, y, ("a", "b")), None, announce=False)["model"]["length_scale"] is False
    mixed = x.copy()
    mixed[::3, 45:] = 0  # every third series shorter, whatever its class
    telling = x.copy()
    telling[:20, rng.integers(30, 40):] = 0  # class 0 ends by step 40, class 1 runs to 60
    for data, gives_away in ((mixed, False), (telling, True)):
        config = resolve_recipe(generic(), SequenceSet(data, y, ("a", "b")), None, announce=False)
        lengths = SequenceSet(data, y, ("a", "b")).real_lengths()
        by_length, _ = length_grouping(bucket_lengths(lengths, 60, 40), y, int(config["sampler"]["batch_size"]))
        assert by_length is not gives_away
        assert config["model"]["length_scale"] is gives_away
        assert ("length_scale (the pooled features times" in recipe.summary(config, num_train=40, num_validation=0)) \
            is gives_away
    kept = generic()
    kept["model"]["length_scale"] = False
    assert resolve_recipe(kept, SequenceSet(telling, y, ("a", "b")), None, announce=False)["model"]["length_scale"] \
        is False
    # inception_time gained nothing from it where the lengths give the class away: "auto" is false there
    inception = resolve_recipe(load_config("inception_time"), SequenceSet(telling, y, ("a", "b")), None, announce=False)
    assert inception["model"]["length_scale"] is False and inception["model"]["length_feature"] is True
