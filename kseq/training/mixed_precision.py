"""Mixed bfloat16 precision: a model built in it, on request.

`train.dtype_policy = "mixed_bfloat16"` builds the network (not its normalisation in front) with
Keras' `mixed_bfloat16` dtype policy: variables stay float32, the convolutions and matrix
products run in bfloat16. On a CPU with AVX-512 BF16 a ResNet's training step on long series
took about two thirds of its float32 time (`benchmarks/mixed_precision.py`); without native
bfloat16 (AVX2 CPUs, GPUs before Ampere) the same arithmetic is emulated and slower.

A trained model is served in float32 (`kseq.training.trainer.float32_copy`): LiteRT's converter
has no bfloat16 kernels, and a user's answers should not depend on the machine that trained. So
a network trained in bfloat16 must compute what its float32 copy computes, up to rounding, and
a machine's bfloat16 kernels may not: on an Intel Xeon with AMX (TensorFlow 2.21, oneDNN), 11
of 169 bfloat16 convolutions (widths 8, 16, 20 and 40 over 4 to 12 channels) answered 103-126%
of their output's range away from float32, the others within 0.7% (`python
benchmarks/mixed_precision.py --kernels`). A WatchExercise `resnet` (its first convolution: width
8 over 12 channels) trained around such a kernel to 100% of its training series and answered
33.3% of the test series served in float32 (`kseq.training.recipe`). With oneDNN kept off AMX
(`ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16` set before TensorFlow starts) all 169 were right, and
bfloat16 steps took longer than float32's (benchmarks/README.md, section mixed_precision).
`wrong_in_bfloat16` checks each of a model's layers with weights before it trains, and
the trainer refuses the policy where one is wrong (`refuse_wrong_kernels`). The generic recipes
train in float32; this policy is for a user who asks for it.

Example:

    >>> with policy_scope("mixed_bfloat16"):
    ...     layer = keras.layers.Dense(2)
    >>> layer.compute_dtype, layer.variable_dtype, keras.config.dtype_policy().name
    ('bfloat16', 'float32', 'float32')
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np

from kseq.models.layers import all_layers
from kseq.utils.errors import InputError

TOLERANCE = 0.1  # of a layer's largest float32 output: rounding moved layers by 0.002-0.02, wrong kernels by 1.0-1.6
CHECK_STEPS = 64  # time steps of the random input a layer built for any length is checked on


@contextlib.contextmanager
def policy_scope(name: str):
    """Layers created inside take Keras' dtype policy `name`; the global policy is restored after."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def bfloat16_errors(model: keras.Model, *, seed: int = 0) -> list[tuple[keras.layers.Layer, float]]:
    """Each layer of `model`'s graph (nested models' too) that has weights and computes in
    bfloat16, with how far its answer to a random input is from the same layer's in float32: the
    largest difference over the float32 output's largest magnitude.

    Each layer is checked alone, on standard normal input of its own input shape (batch 2, and
    `CHECK_STEPS` steps where its length is free), against a float32 copy of itself with the same
    weights (`in_float32`): alone, bfloat16's rounding of its input and weights moved its output
    by 0.2-0.7% (convolutions, dense layers, batch norm) to 2% (a recurrent layer over 2,000
    steps), while a whole network's difference grows with depth and would blur a wrong kernel's
    100%.
    """
    rng = np.random.default_rng(seed)
    errors = []
    for layer in all_layers(model):
        if isinstance(layer, keras.Model) or not layer.weights or layer.compute_dtype != "bfloat16":
            continue
        shape = (2, *(size or CHECK_STEPS for size in keras.tree.flatten(layer.input)[0].shape[1:]))
        x = rng.standard_normal(shape).astype("float32")
        reference = type(layer).from_config(in_float32(layer.get_config()))
        reference.build(shape)
        reference.set_weights(layer.get_weights())
        expected = keras.ops.convert_to_numpy(reference(x))
        got = keras.ops.convert_to_numpy(keras.ops.cast(layer(x), "float32"))
        errors.append((layer, float(np.abs(got - expected).max() / max(float(np.abs(expected).max()), 1e-12))))
    return errors


def in_float32(config):
    """A layer's config with every dtype policy in it, its wrapped layers' too, float32."""
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy":
            return {**config, "config": {**config["config"], "name": "float32"}}
        return {key: "float32" if key == "dtype" and isinstance(value, str) else in_float32(value)
                for key, value in config.items()}
    if isinstance(config, list):
        return [in_float32(value) for value in config]
    return config


def wrong_in_bfloat16(model: keras.Model) -> list[tuple[keras.layers.Layer, float]]:
    """The layers of `bfloat16_errors(model)` whose error exceeds `TOLERANCE`: computed wrong, not rounded.

    Example:

        >>> with policy_scope("mixed_bfloat16"):
        ...     model = keras.Sequential([keras.Input((32, 3)), keras.layers.Conv1D(4, 5)])
        >>> wrong_in_bfloat16(model)
        []
    """
    return [(layer, error) for layer, error in bfloat16_errors(model) if error > TOLERANCE]


def refuse_wrong_kernels(model: keras.Model) -> None:
    """Raise `InputError` naming `train.dtype_policy` when this machine computes one of `model`'s
    layers wrong in bfloat16 (`wrong_in_bfloat16`): the model would train around the wrong kernel
    and be served, in float32, without it."""
    wrong = wrong_in_bfloat16(model)
    if wrong:
        layers = ", ".join(f"{layer.name} ({_described(layer)}: {error:.0%} of its output's range off)"
                           for layer, error in wrong)
        raise InputError(f"train.dtype_policy = 'mixed_bfloat16': this machine computes {layers} wrong in bfloat16, "
                         "where rounding moves a layer's output by 2% at most, and the model is served in float32: "
                         "train in 'float32'")


def _described(layer) -> str:
    """A checked layer's class, and its kernel's shape where it has one (a batch norm or a
    wrapped recurrent layer has none)."""
    kernel = getattr(layer, "kernel", None)
    return type(layer).__name__ + ("" if kernel is None else f", kernel {tuple(kernel.shape)}")
