"""Imbalance-aware losses for sparse integer labels: focal loss, label-smoothed crossentropy and
logit-adjusted crossentropy.

Each takes labels of shape `(batch,)` or `(batch, 1)` and predictions of shape
`(batch, num_classes)`, logits by default (the logit-adjusted loss takes logits only). Focal
loss and smoothed crossentropy accept per-class `class_weights` that multiply each sample's loss
by the weight of its true class; `sample_weight` from `fit` applies on top of every loss.
"""

from __future__ import annotations

import functools

import keras
import numpy as np
from keras import ops

from kseq.data.sampling import balanced_weights


def balanced_class_weights(y, num_classes: int) -> np.ndarray:
    """Per-class weights `n_samples / (num_classes * count)`: scikit-learn's "balanced" mode.

    Like `compute_class_weight("balanced", classes=range(num_classes), y=y)`, every class must
    occur in `y`; a weight for a class never seen in training would be meaningless.
    """
    return balanced_weights(_counts(y, num_classes, "balanced weights"))


def class_priors(y, num_classes: int) -> np.ndarray:
    """Each class's share of the labels `y`, for `LogitAdjustedCrossentropy`; every class must occur."""
    counts = _counts(y, num_classes, "class priors")
    return counts / counts.sum()


def _counts(y, num_classes: int, what: str) -> np.ndarray:
    """Per-class counts of the labels `y`, refusing a label out of range and a class `y` lacks
    (`what` needs every class)."""
    y = np.asarray(y).astype(np.int64).ravel()
    if np.any((y < 0) | (y >= num_classes)):
        raise ValueError(f"labels must lie in [0, {num_classes}).")
    counts = np.bincount(y, minlength=num_classes)
    missing = np.flatnonzero(counts == 0)
    if missing.size:
        raise ValueError(f"classes {missing.tolist()} do not occur in y; {what} need every class.")
    return counts


def _check_class_weights(class_weights):
    """Return class weights as a list of floats (or None); reject the unresolved string."""
    if class_weights is None:
        return None
    if isinstance(class_weights, str):
        raise ValueError(
            f"class_weights={class_weights!r} must be resolved from the training labels first: "
            "pass class_weights=kseq.losses.balanced_class_weights(y_train, num_classes)."
        )
    return [float(w) for w in class_weights]


def _check_alpha(alpha, num_classes: int | None):
    """Focal `alpha` as None, a float, or a list of one float per class (of `num_classes` when known)."""
    if alpha is None or np.isscalar(alpha):
        return alpha
    alpha = [float(a) for a in alpha]
    if len(alpha) == 1:
        raise ValueError(f"alpha={alpha} has one entry; give a float to weight every class alike, "
                         "or one entry per class")
    if num_classes is not None and len(alpha) != num_classes:
        raise ValueError(f"alpha has {len(alpha)} entries but num_classes is {num_classes}")
    return alpha


def _log_probs(y_pred, from_logits: bool):
    """Log class probabilities; log_softmax keeps logits of any size finite."""
    if from_logits:
        return ops.log_softmax(y_pred, axis=-1)
    probs = y_pred / ops.sum(y_pred, axis=-1, keepdims=True)
    return ops.log(ops.clip(probs, keras.config.epsilon(), 1.0))


def _targets(y_true, num_classes: int, label_smoothing: float, dtype):
    """One-hot targets from sparse labels, smoothed towards uniform as Keras does."""
    one_hot = ops.one_hot(y_true, num_classes, dtype=dtype)
    return one_hot * (1.0 - label_smoothing) + label_smoothing / num_classes


def _sparse_labels(y_true):
    return ops.cast(ops.reshape(y_true, (-1,)), "int32")


def _apply_class_weights(losses, y_true, class_weights):
    if class_weights is None:
        return losses
    return losses * ops.take(ops.convert_to_tensor(class_weights, losses.dtype), y_true)


