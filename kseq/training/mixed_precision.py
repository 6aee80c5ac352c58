"""Mixed bfloat16 precision: a model built in it, on request.

`train.dtype_policy = "mixed_bfloat16"` builds the network (not its normalisation in front) with
Keras' `mixed_bfloat16` dtype policy: variables stay float32, the convolutions and matrix
products run in bfloat16. On a CPU with AVX-512 BF16 a ResNet's training step on long series
took about two thirds of its float32 time (`benchmarks/mixed_precision.py`); without native
bfloat16 (AVX2 CPUs, GPUs before Ampere) the same arithmetic is emulated and slower.

A trained model is served in float32 (`kseq.training.trainer.float32_copy`): LiteRT's converter
has no bfloat16 kernels, and a user's answers should not depend on the machine that trained. A
network fitted to bfloat16's rounding may answer otherwise in float32 (a WatchExercise `resnet`:
88.1% in bfloat16, 33.3% served; `kseq.training.recipe`), so the generic recipes train in
float32 and this policy is for a user who asks for it and checks the served model's figures.

Example:

    >>> with policy_scope("mixed_bfloat16"):
    ...     layer = keras.layers.Dense(2)
    >>> layer.compute_dtype, layer.variable_dtype, keras.config.dtype_policy().name
    ('bfloat16', 'float32', 'float32')
"""

from __future__ import annotations

import contextlib

import keras


@contextlib.contextmanager
def policy_scope(name: str):
    """Layers created inside take Keras' dtype policy `name`; the global policy is restored after."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
