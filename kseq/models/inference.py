"""Predicting with a model batch by batch, every batch of one shape, so Keras traces its predict
function once.

Keras traces a model's predict function for the first batch's shape and again, for any batch
size, at the first batch of another shape: the short last batch of a dataset whose size is not a
multiple of the batch size. For models with compiled transforms that second trace is seconds (on
5,000 series in batches of 256, `minirocket`'s first `predict` took 5.4 s, 4.5 s with one shape).
Filling the last batch up with copies of its last series costs at most one batch's arithmetic,
and inference treats every series apart (batch norm uses its moving statistics), so the answers
of the series themselves do not change.

Example:
    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> x = np.ones((5, 3), "float32")
    >>> predict_arrays(model, x, batch_size=2).shape
    (5, 2)
    >>> model.predict_function.experimental_get_tracing_count()
    1
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def predict_full_batch(model: keras.Model, batch, batch_size: int):
    """`model.predict_on_batch(batch)`, a `batch` shorter than `batch_size` filled up with copies
    of its last series, whose answers are dropped (an array, or a list for several outputs)."""
    count = int(batch.shape[0])
    if count == batch_size:
        return model.predict_on_batch(batch)
    filled = tf.concat([batch, tf.repeat(batch[-1:], batch_size - count, axis=0)], axis=0)
    return keras.tree.map_structure(lambda out: out[:count], model.predict_on_batch(filled))


def predict_batches(model: keras.Model, batches, batch_size: int, *, fill: bool):
    """`model`'s outputs for each of `batches` (an iterable of inputs of at most `batch_size`
    series), concatenated: an array, or a list for several outputs. With `fill`, a shorter batch
    is filled up (`predict_full_batch`); without, every batch is predicted as it is."""
    parts = [predict_full_batch(model, batch, batch_size) if fill else model.predict_on_batch(batch)
             for batch in batches]
    return keras.tree.map_structure(lambda *outs: np.concatenate(outs), *parts)


def predict_arrays(model: keras.Model, x: np.ndarray, batch_size: int):
    """`model`'s outputs for `x` (N, ...) in batches of `batch_size` (`predict_batches`), the last
    filled up when there are several. Data that fits one batch is predicted as it is. A model
    built under a strategy of several replicas keeps `model.predict`, which splits each batch
    between them (`predict_on_batch` would give each the whole batch)."""
    if model.distribute_strategy.num_replicas_in_sync > 1:
        return model.predict(x, batch_size=batch_size, verbose=0)
    return predict_batches(model, (x[start:start + batch_size] for start in range(0, len(x), batch_size)),
                           batch_size, fill=len(x) > batch_size)
