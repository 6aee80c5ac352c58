"""The shared harness every model builder and every kseq layer passes, as keras-hub's tests do.

Builders: each registered builder, with the tiny arguments in `BUILDERS`, builds, fits one step,
saves and reloads as `.keras` with equal outputs, exports and serves (`kseq.serving.export` and
`kseq.serving.runtime.ServingFunction`) with equal probabilities, and accepts a variable time dimension
where `BUILDERS` says it does (and otherwise refuses it with a clear error). A new builder must
be added to `BUILDERS`, or the suite fails.

Layers: each layer registered under the `kseq` package round-trips through `get_config` /
`from_config` and `serialize_keras_object` / `deserialize_keras_object` with equal outputs, and
its symbolic output shape (what `compute_output_shape` / `compute_output_spec` say) matches the
eager one. A new layer must be added to `LAYERS`, or the suite fails.
"""

import keras
import numpy as np
import pytest

from kseq import InputError, build_model, model_names
from kseq.data.preprocess import fit_feature_transform
from kseq.serving.export import export_serving
from kseq.models.layers import AttentionPooling1D, PooledPaddingMask, RealSteps
from kseq.models.preprocessing import (AverageWindows, ChannelStandardization, FeatureTransform, FoldWindows,
                                       LengthFeature, LengthFraction, SeriesNormalization, SlidingWindows)
from kseq.models.decision import Decision
from kseq.models.hydra import Hydra
from kseq.models.random_kernels import FeatureScaling
from kseq.models.rocket import MiniRocket, MultiRocket
from kseq.models.voting import MajorityVote, SoftVote
from kseq.serving.runtime import ServingFunction

N, T, F, C = 6, 12, 3, 3
CLASS_NAMES = ["a", "b", "c"]

# name -> (tiny arguments, accepts input_shape (None, F), runtime its export serves on).
# Recurrent models serve single requests on their XLA-compiled signature, batches on TensorFlow.
BUILDERS = {
    "cnn": (dict(filters=[3], kernel_size=3, dense_units=[4], dropout=0.5), False, "litert"),
    "fcn": (dict(filters=[3, 4], kernel_sizes=[3, 3], dropout=0.5), True, "litert"),
    "resnet": (dict(filters=[3, 4], kernel_sizes=[3, 3], l2=1e-4, length_feature=True, length_scale=True), True,
               "litert"),
    "inception_time": (dict(filters=2, bottleneck_size=2, kernel_sizes=[5, 3], depth=3), True, "litert"),
    # Recurrent models: XLA for single requests (a batch-1 signature), TensorFlow for batches.
    "rnn": (dict(units=3, dense_units=[4], l2=1e-4), True, "xla-batch-1"),
    "hybrid": (dict(filters=[3], units=3, l1=1e-5), True, "xla-batch-1"),
    "attention": (dict(units=3, attention_units=3, multi_head=2), True, "xla-batch-1"),
    # Random-kernel models: dilations come from the sequence length, so it must be fixed; served as
    # recurrent models are (their transform's loops run op by op on LiteRT).
    "minirocket": (dict(num_features=84), False, "xla-batch-1"),
    "multirocket_hydra": (dict(num_features=84, num_kernels=2, num_groups=2), False, "xla-batch-1"),
}


def softmax(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def sequences(n, steps, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, steps, F)).astype("float32")
    x[::2, steps - 3:] = 0.0  # zero padding after some sequences' ends, as in real data
    return x


def test_every_registered_builder_is_in_the_harness():
    assert sorted(BUILDERS) == model_names()


@pytest.fixture(scope="module", params=model_names())
def fitted(request):
    """(name, model) for each registered builder, fitted for one step at seed 0."""
    name = request.param
    if name not in BUILDERS:
        pytest.fail(f"builder {name!r} has no harness arguments: add it to BUILDERS in {__file__}")
    keras.utils.set_random_seed(0)
    model = build_model(name, (T, F), C, **BUILDERS[name][0])
    before = [np.array(w) for w in model.get_weights()]
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(sequences(N, T), np.arange(N) % C, batch_size=N, epochs=1, verbose=0)
    after = model.get_weights()
    assert model.get_layer("logits") is model.layers[-1]
    assert not np.array_equal(before[-2], after[-2]), "one step left the logits kernel unchanged"
    return name, model


