"""The in-graph preprocessing layers agree with NumPy, and save and load as `.keras`."""

import keras
import numpy as np
import pytest

from kseq.data.preprocess import average_by_sequence, fit_feature_transform, sliding_windows, windows_to_examples
from kseq.models.preprocessing import (
    FeatureTransform,
    SlidingWindows,
    sequence_classifier,
    with_feature_transform,
)

NAMES = ["a", "b", "c", "legs", "hands", "g1", "g2"]
T, F_IN = 20, len(NAMES)


def raw_sequences(n, seed):
    """a; b = 2a - 1 (correlated); c constant; sparse limbs; a group g1/g2; padded tails."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, T, F_IN), np.float32)
    x[..., 0] = rng.normal(size=(n, T))
    x[..., 1] = 2 * x[..., 0] - 1
    x[..., 2] = 4.0
    x[..., 3:5] = rng.integers(0, 3, size=(n, T, 2)) * (rng.random((n, T, 2)) < 0.4)
    x[..., 5] = 3 + 2 * rng.normal(size=(n, T))
    x[..., 6] = -1 + 0.5 * rng.normal(size=(n, T))
    for i in range(n):
        x[i, T - i % 5 :] = 0.0
    return x


@pytest.fixture(scope="module")
def transform():
    return fit_feature_transform(
        raw_sequences(8, seed=0), NAMES, merge={"n_limbs": ["legs", "hands"]}, groups={"joints": ["g1", "g2"]}
    )


def reference_transform(x, t):
    """The transform dict applied with plain NumPy, in float64."""
    merged = x[..., t["columns"]].astype(np.float64)
    for j, sources in t["merge"]:
        merged[..., j] = np.any(x[..., sources] != 0, axis=-1)
    out = (merged[..., t["keep"]] - np.array(t["mean"])) / np.array(t["std"])
    if t["mask_padding"]:
        out[~np.any(x != 0, axis=-1)] = 0.0
    return out


def test_feature_transform_matches_numpy_reference(transform):
    assert transform["output_features"] == ["a", "n_limbs", "g1", "g2"]  # b, c dropped; limbs merged
    x = raw_sequences(5, seed=1)
    layer = FeatureTransform(transform)
    out = keras.ops.convert_to_numpy(layer(x))
    expected = reference_transform(x, transform)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    assert np.all(out[1, T - 1 :] == 0) and np.all(out[4, T - 4 :] == 0)  # padding stays zero
    assert layer.compute_output_shape((None, T, F_IN)) == (None, T, 4)

    clone = FeatureTransform.from_config(layer.get_config())
    assert clone.transform == transform
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(clone(x)), out)


def test_feature_transform_rejects_the_wrong_feature_count(transform):
    with pytest.raises(ValueError, match="expects 7 input features"):
        FeatureTransform(transform)(np.zeros((1, T, 5), np.float32))


def test_sliding_windows_layer_matches_numpy():
    x = np.random.default_rng(2).normal(size=(3, 11, 2)).astype(np.float32)
    layer = SlidingWindows(4, 3)
    out = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_array_equal(out, sliding_windows(x, 4, 3))
    assert layer.compute_output_shape((None, 11, 2)) == (None, 3, 4, 2)
    assert SlidingWindows.from_config(layer.get_config()).stride == 3


def test_sequence_classifier_averages_window_logits():
    x = np.random.default_rng(3).normal(size=(4, T, 2)).astype(np.float32)
    window_model = keras.Sequential(
        [keras.Input((6, 2)), keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(3)]
    )
    model = sequence_classifier(window_model, sequence_length=T, num_features=2, window=6, stride=3)
    xw, _, seq = windows_to_examples(x, np.zeros(4), window=6, stride=3)
    expected = average_by_sequence(window_model.predict(xw, verbose=0), seq, 4)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)


def test_transformed_recurrent_sequence_classifier_round_trips_through_keras_file(transform, tmp_path):
    window_model = keras.Sequential(
        [keras.Input((8, 4)), keras.layers.Masking(0.0), keras.layers.GRU(3), keras.layers.Dense(2)]
    )
    windowed = sequence_classifier(window_model, sequence_length=T, num_features=4, window=8, stride=4)
    model = with_feature_transform(windowed, transform)
    x = raw_sequences(6, seed=4)
    expected = windowed.predict(reference_transform(x, transform).astype(np.float32), verbose=0)
    out = model.predict(x, verbose=0)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)

    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.input_shape == (None, T, F_IN)
    assert loaded.get_layer("feature_transform").transform == transform
    np.testing.assert_allclose(loaded.predict(x, verbose=0), out, rtol=1e-6, atol=1e-6)


def test_with_feature_transform_checks_the_model_width(transform):
    model = keras.Sequential([keras.Input((T, 3)), keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="model takes 3 features; the transform gives 4"):
        with_feature_transform(model, transform)


def test_series_normalization_matches_numpy_and_keeps_padding():
    from kseq.models.preprocessing import SeriesNormalization

    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (4, 12, 2)).astype("float32")
    x[1, 8:] = 0.0  # 8 steps of signal, then padding
    x[2, :, 1] = 5.0  # a constant channel
    out = keras.ops.convert_to_numpy(SeriesNormalization()(x))
    for i, length in enumerate([12, 8, 12, 12]):
        signal = x[i, :length].astype("float64")
        std = signal.std(axis=0)
        expected = np.where(std > 0, (signal - signal.mean(axis=0)) / np.where(std > 0, std, 1), 0.0)
        np.testing.assert_allclose(out[i, :length], expected, atol=1e-5)
    assert not out[1, 8:].any()


def test_series_normalization_round_trips_in_a_saved_model(tmp_path):
    from kseq.models.preprocessing import SeriesNormalization, with_normalization

    inner = keras.Sequential([keras.Input((10, 3)), keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2)])
    model = with_normalization(inner, "series")
    x = np.random.default_rng(1).normal(size=(5, 10, 3)).astype("float32")
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    # Raw scale and offset do not change what the model sees.
    np.testing.assert_allclose(model.predict(10 * x + 7, verbose=0), model.predict(x, verbose=0), atol=1e-4)
    layer = SeriesNormalization.from_config(SeriesNormalization(epsilon=1e-6).get_config())
    assert layer.epsilon == 1e-6


def padded_channels(seed):
    """Six sequences, three channels of very different scales and levels; some padded at the end."""
    rng = np.random.default_rng(seed)
    x = np.stack([rng.normal(0.0, 1.0, (6, 15)), rng.normal(500.0, 40.0, (6, 15)),
                  rng.normal(-3.0, 0.01, (6, 15))], axis=-1).astype("float32")
    x[1, 9:] = 0.0
    x[4, 13:] = 0.0
    return x, [15, 9, 15, 15, 13, 15]


def test_channel_standardization_adapts_like_numpy_over_the_signal_steps():
    from kseq.models.preprocessing import ChannelStandardization

    x, lengths = padded_channels(0)
    layer = ChannelStandardization()
    layer.adapt(x)
    steps = np.concatenate([x[i, :n] for i, n in enumerate(lengths)]).astype("float64")  # padding left out
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.mean), steps.mean(0), rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.std), steps.std(0), rtol=1e-5)
    out = keras.ops.convert_to_numpy(layer(x))
    for i, n in enumerate(lengths):
        np.testing.assert_allclose(out[i, :n], (x[i, :n] - steps.mean(0)) / steps.std(0), atol=1e-4)
        assert not out[i, n:].any()  # padding stays zero
    # Levels survive: the standardised channel still tells a shifted copy apart (series norm would not).
    shifted = x.copy()
    shifted[:, :, 1] += 100.0
    assert np.abs(keras.ops.convert_to_numpy(layer(shifted))[0, :, 1] - out[0, :, 1]).min() > 1.0


def test_channel_standardization_gives_a_constant_channel_unit_scale():
    from kseq.models.preprocessing import ChannelStandardization

    x = np.ones((3, 4, 2), "float32")
    x[..., 1] = np.arange(12, dtype="float32").reshape(3, 4) + 1
    layer = ChannelStandardization()
    layer.adapt(x)
    assert keras.ops.convert_to_numpy(layer.std)[0] == 1.0
    assert not keras.ops.convert_to_numpy(layer(x))[..., 0].any()


def test_series_and_channel_concatenates_shape_and_level_and_round_trips(tmp_path):
    from kseq.models.preprocessing import ChannelStandardization, SeriesNormalization, with_normalization

    x, _ = padded_channels(1)
    inner = keras.Sequential([keras.Input((15, 6)), keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2)])
    model = with_normalization(inner, "series+channel", x)
    assert model.input_shape == (None, 15, 3)
    reference = ChannelStandardization()
    reference.adapt(x)
    features = keras.Model(model.input, model.get_layer("shape_and_level").output)
    expected = np.concatenate([keras.ops.convert_to_numpy(SeriesNormalization()(x)),
                               keras.ops.convert_to_numpy(reference(x))], axis=-1)
    np.testing.assert_allclose(features.predict(x, verbose=0), expected, atol=1e-5)
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    x_new = x * 1.5 + 2.0  # not the adapted data: the reloaded statistics must be the fitted ones
    np.testing.assert_allclose(reloaded.predict(x_new, verbose=0), model.predict(x_new, verbose=0), atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reloaded.get_layer("channel_standardization").mean),
                               keras.ops.convert_to_numpy(reference.mean), rtol=1e-6)


def test_with_normalization_rejects_an_unknown_kind():
    from kseq.models.preprocessing import with_normalization

    inner = keras.Sequential([keras.Input((5, 1)), keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="unknown normalisation 'minmax'"):
        with_normalization(inner, "minmax")


def test_length_feature_is_the_standardised_log_of_the_real_length():
    """`LengthFeature` against NumPy: adapted on the log real lengths (trailing all-zero steps left
    out), each series' feature is `(log length - mean) / std`, whatever padding follows it."""
    from kseq.models.preprocessing import LengthFeature

    x, lengths = padded_channels(2)
    layer = LengthFeature()
    layer.adapt(x)
    logs = np.log(np.asarray(lengths, "float64"))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.mean), logs.mean(), rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.std), logs.std(), rtol=1e-5)
    expected = (logs - logs.mean()) / logs.std()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x))[:, 0], expected, atol=1e-5)
    longer = np.pad(x, ((0, 0), (0, 9), (0, 0)))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(longer))[:, 0], expected, atol=1e-5)


