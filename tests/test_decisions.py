import keras
import numpy as np
import pytest
from scipy.special import log_softmax
from sklearn.metrics import f1_score, recall_score

from kseq.serving import decisions
from kseq.utils.errors import InputError
from kseq.models.decision import Decision

SETTINGS = {"thresholds": "macro_f1", "recall_floor": {}, "calibrate": True}


def imbalanced_scores(n, seed, shift=2.5):
    """3 classes, 80/15/5%; the model's log-probabilities favour the majority by `shift` nats."""
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=n, p=[0.8, 0.15, 0.05])
    logits = rng.normal(size=(n, 3)) + 2.0 * np.eye(3)[y]
    logits[:, 0] += shift
    return log_softmax(logits, axis=-1), y


def macro_f1(y, pred, c=3):
    return f1_score(y, pred, labels=range(c), average="macro", zero_division=0)


def test_objective_is_scikit_learns_macro_f1():
    rng = np.random.default_rng(0)
    y, pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    shortfall, score = decisions.objective(y, pred, 4, floors=[0, 0.9, 0, 0])
    assert score == pytest.approx(macro_f1(y, pred, 4))
    assert shortfall == pytest.approx(0.9 - recall_score(y, pred, labels=[1], average=None)[0])


def test_two_class_offsets_reach_the_brute_force_optimum():
    rng = np.random.default_rng(1)
    y = (rng.random(600) < 0.1).astype(int)
    logits = np.stack([np.zeros(600), rng.normal(size=600) + 1.5 * y - 1.0], axis=1)
    log_p = log_softmax(logits, axis=-1)
    # One degree of freedom: every threshold on the score difference, scored by scikit-learn.
    diff = np.sort(log_p[:, 1] - log_p[:, 0])
    thresholds = np.concatenate([[diff[0] - 1], (diff[:-1] + diff[1:]) / 2, [diff[-1] + 1]])
    best = max(macro_f1(y, (log_p[:, 1] - log_p[:, 0] > t).astype(int), 2) for t in thresholds)
    offsets = decisions.fit_offsets(log_p, y)
    assert macro_f1(y, (log_p + offsets).argmax(1), 2) == pytest.approx(best)
    assert best > macro_f1(y, log_p.argmax(1), 2) + 0.01  # the argmax was not already optimal


def test_offsets_never_lower_validation_macro_f1_and_help_held_out_data():
    val_log_p, y_val = imbalanced_scores(3000, 2)
    test_log_p, y_test = imbalanced_scores(3000, 3)
    offsets = decisions.fit_offsets(val_log_p, y_val)
    assert offsets.sum() == pytest.approx(0.0, abs=1e-9)
    assert macro_f1(y_val, (val_log_p + offsets).argmax(1)) > macro_f1(y_val, val_log_p.argmax(1)) + 0.02
    # The bias is the same on held-out data, so the offsets learned from validation carry over.
    assert macro_f1(y_test, (test_log_p + offsets).argmax(1)) > macro_f1(y_test, test_log_p.argmax(1)) + 0.02


def test_recall_floor_is_met_first():
    log_p, y = imbalanced_scores(3000, 4)
    offsets = decisions.fit_offsets(log_p, y, {2: 0.97})
    recalls = recall_score(y, (log_p + offsets).argmax(1), labels=[0, 1, 2], average=None)
    assert recalls[2] >= 0.97
    assert recall_score(y, log_p.argmax(1), labels=[2], average=None)[0] < 0.97  # the floor binds


def test_decide_reports_with_and_without_and_builds_the_export_layer():
    val_log_p, y_val = imbalanced_scores(2000, 5)
    test_log_p, y_test = imbalanced_scores(2000, 6)
    val_logits, test_logits = 3 * val_log_p, 3 * test_log_p  # overconfident logits
    layer, out = decisions.decide(val_logits, y_val, test_logits, y_test, ("a", "b", "c"), SETTINGS)
    d, cal = out["decisions"], out["calibration"]
    assert d["fitted"] and cal["fitted"]
    assert d["temperature"] == pytest.approx(3.0, rel=0.1) == cal["temperature"]
    offsets = np.array(list(d["offsets"].values()))
    tuned = (log_softmax(test_logits / d["temperature"], axis=-1) + offsets).argmax(1)
    assert d["test"]["macro_f1"] == pytest.approx(macro_f1(y_test, tuned))
    assert cal["test_ece_after"] < cal["test_ece_before"]
    assert d["validation"]["macro_f1_tuned_in_sample"] >= d["validation"]["macro_f1_argmax"]
    assert isinstance(layer, Decision) and layer.temperature == d["temperature"]
    served = keras.ops.convert_to_numpy(layer.scores(test_logits.astype("float32"))).argmax(1)
    np.testing.assert_array_equal(served, tuned)


def test_no_validation_split_keeps_the_argmax():
    layer, out = decisions.decide(None, None, np.zeros((4, 3)), np.zeros(4, int), ("a", "b", "c"), SETTINGS)
    assert layer is None
    assert out == {"decisions": {"fitted": False, "reason": "no validation split"},
                   "calibration": {"fitted": False, "reason": "no validation split"}}


def test_thresholds_none_and_no_calibration_are_the_identity():
    log_p, y = imbalanced_scores(500, 7)
    layer, out = decisions.decide(log_p, y, log_p, y, ("a", "b", "c"),
                                  {"thresholds": "none", "recall_floor": {}, "calibrate": False})
    assert out["decisions"]["temperature"] == 1.0 and set(out["decisions"]["offsets"].values()) == {0.0}
    assert out["decisions"]["test"]["macro_f1"] == pytest.approx(macro_f1(y, log_p.argmax(1)))