def test_builder_takes_sequence_and_gives_logits(fitted):
    name, model = fitted
    assert model.input.name == "sequence" and model.input.shape == (None, T, F)
    assert model.output.shape == (None, C)
    assert model.name == name


def test_builder_reloads_from_keras_file(fitted, tmp_path):
    _, model = fitted
    x = sequences(4, T, seed=1)
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_builder_exports_and_serves(fitted, tmp_path):
    name, model = fitted
    x = sequences(5, T, seed=2)
    export_serving(model, tmp_path / "serving", CLASS_NAMES)
    serve = ServingFunction(tmp_path / "serving")
    runtime, _, batch = BUILDERS[name][2].partition("-batch-")
    assert serve.runtime == runtime and serve.runtime_batch_size == (int(batch) if batch else None)
    np.testing.assert_allclose(serve(x[:1])["probabilities"], softmax(model.predict(x[:1], verbose=0)), atol=1e-5)
    out = serve(x)
    expected = softmax(model.predict(x, verbose=0))
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-5)
    np.testing.assert_array_equal(out["class_id"], expected.argmax(-1))
    assert [n.decode() for n in out["class_name"]] == [CLASS_NAMES[i] for i in expected.argmax(-1)]


@pytest.mark.parametrize("name", model_names())
def test_builder_time_dimension(name):
    hp, variable_length, _ = BUILDERS[name]
    if not variable_length:
        with pytest.raises(InputError, match="fixed sequence length"):
            build_model(name, (None, F), C, **hp)
        return
    keras.utils.set_random_seed(0)
    model = build_model(name, (None, F), C, **hp)
    fixed = build_model(name, (T, F), C, **hp)
    fixed.set_weights(model.get_weights())
    x = sequences(2, T, seed=3)
    np.testing.assert_allclose(model.predict(x, verbose=0), fixed.predict(x, verbose=0), atol=1e-5)
    assert model.predict(sequences(2, T + 5, seed=4), verbose=0).shape == (2, C)


def feature_transform():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 6, 3)).astype("float32")
    x[..., 2] = 2 * x[..., 0]  # correlated: dropped
    return FeatureTransform(fit_feature_transform(x, ["p", "q", "r"], correlation_threshold=0.9))


