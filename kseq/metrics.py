"""Streaming class-balanced metrics for sparse integer labels and logits (or probabilities).

Macro-F1 has one definition throughout kseq (this metric, `val_macro_f1` in training, early
stopping and tuning, and `kseq.reporting.evaluation.report`): the unweighted mean of per-class F1 over all
`num_classes` classes, a class with no true and no predicted sample scoring 0, i.e.
`sklearn.metrics.f1_score(average="macro", labels=range(num_classes), zero_division=0)`.
Averaging only over the classes seen would let a class the model never predicts vanish from
the score whenever a split happens to lack it (perfect predictions on two of three classes
would score 1.0 instead of 2/3), and would make scores of splits with different classes
present incomparable.

They accumulate counts over the epoch, so the epoch value equals scikit-learn's on all samples
seen, not a mean of per-batch values. Labels may have shape `(batch,)` or `(batch, 1)`;
predictions `(batch, num_classes)`, reduced by argmax. `sample_weight` weights the counts.
"""

from __future__ import annotations

import keras
from keras import ops


def _labels_and_predictions(y_true, y_pred):
    y_true = ops.cast(ops.reshape(y_true, (-1,)), "int32")
    return y_true, ops.cast(ops.argmax(y_pred, axis=-1), "int32")


def _sample_weights(sample_weight, like, dtype):
    if sample_weight is None:
        return ops.ones_like(like, dtype=dtype)
    return ops.cast(ops.reshape(sample_weight, (-1,)), dtype)


class _ConfusionMatrixMetric(keras.metrics.Metric):
    """Accumulates a `(num_classes, num_classes)` confusion matrix (rows: true, columns: predicted)."""

    def __init__(self, num_classes: int, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.confusion = self.add_variable(
            shape=(self.num_classes, self.num_classes), initializer="zeros", name="confusion"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = _labels_and_predictions(y_true, y_pred)
        weights = _sample_weights(sample_weight, y_true, self.dtype)
        true_one_hot = ops.one_hot(y_true, self.num_classes, dtype=self.dtype) * weights[:, None]
        pred_one_hot = ops.one_hot(y_pred, self.num_classes, dtype=self.dtype)
        self.confusion.assign_add(ops.matmul(ops.transpose(true_one_hot), pred_one_hot))

    def reset_state(self):
        self.confusion.assign(ops.zeros_like(self.confusion))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}

    def _counts(self):
        """True positives, true counts (support) and predicted counts per class."""
        return (
            ops.diagonal(self.confusion),
            ops.sum(self.confusion, axis=1),
            ops.sum(self.confusion, axis=0),
        )


@keras.saving.register_keras_serializable(package="kseq")
class MacroF1(_ConfusionMatrixMetric):
    """Unweighted mean of per-class F1 over all `num_classes` classes.

    Matches `sklearn.metrics.f1_score(average="macro", labels=range(num_classes),
    zero_division=0)`: a class that is predicted but never true, or absent from both labels
    and predictions, scores 0 and still counts in the mean (see the module docstring for why).
    """

    def __init__(self, num_classes: int, name: str = "macro_f1", **kwargs):
        super().__init__(num_classes, name=name, **kwargs)

    def result(self):
        tp, support, predicted = self._counts()
        return ops.mean(ops.divide_no_nan(2.0 * tp, support + predicted))


@keras.saving.register_keras_serializable(package="kseq")
class BalancedAccuracy(_ConfusionMatrixMetric):
    """Mean recall over the classes present in the labels.

    Matches `sklearn.metrics.balanced_accuracy_score`: classes only predicted are ignored.
    """

    def __init__(self, num_classes: int, name: str = "balanced_accuracy", **kwargs):
        super().__init__(num_classes, name=name, **kwargs)

    def result(self):
        tp, support, _ = self._counts()
        present = ops.cast(support > 0, self.dtype)
        recall = ops.divide_no_nan(tp, support)
        return ops.divide_no_nan(ops.sum(recall * present), ops.sum(present))


@keras.saving.register_keras_serializable(package="kseq")
class ClassRecall(keras.metrics.Metric):
    """Recall of one class: the share of its samples predicted as it; 0 if it never occurs.

    Matches `sklearn.metrics.recall_score(labels=[class_id], average=None, zero_division=0)`.
    """

    def __init__(self, class_id: int, name: str | None = None, **kwargs):
        super().__init__(name=name or f"recall_{class_id}", **kwargs)
        self.class_id = int(class_id)
        self.true_positives = self.add_variable(shape=(), initializer="zeros", name="true_positives")
        self.support = self.add_variable(shape=(), initializer="zeros", name="support")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = _labels_and_predictions(y_true, y_pred)
        weights = _sample_weights(sample_weight, y_true, self.dtype)
        is_class = ops.cast(ops.equal(y_true, self.class_id), self.dtype) * weights
        hit = ops.cast(ops.equal(y_pred, self.class_id), self.dtype)
        self.true_positives.assign_add(ops.sum(is_class * hit))
        self.support.assign_add(ops.sum(is_class))

    def result(self):
        return ops.divide_no_nan(self.true_positives, self.support)

    def reset_state(self):
        self.true_positives.assign(0.0)
        self.support.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "class_id": self.class_id}
