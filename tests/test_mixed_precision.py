"""`kseq.training.mixed_precision`: bfloat16 where the hardware has it, checked layer by layer, a float32 model after training."""

import json

import keras
import numpy as np
import pytest
from sklearn.metrics import f1_score

from kseq.config import load_config
from kseq.serving.export import LITERT_MODEL
from kseq.training import mixed_precision
from kseq.training.trainer import train

CPUINFO = """processor\t: {n}
vendor_id\t: AuthenticAMD
flags\t\t: fpu sse2 avx2 avx512f {extra}
vmx flags\t: {vmx}
"""


@pytest.mark.parametrize("extra, vmx, expected", [
    ("avx512_bf16 avx512_vnni", "", True),
    ("amx_bf16 amx_tile", "", True),
    ("avx512_vnni", "", False),
    ("avx512_vnni", "avx512_bf16", False),  # another line's words are not the CPU's flags
])
def test_native_bfloat16_is_read_from_the_cpu_flags(extra, vmx, expected):
    text = "\n".join(CPUINFO.format(n=n, extra=extra, vmx=vmx) for n in range(2))
    assert mixed_precision.cpu_has_bfloat16(text) is expected


def test_policy_scope_restores_the_global_policy_after_an_error():
    with pytest.raises(RuntimeError), mixed_precision.policy_scope("mixed_bfloat16"):
        assert keras.layers.Dense(1).compute_dtype == "bfloat16"
        raise RuntimeError
    assert keras.config.dtype_policy().name == "float32"
    assert keras.layers.Dense(1).compute_dtype == "float32"


class Dtypes(keras.callbacks.Callback):
    """Each layer's compute dtype during training, and the weights and optimizer state training ended with."""

    def on_train_begin(self, logs=None):
        layers = list(self.model._flatten_layers())
        self.dtypes = {layer.name: layer.compute_dtype for layer in layers}
        self.convolutions = {layer.compute_dtype for layer in layers if isinstance(layer, keras.layers.Conv1D)}

    def on_train_end(self, logs=None):
        self.weights = [w.copy() for w in self.model.get_weights()]
        self.optimizer = [keras.ops.convert_to_numpy(v) for v in self.model.optimizer.variables]
        self.iterations = int(self.model.optimizer.iterations.numpy())


