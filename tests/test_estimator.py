"""`kseq.SequenceClassifier` against scikit-learn's rules and tools, and against `train(config)`."""

import contextlib
import re
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import f1_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from scipy.special import softmax
from sklearn.utils import estimator_checks

from kseq import SequenceClassifier
from kseq.models.decision import Decision
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
    # learning_rate 1e-2: at the default 1e-3, 40 steps leave this net at chance (0.5 on held-out rhythms).
    return SequenceClassifier("fcn", SMALL, steps=40, learning_rate=1e-2, random_state=0, **params)


# For the tests of the estimator contract and of scikit-learn's tools, where what the model learns
# is not asserted: one convolution, so each fit traces a smaller graph (the fit's cost on tiny data).
TINY = {"filters": [4], "kernel_sizes": [3]}


def tiny(**params):
    return SequenceClassifier("fcn", TINY, steps=40, learning_rate=1e-2, random_state=0, **params)


@pytest.fixture(scope="module")
def fitted_small():
    """`small().fit(*two_rhythms())`, fitted once for the tests that only read it (predict, score,
    export); a test that changes an estimator fits its own."""
    x, y = two_rhythms()
    return small().fit(x, y)


def test_fit_sets_sklearn_attributes_and_predicts_labels(fitted_small):
    x, y = two_rhythms()
    clf = fitted_small
    assert clf.classes_.tolist() == ["fast", "slow"]
    proba = clf.predict_proba(x)
    assert proba.shape == (len(x), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(clf.predict(x), clf.classes_[proba.argmax(axis=1)])
    assert clf.score(x, y) == np.mean(clf.predict(x) == y)
    # steps=40 is a budget of optimizer steps, rounded up to whole epochs: the optimizer took them all.
    epoch = int(np.ceil(len(x) / clf.config_["sampler"]["batch_size"]))
    assert 40 <= int(clf.model_.optimizer.iterations) < 40 + epoch
    assert set(clf.history_) >= {"loss", "accuracy"}


def test_same_random_state_same_predictions_and_2d_input(fitted_small):
    x, y = two_rhythms()
    first = small().fit(x[:, :, 0], y)  # (N, T): one feature
    second = fitted_small  # small().fit(x, y)
    np.testing.assert_array_equal(first.predict_proba(x), second.predict_proba(x))
    other = SequenceClassifier("fcn", SMALL, steps=40, random_state=1).fit(x, y)
    assert np.abs(other.predict_proba(x) - first.predict_proba(x)).max() > 1e-4


def test_the_estimator_and_train_share_one_training_loop(fitted_small, tmp_path):
    """`train(clf.to_config())` on the same arrays written to a file gives the same model."""
    x, y = two_rhythms()
    x_test, y_test = two_rhythms(seed=1)
    clf = fitted_small
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
    scores = cross_val_score(tiny(), x, y, cv=cv, scoring="f1_macro")
    manual = []
    for fit_rows, test_rows in cv.split(x, y):
        predicted = clone(tiny()).fit(x[fit_rows], y[fit_rows]).predict(x[test_rows])
        manual.append(f1_score(y[test_rows], predicted, average="macro"))
    np.testing.assert_allclose(scores, manual)


README_GRID = {"sampler": ["none", "rejection"], "loss": ["crossentropy", "focal"]}


@pytest.fixture(scope="module")
def readme_example(tmp_path_factory):
    """The README's scikit-learn example, run once (a 3-fold `cross_val_score` and a 2x2, 2-fold
    `GridSearchCV`): its namespace and the folder it ran in."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## With scikit-learn", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    folder = tmp_path_factory.mktemp("readme")
    namespace = {}
    with contextlib.chdir(folder):
        exec(compile(code, "README.md", "exec"), namespace)
    return namespace, folder


def test_grid_search_over_sampler_and_loss(readme_example):
    """The README's grid search (sampler x loss, 2 folds): the best estimator is refitted with the best
    parameters, and they reach its config."""
    namespace, _ = readme_example
    search = namespace["search"]
    assert isinstance(search, GridSearchCV) and search.param_grid == README_GRID and search.cv == 2
    grid = README_GRID
    assert len(search.cv_results_["params"]) == 4
    best = search.best_estimator_
    assert {k: best.get_params()[k] for k in grid} == search.best_params_
    assert best.config_["sampler"]["kind"] == search.best_params_["sampler"]
    assert best.config_["loss"]["name"] == search.best_params_["loss"]


def test_clone_of_an_unfitted_and_a_fitted_estimator():
    x, y = two_rhythms()
    fitted = tiny(sampler="oversample").fit(x, y)
    for original in (tiny(sampler="oversample"), fitted):
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
    assert clf.config_["model"] == {"name": "fcn", "filters": [4], "kernel_sizes": [3], "length_feature": False,
                                   "length_scale": False}


# Checks that cannot hold for a sequence model, each with its reason (scikit-learn's own suite).
EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data":
        "sample_weight draws series by weight (a sampler), equal to repeating rows only in expectation",
    "check_classifiers_train":
        "with held-out data predict applies the fitted per-class offsets, so it is not always the argmax "
        "of predict_proba (test_classifiers_train_without_offsets runs the rest)",
}


@estimator_checks.parametrize_with_checks(
    [SequenceClassifier("fcn", TINY, steps=40, random_state=0)],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS, xfail_strict=True)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_classifiers_train_without_offsets():
    """scikit-learn's `check_classifiers_train` holds where predict is the argmax (thresholds="none")."""
    clf = SequenceClassifier("fcn", TINY, steps=40, random_state=0, thresholds="none")
    estimator_checks.check_classifiers_train(type(clf).__name__, clf)


def test_tags_tell_the_truth():
    tags = small().__sklearn_tags__()
    assert tags.input_tags.allow_nan and tags.input_tags.three_d_array and not tags.input_tags.sparse
    assert not tags.non_deterministic and small().set_params(random_state=None).__sklearn_tags__().non_deterministic
    x, y = two_rhythms()
    x[::3, 5:9] = np.nan  # gaps: filled before the model, as the allow_nan tag says
    assert np.isfinite(tiny().fit(x, y).predict_proba(x)).all()


def test_a_failed_fit_leaves_a_fitted_estimator_as_it_was():
    x, y = two_rhythms()
    clf = tiny().fit(x, y)
    before = clf.predict_proba(x)
    state = {k: v for k, v in vars(clf).items() if k.endswith("_")}
    x_other, y_other = two_rhythms(length=20)
    bad_fits = [({}, (x, np.full(len(y), "only"))), ({}, (x, np.linspace(0, 1, len(y)))),
                # new labels and length pass the checks; the model fails to build, after validation
                ({"model_params": {"nonsense": 1}}, (x_other, np.where(y_other == "fast", "p", "q")))]
    for params, bad in bad_fits:
        with pytest.raises(ValueError):
            clf.set_params(**params).fit(*bad)
        clf.set_params(model_params=TINY)
        assert {k: v for k, v in vars(clf).items() if k.endswith("_")}.keys() == state.keys()
        assert clf.classes_.tolist() == ["fast", "slow"] and clf.n_features_in_ == 32
        np.testing.assert_array_equal(clf.predict_proba(x), before)


def test_n_features_in_is_the_second_axis_and_checked_on_predict(fitted_small):
    x, y = two_rhythms()
    clf = fitted_small
    assert clf.n_features_in_ == x.shape[1] == 32
    with pytest.raises(ValueError, match="X has 20 features, but SequenceClassifier is expecting 32 features"):
        clf.predict(x[:, :20])


def test_random_state_generator_and_global_random_state_untouched():
    import random

    x, y = two_rhythms()
    random.seed(123)
    np.random.seed(123)
    expected = (random.random(), np.random.random())
    random.seed(123)
    np.random.seed(123)
    first = tiny().set_params(random_state=np.random.default_rng(5)).fit(x, y)
    assert (random.random(), np.random.random()) == expected  # fit neither reseeded nor drew from them
    second = tiny().set_params(random_state=np.random.default_rng(5)).fit(x, y)
    np.testing.assert_array_equal(first.predict_proba(x), second.predict_proba(x))


def test_channels_first_reads_n_c_t_and_a_doubtful_shape_warns():
    rng = np.random.default_rng(0)
    x, y = two_rhythms()
    x = np.concatenate([x, rng.normal(size=x.shape)], axis=2).astype("float32")  # (48, 32, 2)
    default = tiny().fit(x, y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = tiny(channels_first=True).fit(np.swapaxes(x, 1, 2), y)
    assert not [w for w in caught if "channels_first" in str(w.message)]  # 2 channels of 32 steps: no doubt
    np.testing.assert_array_equal(first.predict_proba(np.swapaxes(x, 1, 2)), default.predict_proba(x))
    with pytest.warns(UserWarning, match=r"read as \(N, T, F\): 2 time steps of 32 channels; .*channels_first=True"):
        tiny().fit(np.swapaxes(x, 1, 2), y)


def test_held_out_data_fits_the_decision_and_export_serves_it(tmp_path):
    x, y = two_rhythms(n=96)
    x_val, y_val = two_rhythms(n=40, seed=3)
    clf = tiny().fit(x, y, validation_data=(x_val, y_val))
    assert isinstance(clf.decision_, Decision) and clf.decisions_["decisions"]["fitted"]
    assert clf.decisions_["decisions"]["fitted_on"] == "validation split (40 series)"
    logits = clf.model_.predict(x, verbose=0)
    expected = softmax(logits / clf.decision_.temperature, axis=1)
    np.testing.assert_allclose(clf.predict_proba(x), expected, atol=1e-5)
    tuned = clf.classes_[(np.log(expected) + np.array(clf.decision_.offsets)).argmax(1)]
    np.testing.assert_array_equal(clf.predict(x), tuned)
    served = ServingFunction(clf.export(tmp_path / "exported") / "serving")(x[:8])
    np.testing.assert_allclose(served["probabilities"], clf.predict_proba(x[:8]), atol=1e-5)
    assert [c.decode() for c in served["class_name"]] == clf.predict(x[:8]).tolist()
    assert tiny().fit(x, y).decision_ is None  # 48 series per class < 10 for "auto": no split, argmax


def test_predict_uses_its_own_batch_size(fitted_small, monkeypatch):
    from kseq.data import pipeline

    x, y = two_rhythms()
    clf = fitted_small
    assert clf.config_["sampler"]["batch_size"] == 4
    seen = []
    original = pipeline.make_eval_dataset
    monkeypatch.setattr("kseq.training.trainer.make_eval_dataset",
                        lambda x, y=None, batch_size=256, **k: seen.append(batch_size) or original(x, y, batch_size=batch_size, **k))
    clf.predict(x)
    assert seen == [256]


def test_above_chance_on_held_out_series(fitted_small):
    """Chance is 0.5 on two balanced classes; the small net separates the rhythms on new series."""
    x_test, y_test = two_rhythms(n=200, seed=7)
    assert fitted_small.score(x_test, y_test) >= 0.9


def test_validation_data_selects_by_validation_macro_f1():
    x, y = two_rhythms()
    x_val, y_val = two_rhythms(seed=2)
    clf = tiny().fit(x, y, validation_data=(x_val, y_val))
    assert clf.config_["train"]["monitor"] == "val_macro_f1"
    assert "val_macro_f1" in clf.history_
    with pytest.raises(ValueError, match="not in y"):
        tiny().fit(x, y, validation_data=(x_val, np.full(len(y_val), "other")))


def test_sample_weight_draws_in_proportion():
    """Weight 0 on every "slow" series: the model never sees one, so it predicts "fast" for all.
    Weight 0 on every "fast" one instead moves predictions towards "slow" (a model that ignores
    the weights, or always answers one class, fails one of the two)."""
    x, y = two_rhythms()
    slow_share = {}
    for seen in ("fast", "slow"):
        clf = small().fit(x, y, sample_weight=(y == seen).astype(float))
        assert clf.config_["sampler"]["kind"] == "weighted"
        slow_share[seen] = np.mean(clf.predict(x) == "slow")
    assert slow_share["fast"] == 0.0 and slow_share["slow"] >= 0.4
    with pytest.raises(ValueError, match="weighted"):
        small(sampler="rejection").fit(x, y, sample_weight=np.ones(len(y)))


@pytest.mark.parametrize("params, message", [
    ({"sampler": "magic"}, "sampler.kind"),
    ({"model": "no_such_model"}, "no_such_model"),
    ({"model_params": {"nonsense": 1}}, "nonsense"),
    ({"steps": "soon"}, "train.steps"),
    ({"dtype_policy": "float16"}, "train.dtype_policy"),
    ({"jit_compile": "xla"}, "train.jit_compile"),
])
def test_bad_parameters_are_value_errors_naming_them(params, message):
    x, y = two_rhythms()
    with pytest.raises((ValueError, KeyError), match=message):
        small().set_params(**params).fit(x, y)


def test_dtype_policy_trains_in_bfloat16_and_predicts_with_a_float32_model():
    x, y = two_rhythms()
    clf = tiny(dtype_policy="mixed_bfloat16").fit(x, y)
    assert clf.config_["train"]["dtype_policy"] == "mixed_bfloat16"
    assert {layer.compute_dtype for layer in clf.model_._flatten_layers()} == {"float32"}
    logits = np.asarray(clf.model_(x[:8]))
    np.testing.assert_allclose(clf.predict_proba(x[:8]), softmax(logits, axis=1), rtol=1e-4, atol=1e-6)


def test_jit_compile_trains_the_same_model_under_xla(monkeypatch):
    """The tiny networks' steps are per-step overhead on one length: "auto" compiles them with XLA,
    which is the same training in other kernels (the probabilities agree with a plain fit's)."""
    x, y = two_rhythms()
    asked = []
    compile_ = keras.Model.compile

    def spy(self, *args, **kwargs):
        asked.append(kwargs.get("jit_compile", "auto"))
        return compile_(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "compile", spy)
    xla = tiny().fit(x, y)
    assert xla.config_["train"]["jit_compile"] is True and asked[0] is True  # the training compile
    plain = tiny(jit_compile=False).fit(x, y)
    assert plain.config_["train"]["jit_compile"] is False
    np.testing.assert_allclose(xla.predict_proba(x), plain.predict_proba(x), atol=1e-3)


def test_export_serves_like_predict_proba(fitted_small, tmp_path):
    x, y = two_rhythms()
    clf = fitted_small
    folder = clf.export(tmp_path / "exported")
    assert {p.name for p in folder.iterdir()} >= {"model.keras", "serving", "config.toml", "history.csv"}
    served = ServingFunction(folder / "serving")(x[:5])
    np.testing.assert_allclose(served["probabilities"], clf.predict_proba(x[:5]), atol=1e-5)
    assert [c.decode() for c in served["class_name"]] == clf.predict(x[:5]).tolist()
    with pytest.raises(FileExistsError):
        clf.export(folder)


def test_readme_estimator_example_runs(readme_example):
    namespace, folder = readme_example
    assert len(namespace["scores"]) == 3 and (folder / "fast_or_slow" / "serving").is_dir()
    assert min(namespace["scores"]) > 0.8  # macro-F1 of chance on two balanced classes is about 0.5
    x_new = np.sin(2 * np.pi * np.arange(64) / np.array([4, 16])[:, None])  # a clean fast, then slow, rhythm
    assert namespace["best"].predict(x_new).tolist() == ["fast", "slow"]


def test_series_of_unequal_lengths_give_the_model_their_length():
    """As the generic experiments do, a model built for any length gets `length_feature` when the
    training lengths differ (not when they are equal, nor for a fixed-length model), and
    `model_params` can turn it off."""
    x, y = two_rhythms(n=24)
    assert tiny().fit(x, y).config_["model"]["length_feature"] is False
    x[::3, 20:] = 0.0
    fitted = tiny().fit(x, y)
    assert fitted.config_["model"]["length_feature"] is True
    assert "length_feature" in [layer.name for layer in fitted.model_.get_layer("fcn").layers]
    off = SequenceClassifier("fcn", {**TINY, "length_feature": False}, steps=40, random_state=0)
    assert off.fit(x, y).config_["model"]["length_feature"] is False
    assert "length_feature" not in SequenceClassifier("cnn").to_config()["model"]
