"""Unequal lengths in the models, the trainer and serving: padding is neither signal nor compute.

The data side (npz lengths, grouped batches) is tested in test_sources.py and test_pipeline.py.
"""

import functools

import keras
import numpy as np
import pytest

import kseq
from kseq.data.sequence_set import signal_lengths
from kseq.models import accepts_any_length, build_model
from kseq.models.layers import PooledPaddingMask, RealSteps, real_steps
from kseq.models.preprocessing import SeriesNormalization, with_normalization
from kseq.serving import export, runtime
from kseq.training import trainer

SMALL = {
    "resnet": {"filters": [8, 16], "kernel_sizes": [8, 5, 3]},
    "fcn": {"filters": [8, 16, 8], "kernel_sizes": [8, 5, 3]},
    "inception_time": {"filters": 4, "bottleneck_size": 4, "depth": 3, "kernel_sizes": [9, 5, 3]},
}


def padded(series: np.ndarray, steps: int) -> np.ndarray:
    """`series` (L, F) zero-padded at the end to `steps`, as a batch of one."""
    out = np.zeros((1, steps, series.shape[1]), np.float32)
    out[0, : len(series)] = series
    return out


@functools.cache
def trained(name: str, features: int = 2, length_feature: bool = False, length_scale: bool = False) -> keras.Model:
    """The generic recipe's model (per-series normalisation in front) after a few steps on
    unequal-length data, so that batch norm's moving statistics are not the initial 0 and 1.
    With `length_feature` / `length_scale`, its `LengthFeature` / `LengthFraction` adapted on the
    training series, as the trainer does. Built once per module run: the tests only call it."""
    keras.utils.set_random_seed(0)
    network = build_model(name, (None, features), 3, length_feature=length_feature, length_scale=length_scale,
                          **SMALL[name])
    model = with_normalization(network, "series")
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 50, features)).astype(np.float32) - 1.5
    x[::2, 30:] = 0
    if length_feature:
        network.get_layer("length_feature").adapt(x)
    if length_scale:
        network.get_layer("length_fraction").adapt(x)
    model.fit(x, np.arange(12) % 3, batch_size=4, epochs=2, verbose=0)
    return model


def test_real_steps_match_the_trailing_zero_rule():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 20, 3)).astype(np.float32)
    x[0, 12:] = 0  # padding
    x[1, 3:7] = 0  # zeros inside the series: data
    x[1, 15:] = 0
    x[2, 19:, 0] = 0  # one channel zero: not padding
    x[3] = 0  # all zeros: one step
    x[4, 1:] = 0
    expected = np.maximum(signal_lengths(x), 1)
    np.testing.assert_array_equal(expected, [12, 15, 20, 1, 1, 20])
    got = keras.ops.convert_to_numpy(real_steps(x))
    np.testing.assert_array_equal(got, np.arange(20)[None, :] < expected[:, None])