def test_check_settings_names_the_problem():
    with pytest.raises(InputError, match="unknown class 'X'"):
        decisions.check_settings({"recall_floor": {"X": 0.9}}, ("N", "F"))
    with pytest.raises(InputError, match=r"recall_floor.F = 1.5"):
        decisions.check_settings({"recall_floor": {"F": 1.5}}, ("N", "F"))
    decisions.check_settings({"recall_floor": {"F": 0.95}}, ("N", "F"))


def test_majority_vote_shares_with_zeros_get_finite_offsets_and_no_temperature():
    rng = np.random.default_rng(8)
    y = rng.choice(3, size=900, p=[0.7, 0.2, 0.1])
    # Three voters, each right 70% of the time; a class nobody voted for has log-share -inf.
    votes = np.where(rng.random((900, 3)) < 0.7, y[:, None], rng.integers(0, 3, (900, 3)))
    shares = np.stack([(votes == c).mean(1) for c in range(3)], axis=1)
    with np.errstate(divide="ignore"):
        log_shares = np.log(shares)
    assert np.isinf(log_shares).any()
    layer, out = decisions.decide(log_shares, y, log_shares, y, ("a", "b", "c"), SETTINGS)
    offsets = np.array(list(out["decisions"]["offsets"].values()))
    assert np.isfinite(offsets).all() and layer.temperature == 1.0
    assert out["calibration"]["fitted"] is False and "majority vote" in out["calibration"]["reason"]
    tuned = (log_shares + offsets).argmax(1)
    assert out["decisions"]["test"]["macro_f1"] == pytest.approx(macro_f1(y, tuned))
    assert macro_f1(y, tuned) >= macro_f1(y, log_shares.argmax(1))


def test_offsets_are_skipped_below_the_minimum_validation_support():
    """A class with 4 validation series (< MIN_VALIDATION_SUPPORT = 5): argmax kept, metrics say why;
    with 5, the same scores get offsets that change the decision."""
    log_p, y = imbalanced_scores(400, 9)
    rare = np.flatnonzero(y == 2)
    assert decisions.MIN_VALIDATION_SUPPORT == 5
    keep = np.setdiff1d(np.arange(len(y)), rare[4:])  # exactly 4 series of class "c" remain
    layer, out = decisions.decide(log_p[keep], y[keep], log_p, y, ("a", "b", "c"), SETTINGS)
    d = out["decisions"]
    assert set(d["offsets"].values()) == {0.0} and layer.offsets == [0.0, 0.0, 0.0]
    assert d["offsets_skipped"].startswith("'c' (4): fewer than 5 validation series")
    assert d["validation"]["macro_f1_tuned_in_sample"] == d["validation"]["macro_f1_argmax"]
    assert out["calibration"]["fitted"]  # the temperature, one number, is still fitted
    keep = np.setdiff1d(np.arange(len(y)), rare[5:])
    _, out = decisions.decide(log_p[keep], y[keep], log_p, y, ("a", "b", "c"), SETTINGS)
    assert "offsets_skipped" not in out["decisions"] and set(out["decisions"]["offsets"].values()) != {0.0}


def test_out_of_fold_offsets_need_the_minimum_support_in_every_fold():
    """Out-of-fold predictions of 3 folds come from 3 models: a class needs 3 x 5 = 15 held-out
    series for offsets (14: argmax kept, metrics say why in fold terms; 15: fitted). The same 14
    series from one validation split clear the bar, 5."""
    log_p, y = imbalanced_scores(400, 9)
    rare = np.flatnonzero(y == 2)
    assert len(rare) >= 15
    keep = np.setdiff1d(np.arange(len(y)), rare[14:])
    layer, out = decisions.decide(log_p[keep], y[keep], log_p, y, ("a", "b", "c"), SETTINGS, folds=3)
    d = out["decisions"]
    assert set(d["offsets"].values()) == {0.0} and layer.offsets == [0.0, 0.0, 0.0]
    assert d["offsets_skipped"].startswith("'c' (14): fewer than 5 held-out series in each of 3 folds")
    assert out["calibration"]["fitted"] and layer.temperature == pytest.approx(d["temperature"])  # still fitted
    _, out = decisions.decide(log_p[keep], y[keep], log_p, y, ("a", "b", "c"), SETTINGS)
    assert "offsets_skipped" not in out["decisions"] and set(out["decisions"]["offsets"].values()) != {0.0}
    keep = np.setdiff1d(np.arange(len(y)), rare[15:])
    _, out = decisions.decide(log_p[keep], y[keep], log_p, y, ("a", "b", "c"), SETTINGS, folds=3)
    assert "offsets_skipped" not in out["decisions"] and set(out["decisions"]["offsets"].values()) != {0.0}


def test_decide_without_a_test_split_gives_the_same_decision():
    val_log_p, y_val = imbalanced_scores(1000, 10)
    test_log_p, y_test = imbalanced_scores(1000, 11)
    with_test, reported = decisions.decide(3 * val_log_p, y_val, 3 * test_log_p, y_test, ("a", "b", "c"), SETTINGS)
    alone, fitted = decisions.decide(3 * val_log_p, y_val, None, None, ("a", "b", "c"), SETTINGS)
    assert alone.get_config() == with_test.get_config()
    assert "test" not in fitted["decisions"] and "test_ece_after" not in fitted["calibration"]
    assert fitted["decisions"]["validation"] == reported["decisions"]["validation"]
