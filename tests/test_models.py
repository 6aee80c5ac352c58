"""Model builders: the shared head, argument checks, deprecated arguments, structure and padding masks.

Building, fitting, saving and serving every builder is the harness's job (`test_harness.py`)."""

import re
import warnings

import keras
import numpy as np
import pytest

from kseq import InputError, build_model, model_names, register_model
from kseq.models import registry
from kseq.models.registry import model_arguments
from tests.test_harness import BUILDERS
from kseq.models.layers import AttentionPooling1D
from kseq.models.recurrent import build_rnn

N, T, F, C = 16, 24, 3, 4

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


def small(name, **head):
    """The harness's tiny arguments for `name` with the head's arguments replaced by `head`."""
    hp = {**BUILDERS[name][0], **head}
    if "head" in model_arguments(name):
        hp["head"] = "logistic"  # the random-kernel models' trained head is the shared one; ridge takes none
    if "recurrent_input_dropout" in model_arguments(name):
        hp.setdefault("recurrent_input_dropout", 0.0)  # so that dropout is the head's (see registry)
    return hp


@pytest.mark.parametrize("name", model_names())
def test_dense_units_and_dropout_mean_the_same_in_every_builder(name):
    model = build_model(name, (T, F), C, **small(name, dense_units=[5, 4], dropout=0.3))
    head = model.layers[-5:]
    assert [layer.name for layer in head] == ["dense1", "dropout1", "dense2", "dropout2", "logits"]
    assert [(layer.units, layer.activation.__name__) for layer in head[0::2]] == [
        (5, "relu"), (4, "relu"), (C, "linear")]
    assert [layer.rate for layer in head[1::2]] == [0.3, 0.3]
    assert len(head[0].input.shape) == 2  # the encoder's features: (batch, width)

    model = build_model(name, (T, F), C, **small(name, dense_units=[], dropout=0.3))
    assert [layer.name for layer in model.layers[-2:]] == ["dropout", "logits"]
    assert model.get_layer("dropout").rate == 0.3 and len(model.get_layer("dropout").input.shape) == 2
    assert not any(isinstance(layer, keras.layers.Dense) for layer in model.layers[:-1]
                   if not isinstance(layer, keras.layers.MultiHeadAttention))


def test_unknown_argument_is_named_with_the_known_ones():
    known = "filters, kernel_sizes, dense_units, dropout, l1, l2, length_feature, length_scale, name"
    with pytest.raises(InputError, match=re.escape(f"model 'resnet': unknown argument 'droput'; known: {known}")):
        build_model("resnet", (T, F), C, droput=0.1)


@pytest.mark.parametrize("name, hp, message", [
    ("cnn", dict(dropout=1.5), "dropout must be in [0, 1); got 1.5"),
    ("cnn", dict(kernel_size=2.5), "kernel_size must be a positive int; got 2.5"),
    ("cnn", dict(l2=-1e-4), "l2 must be a number >= 0; got -0.0001"),
    ("fcn", dict(filters=[4, 0], kernel_sizes=[3, 3]), "filters must be a non-empty list of positive ints; got [4, 0]"),
    ("fcn", dict(filters=[4], kernel_sizes=[3, 3]), "filters [4] and kernel_sizes [3, 3] differ in length"),
    ("resnet", dict(kernel_sizes=5), "kernel_sizes must be a non-empty list of positive ints; got 5"),
    ("inception_time", dict(depth=0), "depth must be a positive int; got 0"),
    ("rnn", dict(pooling="max"), "pooling must be one of 'last', 'average'; got 'max'"),
    ("rnn", dict(dense_units=[4, -1]), "dense_units must be a list of positive ints; got [4, -1]"),
    ("hybrid", dict(batch_norm="yes"), "batch_norm must be true or false; got 'yes'"),
    ("attention", dict(multi_head=-1), "multi_head must be an int >= 0; got -1"),
    ("attention", dict(recurrent_dropout=1.0), "recurrent_dropout must be in [0, 1); got 1.0"),
])
def test_bad_values_are_rejected_naming_the_argument(name, hp, message):
    with pytest.raises(InputError, match=re.escape(message)) as caught:
        build_model(name, (T, F), C, **hp)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("input_shape", [(T,), (T, None), (0, F), (T, F, 1)])
def test_bad_input_shape_is_rejected(input_shape):
    with pytest.raises(InputError, match=re.escape("model 'fcn': input_shape must be (steps, features)")):
        build_model("fcn", input_shape, C)


@pytest.mark.parametrize("name, old, new, message", [
    ("rnn", dict(units=3, dense_units=[4], dense_dropout=0.3, recurrent_input_dropout=0.1),
     dict(units=3, dense_units=[4], dropout=0.3, recurrent_input_dropout=0.1),
     "model 'rnn': argument 'dense_dropout' is deprecated; use 'dropout'"),
    ("hybrid", dict(conv_filters=[3], units=3), dict(filters=[3], units=3),
     "model 'hybrid': argument 'conv_filters' is deprecated; use 'filters'"),
    ("attention", dict(units=3, dense_units=5), dict(units=3, dense_units=[5]),
     "dense_units=5: an int is deprecated; give a list of widths, [5]"),
    ("rnn", dict(units=3, dense_units=0), dict(units=3), "dense_units=0: an int is deprecated; give a list of widths, []"),
    # a whole kseq 0.1 call: input dropout 0.2 in the GRU, 0.3 after the hidden layer
    ("rnn", dict(units=3, dropout=0.2, dense_units=4, dense_dropout=0.3),
     dict(units=3, recurrent_input_dropout=0.2, dense_units=[4], dropout=0.3),
     "model 'rnn': dropout=0.2 without 'recurrent_input_dropout' keeps its kseq 0.1 meaning and is read as "
     "recurrent_input_dropout=0.2"),
])
def test_deprecated_arguments_warn_and_build_the_same_model(name, old, new, message):
    keras.utils.set_random_seed(0)
    with pytest.warns(FutureWarning) as caught:
        old_model = build_model(name, (T, F), C, **old)
    assert any(message in str(w.message) for w in caught), [str(w.message) for w in caught]
    keras.utils.set_random_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new_model = build_model(name, (T, F), C, **new)
    assert [layer.get_config() for layer in old_model.layers] == [layer.get_config() for layer in new_model.layers]
    for a, b in zip(old_model.get_weights(), new_model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_old_and_new_name_together_are_rejected():
    with pytest.raises(InputError, match="'conv_filters' is the old name of 'filters'; give only 'filters'"):
        build_model("hybrid", (T, F), C, conv_filters=[3], filters=[3], units=3)


def test_recurrent_dropout_is_the_heads_once_recurrent_input_dropout_is_given():
    model = build_rnn((T, F), C, units=3, recurrent_input_dropout=0.1, dropout=0.3)
    assert model.get_layer("gru_1").dropout == 0.1
    assert model.get_layer("dropout").rate == 0.3


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


def test_a_builder_taking_any_arguments_gets_them_unchecked(monkeypatch):
    def build_any(input_shape, num_classes, **hp):
        inputs = keras.Input(input_shape, name="sequence")
        return keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(keras.layers.Flatten()(inputs)))

    for table in ("_BUILDERS", "_RENAMED", "_REPURPOSED"):  # registered for this test only
        monkeypatch.setattr(registry, table, dict(getattr(registry, table)))
    register_model("any_arguments")(build_any)
    assert model_arguments("any_arguments") is None
    assert build_model("any_arguments", (T, F), C, anything=1).output.shape == (None, C)
