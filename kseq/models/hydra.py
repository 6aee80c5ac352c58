"""Hydra as a Keras layer: groups of random kernels that compete, counting the winners.

Dempster, Schmidt and Webb (2023), "Hydra: competing convolutional kernels for fast and accurate
time series classification". Kernels of length 9, normally distributed then made zero-mean with
unit L1 norm, are arranged in `num_groups` groups of `num_kernels`; at every step of every
dilation, each group's largest response adds its value to that kernel's "max" count and its
smallest response adds 1 to that kernel's "min" count. Half the groups see the series, half its
first difference. Multivariate series: each group convolves the sum of a few random channels.

Hydra's parameters depend on the seed and the series length alone (dilations 1, 2, 4, ... up to
the span of the series), so it needs no `adapt`; they are non-trainable weights saved with the
model. Padding is masked as in `kseq.models.rocket`: steps past a series' length count nothing.

Example:
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(4, 64, 1)).astype("float32")
    >>> Hydra(num_kernels=8, num_groups=16)(x).shape  # 3 dilations x 2 counts x 16 groups x 8
    TensorShape([4, 768])
"""

from __future__ import annotations

import functools

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from kseq.models.rocket import (KERNEL_LENGTH, kernel_major_taps, kernel_rows, representations, series_lengths,
                                sum_over_time)
from kseq.models.xla_programs import in_compiled_batches, shared_program


def hydra_dilations(length: int) -> list[int]:
    """1, 2, 4, ... up to `(length - 1) / 8`, as the reference (at least dilation 1)."""
    exponent = max(0, int(np.log2(max(length - 1, 1) / (KERNEL_LENGTH - 1))))
    return [2 ** e for e in range(exponent + 1)]


def winners(response, pick):
    """(groups, kernels, B, T) 1.0 at each group's `pick` (`tf.argmax` or `tf.argmin`) kernel of
    `response` (groups, kernels, B, T), the first on ties. TensorFlow's own op: Keras' `argmax`
    guards negative zero with a bit cast that LiteRT's converter refuses; under XLA an index and a
    one-hot cost less than an equality mask and its running sum (benchmarks/README.md, section vs_aeon)."""
    return tf.one_hot(pick(response, axis=1, output_type=tf.int32), response.shape[1], axis=1, dtype=tf.float32)


def counts(dilations, inputs_seen, groups_per_input, num_kernels, x, lengths, kernels, mixing):
    """(B, Hydra.output_size) counts of `x` (B, T, F) with real `lengths`, for `Hydra`'s weights.

    The responses are kernel-major, (groups, kernels, B, T), as MiniRocket's
    (`kseq.models.rocket.kernel_major_convolutions`): a group's competition is then elementwise
    across its kernels' rows, and its counts over time products with one column
    (`sum_over_time`); with the kernels innermost, (B, T, groups x kernels), a batch took 1.6
    times as long (benchmarks/README.md, section vs_aeon)."""
    out = []
    for d, dilation in enumerate(dilations):
        for i, (series, series_length) in enumerate(representations(x, lengths, inputs_seen > 1)):
            # (9, F, groups x kernels): each group's kernels applied to the sum of its channels.
            kernel = kernels[d, i][:, None, :] * ops.repeat(mixing[d, i], num_kernels, axis=-1)[None]
            response = ops.matmul(kernel_rows(kernel), kernel_major_taps(series, dilation))
            steps = series.shape[1]
            response = ops.reshape(response, (groups_per_input, num_kernels, -1, steps))
            inside = ops.cast(ops.arange(steps, dtype="int32")[None, :] < series_length[:, None], "float32")  # (B, T)
            top = ops.max(response, axis=1, keepdims=True)
            largest, smallest = winners(response, tf.argmax), winners(response, tf.argmin)
            out.append(ops.transpose(sum_over_time(largest * (top * inside)), (2, 0, 1)))  # (B, groups, kernels)
            out.append(ops.transpose(sum_over_time(smallest * inside), (2, 0, 1)))
    return ops.reshape(ops.stack(out, axis=1), (ops.shape(x)[0], -1))


