import numpy as np
from sklearn.metrics import balanced_accuracy_score, f1_score

from kseq.reporting.evaluation import headline, report


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


def test_report_of_given_predictions_and_headline_of_a_tuned_decision():
    y_true = np.array([0, 0, 1, 1])
    prob = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.4, 0.6]])
    tuned = report(y_true, prob, ("a", "b"), y_pred=np.array([0, 0, 1, 1]))
    assert tuned["accuracy"] == 1.0 and tuned["confusion_matrix"] == [[2, 0], [0, 2]]
    m = report(y_true, prob, ("a", "b"))
    assert m["accuracy"] == 0.75
    m["decisions"] = {"fitted": True, "test": tuned}
    m["calibration"] = {"fitted": True, "temperature": 0.5, "test_ece_before": 0.2, "test_ece_after": 0.05}
    lines = headline(m).splitlines()
    assert lines[0].startswith("accuracy=0.7500") and lines[1].startswith("tuned decision (served): accuracy=1.0000")
    assert lines[2] == "calibration: temperature=0.5 test ECE 0.2000 -> 0.0500"
