"""Layers and small building blocks shared by the model builders.

The layers are registered under the `kseq` package, so a `.keras` file that holds them loads
with `keras.saving.load_model` once `kseq` is imported, with no `custom_objects`.
"""

from __future__ import annotations

import keras
from keras import ops

from kseq.models.arguments import non_negative


def all_layers(model: keras.Model):
    """Every layer of `model`, in order, each nested model followed by its own layers."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from all_layers(layer)


def kernel_regularizer(l1=0.0, l2=0.0):
    """The `L1L2(l1, l2)` penalty every builder puts on its kernels, or None when both are 0."""
    l1, l2 = non_negative("l1", l1), non_negative("l2", l2)
    return keras.regularizers.L1L2(l1=l1, l2=l2) if (l1 or l2) else None


def batch_normalization(name):
    """BatchNormalization with PyTorch's default momentum (0.1 there, 0.9 in Keras' convention).

    Keras' default 0.99 leaves the moving variance of small-scale conv features (ECG beats in
    [0, 1]) far from the batch variance after a few hundred steps, so inference-mode predictions
    collapse while training-mode ones are fine; 0.9 settles within tens of steps.
    """
    return keras.layers.BatchNormalization(momentum=0.9, name=name)


def conv_bn(x, filters, kernel_size, *, steps, regularizer=None, activation="relu", name):
    """Conv1D ("same" padding, no bias) -> BatchNormalization [-> activation], over real steps only.

    The convolution block of Wang et al. (2017) and Ismail Fawaz et al. (2019); the bias is left out
    because batch norm's offset takes its place. `activation=None` stops after batch norm, for the
    last convolution of a residual block, whose activation comes after the shortcut is added.
    `x` must be zero past the model input's real `steps` (`RealSteps`; the model input, or a
    `mask_padding` output); the convolution's output is masked before batch norm, which then takes
    its batch statistics over real steps, and the block's output is zero on the padding again.
    """
    x = keras.layers.Conv1D(filters, kernel_size, padding="same", use_bias=False,
                            kernel_regularizer=regularizer, name=f"{name}_conv")(x)
    x = batch_normalization(f"{name}_bn")(mask_padding(x, steps, name=f"{name}_conv_mask"))
    if activation is not None:
        x = keras.layers.Activation(activation, name=f"{name}_{activation}")(x)
    return mask_padding(x, steps, masked=False, name=f"{name}_mask")


@keras.saving.register_keras_serializable(package="kseq")
class AttentionPooling1D(keras.layers.Layer):
    """Attention-weighted average over time: (batch, time, features) -> (batch, features).

    Each step gets an additive (Bahdanau et al. 2015) score `v . tanh(W h_t + b)`, a softmax over
    time turns the scores into weights, and the output is the weighted sum of the steps. This is
    the pooling of Yang et al. (2016), "Hierarchical attention networks for document
    classification", with its learned context vector `v`.

    Masking: steps where the incoming Keras mask is False get weight exactly 0, so the values
    held there never reach the output. The output carries no mask.

    Args:
        units: width of the hidden `tanh` layer that scores each step.
        kernel_regularizer: regularizer for both kernels (`W` and `v`).
    """

    def __init__(self, units=64, kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.supports_masking = True
        self.hidden = keras.layers.Dense(units, activation="tanh",
                                         kernel_regularizer=self.kernel_regularizer,
                                         dtype=self.dtype_policy, name="hidden")
        self.score = keras.layers.Dense(1, use_bias=False,
                                        kernel_regularizer=self.kernel_regularizer,
                                        dtype=self.dtype_policy, name="score")
        self.softmax = keras.layers.Softmax(axis=1, dtype=self.dtype_policy, name="softmax")

    def build(self, input_shape):
        self.hidden.build(input_shape)
        self.score.build((*input_shape[:-1], self.units))

    def call(self, inputs, mask=None):
        scores = self.score(self.hidden(inputs))  # (batch, time, 1)
        if mask is not None:
            mask = ops.expand_dims(mask, axis=-1)
        weights = self.softmax(scores, mask=mask)  # 0 on masked steps
        return ops.sum(weights * inputs, axis=1)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
        }


def real_steps(sequence, mask_value=0.0):
    """(batch, time, features) -> (batch, time) bool: the steps before a series' trailing padding.

    Padding is the trailing run of steps whose features all equal `mask_value` (series zero-padded
    at the end to a common length); every step up to the last one that is not padding is real,
    whatever its values, and step 0 always is, so every series has a length of at least 1. A
    step's answer depends only on the steps from it to the end of its own series and on whether
    anything but padding follows, so padding a series further never changes its real steps.
    """
    nonzero = ops.cast(ops.any(ops.not_equal(sequence, mask_value), axis=-1), "int32")
    later = ops.flip(ops.cumsum(ops.flip(nonzero, axis=1), axis=1), axis=1) > 0
    return ops.concatenate([ops.ones_like(later[:, :1]), later[:, 1:]], axis=1)


@keras.saving.register_keras_serializable(package="kseq")
class RealSteps(keras.layers.Layer):
    """(batch, time, features) -> (batch, time) bool: `real_steps` as a layer.

    The convolutional models mask their padding after every block; they compute a series' real
    steps once, with this layer, and hand the result to every `mask_padding`, rather than have
    each of those layers scan the whole input again (dozens of times in a trace of InceptionTime,
    and about half the time TensorFlow takes to trace a ResNet).
    """

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask_value = mask_value

    def call(self, sequence):
        return real_steps(sequence, self.mask_value)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:2])

    def compute_output_spec(self, sequence):
        return keras.KerasTensor(tuple(sequence.shape[:2]), dtype="bool")

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}


@keras.saving.register_keras_serializable(package="kseq")
class PooledPaddingMask(keras.layers.Layer):
    """Carry a zero-padded sequence's padding mask onto features pooled from it.

    Called on `[features, sequence]`, where `features` (batch, time // pool_size, channels) was
    computed from `sequence` (batch, time, features) by convolutions and "valid" max pooling with
    a total factor `pool_size`; or on `[features, steps]`, where `steps` (batch, time) bool is
    already which raw steps are real (`RealSteps`, computed once for a model's many masks). A raw
    step is padding when all its features equal `mask_value`, as `keras.layers.Masking` decides;
    a pooled step is kept when any of the `pool_size` raw steps
    it summarises is not padding. Pooled steps that are wholly padding are set to 0 and masked,
    so a recurrent layer after this one skips them. Nested "valid" poolings by `p` then `q` cover
    the same windows as one pooling by `p * q`, so one factor describes any stack of them.

    With `trailing=True`, only the trailing run of padding steps is padding (`real_steps`): the
    convention of the convolutional models, which call this with `pool_size=1` after every block so
    that a convolution sees zeros past a series' end however much padding follows, batch norm
    takes its statistics and global pooling its average over real steps only (both read the Keras
    mask). An all-zero step inside a series then stays data, as it is to `SeriesNormalization`.
    `fill_value` is what padding steps are set to: 0 for convolutions, `-inf` before a "same" max
    pooling, so that a window reaching past the end takes the maximum of its real steps alone.
    `masked=False` fills the padding without attaching the mask, for a layer that does not read
    masks (a convolution), which Keras would otherwise warn about.

    Args:
        pool_size: the total time downsampling between `sequence` and `features`.
        mask_value: the padding value of `sequence`.
        trailing: only the trailing run of `mask_value` steps is padding (else every such step).
        fill_value: the value written into the padding steps of `features`.
        masked: attach the padding mask to the output as its Keras mask.
    """

    def __init__(self, pool_size, mask_value=0.0, trailing=False, fill_value=0.0, masked=True, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = pool_size
        self.mask_value = mask_value
        self.trailing = bool(trailing)
        self.fill_value = float(fill_value)
        self.masked = bool(masked)
        self.supports_masking = True

    def _pooled_mask(self, sequence):
        if len(sequence.shape) == 2:  # the real steps themselves
            valid = ops.expand_dims(sequence, axis=-1)
        elif self.trailing:
            valid = ops.expand_dims(real_steps(sequence, self.mask_value), axis=-1)
        else:
            valid = ops.any(ops.not_equal(sequence, self.mask_value), axis=-1, keepdims=True)
        if self.pool_size > 1:
            valid = ops.max_pool(ops.cast(valid, "float32"), self.pool_size,
                                 strides=self.pool_size, padding="valid")
        return ops.squeeze(ops.cast(valid, "bool"), axis=-1)

    def call(self, inputs):
        features, sequence = inputs
        keep = ops.expand_dims(self._pooled_mask(sequence), axis=-1)
        return ops.where(keep, features, ops.full_like(features, self.fill_value))

    def compute_mask(self, inputs, mask=None):
        return self._pooled_mask(inputs[1]) if self.masked else None

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "mask_value": self.mask_value,
                "trailing": self.trailing, "fill_value": self.fill_value, "masked": self.masked}


def mask_padding(features, steps, *, name, fill_value=0.0, masked=True):
    """`features` (same length as `steps`) with the steps that are not real set to `fill_value`,
    and masked unless `masked=False`: `PooledPaddingMask(1, trailing=True)`, the convolutional
    models' padding rule. `steps` is `RealSteps()(inputs)`, the model input's real steps. Batch
    norm and global average pooling read the mask; give `masked=False` where a convolution comes
    next."""
    return PooledPaddingMask(1, trailing=True, fill_value=fill_value, masked=masked,
                             name=name)([features, steps])