def test_a_run_trains_in_bfloat16_and_evaluates_and_serves_in_float32(tmp_path):
    rng = np.random.default_rng(0)

    def draw(n):
        y = rng.integers(0, 2, n)
        lengths = rng.integers(40, 64, n)
        x = np.zeros((n, 64, 2), "float32")
        for i, length in enumerate(lengths):
            x[i, :length] = rng.normal(0, 1, (length, 2)) + np.sin(np.arange(length) / (2 + 3 * y[i]))[:, None]
        return x, y

    (x_train, y_train), (x_test, y_test) = draw(24), draw(16)
    data = tmp_path / "waves.npz"
    np.savez(data, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    config = load_config("resnet", [f"data.path={json.dumps(str(data))}", 'data.source="npz"', "train.steps=8",
                                    "model.filters=[4]", "model.kernel_sizes=[3]", "train.verbose=0",
                                    'train.dtype_policy="mixed_bfloat16"'])
    seen = Dtypes()
    run = train(config, tmp_path / "out", callbacks=[seen])
    assert seen.convolutions == {"bfloat16"}  # the network computed in bfloat16,
    assert seen.dtypes["series_normalization"] == "float32"  # its normalisation and logits in float32
    assert seen.dtypes["logits"] == "float32"
    assert {layer.compute_dtype for layer in run.model._flatten_layers()} == {"float32"}
    for trained, served in zip(seen.weights, run.model.get_weights(), strict=True):
        np.testing.assert_array_equal(trained, served)
    predicted = np.asarray(run.model(x_test)).argmax(1)  # the figures are the float32 model's
    assert run.metrics["macro_f1"] == pytest.approx(f1_score(y_test, predicted, average="macro"))
    assert (run.directory / "serving" / LITERT_MODEL).exists()  # LiteRT has no bfloat16 kernels
    reloaded = keras.saving.load_model(run.directory / "model.keras")
    assert {layer.compute_dtype for layer in reloaded._flatten_layers()} == {"float32"}
    # Saved as every run's model: compiled, with the optimizer's state training ended with.
    assert int(reloaded.optimizer.iterations.numpy()) == seen.iterations == 12
    for trained, saved in zip(seen.optimizer, reloaded.optimizer.variables, strict=True):
        np.testing.assert_array_equal(trained, keras.ops.convert_to_numpy(saved))


def test_an_interrupted_bfloat16_run_resumes_in_bfloat16_and_ends_as_the_uninterrupted_one(tmp_path, monkeypatch):
    """The resumed run reads its policy from the partial folder's config and restores the backup
    of the bfloat16 model into the same model; its float32 copy equals the uninterrupted run's."""
    from kseq.training import trainer
    from tests.conftest import TINY_ECG, InterruptAfter

    monkeypatch.setattr(trainer, "BACKUP_SECONDS", 0.0)  # a backup every epoch
    config = load_config("ecg_cnn", [*TINY_ECG, "train.epochs=2", "train.early_stopping_patience=5",
                                     "model.dropout=0.0", 'train.dtype_policy="mixed_bfloat16"'])
    whole = train(config, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "split", callbacks=[InterruptAfter(0)])
    (partial,) = (tmp_path / "split" / "ecg_cnn").glob(".partial-*")
    seen = Dtypes()
    resumed = train(config, tmp_path / "split", resume=partial, callbacks=[seen])
    assert seen.convolutions == {"bfloat16"}
    assert resumed.history["epoch"] == whole.history["epoch"] == [0, 1]
    np.testing.assert_allclose(resumed.history["loss"], whole.history["loss"], rtol=1e-5)
    for got, expected in zip(resumed.model.get_weights(), whole.model.get_weights(), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


class OffInBfloat16(keras.layers.Dense):
    """A dense layer whose bfloat16 kernel is wrong by `offset`, as a machine's can be (some of
    oneDNN's AMX convolutions, `kseq.training.mixed_precision`)."""

    def __init__(self, units, offset=0.0, **kwargs):
        super().__init__(units, **kwargs)
        self.offset = offset

    def call(self, inputs):
        outputs = super().call(inputs)
        return outputs + self.offset if self.compute_dtype == "bfloat16" else outputs

    def get_config(self):
        return {**super().get_config(), "offset": self.offset}


@pytest.mark.parametrize("name, shape, checked", [
    ("resnet", (None, 1), {"Conv1D", "BatchNormalization"}),
    ("fcn", (None, 1), {"Conv1D", "BatchNormalization"}),
    ("inception_time", (None, 1), {"Conv1D", "BatchNormalization"}),
    ("cnn", (40, 2), {"Conv1D", "Dense"}),
    ("hybrid", (None, 3), {"Conv1D", "BatchNormalization", "Bidirectional"}),
    ("attention", (None, 3), {"Bidirectional", "AttentionPooling1D"}),
])
def test_the_networks_compute_in_bfloat16_what_they_compute_in_float32(name, shape, checked):
    """Each layer with weights is checked against a copy of itself in float32, a wrapped recurrent
    layer's and a custom layer's sublayers included (a copy left in bfloat16 would agree exactly,
    error 0), and agrees within bfloat16's rounding."""
    from kseq.models import build_model

    with mixed_precision.policy_scope("mixed_bfloat16"):
        model = build_model(name, shape, 3)
    errors = mixed_precision.bfloat16_errors(model)
    assert {type(layer).__name__ for layer, _ in errors} == checked
    assert all(0 < error < 0.03 for _, error in errors), errors
    assert mixed_precision.wrong_in_bfloat16(model) == []


def test_a_layer_computed_wrong_in_bfloat16_is_found_with_its_error():
    with mixed_precision.policy_scope("mixed_bfloat16"):
        inputs = keras.Input((5,))
        hidden = keras.layers.Dense(4, name="right")(inputs)
        model = keras.Model(inputs, OffInBfloat16(3, offset=0.5, name="wrong")(hidden))
    (layer, error), = mixed_precision.wrong_in_bfloat16(model)
    assert layer.name == "wrong"
    # Its check input: standard normal from the seed, after the first layer's.
    rng = np.random.default_rng(0)
    rng.standard_normal((2, 5))
    x = rng.standard_normal((2, 4)).astype("float32")
    kernel, bias = layer.get_weights()
    expected = x @ kernel + bias
    assert error == pytest.approx(0.5 / np.abs(expected).max(), rel=0.05)  # the offset, up to bfloat16's rounding


class NormOffInBfloat16(keras.layers.BatchNormalization):
    """A batch norm, a layer with weights but no kernel, wrong in bfloat16 by 1."""

    def call(self, inputs, training=None, mask=None):
        outputs = super().call(inputs, training=training, mask=mask)
        return outputs + 1.0 if self.compute_dtype == "bfloat16" else outputs


class Wrapping(keras.layers.Layer):
    """A layer that calls another, as `Bidirectional` and `AttentionPooling1D` do: checked whole."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.inner = OffInBfloat16(units, offset=0.5, dtype=self.dtype_policy, name="inner")

    def build(self, input_shape):
        self.inner.build(input_shape)

    def call(self, inputs):
        return self.inner(inputs)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def test_each_wrong_layer_computes_in_float32_and_is_named_with_its_kernel_where_it_has_one():
    with mixed_precision.policy_scope("mixed_bfloat16"):
        inputs = keras.Input((16, 2))
        x = NormOffInBfloat16(name="norm")(keras.layers.Conv1D(4, 3, name="right")(inputs))
        x = Wrapping(4, name="wrapping")(OffInBfloat16(4, offset=0.5, name="dense")(x))
        model = keras.Model(inputs, keras.layers.Dense(3, name="last")(x))
    x = np.random.default_rng(1).standard_normal((3, 16, 2)).astype("float32")
    reference = keras.Model.from_config(mixed_precision.in_float32(model.get_config()), custom_objects={
        "NormOffInBfloat16": NormOffInBfloat16, "OffInBfloat16": OffInBfloat16, "Wrapping": Wrapping})
    reference.set_weights(model.get_weights())
    wrong_before = np.abs(np.asarray(model(x), "float32") - np.asarray(reference(x))).max()

    message = mixed_precision.described_in_float32(mixed_precision.float32_where_wrong(model))
    assert "norm (NormOffInBfloat16: " in message and "dense (OffInBfloat16, kernel (4, 4): " in message
    assert "wrapping (Wrapping: " in message
    assert "right" not in message and "last" not in message
    assert {layer.name: layer.compute_dtype for layer in model.layers[1:]} == {
        "right": "bfloat16", "norm": "float32", "dense": "float32", "wrapping": "float32", "last": "bfloat16"}
    assert model.get_layer("wrapping").inner.compute_dtype == "float32"  # what it calls moved with it
    assert mixed_precision.wrong_in_bfloat16(model) == []
    assert mixed_precision.float32_where_wrong(model) == []  # nothing left to move
    # The model now answers as its float32 copy does, up to the right layer's rounding.
    wrong_after = np.abs(np.asarray(model(x), "float32") - np.asarray(reference(x))).max()
    assert wrong_before > 0.4 and wrong_after < 0.05 * np.abs(np.asarray(reference(x))).max()


def test_a_run_trains_a_layer_this_machine_computes_wrong_in_bfloat16_in_float32(tmp_path, monkeypatch, capsys):
    """The wrong layer trains in float32 and the others in bfloat16: the float32 model served
    answers as the trained one did."""
    from kseq.models import registry

    def build_off(input_shape, num_classes, **hp):
        inputs = keras.Input(input_shape, name="sequence")
        hidden = keras.layers.Conv1D(4, 3, name="conv")(inputs)
        pooled = keras.layers.GlobalAveragePooling1D()(hidden)
        logits = OffInBfloat16(num_classes, offset=1.0, name="off")(pooled)
        return keras.Model(inputs, keras.layers.Activation("linear", dtype="float32", name="logits")(logits))

    for table in ("_BUILDERS", "_RENAMED", "_REPURPOSED"):  # registered for this test only
        monkeypatch.setattr(registry, table, dict(getattr(registry, table)))
    registry.register_model("off_in_bfloat16")(build_off)
    rng = np.random.default_rng(0)
    data = tmp_path / "noise.npz"
    x_test = rng.normal(size=(6, 16, 1)).astype("float32")
    np.savez(data, x_train=rng.normal(size=(20, 16, 1)).astype("float32"), y_train=np.arange(20) % 2,
             x_test=x_test, y_test=np.arange(6) % 2)
    overrides = [f"data.path={json.dumps(str(data))}", 'data.source="npz"', 'model.name="off_in_bfloat16"',
                 "train.steps=2", "train.verbose=2", 'train.dtype_policy="mixed_bfloat16"']
    seen = AnswersAtTheEnd(x_test)
    run = train(load_config("resnet", overrides), tmp_path / "out", callbacks=[seen])
    assert seen.dtypes["conv"] == "bfloat16" and seen.dtypes["off"] == "float32"
    assert "mixed_bfloat16: this machine computes off (OffInBfloat16, kernel (4, 2): " in capsys.readouterr().out
    assert {layer.compute_dtype for layer in run.model._flatten_layers()} == {"float32"}
    np.testing.assert_allclose(np.asarray(run.model(x_test)), seen.answers, atol=0.02)


class AnswersAtTheEnd(Dtypes):
    """`Dtypes`, and the training model's logits for `x` when training ends."""

    def __init__(self, x):
        super().__init__()
        self.x = x

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        self.answers = np.asarray(self.model(self.x), "float32")


def test_a_random_kernel_model_is_refused_bfloat16_with_a_line_naming_it(tmp_path):
    from kseq.utils.errors import InputError

    rng = np.random.default_rng(0)
    data = tmp_path / "noise.npz"
    np.savez(data, x_train=rng.normal(size=(20, 16, 1)).astype("float32"), y_train=np.arange(20) % 2,
             x_test=rng.normal(size=(6, 16, 1)).astype("float32"), y_test=np.arange(6) % 2)
    config = load_config("minirocket", [f"data.path={json.dumps(str(data))}", 'data.source="npz"',
                                        'train.dtype_policy="mixed_bfloat16"'])
    with pytest.raises(InputError, match=r"train.dtype_policy = 'mixed_bfloat16': model.name = 'minirocket'"):
        train(config, tmp_path / "out")
    assert not list((tmp_path / "out").rglob("*"))