@keras.saving.register_keras_serializable(package="kseq")
class Hydra(layers.Layer):
    """Hydra counts: (B, T, F) series -> (B, dilations x 2 x num_groups x num_kernels); T static.

    Output ordered by dilation, then series before difference (with one group, the series only),
    then max counts before min counts, then group and kernel, as the reference.

    Args:
        num_kernels: kernels per group (the reference: 8).
        num_groups: groups (the reference: 64).
        seed: the seed of the kernels and of the channels each group sums.
    """

    def __init__(self, num_kernels: int = 8, num_groups: int = 64, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # a Keras mask gives the series' lengths
        if num_kernels < 1 or num_groups < 1:
            raise ValueError(f"num_kernels and num_groups must be >= 1; got {num_kernels}, {num_groups}")
        self.num_kernels = int(num_kernels)
        self.num_groups = int(num_groups)
        self.seed = int(seed)
        self.inputs_seen = min(2, self.num_groups)  # the series, and its difference when there are 2+ groups
        self.groups_per_input = self.num_groups // self.inputs_seen

    def build(self, input_shape):
        steps, channels = input_shape[1], input_shape[2]
        if steps is None:
            raise ValueError(f"Hydra needs a fixed sequence length; got input shape {input_shape}")
        self.dilations = hydra_dilations(steps)
        rng = np.random.default_rng(self.seed)
        shape = (len(self.dilations), self.inputs_seen, KERNEL_LENGTH, self.groups_per_input * self.num_kernels)
        weights = rng.normal(size=shape)
        weights -= weights.mean(axis=2, keepdims=True)
        weights /= np.abs(weights).sum(axis=2, keepdims=True)
        # How often each group sums each channel (all 1 for univariate series).
        mixing = np.ones((len(self.dilations), self.inputs_seen, channels, self.groups_per_input), dtype="float32")
        if channels > 1:
            per_group = int(np.clip(channels // 2, 2, 8))
            chosen = rng.integers(channels,
                                  size=(len(self.dilations), self.inputs_seen, self.groups_per_input, per_group))
            mixing = np.zeros_like(mixing)
            for d, i, g in np.ndindex(*chosen.shape[:3]):
                np.add.at(mixing[d, i, :, g], chosen[d, i, g], 1.0)
        self.kernels = self.add_weight(shape=shape, initializer=keras.initializers.Constant(weights.astype("float32")),
                                       trainable=False, name="kernels")
        self.mixing = self.add_weight(shape=mixing.shape, initializer=keras.initializers.Constant(mixing),
                                      trainable=False, name="channel_mixing")

    def call(self, inputs, mask=None):
        x = ops.cast(inputs, "float32")
        shape = (tuple(self.dilations), self.inputs_seen, self.groups_per_input, self.num_kernels)
        program = shared_program((Hydra, *shape), lambda: functools.partial(counts, *shape))
        kernels, mixing = self.kernels.value, self.mixing.value
        return in_compiled_batches(lambda x, lengths: program(x, lengths, kernels, mixing), x, series_lengths(x, mask),
                                   self.output_size(len(self.dilations)), self.rows_per_step)

    @property
    def rows_per_step(self) -> int:
        """The values a series' step has in the compiled program (what
        `kseq.models.xla_programs.chunk_size` bounds), per dilation and input: the kernel responses
        and the nine shifted copies of every channel that their product reads (`kernel_major_taps`),
        which outnumber the responses on series of many channels (as in `MiniRocket.rows_per_step`)."""
        channels = self.mixing.shape[2]
        responses = self.groups_per_input * self.num_kernels
        return len(self.dilations) * self.inputs_seen * (responses + KERNEL_LENGTH * channels)

    def output_size(self, num_dilations: int) -> int:
        return num_dilations * 2 * self.inputs_seen * self.groups_per_input * self.num_kernels

    def compute_mask(self, inputs, mask=None):
        return None  # the mask is consumed: pooling leaves no time axis

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_size(len(hydra_dilations(input_shape[1]))))

    def get_config(self):
        return {**super().get_config(), "num_kernels": self.num_kernels, "num_groups": self.num_groups,
                "seed": self.seed}
