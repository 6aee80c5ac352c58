"""Probabilities from logits in NumPy, for everything that reads a model's outputs outside the graph.

Metrics, decisions, calibration, saliency and ensembles all turn logits into probabilities; they
do it here, in float64 (scipy's stable softmax), so every report agrees to the last digit. Inside
a model or an export the graph's own softmax is used.
"""

from __future__ import annotations

import numpy as np
from scipy.special import softmax as _softmax


def softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """softmax(`logits` / `temperature`) over the last axis, float64.

    >>> softmax([[0.0, 0.0], [0.0, np.log(3.0)]]).round(2).tolist()
    [[0.5, 0.5], [0.25, 0.75]]
    """
    return _softmax(np.asarray(logits, np.float64) / temperature, axis=-1)
