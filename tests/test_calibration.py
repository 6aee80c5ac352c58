import numpy as np
import pytest
from sklearn.calibration import calibration_curve

from kseq.serving import calibration


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def sample_labels(true_logits, seed):
    """Labels drawn from softmax(true_logits): a model whose logits are these is calibrated."""
    rng = np.random.default_rng(seed)
    p = softmax(true_logits)
    return (p.cumsum(-1) > rng.random((len(p), 1))).argmax(-1)


def nll(z, y):
    p = softmax(z)
    return -np.log(p[np.arange(len(y)), y]).mean()


def test_fit_temperature_undoes_known_overconfidence():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(scale=1.5, size=(20000, 4))
    y = sample_labels(true_logits, 1)
    # The "model" is three times too confident: T = 3 recovers the true probabilities.
    assert calibration.fit_temperature(3 * true_logits, y) == pytest.approx(3.0, rel=0.05)
    assert calibration.fit_temperature(true_logits / 2, y) == pytest.approx(0.5, rel=0.05)


def test_fit_temperature_is_the_minimum_of_a_numpy_grid_search():
    rng = np.random.default_rng(2)
    z = rng.normal(scale=4, size=(500, 3))
    y = rng.integers(0, 3, 500)
    grid = np.exp(np.linspace(np.log(0.05), np.log(20), 4001))
    best = grid[np.argmin([nll(z / t, y) for t in grid])]
    assert calibration.fit_temperature(z, y) == pytest.approx(best, rel=2e-3)
    assert calibration.negative_log_likelihood(z, y, 2.0) == pytest.approx(nll(z / 2.0, y))


def test_ece_hand_computed():
    # 5 bins. Confidences 0.9 (right) and 0.9 (wrong) fall in (0.8, 1.0]: accuracy 0.5, gap 0.4;
    # 0.6 (right) in (0.4, 0.6]: gap 0.4; 0.7 (wrong) in (0.6, 0.8]: gap 0.7.
    p = np.array([[0.9, 0.1], [0.1, 0.9], [0.6, 0.4], [0.3, 0.7]])
    y = np.array([0, 0, 0, 0])
    expected = 0.5 * 0.4 + 0.25 * 0.4 + 0.25 * 0.7
    assert calibration.expected_calibration_error(y, p, bins=5) == pytest.approx(expected)


def test_ece_matches_scikit_learn_calibration_curve():
    rng = np.random.default_rng(3)
    p = softmax(rng.normal(scale=3, size=(3000, 5)))
    y = rng.integers(0, 5, 3000)
    confidence, correct = p.max(-1), p.argmax(-1) == y
    accuracy, mean_confidence = calibration_curve(correct, confidence, n_bins=15, strategy="uniform")
    # Samples per bin, counted by hand: calibration_curve's bins are (lo, hi] (the first takes 0 too).
    edges = np.linspace(0, 1, 16)
    counts = np.array([(((confidence > lo) | (lo == 0)) & (confidence <= hi)).sum()
                       for lo, hi in zip(edges[:-1], edges[1:])])
    assert counts.sum() == len(y)
    expected = np.sum(counts[counts > 0] / len(y) * np.abs(accuracy - mean_confidence))
    assert calibration.expected_calibration_error(y, p) == pytest.approx(expected)
    table = calibration.reliability(y, p)
    np.testing.assert_allclose([a for a in table["accuracy"] if a is not None], accuracy)
    assert sum(table["count"]) == len(y)


def test_temperature_scaling_lowers_ece_and_keeps_every_argmax():
    rng = np.random.default_rng(4)
    true_logits = rng.normal(scale=1.5, size=(4000, 3))
    y = sample_labels(true_logits, 5)
    overconfident = 4 * true_logits
    t = calibration.fit_temperature(overconfident[:2000], y[:2000])  # fitted on one half, judged on the other
    before = calibration.expected_calibration_error(y[2000:], softmax(overconfident[2000:]))
    after_p = softmax(overconfident[2000:] / t)
    assert calibration.expected_calibration_error(y[2000:], after_p) < before / 3
    np.testing.assert_array_equal(after_p.argmax(-1), overconfident[2000:].argmax(-1))
