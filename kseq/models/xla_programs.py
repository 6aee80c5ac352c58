"""Random-kernel transforms as XLA programs: compiled once per static input shape, shared between
layers of the same plan, and run on a batch in chunks of bounded size.

MiniRocket, MultiRocket and Hydra (`kseq.models.rocket`, `kseq.models.hydra`) compute their
features with a few large fused loops that XLA compiles into single passes, but that compilation
takes seconds to tens of seconds per input shape. So each layer's program is compiled once per
process and plan (`shared_program`) for two batch shapes only (`in_compiled_batches`): the one
series of a single request, and chunks whose intermediates stay within `CHUNK_ELEMENTS` values
however long the series (`chunk_size`).
"""

from __future__ import annotations

import contextlib
import contextvars
import math

import numpy as np
import tensorflow as tf

MAX_CHUNK = 256  # series in a chunk of a batch, at most
CHUNK_ELEMENTS = 2 ** 25  # series x steps x rows in a chunk: what bounds a program's intermediates


def chunk_size(steps: int, rows: int) -> int:
    """Series per chunk of a batch, for series of `steps` steps whose program holds `rows` values
    per step (the layers' `rows_per_step`).

    A program's intermediates hold about 10-18 bytes per series x step x row (the outputs, copies
    of them, the pooled masks), so chunks are cut to `CHUNK_ELEMENTS` of them, about half a
    gigabyte: a batch of 64 series of 2,000 steps took 10 GB in one MultiRocket program, and the
    programs of a `multirocket_hydra` model run side by side. Smaller chunks cost nothing:
    a series took the same time or less in chunks of 16 as of 256 (cache-sized intermediates;
    benchmarks/README.md, section rocket_chunks). Within that bound, the chunks are as few as a
    batch of `MAX_CHUNK` series needs and as even as they can be, so the series that fill up a
    batch's last chunk are few: `MAX_CHUNK` in chunks of 34 computed 272 series, in 8 of 32 it
    computes 256 (and a batch of 64, 2 chunks of 32, where 68 were computed)."""
    bound = int(np.clip(CHUNK_ELEMENTS // max(steps * rows, 1), 1, MAX_CHUNK))
    chunks = math.ceil(MAX_CHUNK / bound)
    return math.ceil(MAX_CHUNK / chunks)


def in_compiled_batches(function, x, lengths, size: int, rows: int):
    """`function(x, lengths)` -> (B, size) features, on batches of two static shapes: the one
    series of a single request, and chunks of `chunk_size(steps, rows)` series (a smaller batch
    padded to one chunk, a larger one cut into chunks, the last padded with empty series).

    XLA compiles a program per input shape, in seconds to tens of seconds for these layers, and a
    program traced for an unknown batch size is compiled again for every size it meets. With two
    static shapes a process compiles each program at most twice, whatever its callers' batch sizes,
    and a chunk's intermediates stay within `CHUNK_ELEMENTS` however long the series."""
    chunk = chunk_size(x.shape[1], rows)

    def padded(loop: bool):
        def run():
            batch = tf.shape(x)[0]
            padded = -(-batch // chunk) * chunk
            chunks = tf.reshape(tf.pad(x, [[0, padded - batch], [0, 0], [0, 0]]), [-1, chunk, *x.shape[1:]])
            chunk_lengths = tf.reshape(tf.pad(lengths, [[0, padded - batch]]), [-1, chunk])
            if not loop:  # one chunk, no loop: LiteRT's converter lowers one loop over chunks, not two
                return function(chunks[0], chunk_lengths[0])[:batch]
            features = tf.map_fn(lambda args: function(*args), (chunks, chunk_lengths),
                                 fn_output_signature=tf.TensorSpec([chunk, size], tf.float32))
            return tf.reshape(features, [padded, size])[:batch]
        return run

    def single():  # a slice of static size 1 (`ensure_shape` here would run on every batch, as a lowered cond does)
        return function(tf.slice(x, [0, 0, 0], [1, -1, -1]), tf.slice(lengths, [0], [1]))

    if x.shape[0] == 1:
        return single()
    if x.shape[0] is not None:
        return padded(x.shape[0] > chunk)()
    batch = tf.shape(x)[0]
    # Reshaped so that LiteRT's converter, which sees the cond's result unranked, knows its shape.
    return tf.reshape(tf.cond(tf.equal(batch, 1), single,
                              lambda: tf.cond(batch <= chunk, padded(False), padded(True))), [-1, size])


def compiled(function):
    """`function` compiled by XLA (TensorFlow's `jit_compile`), once per input shape.

    The features are a few large fused loops (comparisons against every bias, the sums of
    `kseq.models.rocket.pooled_in_one_pass`) that XLA compiles into single passes; op by op,
    TensorFlow's runtime writes and reads each (B, 84, n, T) intermediate instead
    (benchmarks/README.md, section vs_aeon)."""
    return tf.function(function, jit_compile=True, autograph=False)


_PROGRAMS = {}  # (layer type, static configuration...) -> compiled program, see `shared_program`


def shared_program(key: tuple, make):
    """The compiled program `make()` returns, compiled once per process for `key` (a layer type and
    what fixes the program's graph): every layer with the same key shares it, its weights passed as
    arguments, so a second model of the same shape traces and compiles nothing."""
    if key not in _PROGRAMS:
        _PROGRAMS[key] = compiled(make())
    return _PROGRAMS[key]


_FOR_EXPORT = contextvars.ContextVar("kseq_traced_for_export", default=False)


@contextlib.contextmanager
def traced_for_export():
    """Within it, a layer traces the form of its program that an export holds, where the form a
    process runs fastest would export badly: a univariate `MiniRocket` traces products, not its
    pass over time, whose unrolled loop LiteRT's converter lowers op by op
    (`kseq.models.rocket.MiniRocket.time_major`). `kseq.serving.export` traces its signatures in it."""
    token = _FOR_EXPORT.set(True)
    try:
        yield
    finally:
        _FOR_EXPORT.reset(token)


def tracing_for_export() -> bool:
    """True inside `traced_for_export`."""
    return _FOR_EXPORT.get()
