"""Class arithmetic the samplers share, in memory (`kseq.data.pipeline`) and on shards (`kseq.data.shards`).

Plain NumPy on per-class counts, below both pipelines so neither imports the other for it, and
below `kseq.losses`, whose public `balanced_class_weights` is the same rule, and below the
closed-form ridge head, which takes a sampler's weighting as weights (`expected_weights`).
"""

from __future__ import annotations

import numpy as np


def target_distribution(target, counts: np.ndarray) -> np.ndarray:
    """Per-class target probabilities `t` from a name or a list, normalised to sum to one.

    `"uniform"` gives every class present the same weight (PyTorch's `WeightedRandomSampler` with
    class-balanced weights), `"sqrt"` weighs classes by the square root of their counts (half-way
    to the data's own distribution); a list gives the probabilities themselves.

    >>> target_distribution("uniform", np.array([6, 0, 2])).tolist()
    [0.5, 0.0, 0.5]
    """
    present = counts > 0
    if isinstance(target, str):
        if target == "uniform":
            t = present.astype(np.float64)
        elif target == "sqrt":
            t = np.sqrt(counts, dtype=np.float64)
        else:
            raise ValueError(f"unknown target {target!r}; use 'uniform', 'sqrt' or per-class probabilities")
    else:
        t = np.asarray(target, dtype=np.float64)
        if t.shape != counts.shape:
            raise ValueError(
                f"target has {t.size} entries but y has {counts.size} classes (labels 0..{counts.size - 1})"
            )
        if not np.all(np.isfinite(t)) or np.any(t < 0) or t.sum() == 0:
            raise ValueError(f"target probabilities must be finite, non-negative and not all zero; got {t.tolist()}")
        if np.any(t[~present] > 0):
            absent = np.flatnonzero(~present & (t > 0)).tolist()
            raise ValueError(f"target gives weight to classes absent from y: {absent}")
    return t / t.sum()


def acceptance(t: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-class acceptance probability `(t_c / p_c) / max_k(t_k / p_k)` of rejection sampling; 0 for absent classes."""
    ratio = np.divide(t, counts / counts.sum(), out=np.zeros_like(t), where=counts > 0)
    return (ratio / ratio.max()).astype(np.float32)


def draw_weights(target, counts: np.ndarray) -> np.ndarray:
    """Per-class weight `t_c / n_c` of one series, so each class is drawn with its target share `t_c`."""
    return target_distribution(target, counts) / np.maximum(counts, 1)


def balanced_weights(counts: np.ndarray) -> np.ndarray:
    """Per-class weights `N / (C * n_c)`, scikit-learn's `compute_class_weight("balanced")`.

    `C` counts the classes present; an absent class gets a finite weight no sample uses.

    >>> balanced_weights(np.array([6, 2])).tolist()
    [0.6666666666666666, 2.0]
    """
    counts = np.asarray(counts)
    return counts.sum() / (np.count_nonzero(counts) * np.maximum(counts, 1))


def expected_weights(sampler: str, y: np.ndarray, target="uniform", weights=None) -> np.ndarray:
    """The weight each series of `y` carries in an epoch of `sampler`, in expectation, with mean 1.

    What a fit that sees every series once (the random-kernel models' ridge head, solved in closed
    form) weighs each series' error by, to train as the sampler's batches would: `"none"` 1;
    `"class_weight"` the balanced class weight; `"rejection"` and `"weighted"` the draw
    probability (`t_c / n_c`, or the per-sample `weights`); `"oversample"`, every class topped up
    to the majority's count, `1 / n_c`. Scaled to mean 1, so a balanced weighting is scikit-learn's
    `class_weight="balanced"` exactly.

    >>> expected_weights("rejection", np.array([0, 0, 0, 1])).tolist()
    [0.6666666666666666, 0.6666666666666666, 0.6666666666666666, 2.0]
    """
    y = np.asarray(y)
    counts = np.bincount(y)
    if sampler == "none":
        per_series = np.ones(len(y))
    elif sampler == "class_weight":
        per_series = balanced_weights(counts)[y]
    elif sampler in ("rejection", "weighted"):
        per_series = np.asarray(weights, dtype=np.float64) if weights is not None else draw_weights(target, counts)[y]
    elif sampler == "oversample":
        per_series = 1.0 / counts[y]
    else:
        raise ValueError(f"unknown sampler {sampler!r}")
    return per_series / per_series.mean()
