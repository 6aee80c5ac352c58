"""Mixed bfloat16 precision: where hardware computes it natively, and a model built in it.

`train.dtype_policy = "mixed_bfloat16"` builds the network (not its normalisation in front) with
Keras' `mixed_bfloat16` dtype policy: variables stay float32, the convolutions and matrix
products run in bfloat16. On a CPU with AVX-512 BF16 or AMX a ResNet's training step on long
series took about two thirds of its float32 time (`benchmarks/mixed_precision.py`); without
native bfloat16 (AVX2 CPUs, GPUs before Ampere) the same arithmetic is emulated and slower, so
`"auto"` asks for it only where `native_bfloat16()` says the hardware has it
(`kseq.training.recipe.resolve`).

A trained model is served in float32 (`kseq.training.trainer.float32_copy`): LiteRT's converter
has no bfloat16 kernels, and a user's answers should not depend on the machine that trained. So
a network trained in bfloat16 must compute what its float32 copy computes, up to rounding, and
a machine's bfloat16 kernels may not: on an Intel Xeon with AMX (TensorFlow 2.21, oneDNN), 11
of 169 bfloat16 convolutions (widths 8, 16, 20 and 40 over 4 to 12 channels) answered 103-126%
of their output's range away from float32, the others within 0.7% (`python
benchmarks/mixed_precision.py --kernels`); their gradients were right. A WatchExercise `resnet`
(its first convolution: width 8 over 12 channels) trained around such a kernel to 100% of its
training series and answered 33.3% of the test series served in float32. So before a model
trains, `float32_where_wrong` checks each of its layers with weights on this machine
(`wrong_in_bfloat16`) and has each wrong one compute in float32, as Keras' mixed policies already
keep a softmax in float32: the model trains and serves with the same kernels, and the other
layers keep bfloat16's speed (that `resnet` step: 304 ms in float32, 225 ms with its first
convolution alone in float32).

Example:

    >>> with policy_scope("mixed_bfloat16"):
    ...     layer = keras.layers.Dense(2)
    >>> layer.compute_dtype, layer.variable_dtype, keras.config.dtype_policy().name
    ('bfloat16', 'float32', 'float32')
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kseq.models.layers import all_layers

TOLERANCE = 0.1  # of a layer's largest float32 output: rounding moved layers by 0.002-0.02, wrong kernels by 1.0-1.6
CHECK_STEPS = 64  # time steps of the random input a layer built for any length is checked on
CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo's names for native bfloat16 arithmetic
MIN_GPU_CAPABILITY = (8, 0)  # Ampere: bfloat16 tensor cores


def cpu_has_bfloat16(cpuinfo: str) -> bool:
    """Whether `/proc/cpuinfo`'s text names a bfloat16 instruction set on its `flags` lines."""
    flags = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags.update(value.split())
    return any(flag in flags for flag in CPU_FLAGS)


def native_bfloat16() -> bool:
    """Whether this process trains on hardware that computes bfloat16 natively: every visible GPU
    of compute capability 8.0 or more when there is a GPU, else a CPU with AVX-512 BF16 or AMX
    (Linux's `/proc/cpuinfo`; elsewhere False, float32 being the safe answer)."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return all(tuple(tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0)))
                   >= MIN_GPU_CAPABILITY for gpu in gpus)
    try:
        return cpu_has_bfloat16(Path("/proc/cpuinfo").read_text())
    except OSError:
        return False


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


def float32_where_wrong(model: keras.Model) -> list[tuple[keras.layers.Layer, float]]:
    """Have each layer of `model` that this machine computes wrong in bfloat16 (`wrong_in_bfloat16`)
    compute in float32, with the layers it calls; returns those layers with their errors (`[]`
    where every layer is right), which `described_in_float32` puts in a line.

    Call it before the model trains: a network trained around a wrong kernel is served, in
    float32, without it. Its variables are float32 already, and the layers after it cast its
    float32 output to bfloat16 as they cast any input.

    Example:

        >>> with policy_scope("mixed_bfloat16"):
        ...     model = keras.Sequential([keras.Input((32, 3)), keras.layers.Conv1D(4, 5)])
        >>> float32_where_wrong(model)
        []
    """
    wrong = wrong_in_bfloat16(model)
    for layer, _ in wrong:
        for part in layer._flatten_layers():  # itself and what it calls: a `Bidirectional`'s two layers
            part.dtype_policy = "float32"
    return wrong


def described_in_float32(moved: list[tuple[keras.layers.Layer, float]]) -> str:
    """The line a run prints for the layers `float32_where_wrong` moved."""
    layers = ", ".join(f"{layer.name} ({_described(layer)}: {error:.0%} of its output's range off)"
                       for layer, error in moved)
    return (f"mixed_bfloat16: this machine computes {layers} wrong in bfloat16, where rounding moves a layer's "
            "output by 2% at most: computed in float32")


def _described(layer) -> str:
    """A checked layer's class, and its kernel's shape where it has one (a batch norm or a
    wrapped recurrent layer has none)."""
    kernel = getattr(layer, "kernel", None)
    return type(layer).__name__ + ("" if kernel is None else f", kernel {tuple(kernel.shape)}")
