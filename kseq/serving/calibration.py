"""Temperature scaling and expected calibration error, in NumPy.

A network trained on rebalanced batches with focal loss is rarely calibrated: its top
probability says 0.99 where it is right 90% of the time. Temperature scaling (Guo et al. 2017,
"On Calibration of Modern Neural Networks") divides the logits by one scalar `T` fitted on the
validation split by minimising the negative log-likelihood; it rescales confidence without
changing any argmax, so it costs no accuracy and is one number in the exported model.

`expected_calibration_error` is the top-label ECE of that paper: the confidence (top
probability) binned in `bins` equal-width bins `(lo, hi]` (as `sklearn.calibration.calibration_curve`
bins), and the mean over samples of |accuracy - confidence| of each sample's bin.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

BINS = 15
# Temperatures searched, as log T: from 1/20 to 20, far wider than any network needs.
LOG_T_BOUNDS = (-np.log(20.0), np.log(20.0))


def negative_log_likelihood(logits, y, temperature: float = 1.0) -> float:
    """Mean cross-entropy of integer labels `y` under softmax(`logits` / `temperature`)."""
    log_p = log_softmax(np.asarray(logits, np.float64) / temperature, axis=-1)
    return float(-log_p[np.arange(len(y)), np.asarray(y)].mean())


def fit_temperature(logits, y) -> float:
    """The temperature minimising the validation NLL of `logits` (N, C) against labels `y` (N,).

    The NLL is convex in 1/T, so a bounded scalar search over log T finds its minimum.
    """
    logits, y = np.asarray(logits, np.float64), np.asarray(y)
    if len(y) == 0:
        raise ValueError("fit_temperature needs at least one example")
    found = minimize_scalar(lambda log_t: negative_log_likelihood(logits, y, np.exp(log_t)),
                            bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-5})
    return float(np.exp(found.x))


def reliability(y, probabilities, bins: int = BINS) -> dict:
    """Per confidence bin: `count`, mean `confidence` and `accuracy` (None for empty bins), and `edges`."""
    probabilities, y = np.asarray(probabilities, np.float64), np.asarray(y)
    confidence = probabilities.max(axis=-1)
    correct = probabilities.argmax(axis=-1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.searchsorted(edges[1:-1], confidence)  # bin b holds (edges[b], edges[b + 1]]
    count = np.bincount(which, minlength=bins)
    safe = np.maximum(count, 1)
    mean_confidence = np.bincount(which, confidence, minlength=bins) / safe
    accuracy = np.bincount(which, correct.astype(float), minlength=bins) / safe
    return {
        "edges": edges.tolist(),
        "count": count.tolist(),
        "confidence": [float(c) if n else None for c, n in zip(mean_confidence, count)],
        "accuracy": [float(a) if n else None for a, n in zip(accuracy, count)],
    }


def expected_calibration_error(y, probabilities, bins: int = BINS) -> float:
    """Top-label ECE: sum over bins of (bin size / N) * |bin accuracy - bin mean confidence|."""
    table = reliability(y, probabilities, bins)
    total = sum(table["count"])
    return float(sum(n / total * abs(a - c)
                     for n, a, c in zip(table["count"], table["accuracy"], table["confidence"]) if n))
