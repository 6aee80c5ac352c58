"""Mixed bfloat16 precision: where hardware computes it natively, and a model built in it.

`train.dtype_policy = "mixed_bfloat16"` builds the network (not its normalisation in front) with
Keras' `mixed_bfloat16` dtype policy: variables stay float32, the convolutions and matrix
products run in bfloat16. On a CPU with AVX-512 BF16 a ResNet's training step on long series
took about two thirds of its float32 time (WatchExercise: the whole run 592 -> 396 s, the same
test figures; experiments/README.md). Without native bfloat16 (AVX2 CPUs, GPUs before Ampere)
the same arithmetic is emulated and slower, so `"auto"` asks for it only where
`native_bfloat16()` says the hardware has it (`kseq.training.recipe.resolve`).

A trained model is served in float32 (`kseq.training.trainer.float32_copy`): LiteRT's converter
has no bfloat16 kernels, and a user's answers should not depend on the machine that trained.

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
import tensorflow as tf

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
