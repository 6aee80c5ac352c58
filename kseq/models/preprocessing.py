"""In-graph preprocessing: the fitted feature transform and sliding windows, as Keras layers.

Putting them at the front of the model means the `.keras` file and the exported SavedModel take
raw sequences, and serving applies exactly the transform fitted on the training split.
"""

from __future__ import annotations

import json

import keras
import numpy as np
from keras import layers, ops

from kseq.models.layers import real_steps


@keras.saving.register_keras_serializable(package="kseq")
class FeatureTransform(layers.Layer):
    """Applies a dict from `kseq.data.preprocess.fit_feature_transform`: (B, T, F_in) -> (B, T, F_out).

    Output feature k is one input column, or for a merged feature 1.0 where any of its source
    columns is nonzero, then standardised as `(value - mean[k]) / std[k]`. With the transform's
    `mask_padding`, all-zero time steps (padding) stay all-zero.
    """

    def __init__(self, transform: dict, **kwargs):
        super().__init__(**kwargs)
        # Kept as JSON text: a plain, detached copy that attribute tracking leaves alone.
        self._transform_json = json.dumps(transform)
        keep = transform["keep"]
        merged_sources = {j: sources for j, sources in transform["merge"]}
        self._num_inputs = len(transform["input_features"])
        self._columns = np.array([transform["columns"][j] for j in keep], dtype="int32")
        self._is_merged = np.array([j in merged_sources for j in keep])
        # sources[i, k] = 1 when input column i feeds merged output feature k.
        self._sources = np.zeros((self._num_inputs, len(keep)), dtype="float32")
        for k, j in enumerate(keep):
            self._sources[merged_sources.get(j, []), k] = 1.0
        self._mean = np.asarray(transform["mean"], dtype="float32")
        self._std = np.asarray(transform["std"], dtype="float32")
        self._mask_padding = bool(transform["mask_padding"])

    @property
    def transform(self) -> dict:
        """The fitted transform dict (a fresh copy)."""
        return json.loads(self._transform_json)

    def build(self, input_shape):
        if input_shape[-1] != self._num_inputs:
            raise ValueError(f"FeatureTransform expects {self._num_inputs} input features; got shape {input_shape}")

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        out = ops.take(x, self._columns, axis=-1)
        if self._is_merged.any():
            nonzero = ops.cast(ops.not_equal(x, 0), x.dtype)
            counts = ops.matmul(nonzero, ops.convert_to_tensor(self._sources, x.dtype))
            out = ops.where(self._is_merged, ops.cast(counts > 0, x.dtype), out)
        out = (out - ops.convert_to_tensor(self._mean, x.dtype)) / ops.convert_to_tensor(self._std, x.dtype)
        if self._mask_padding:
            out = ops.where(ops.any(ops.not_equal(x, 0), axis=-1, keepdims=True), out, ops.zeros_like(out))
        return out

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], len(self._columns))

    def get_config(self):
        return {**super().get_config(), "transform": self.transform}


@keras.saving.register_keras_serializable(package="kseq")
class SlidingWindows(layers.Layer):
    """(B, T, F) -> (B, W, window, F): windows starting at 0, stride, ... while they fit in T."""

    def __init__(self, window: int, stride: int, **kwargs):
        super().__init__(**kwargs)
        if window < 1 or stride < 1:
            raise ValueError(f"window and stride must be >= 1; got window={window}, stride={stride}")
        self.window = int(window)
        self.stride = int(stride)

    def build(self, input_shape):
        if input_shape[1] is not None and input_shape[1] < self.window:
            raise ValueError(f"window {self.window} is longer than the sequences ({input_shape[1]} steps)")

    def call(self, inputs):
        # extract_sequences frames the last axis: (B, F, T) -> (B, F, W, window).
        frames = ops.extract_sequences(ops.swapaxes(inputs, 1, 2), self.window, self.stride)
        return ops.transpose(frames, (0, 2, 3, 1))

    def compute_output_shape(self, input_shape):
        batch, steps, features = input_shape
        windows = None if steps is None else 1 + (steps - self.window) // self.stride
        return (batch, windows, self.window, features)

    def get_config(self):
        return {**super().get_config(), "window": self.window, "stride": self.stride}


@keras.saving.register_keras_serializable(package="kseq")
class FoldWindows(layers.Layer):
    """(B, W, window, F) -> (B*W, window, F): every window becomes one example for the window model."""

    def call(self, inputs):
        return ops.reshape(inputs, (-1, *inputs.shape[2:]))

    def compute_output_shape(self, input_shape):
        batch, windows, *rest = input_shape
        return (None if batch is None or windows is None else batch * windows, *rest)