def test_length_fraction_is_the_real_length_over_the_longest_training_length(tmp_path):
    """`LengthFraction` against NumPy: adapted on the training series' real lengths (trailing
    all-zero steps left out), each series' value is its length over the longest, whatever padding
    follows it; a longer series served later gets more than 1. Saved and loaded with the model."""
    from kseq.models.preprocessing import LengthFraction

    x, lengths = padded_channels(2)
    layer = LengthFraction()
    layer.adapt(x[[1, 4]])  # 9 and 13 real steps: the longest is 13
    assert keras.ops.convert_to_numpy(layer.longest) == 13
    expected = np.asarray(lengths, "float64") / 13
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x))[:, 0], expected, rtol=1e-6)
    longer = np.pad(x, ((0, 0), (0, 9), (0, 0)))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(longer))[:, 0], expected, rtol=1e-6)
    inputs = keras.Input((None, 3))
    model = keras.Model(inputs, layer(inputs))
    path = tmp_path / "fraction.keras"
    model.save(path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.saving.load_model(path)(x))[:, 0], expected, rtol=1e-6)


def test_length_feature_of_equal_lengths_is_zero():
    from kseq.models.preprocessing import LengthFeature

    x = np.random.default_rng(0).normal(size=(4, 6, 2)).astype("float32")
    layer = LengthFeature()
    layer.adapt(x)
    assert keras.ops.convert_to_numpy(layer.std) == 1.0
    assert not keras.ops.convert_to_numpy(layer(x)).any()
