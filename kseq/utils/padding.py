"""Trailing zero padding in NumPy: where a zero-padded series' signal ends.

Series of unequal length are zero-padded at the end to one length; every step up to the last one
with a nonzero value is signal (zeros inside a series are data, NaN is a gap still to fill). The
loaders, gap filling, the recipe and the fitted normalisations all read padding this way; inside a
model, `kseq.models.layers.real_steps` is the same rule on tensors.
"""

from __future__ import annotations

import numpy as np


def signal_lengths(x: np.ndarray) -> np.ndarray:
    """Per row of `x` (N, T) or (N, T, F): the index of the last nonzero sample + 1 (0 if none).

    >>> signal_lengths(np.array([[1.0, 0.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0]])).tolist()
    [3, 0]
    """
    nonzero = (x != 0).reshape(len(x), x.shape[1], -1).any(axis=2)
    last = x.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)
    return np.where(nonzero.any(axis=1), last, 0).astype(np.int64)


def signal_mask(x: np.ndarray) -> np.ndarray:
    """(N, T) True on the signal steps of `x` (N, T) or (N, T, F), False on each row's padding."""
    x = np.asarray(x)
    return np.arange(x.shape[1]) < signal_lengths(x)[:, None]
