import numpy as np
from sklearn.metrics import balanced_accuracy_score, f1_score

from kseq.evaluation import headline, report


def test_report_matches_hand_computed_case():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 1, 0])
    prob = np.eye(3)[y_pred] * 0.8 + 0.2 / 3
    m = report(y_true, prob, ("a", "b", "c"))
    assert m["accuracy"] == 4 / 6
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert m["per_class"]["a"] == {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3}
    assert m["per_class"]["b"]["precision"] == 2 / 3 and m["per_class"]["b"]["recall"] == 1.0
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert np.isclose(m["macro_f1"], f1_score(y_true, y_pred, average="macro"))
    assert np.isclose(m["balanced_accuracy"], balanced_accuracy_score(y_true, y_pred))
    assert "recall_c=0.000" in headline(m)


def test_report_counts_classes_absent_from_predictions():
    y_true = np.array([0, 1, 1])
    prob = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3]])
    m = report(y_true, prob, ("x", "y"))
    assert m["per_class"]["y"]["support"] == 2
    assert m["per_class"]["y"]["f1"] == 0.0
