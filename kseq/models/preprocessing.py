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
from kseq.utils.padding import signal_lengths, signal_mask


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
        >>> out = keras.ops.convert_to_numpy(SeriesNormalization()(x))[0, :, 0]
        >>> [round(float(v), 4) for v in out[:3]], float(abs(out[3]))  # the mean and deviation of 1, 2, 3
        ([-1.2247, 0.0, 1.2247], 0.0)
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


@keras.saving.register_keras_serializable(package="kseq")
class ChannelStandardization(layers.Layer):
    """Per-channel standardisation fitted on a training set: `(x - mean[f]) / std[f]` for channel f.

    Unlike `SeriesNormalization` it keeps what tells series apart by level and scale (a channel
    whose mean is the class), while putting channels in physical units of very different sizes
    on one scale. `adapt(x)` fits the mean and standard deviation of every channel over the signal
    steps of the training sequences (trailing all-zero steps are padding and are left out), as
    scikit-learn's `StandardScaler` would over all their time steps; a constant channel gets
    standard deviation 1. The statistics are the layer's (non-trainable) weights, so they are saved
    with the model. Padding stays all-zero.

    Example:
        >>> layer = ChannelStandardization()
        >>> layer.adapt(np.array([[[1.0, 10.0], [3.0, 30.0]]], dtype="float32"))
        >>> keras.ops.convert_to_numpy(layer(np.array([[[3.0, 10.0]]], dtype="float32"))).tolist()
        [[[1.0, -1.0]]]
    """

    def __init__(self, epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        channels = (input_shape[-1],)
        self.mean = self.add_weight(shape=channels, initializer="zeros", trainable=False, name="mean")
        self.std = self.add_weight(shape=channels, initializer="ones", trainable=False, name="std")

    def adapt(self, x) -> None:
        """Fit each channel's mean and standard deviation over the signal steps of `x` (N, T, F)."""
        x = np.asarray(x, dtype="float64")
        if x.ndim != 3:
            raise ValueError(f"ChannelStandardization.adapt expects (N, T, F) sequences; got shape {x.shape}")
        if not self.built:
            self.build(x.shape)
        steps = x[signal_mask(x)]  # (signal steps, F)
        if not len(steps):
            raise ValueError("ChannelStandardization.adapt: every sequence is all zeros")
        std = steps.std(axis=0)
        self.mean.assign(steps.mean(axis=0).astype("float32"))
        self.std.assign(np.where(std > self.epsilon, std, 1.0).astype("float32"))

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        mean, std = ops.cast(self.mean, x.dtype), ops.cast(self.std, x.dtype)
        return (x - mean) / std * ops.cast(ops.expand_dims(real_steps(x), axis=-1), x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def _training_lengths(layer: layers.Layer, x) -> np.ndarray:
    """The real lengths, at least 1, of the training sequences `x` (N, T, F) a length layer adapts
    on (trailing all-zero steps are padding); builds `layer` first."""
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"{type(layer).__name__}.adapt expects (N, T, F) sequences; got shape {x.shape}")
    if not layer.built:
        layer.build(x.shape)
    return np.maximum(signal_lengths(x), 1)


def _real_length(inputs):
    """(batch, time, features) -> (batch, 1) float32: each series' real steps (`real_steps`, at least 1)."""
    return ops.sum(ops.cast(real_steps(inputs), "float32"), axis=1, keepdims=True)


@keras.saving.register_keras_serializable(package="kseq")
class LengthFeature(layers.Layer):
    """(batch, time, features) -> (batch, 1): each series' real length, as a standardised log.

    A model built for any length pools over a series' real steps only, so its features do not
    depend on the padding after a series, and with it they lose the series' length, which on
    data of unequal lengths can be part of what a class is (a gesture's duration, an appliance's
    start-up). This layer hands the length back to the head as one feature: `(log(length) -
    mean) / std`, where `length` counts the steps before the trailing padding (`real_steps`, at
    least 1), so padding a series further does not change it. `adapt(x)` fits the mean and
    standard deviation of the log lengths of the training sequences (trailing all-zero steps are
    padding); equal lengths get standard deviation 1, so the feature is 0 for every series. The
    statistics are non-trainable weights, saved with the model.

    Example:
        >>> layer = LengthFeature()
        >>> layer.adapt(np.array([[[1.0], [0.0], [0.0]], [[1.0], [1.0], [1.0]]], dtype="float32"))
        >>> x = np.array([[[2.0], [0.0], [0.0], [0.0]]], dtype="float32")  # 1 real step, padded to 4
        >>> round(float(keras.ops.convert_to_numpy(layer(x))[0, 0]), 4)
        -1.0
    """

    def __init__(self, epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        self.mean = self.add_weight(shape=(), initializer="zeros", trainable=False, name="mean")
        self.std = self.add_weight(shape=(), initializer="ones", trainable=False, name="std")

    def adapt(self, x) -> None:
        """Fit the mean and standard deviation of the log real lengths of `x` (N, T, F)."""
        logs = np.log(_training_lengths(self, x).astype("float64"))
        std = logs.std()
        self.mean.assign(np.float32(logs.mean()))
        self.std.assign(np.float32(std if std > self.epsilon else 1.0))

    def call(self, inputs):
        feature = (ops.log(_real_length(inputs)) - ops.cast(self.mean, "float32")) / ops.cast(self.std, "float32")
        return ops.cast(feature, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="kseq")
class LengthFraction(layers.Layer):
    """(batch, time, features) -> (batch, 1): each series' real length over the longest training series'.

    A model built for any length averages its features over a series' real steps. Times this
    fraction, that average becomes one over the longest training series' steps, the steps past a
    series' own end counting zero: what a global average over every series zero-padded to that
    length gives, and near what the archive's padded copies of its unequal-length sets gave the
    published networks. So the length scales every pooled feature, an interaction a linear head
    cannot build from the one log-length input of `LengthFeature`, while padding a series further
    still changes nothing (the longest length is a fitted constant, not the batch's). `adapt(x)`
    fits the longest real length of the training sequences (trailing all-zero steps are padding);
    a longer series served later gets a fraction over 1. A non-trainable weight, saved with the
    model.

    Example:
        >>> layer = LengthFraction()
        >>> layer.adapt(np.array([[[1.0], [0.0], [0.0], [0.0]], [[1.0], [1.0], [0.0], [0.0]]], dtype="float32"))
        >>> x = np.array([[[2.0], [0.0], [0.0], [0.0], [0.0]]], dtype="float32")  # 1 real step, padded to 5
        >>> float(keras.ops.convert_to_numpy(layer(x))[0, 0])
        0.5
    """

    def build(self, input_shape):
        self.longest = self.add_weight(shape=(), initializer="ones", trainable=False, name="longest")

    def adapt(self, x) -> None:
        """Fit the longest real length of `x` (N, T, F)."""
        longest = np.max(_training_lengths(self, x), initial=1)  # builds the layer first
        self.longest.assign(np.float32(longest))

    def call(self, inputs):
        return ops.cast(_real_length(inputs) / ops.cast(self.longest, "float32"), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)


# What `preprocess.normalize` puts in front of the model (see `kseq.training.recipe` for "auto").
NORMALIZATIONS = ("none", "series", "channel", "series+channel")


def normalized_channels(kind: str, num_features: int) -> int:
    """The channels the model sees after normalisation `kind` of `num_features` input channels."""
    return 2 * num_features if kind == "series+channel" else num_features


def with_normalization(model: keras.Model, kind: str, x_fit=None, name: str | None = None) -> keras.Model:
    """Raw sequences (B, T, F) -> normalisation `kind` -> `model`, in-graph.

    `"series"`: `SeriesNormalization` (each series' shape); `"channel"`: `ChannelStandardization`
    adapted on the training sequences `x_fit` (level and scale kept); `"series+channel"`: both,
    concatenated along the channels, so the model (built for 2F channels) sees shape and level.
    Without `x_fit` the standardisation is left at mean 0, std 1, for weights set afterwards.
    """
    if kind not in NORMALIZATIONS:
        raise ValueError(f"unknown normalisation {kind!r}; expected one of {', '.join(NORMALIZATIONS)}")
    if kind == "none":
        return model
    num_features = model.input_shape[-1] // 2 if kind == "series+channel" else model.input_shape[-1]
    inputs = keras.Input((*model.input_shape[1:-1], num_features), name="sequence")
    parts = []
    if kind in ("series", "series+channel"):
        parts.append(SeriesNormalization(name="series_normalization")(inputs))
    if kind in ("channel", "series+channel"):
        standardize = ChannelStandardization(name="channel_standardization")
        if x_fit is not None:
            standardize.adapt(x_fit)
        parts.append(standardize(inputs))
    features = parts[0] if len(parts) == 1 else layers.Concatenate(axis=-1, name="shape_and_level")(parts)
    return keras.Model(inputs, model(features), name=name or model.name)
