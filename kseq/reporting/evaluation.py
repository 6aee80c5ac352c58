"""Test-split report: headline metrics, per-class scores and the confusion matrix (scikit-learn)."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def report(y_true, y_prob, class_names, y_pred=None) -> dict:
    """Metrics of predicted probabilities `y_prob` (N, C) against integer labels `y_true` (N,).

    The predictions are the argmax of `y_prob`, or `y_pred` when given (a tuned decision,
    `kseq.serving.decisions`).

    Keys: accuracy, macro_f1, balanced_accuracy, per_class {name: precision, recall, f1,
    support}, confusion_matrix (rows true, columns predicted), class_names. `macro_f1` averages
    over every class in `class_names`, absent ones scoring 0, as `kseq.metrics.MacroF1` does.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_prob).argmax(axis=-1) if y_pred is None else np.asarray(y_pred)
    labels = np.arange(len(class_names))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "macro_f1": float(skm.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, y_pred)),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": skm.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "class_names": list(class_names),
    }


def headline(metrics: dict) -> str:
    """The numbers a user looks at first: one line for the argmax, and when a run fitted them
    (`kseq.serving.decisions`), one for the tuned decision its export serves and one for calibration."""
    lines = [_scores(metrics)]
    if metrics.get("decisions", {}).get("fitted"):
        lines.append(f"tuned decision (served): {_scores(metrics['decisions']['test'])}")
    if metrics.get("calibration", {}).get("fitted"):
        c = metrics["calibration"]
        lines.append(f"calibration: temperature={c['temperature']:.3g} "
                     f"test ECE {c['test_ece_before']:.4f} -> {c['test_ece_after']:.4f}")
    return "\n".join(lines)


def _scores(metrics: dict) -> str:
    recalls = " ".join(f"recall_{n}={v['recall']:.3f}" for n, v in metrics["per_class"].items())
    return (
        f"accuracy={metrics['accuracy']:.4f} macro_f1={metrics['macro_f1']:.4f} "
        f"balanced_accuracy={metrics['balanced_accuracy']:.4f} {recalls}"
    )