@keras.saving.register_keras_serializable(package="kseq")
class AverageWindows(layers.Layer):
    """(B*W, C) -> (B, C): the mean of each sequence's `num_windows` consecutive window outputs."""

    def __init__(self, num_windows: int, **kwargs):
        super().__init__(**kwargs)
        self.num_windows = int(num_windows)

    def call(self, inputs):
        return ops.mean(ops.reshape(inputs, (-1, self.num_windows, inputs.shape[-1])), axis=1)

    def compute_output_shape(self, input_shape):
        batch, *rest = input_shape
        return (None if batch is None else batch // self.num_windows, *rest)

    def get_config(self):
        return {**super().get_config(), "num_windows": self.num_windows}


def sequence_classifier(
    window_model: keras.Model,
    sequence_length: int,
    num_features: int,
    window: int,
    stride: int,
    *,
    name: str | None = None,
) -> keras.Model:
    """Whole sequences (B, T, F) -> logits (B, C): `window_model` on every window, logits averaged.

    The windows are folded into the batch, so the window model (any Keras model, recurrent ones
    included) runs once per batch rather than once per window.
    """
    if not 1 <= window <= sequence_length or stride < 1:
        raise ValueError(f"need 1 <= window <= {sequence_length} and stride >= 1; got window={window}, stride={stride}")
    num_windows = 1 + (sequence_length - window) // stride
    inputs = keras.Input((sequence_length, num_features), name="sequence")
    windows = SlidingWindows(window, stride, name="sliding_windows")(inputs)
    logits = window_model(FoldWindows(name="fold_windows")(windows))
    outputs = AverageWindows(num_windows, name="average_windows")(logits)
    return keras.Model(inputs, outputs, name=name or f"{window_model.name}_windowed")


def with_feature_transform(model: keras.Model, transform: dict, name: str | None = None) -> keras.Model:
    """Raw sequences (B, T, F_in) -> `model`, through the fitted `FeatureTransform` at the front."""
    num_outputs = len(transform["output_features"])
    if model.input_shape[-1] != num_outputs:
        raise ValueError(f"model takes {model.input_shape[-1]} features; the transform gives {num_outputs}")
    inputs = keras.Input((model.input_shape[1], len(transform["input_features"])), name="sequence")
    outputs = model(FeatureTransform(transform, name="feature_transform")(inputs))
    return keras.Model(inputs, outputs, name=name or model.name)


@keras.saving.register_keras_serializable(package="kseq")
class SeriesNormalization(layers.Layer):
    """Per-series z-normalisation: every channel of every sequence to mean 0, standard deviation 1.

    The UCR/UEA archive's convention (each series z-normalised on its own), in-graph so the saved
    model takes raw sequences and serving normalises exactly as training did. Statistics come from
    the signal part of each sequence only: the trailing run of all-zero time steps is padding
    (unequal-length data, `kseq.models.layers.real_steps`), excluded from the mean and standard
    deviation and left at zero, so models that mask zero padding still see it, and a series is
    normalised the same however much padding follows it. A channel that is constant over the signal has
    standard deviation 0 and becomes all zeros (rather than dividing by zero).

    Example:
        >>> x = np.array([[[1.0], [2.0], [3.0], [0.0]]], dtype="float32")  # 3 steps + padding
        >>> np.round(keras.ops.convert_to_numpy(SeriesNormalization()(x))[0, :, 0], 4).tolist()
        [-1.2247, 0.0, 1.2247, 0.0]
    """

    def __init__(self, epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        signal = ops.cast(ops.expand_dims(real_steps(x), axis=-1), x.dtype)  # (B, T, 1)
        count = ops.sum(signal, axis=1, keepdims=True)  # >= 1: step 0 is always real
        mean = ops.sum(x * signal, axis=1, keepdims=True) / count
        centred = (x - mean) * signal
        std = ops.sqrt(ops.sum(ops.square(centred), axis=1, keepdims=True) / count)
        return ops.where(std > self.epsilon, centred / ops.maximum(std, self.epsilon), ops.zeros_like(centred))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def with_series_normalization(model: keras.Model, name: str | None = None) -> keras.Model:
    """Raw sequences -> `SeriesNormalization` -> `model`: the same input shape, normalised in-graph."""
    inputs = keras.Input(model.input_shape[1:], name="sequence")
    outputs = model(SeriesNormalization(name="series_normalization")(inputs))
    return keras.Model(inputs, outputs, name=name or model.name)
