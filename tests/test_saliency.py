"""Saliency on a synthetic case whose informative window is known."""

import keras
import numpy as np
import pytest

import kseq
from kseq import build_model
from kseq.reporting import saliency

T, WINDOW = 100, slice(60, 75)


def window_data(n, seed):
    """Class 1 carries a bump in steps 60-74 of feature 0; everything else is noise in both classes."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(scale=0.5, size=(n, T, 2)).astype("float32")
    bump = np.sin(np.linspace(0, np.pi, WINDOW.stop - WINDOW.start)) * 2.5
    x[y == 1, WINDOW, 0] += bump
    return x, y


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    m = build_model("cnn", (T, 2), 2, filters=[8, 8], kernel_size=5, dense_units=[16], dropout=0.0)
    m.compile(optimizer=keras.optimizers.Adam(3e-3),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    x, y = window_data(400, 0)
    m.fit(x, y, batch_size=32, epochs=12, verbose=0)
    x_test, y_test = window_data(100, 1)
    assert (m.predict(x_test, verbose=0).argmax(-1) == y_test).mean() > 0.95  # it did learn the task
    return m


def in_window_share(importance):
    return importance[:, WINDOW].sum(1) / importance.sum(1)


def test_grad_cam_finds_the_informative_window(model):
    x, y = window_data(40, 2)
    found = kseq.explain(model, x[y == 1], class_index=1)
    assert found.method == "grad_cam" and found.feature_importance is None
    assert found.time_importance.shape == (20, T) and (found.time_importance >= 0).all()
    peaks = found.time_importance.argmax(1)
    assert ((peaks >= WINDOW.start - 5) & (peaks < WINDOW.stop + 5)).mean() >= 0.9
    # The window is 15% of the steps; it holds most of the importance.
    assert np.median(in_window_share(found.time_importance)) > 0.5


def test_integrated_gradients_find_the_window_and_the_feature(model):
    x, y = window_data(20, 3)
    found = saliency.explain(model, x[y == 1], class_index=1, method="integrated_gradients")
    assert found.attributions.shape == (10, T, 2)
    assert np.median(in_window_share(found.time_importance)) > 0.5
    assert (found.feature_importance[:, 0] > found.feature_importance[:, 1]).all()


def test_integrated_gradients_are_complete(model):
    """Attributions sum to logit(x) - logit(baseline) (Sundararajan et al. 2017, completeness)."""
    x, _ = window_data(6, 4)
    attributions = saliency.integrated_gradients(model, x, np.ones(6, int), steps=256)
    logits = model.predict(x, verbose=0)[:, 1] - model.predict(np.zeros_like(x), verbose=0)[:, 1]
    np.testing.assert_allclose(attributions.sum((1, 2)), logits, rtol=0.02, atol=0.02)


def test_auto_takes_integrated_gradients_without_a_conv_layer_of_its_own():
    keras.utils.set_random_seed(0)
    rnn = build_model("rnn", (T, 2), 2, units=3, dense_units=[4])
    found = saliency.explain(rnn, window_data(2, 5)[0])
    assert found.method == "integrated_gradients" and found.time_importance.shape == (2, T)
    with pytest.raises(ValueError, match="grad_cam needs a Conv1D"):
        saliency.explain(rnn, window_data(2, 5)[0], method="grad_cam")


def test_pick_examples_takes_each_class_most_and_least_confident():
    p = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])
    y = np.array([0, 0, 1, 0, 1])
    assert saliency.pick_examples(p, y) == [(0, "most confident"), (1, "least confident"),
                                           (2, "most confident"), (4, "least confident")]


def test_pick_examples_of_many_classes_takes_the_least_sure_ones():
    y = np.array([0, 0, 1, 1, 2, 2, 3])
    own = np.array([0.9, 0.7, 0.3, 0.5, 0.6, 0.95, 0.2])  # class means 0.8, 0.4, 0.775, 0.2
    p = np.zeros((len(y), 4))
    p[np.arange(len(y)), y] = own
    p[np.arange(len(y)), (y + 1) % 4] = 1 - own
    assert saliency.pick_examples(p, y, max_classes=2) == [(3, "most confident"), (2, "least confident"),
                                                          (6, "most confident")]
    assert len(saliency.pick_examples(p, y, max_classes=4)) == 7  # every class, one of class 3


def test_integrated_gradients_in_passes_equal_one_pass(model, monkeypatch):
    x, _ = window_data(3, 6)
    one_pass = saliency.integrated_gradients(model, x, np.ones(3, int), steps=20)
    monkeypatch.setattr(saliency, "IG_CHUNK_STEPS", 3 * T)  # passes of 3 path points: 7 passes
    np.testing.assert_allclose(saliency.integrated_gradients(model, x, np.ones(3, int), steps=20), one_pass,
                               rtol=1e-5, atol=1e-6)


def test_the_report_explains_each_series_over_its_real_steps(monkeypatch, tmp_path):
    from kseq.data import SequenceSet
    from kseq.reporting import plots

    keras.utils.set_random_seed(0)
    any_length = build_model("fcn", (None, 2), 2, filters=[4, 4], kernel_sizes=[3, 3])
    x, y = window_data(4, 7)
    lengths = np.array([100, 80, 90, 70])
    for i, length in enumerate(lengths):
        x[i, length:] = 0.0  # zero padding after each series' own length
    drawn = {}
    monkeypatch.setattr(plots, "plot_saliency", lambda signals, importances, *a: drawn.update(
        signals=signals, importances=importances))
    test_set = SequenceSet(x, y, ("a", "b"), lengths=lengths)
    logits = np.asarray(any_length(x))
    saliency.plot_saliency(any_length, test_set, logits, tmp_path / "s.png")
    picks = [i for i, _ in saliency.pick_examples(kseq.utils.scores.softmax(logits), y)]
    assert [len(s) for s in drawn["signals"]] == [len(m) for m in drawn["importances"]] == list(lengths[picks])