# class -> (make a layer, make its inputs).
LAYERS = {
    AttentionPooling1D: (lambda: AttentionPooling1D(3, kernel_regularizer=keras.regularizers.L2(1e-3)),
                         lambda rng: rng.normal(size=(2, 5, 4))),
    PooledPaddingMask: (lambda: PooledPaddingMask(2),
                        lambda rng: [rng.normal(size=(2, 3, 4)), np.pad(rng.normal(size=(2, 4, 3)), ((0, 0), (0, 2), (0, 0)))]),
    RealSteps: (RealSteps, lambda rng: np.pad(rng.normal(size=(2, 5, 3)), ((0, 0), (0, 2), (0, 0)))),
    FeatureTransform: (feature_transform, lambda rng: rng.normal(size=(2, 6, 3))),
    SlidingWindows: (lambda: SlidingWindows(4, 2), lambda rng: rng.normal(size=(2, 9, 3))),
    SeriesNormalization: (lambda: SeriesNormalization(epsilon=1e-6),
                          lambda rng: np.pad(rng.normal(2, 3, size=(2, 7, 3)), ((0, 0), (0, 2), (0, 0)))),
    ChannelStandardization: (lambda: adapted(ChannelStandardization(), (5, 7, 3)),
                             lambda rng: np.pad(rng.normal(2, 3, size=(2, 7, 3)), ((0, 0), (0, 2), (0, 0)))),
    LengthFeature: (lambda: adapted(LengthFeature(), (5, 7, 3)),
                    lambda rng: np.pad(rng.normal(size=(2, 7, 3)), ((0, 0), (0, 2), (0, 0)))),
    LengthFraction: (lambda: adapted(LengthFraction(), (5, 7, 3)),
                     lambda rng: np.pad(rng.normal(size=(2, 5, 3)), ((0, 0), (0, 4), (0, 0)))),
    FoldWindows: (FoldWindows, lambda rng: rng.normal(size=(2, 3, 4, 3))),
    AverageWindows: (lambda: AverageWindows(3), lambda rng: rng.normal(size=(6, 4))),
    SoftVote: (SoftVote, lambda rng: [rng.normal(size=(2, 4)) for _ in range(3)]),
    MajorityVote: (MajorityVote, lambda rng: [rng.normal(size=(2, 4)) for _ in range(3)]),
    Decision: (lambda: Decision(1.7, [0.3, -0.1, 0.0, -0.2]), lambda rng: rng.normal(size=(2, 4))),
    MiniRocket: (lambda: adapted(MiniRocket(num_features=168, seed=1), (5, 20, 2)), lambda rng: rng.normal(size=(2, 20, 2))),
    MultiRocket: (lambda: adapted(MultiRocket(num_features=84, seed=1), (5, 20, 2)), lambda rng: rng.normal(size=(2, 20, 2))),
    Hydra: (lambda: Hydra(num_kernels=3, num_groups=4, seed=1), lambda rng: rng.normal(size=(2, 20, 2))),
    FeatureScaling: (lambda: adapted(FeatureScaling(sparse=True), (6, 5)), lambda rng: rng.normal(size=(2, 5))),
}


def adapted(layer, shape):
    """`layer` after `adapt` on normal data of `shape`, so its fitted weights are not their initial values."""
    layer.adapt(np.random.default_rng(7).normal(size=shape).astype("float32"))
    return layer


def kseq_layer_classes():
    objects = keras.saving.get_custom_objects()
    return sorted((cls for key, cls in objects.items()
                   if key.startswith("kseq>") and isinstance(cls, type) and issubclass(cls, keras.layers.Layer)),
                  key=lambda cls: cls.__name__)


def layer_and_inputs(cls):
    if cls not in LAYERS:
        pytest.fail(f"layer {cls.__name__} has no harness entry: add it to LAYERS in {__file__}")
    make_layer, make_inputs = LAYERS[cls]
    inputs = make_inputs(np.random.default_rng(6))
    inputs = [np.asarray(x, "float32") for x in inputs] if isinstance(inputs, list) else np.asarray(inputs, "float32")
    return make_layer(), inputs


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def test_every_kseq_layer_is_in_the_harness():
    assert set(kseq_layer_classes()) == set(LAYERS)


@pytest.mark.parametrize("cls", kseq_layer_classes(), ids=lambda cls: cls.__name__)
def test_layer_config_round_trip(cls):
    layer, inputs = layer_and_inputs(cls)
    expected = numpy(layer(inputs))
    for clone in (cls.from_config(layer.get_config()),
                  keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))):
        assert type(clone) is cls
        assert clone.get_config() == layer.get_config()
        clone(inputs)  # builds the weights, then takes the original's
        clone.set_weights(layer.get_weights())
        np.testing.assert_allclose(numpy(clone(inputs)), expected, atol=1e-6)


@pytest.mark.parametrize("cls", kseq_layer_classes(), ids=lambda cls: cls.__name__)
def test_layer_symbolic_shape_matches_eager(cls):
    layer, inputs = layer_and_inputs(cls)
    eager = numpy(layer(inputs)).shape
    as_symbolic = (lambda x: keras.KerasTensor(x.shape, "float32"))
    symbolic = layer(([as_symbolic(x) for x in inputs] if isinstance(inputs, list) else as_symbolic(inputs)))
    assert tuple(symbolic.shape) == eager
    shapes = [x.shape for x in inputs] if isinstance(inputs, list) else inputs.shape
    assert tuple(layer.compute_output_shape(shapes)) == eager