@keras.saving.register_keras_serializable(package="kseq")
class FocalLoss(keras.losses.Loss):
    """Focal loss (Lin et al., 2017) for sparse labels: down-weights easy, well-classified samples.

    Per sample: `sum_c alpha_c * (1 - p_c)^gamma * -t_c * log(p_c)` with `t` the (smoothed)
    one-hot target, as `keras.losses.CategoricalFocalCrossentropy` on one-hot labels.
    `alpha` is a float or a per-class list; None means no alpha weighting (alpha = 1).
    With `gamma=0` and no alpha it is sparse categorical crossentropy.

    A per-class `alpha` list is checked where the mistake is made rather than broadcast: with
    `num_classes` its length must match at construction; without, at the first call against
    the predictions' class axis. A one-element list is refused outright (a float says "the
    same alpha for every class" without relying on broadcasting).
    """

    def __init__(
        self,
        gamma: float = 2.0,
        alpha=None,
        label_smoothing: float = 0.0,
        class_weights=None,
        from_logits: bool = True,
        num_classes: int | None = None,
        name: str = "focal_loss",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.gamma = float(gamma)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.alpha = _check_alpha(alpha, self.num_classes)
        self.label_smoothing = float(label_smoothing)
        self.class_weights = _check_class_weights(class_weights)
        self.from_logits = from_logits

    def call(self, y_true, y_pred):
        y_true = _sparse_labels(y_true)
        classes = ops.shape(y_pred)[-1]
        if isinstance(self.alpha, list) and isinstance(classes, int) and classes != len(self.alpha):
            raise ValueError(f"FocalLoss: alpha has {len(self.alpha)} entries but the predictions have "
                             f"{classes} classes; give one alpha per class")
        log_p = _log_probs(y_pred, self.from_logits)
        targets = _targets(y_true, classes, self.label_smoothing, log_p.dtype)
        losses = -targets * log_p
        if self.gamma:
            # Clip as Keras does, so (1 - p)^gamma has a finite gradient when p reaches 1.
            eps = keras.config.epsilon()
            losses = ops.power(1.0 - ops.clip(ops.exp(log_p), eps, 1.0 - eps), self.gamma) * losses
        if self.alpha is not None:
            losses = ops.convert_to_tensor(self.alpha, log_p.dtype) * losses
        return _apply_class_weights(ops.sum(losses, axis=-1), y_true, self.class_weights)

    def get_config(self):
        return {
            **super().get_config(),
            "gamma": self.gamma,
            "alpha": self.alpha,
            "num_classes": self.num_classes,
            "label_smoothing": self.label_smoothing,
            "class_weights": self.class_weights,
            "from_logits": self.from_logits,
        }


@keras.saving.register_keras_serializable(package="kseq")
class SmoothedCrossentropy(keras.losses.Loss):
    """Crossentropy with label smoothing for sparse labels.

    Keras' `SparseCategoricalCrossentropy` has no label smoothing; this equals
    `keras.losses.CategoricalCrossentropy(label_smoothing=...)` on one-hot labels.
    """

    def __init__(
        self,
        label_smoothing: float = 0.1,
        class_weights=None,
        from_logits: bool = True,
        name: str = "smoothed_crossentropy",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)
        self.class_weights = _check_class_weights(class_weights)
        self.from_logits = from_logits

    def call(self, y_true, y_pred):
        y_true = _sparse_labels(y_true)
        log_p = _log_probs(y_pred, self.from_logits)
        targets = _targets(y_true, ops.shape(y_pred)[-1], self.label_smoothing, log_p.dtype)
        losses = -ops.sum(targets * log_p, axis=-1)
        return _apply_class_weights(losses, y_true, self.class_weights)

    def get_config(self):
        return {
            **super().get_config(),
            "label_smoothing": self.label_smoothing,
            "class_weights": self.class_weights,
            "from_logits": self.from_logits,
        }


@keras.saving.register_keras_serializable(package="kseq")
class LogitAdjustedCrossentropy(keras.losses.Loss):
    """Crossentropy of logits shifted by `tau * log(prior)` (Menon et al., 2021, "Long-tail learning
    via logit adjustment").

    Per sample: `-log softmax(logits + tau * log(class_priors))[y]`. Only training sees the shift,
    so the model's own logits learn `log p(y | x) - tau * log p(y)` plus a constant: with `tau = 1`
    their argmax is the balanced-error rule, a rare class no longer lost to its prior. Unlike
    class weights, which stop mattering once a network fits its training set (every weighted
    loss then reaches zero: Byrd and Lipton, 2019), the shift asks for a margin that grows as a
    class's prior falls, and keeps asking at zero training error. `class_priors`: the training
    labels' class frequencies (`class_priors(y, num_classes)`), or their counts (only their
    ratios matter); uniform priors give plain crossentropy.

    >>> loss = LogitAdjustedCrossentropy(class_priors=[0.9, 0.1])
    >>> round(float(loss([1], [[0.0, 0.0]])), 3)  # -log(0.1 / (0.9 + 0.1))
    2.303
    """

    def __init__(self, class_priors, tau: float = 1.0, name: str = "logit_adjusted", **kwargs):
        super().__init__(name=name, **kwargs)
        priors = np.asarray(class_priors, np.float64)
        if priors.ndim != 1 or priors.size < 2 or np.any(priors <= 0):
            raise ValueError(f"class_priors must be a positive frequency for each of two or more classes; "
                             f"got {class_priors!r}")
        self.class_priors = priors.tolist()  # a common scale shifts every logit alike: counts do too
        self.tau = float(tau)

    def call(self, y_true, y_pred):
        y_true, y_pred = _sparse_labels(y_true), ops.convert_to_tensor(y_pred)
        shift = ops.convert_to_tensor(self.tau * np.log(self.class_priors), y_pred.dtype)
        log_p = _log_probs(y_pred + shift, from_logits=True)
        return -ops.sum(_targets(y_true, len(self.class_priors), 0.0, log_p.dtype) * log_p, axis=-1)

    def get_config(self):
        return {**super().get_config(), "class_priors": self.class_priors, "tau": self.tau}


_LOSSES = {
    "focal": FocalLoss,
    "logit_adjusted": LogitAdjustedCrossentropy,
    "smoothed_crossentropy": SmoothedCrossentropy,
    # Plain sparse crossentropy, still taking class_weights.
    "crossentropy": functools.partial(SmoothedCrossentropy, label_smoothing=0.0, name="crossentropy"),
}


def get_loss(name: str, **kwargs) -> keras.losses.Loss:
    """Build a loss by name, as from a config's `[loss]` table: `get_loss("focal", gamma=2.0)`."""
    if name not in _LOSSES:
        raise ValueError(f"unknown loss {name!r}; known: {', '.join(sorted(_LOSSES))}")
    return _LOSSES[name](**kwargs)
