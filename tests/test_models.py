"""Model builders: build, train a step, save/reload, structure and padding masks."""

import keras
import numpy as np
import pytest

from kseq import InputError, build_model, model_names
from kseq.models.layers import AttentionPooling1D
from kseq.models.recurrent import build_rnn

N, T, F, C = 16, 24, 3, 4

# Tiny hyperparameters per registered model, so each builds and trains in seconds.
# "attention" keeps its bidirectional default, so a Bidirectional layer is saved and reloaded too.
TINY = {
    "cnn": dict(filters=(4, 4), dense_units=(8,)),
    "rnn": dict(cell="gru", layers=2, units=[6, 4], dense_units=[5], dropout=0.2,
                recurrent_input_dropout=0.1, l1=1e-5, l2=1e-4),
    "hybrid": dict(filters=(4, 6), cell="lstm", bidirectional=False, units=5, l2=1e-4),
    "attention": dict(units=4, attention_units=5, multi_head=2, dense_units=[6], l2=1e-4),
    "fcn": dict(filters=(4, 6, 4), l2=1e-4),
    "resnet": dict(filters=(4, 4), kernel_sizes=(5, 3), l2=1e-4),  # conv and plain shortcuts
    "inception_time": dict(filters=2, bottleneck_size=3, kernel_sizes=(9, 5, 3), depth=3,
                           l2=1e-4),
}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, T, F)).astype("float32")
    x[::2, T - 8:] = 0.0  # half the sequences end early and are zero-padded, as real data is
    y = rng.integers(0, C, size=N)
    return x, y


def padded_pair(length=10):
    """A random (1, length, F) sequence and the same sequence zero-padded to (1, T, F)."""
    sequence = np.random.default_rng(1).normal(size=(1, length, F)).astype("float32")
    padded = np.zeros((1, T, F), "float32")
    padded[:, :length] = sequence
    return sequence, padded


def test_every_builder_is_registered():
    assert set(TINY) <= set(model_names())


@pytest.mark.parametrize("name", sorted(TINY))
def test_builder_trains_saves_and_reloads(name, data, tmp_path):
    x, y = data
    keras.utils.set_random_seed(0)
    model = build_model(name, (T, F), C, **TINY[name])
    assert model.input.shape == (None, T, F)
    assert model.layers[0].name == "sequence"
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)

    path = tmp_path / f"{name}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)

    logits = keras.ops.convert_to_numpy(model(x, training=False))
    assert logits.shape == (N, C)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reloaded(x, training=False)),
                               logits, atol=1e-5)


def test_seed_best_rnn_is_three_bidirectional_gru_100():
    model = build_rnn((T, F), C, cell="gru", bidirectional=True, layers=3, units=100)
    wrappers = [layer for layer in model.layers if isinstance(layer, keras.layers.Bidirectional)]
    assert [w.name for w in wrappers] == ["bigru_1", "bigru_2", "bigru_3"]
    for wrapper in wrappers:
        assert isinstance(wrapper.forward_layer, keras.layers.GRU)
        assert wrapper.forward_layer.units == 100
    assert [w.forward_layer.return_sequences for w in wrappers] == [True, True, False]
    assert model.output.shape == (None, C)


@pytest.mark.parametrize("cell, layer_class", [("simple", keras.layers.SimpleRNN),
                                               ("lstm", keras.layers.LSTM)])
def test_simple_and_lstm_cells_build(cell, layer_class, data):
    model = build_rnn((T, F), C, cell=cell, units=4)
    assert sum(isinstance(layer, layer_class) for layer in model.layers) == 1
    assert model(data[0][:2]).shape == (2, C)


def test_bad_recurrent_arguments_are_rejected():
    with pytest.raises(InputError, match="unknown cell"):
        build_rnn((T, F), C, cell="transformer")
    with pytest.raises(InputError, match="units has 2 entries"):
        build_rnn((T, F), C, layers=3, units=[4, 4])


@pytest.mark.parametrize("name, hp", [
    ("rnn", dict(bidirectional=True, layers=2, units=4)),
    ("rnn", dict(cell="lstm", units=4, pooling="average")),
    ("attention", dict(units=4, attention_units=4)),
    ("attention", dict(units=4, attention_units=4, multi_head=2)),
    # one conv block and a length divisible by the pool size: no pooled step mixes data and padding
    ("hybrid", dict(filters=(4,), pool_size=2, units=4)),
])
def test_zero_padding_does_not_change_the_logits(name, hp):
    keras.utils.set_random_seed(0)
    model = build_model(name, (None, F), C, **hp)
    sequence, padded = padded_pair(length=10)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(padded, training=False)),
                               keras.ops.convert_to_numpy(model(sequence, training=False)),
                               atol=1e-5)


def test_attention_pooling_gives_masked_steps_zero_weight():
    pooling = AttentionPooling1D(units=5)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 7, 3)).astype("float32")
    mask = np.arange(7)[None, :] < np.array([[4], [6]])
    changed = np.where(mask[..., None], x, rng.normal(size=x.shape) * 100).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(pooling(changed, mask=mask)),
                               keras.ops.convert_to_numpy(pooling(x, mask=mask)), atol=1e-6)
    assert not np.allclose(keras.ops.convert_to_numpy(pooling(changed)),
                           keras.ops.convert_to_numpy(pooling(x)))


def test_batch_norm_moving_statistics_settle_within_tens_of_steps():
    """Small-scale inputs (ECG beats lie in [0, 1]) once left Keras' default-momentum moving
    variance ~70x the batch variance after 70 steps, collapsing inference-mode accuracy.
    With momentum 0.99 the ratio here is ~100; with 0.9 it is near 1."""
    rng = np.random.default_rng(2)
    x = rng.random((64, T, 1)).astype("float32")
    y = rng.integers(0, C, size=64)
    keras.utils.set_random_seed(0)
    model = build_model("hybrid", (T, 1), C, filters=(4,), units=4)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=20, batch_size=16, verbose=0)  # 80 steps
    conv = keras.Model(model.input, model.get_layer("conv1").output).predict(x, verbose=0)
    moving = keras.ops.convert_to_numpy(model.get_layer("conv1_bn").moving_variance)
    ratio = moving / conv.var(axis=(0, 1))
    assert np.all((ratio > 0.5) & (ratio < 3.0)), ratio
