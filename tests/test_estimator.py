"""`kseq.SequenceClassifier` against scikit-learn's rules and tools, and against `train(config)`."""

import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import f1_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.utils import estimator_checks

from kseq import SequenceClassifier
from kseq.serving.runtime import ServingFunction
from kseq.training.trainer import train

SMALL = {"filters": [8, 8], "kernel_sizes": [5, 3]}


def two_rhythms(n=48, length=32, seed=0):
    """Slow and fast sines with noise: a local pattern a small conv net separates in few steps."""
    rng = np.random.default_rng(seed)
    y = np.where(np.arange(n) % 2, "fast", "slow")
    period = np.where(y == "fast", 4, 16)[:, None]
    x = np.sin(2 * np.pi * np.arange(length) / period) + 0.3 * rng.normal(size=(n, length))
    return x.astype("float32")[:, :, None], y


def small(**params):
    return SequenceClassifier("fcn", SMALL, steps=40, random_state=0, **params)


def test_fit_sets_sklearn_attributes_and_predicts_labels():
    x, y = two_rhythms()
    clf = small().fit(x, y)
    assert clf.classes_.tolist() == ["fast", "slow"]
    proba = clf.predict_proba(x)
    assert proba.shape == (len(x), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(clf.predict(x), clf.classes_[proba.argmax(axis=1)])
    assert clf.score(x, y) == np.mean(clf.predict(x) == y)
    assert clf.config_["sampler"]["batch_size"] == 4 and clf.config_["train"]["steps"] == 48  # 4 epochs of 12
    assert set(clf.history_) >= {"loss", "accuracy"}


def test_same_random_state_same_predictions_and_2d_input():
    x, y = two_rhythms()
    first = small().fit(x[:, :, 0], y)  # (N, T): one feature
    second = small().fit(x, y)
    np.testing.assert_array_equal(first.predict_proba(x), second.predict_proba(x))
    other = SequenceClassifier("fcn", SMALL, steps=40, random_state=1).fit(x, y)
    assert np.abs(other.predict_proba(x) - first.predict_proba(x)).max() > 1e-4


def test_the_estimator_and_train_share_one_training_loop(tmp_path):
    """`train(clf.to_config())` on the same arrays written to a file gives the same model."""
    x, y = two_rhythms()
    x_test, y_test = two_rhythms(seed=1)
    clf = small().fit(x, y)
    codes = {"fast": 0, "slow": 1}
    np.savez(tmp_path / "d.npz", x_train=x, y_train=np.vectorize(codes.get)(y), x_test=x_test,
             y_test=np.vectorize(codes.get)(y_test), class_names=np.array(["fast", "slow"]))
    config = clf.to_config(seed=0)
    config["data"].update(source="npz", path=str(tmp_path / "d.npz"))
    run = train(config, tmp_path / "runs")
    np.testing.assert_allclose(run.model.predict(x_test, verbose=0), clf.model_.predict(x_test, verbose=0), atol=1e-6)
    assert run.config["train"] == clf.config_["train"]


def test_cross_val_score_equals_a_manual_loop():
    x, y = two_rhythms()
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    scores = cross_val_score(small(), x, y, cv=cv, scoring="f1_macro")
    manual = []
    for fit_rows, test_rows in cv.split(x, y):
        predicted = clone(small()).fit(x[fit_rows], y[fit_rows]).predict(x[test_rows])
        manual.append(f1_score(y[test_rows], predicted, average="macro"))
    np.testing.assert_allclose(scores, manual)


def test_grid_search_over_sampler_and_loss():
    x, y = two_rhythms()
    grid = {"sampler": ["none", "rejection"], "loss": ["crossentropy", "focal"]}
    search = GridSearchCV(small(), grid, cv=2, scoring="f1_macro").fit(x, y)
    assert len(search.cv_results_["params"]) == 4
    best = search.best_estimator_
    assert {k: best.get_params()[k] for k in grid} == search.best_params_
    assert best.config_["sampler"]["kind"] == search.best_params_["sampler"]
    assert best.config_["loss"]["name"] == search.best_params_["loss"]


def test_clone_of_an_unfitted_and_a_fitted_estimator():
    x, y = two_rhythms()
    fitted = small(sampler="oversample").fit(x, y)
    for original in (small(sampler="oversample"), fitted):
        copy = clone(original)
        assert copy.get_params() == original.get_params()
        assert not hasattr(copy, "model_")
    with pytest.raises(NotFittedError):
        clone(fitted).predict(x)


def test_set_params_then_fit_uses_them():
    x, y = two_rhythms()
    clf = small().set_params(batch_size=8, model_params={"filters": [4], "kernel_sizes": [3]})
    clf.fit(x, y)
    assert clf.config_["sampler"]["batch_size"] == 8
    assert clf.config_["model"] == {"name": "fcn", "filters": [4], "kernel_sizes": [3]}


@pytest.mark.parametrize("check", [
    estimator_checks.check_parameters_default_constructible,
    estimator_checks.check_no_attributes_set_in_init,
    estimator_checks.check_get_params_invariance,
    estimator_checks.check_set_params,
    estimator_checks.check_estimators_unfitted,
    estimator_checks.check_dont_overwrite_parameters,
    estimator_checks.check_estimators_overwrite_params,
], ids=lambda check: check.__name__)
def test_scikit_learn_estimator_checks(check):
    check(type(small()).__name__, small())


def test_validation_data_selects_by_validation_macro_f1():
    x, y = two_rhythms()
    x_val, y_val = two_rhythms(seed=2)
    clf = small().fit(x, y, validation_data=(x_val, y_val))
    assert clf.config_["train"]["monitor"] == "val_macro_f1"
    assert "val_macro_f1" in clf.history_
    with pytest.raises(ValueError, match="not in y"):
        small().fit(x, y, validation_data=(x_val, np.full(len(y_val), "other")))


def test_sample_weight_draws_in_proportion():
    """Weight 0 on every "slow" series: the model never sees one, so it predicts "fast" for all."""
    x, y = two_rhythms()
    clf = small().fit(x, y, sample_weight=(y == "fast").astype(float))
    assert clf.config_["sampler"]["kind"] == "weighted"
    assert (clf.predict(x) == "fast").all()
    with pytest.raises(ValueError, match="weighted"):
        small(sampler="rejection").fit(x, y, sample_weight=np.ones(len(y)))


@pytest.mark.parametrize("params, message", [
    ({"sampler": "magic"}, "sampler.kind"),
    ({"model": "no_such_model"}, "no_such_model"),
    ({"model_params": {"nonsense": 1}}, "nonsense"),
    ({"steps": "soon"}, "train.steps"),
])
def test_bad_parameters_are_value_errors_naming_them(params, message):
    x, y = two_rhythms()
    with pytest.raises((ValueError, KeyError), match=message):
        small().set_params(**params).fit(x, y)


def test_export_serves_like_predict_proba(tmp_path):
    x, y = two_rhythms()
    clf = small().fit(x, y)
    folder = clf.export(tmp_path / "exported")
    assert {p.name for p in folder.iterdir()} >= {"model.keras", "serving", "config.toml", "history.csv"}
    served = ServingFunction(folder / "serving")(x[:5])
    np.testing.assert_allclose(served["probabilities"], clf.predict_proba(x[:5]), atol=1e-5)
    assert [c.decode() for c in served["class_name"]] == clf.predict(x[:5]).tolist()
    with pytest.raises(FileExistsError):
        clf.export(folder)


def test_readme_estimator_example_runs(tmp_path, monkeypatch):
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## With scikit-learn", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert len(namespace["scores"]) == 3 and (tmp_path / "fast_or_slow" / "serving").is_dir()
    assert set(namespace["best"].predict(namespace["X"][:3])) <= {"fast", "slow"}