@pytest.mark.parametrize("pool_size", [1, 2])
def test_padding_masks_from_real_steps_equal_those_from_the_sequence(pool_size):
    """The models compute the real steps once (`RealSteps`) and hand them to every mask; a mask
    given the sequence itself (the form models saved before hold) must answer the same."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 12, 2)).astype(np.float32)
    x[0, 7:] = 0
    x[1, 2:4] = 0  # zeros inside: data
    features = rng.normal(size=(3, 12 // pool_size, 4)).astype(np.float32)
    steps = RealSteps()(x)
    assert steps.dtype == "bool" and tuple(steps.shape) == (3, 12)
    layer = PooledPaddingMask(pool_size, trailing=True, fill_value=-1.0)
    for got, want in ((layer([features, steps]), layer([features, x])),
                      (layer.compute_mask([features, steps]), layer.compute_mask([features, x]))):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(want))
    # By hand: series 0 has 7 real steps, so pooled steps from ceil(7 / pool_size) on are filled.
    filled = keras.ops.convert_to_numpy(layer([features, steps]))[0]
    real = -(-7 // pool_size)
    np.testing.assert_array_equal(filled[:real], features[0, :real])
    assert (filled[real:] == -1.0).all()


def test_series_normalization_uses_real_steps_only():
    rng = np.random.default_rng(1)
    series = rng.normal(3.0, 2.0, size=(17, 2)).astype(np.float32)
    series[5] = 0  # an all-zero step inside the series is data
    expected = (series - series.mean(axis=0)) / series.std(axis=0)  # NumPy on the real steps alone
    for steps in (17, 40):
        out = keras.ops.convert_to_numpy(SeriesNormalization()(padded(series, steps)))[0]
        np.testing.assert_allclose(out[:17], expected, atol=1e-5)
        np.testing.assert_array_equal(out[17:], 0)


@pytest.mark.parametrize("name, length_feature, length_scale", [(name, False, False) for name in sorted(SMALL)]
                         + [("resnet", True, False), ("resnet", True, True)])
def test_logits_do_not_depend_on_the_padding_after_a_series(name, length_feature, length_scale):
    assert accepts_any_length(name)
    model = trained(name, length_feature=length_feature, length_scale=length_scale)
    rng = np.random.default_rng(2)
    worst = 0.0
    for length in (1, 2, 9, 33):
        series = rng.normal(-2.0, 1.5, size=(length, 2)).astype(np.float32)  # negative: the max pool's -inf fill matters
        reference = model.predict(series[None], verbose=0)  # no padding at all
        for steps in (length + 1, length + 7, 120):
            worst = max(worst, np.abs(model.predict(padded(series, steps), verbose=0) - reference).max())
    assert worst <= 1e-5


@pytest.mark.parametrize("name", sorted(SMALL))
def test_training_batches_take_batch_norm_statistics_over_real_steps(name):
    """In training mode batch norm normalises by the batch's own moments: the same batch padded
    to two lengths gives the same logits only when the padding is left out of them."""
    model = trained(name)
    rng = np.random.default_rng(3)
    series = [rng.normal(size=(length, 2)).astype(np.float32) for length in (20, 35, 11)]
    short = np.concatenate([padded(s, 35) for s in series])
    long = np.concatenate([padded(s, 90) for s in series])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(short, training=True)),
                               keras.ops.convert_to_numpy(model(long, training=True)), atol=1e-5)


def test_the_length_feature_gives_the_head_each_series_real_length():
    """Beside the pooled features, the head sees `(log length - mean) / std` of each series (NumPy,
    with the statistics `adapt` fitted on the training series: 30 and 50 steps), padded or not."""
    model = trained("resnet", length_feature=True)
    network = model.get_layer("resnet")
    features = keras.Model(network.input, network.get_layer("features_and_length").output)
    logs = np.log([30.0, 50.0])
    rng = np.random.default_rng(5)
    for length in (3, 30, 77):
        series = rng.normal(size=(length, 2)).astype(np.float32)
        for steps in (length, length + 11):
            normalized = SeriesNormalization()(padded(series, steps))
            got = keras.ops.convert_to_numpy(features(normalized))[0, -1]
            np.testing.assert_allclose(got, (np.log(length) - logs.mean()) / logs.std(), rtol=1e-5)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_the_length_scale_makes_the_pooled_features_an_average_over_the_longest_training_length(name):
    """With `length_scale`, the features the head reads are the same network's averages over the
    real steps (NumPy, from the pooled layer's output) times length / 50, the longest of the
    training series (30 and 50 steps), padded or not: a sum over the real steps over 50."""
    model = trained(name, length_scale=True)
    network = model.get_layer(name)
    pooled = network.get_layer("window_average").input[0]
    both = keras.Model(network.input, [pooled, network.get_layer("window_average").output])
    rng = np.random.default_rng(6)
    for length in (3, 30, 77):  # 77: longer than any training series, a fraction over 1
        series = rng.normal(size=(length, 2)).astype(np.float32)
        for steps in (length, length + 11):
            average, scaled = map(keras.ops.convert_to_numpy, both(SeriesNormalization()(padded(series, steps))))
            np.testing.assert_allclose(scaled, average * length / 50.0, rtol=1e-5, atol=1e-7)


def test_cnn_keeps_its_fixed_length():
    assert not accepts_any_length("cnn")  # Flatten: where along the series a feature fired is the feature


def test_predict_logits_group_by_length_and_answer_in_input_order():
    model = trained("fcn")
    rng = np.random.default_rng(4)
    lengths = rng.integers(1, 60, 23)
    x = np.concatenate([padded(rng.normal(size=(n, 2)).astype(np.float32), 60) for n in lengths])
    expected = model.predict(x, batch_size=23, verbose=0)  # whole padded batch, input order
    np.testing.assert_allclose(trainer.predict_logits(model, x, batch_size=5), expected, atol=1e-5)


def test_predict_logits_of_a_fixed_length_model_compiled_for_several_steps_per_execution():
    keras.utils.set_random_seed(0)
    model = build_model("cnn", (60, 2), 3, filters=(4,), dense_units=(8,))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), steps_per_execution=4)
    x = np.random.default_rng(5).normal(size=(10, 60, 2)).astype(np.float32)
    # Batches of 3, 3, 3 and 1, the last one partial.
    np.testing.assert_allclose(trainer.predict_logits(model, x, batch_size=3), np.asarray(model(x)), atol=1e-5)


def test_predict_logits_traces_a_fixed_length_model_once_whatever_the_last_batch():
    keras.utils.set_random_seed(0)
    model = build_model("resnet", (40, 2), 3, **SMALL["resnet"])
    x = np.random.default_rng(6).normal(size=(11, 40, 2)).astype(np.float32)
    # Batches of 4, 4 and 3: the last is filled up with copies, whose answers are dropped.
    np.testing.assert_allclose(trainer.predict_logits(model, x, batch_size=4), np.asarray(model(x)), atol=1e-5)
    assert model.predict_function.experimental_get_tracing_count() == 1
    # A single short batch is its own shape: predicted as it is.
    np.testing.assert_allclose(trainer.predict_logits(model, x[:3], batch_size=4), np.asarray(model(x[:3])),
                               atol=1e-5)


def test_served_model_takes_any_length_and_names_the_shape_it_takes(tmp_path):
    model = trained("resnet", features=1)
    export.export_serving(model, tmp_path / "serving", ["a", "b", "c"])
    serving = runtime.ServingFunction(tmp_path / "serving")
    series = np.random.default_rng(5).normal(size=(13, 1)).astype(np.float32)
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(model.predict(series[None], verbose=0), axis=-1))
    for steps in (13, 14, 200):
        np.testing.assert_allclose(serving(padded(series, steps))["probabilities"], expected, atol=1e-5)
    for shape in [(1, 13, 2), (1, 0, 1), (13, 1)]:
        with pytest.raises(ValueError, match=r"serving: input 'sequence' must have shape \[batch, any >= 1, 1\]"):
            serving(np.zeros(shape, np.float32))


def test_a_fixed_length_export_names_its_length(tmp_path):
    model = kseq.build_model("cnn", (30, 1), 2, filters=(4,), dense_units=(8,))
    export.export_serving(model, tmp_path / "serving", ["a", "b"])
    serving = runtime.ServingFunction(tmp_path / "serving")
    with pytest.raises(ValueError, match=r"must have shape \[batch, 30, 1\]; got \[2, 31, 1\]"):
        serving(np.zeros((2, 31, 1), np.float32))
