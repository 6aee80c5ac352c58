"""`SequenceClassifier`: kseq as a scikit-learn estimator over in-memory arrays.

It is the config path without the files: `fit` turns its parameters into the same config a
generic experiment has (`kseq/experiments/configs/resnet.toml` and friends), then runs the very
steps `kseq.training.trainer.train` runs (gap filling, the validation policy, the recipe's resolved
values, the model with its in-graph preprocessing, the sampler, `fit`), so a notebook and the
command line train the same way. It follows scikit-learn's rules: `__init__` stores its
arguments, `fit` sets the attributes ending in `_`, and `clone`, `get_params`/`set_params`,
`cross_val_score`, `GridSearchCV` and `Pipeline` work on it.

`X` is `(N, T, F)` (or `(N, T)`, one feature), any float dtype, NaN for gaps; `y` any labels.

Example:
    >>> import numpy as np
    >>> from kseq import SequenceClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 30, 1)).astype("float32")
    >>> y = np.where(np.arange(40) % 2, "up", "down")
    >>> X[y == "up"] += np.linspace(0, 3, 30)[:, None]
    >>> clf = SequenceClassifier("fcn", {"filters": [8, 8], "kernel_sizes": [5, 3]}, steps=60,
    ...                          random_state=0).fit(X, y)
    >>> clf.classes_.tolist()
    ['down', 'up']
    >>> clf.predict(X[:2]).shape
    (2,)

`score` is accuracy, as every scikit-learn classifier's; for macro-F1 (kseq's headline figure on
imbalanced data) pass `scoring="f1_macro"` to `cross_val_score` or `GridSearchCV`.
"""

from __future__ import annotations

import contextlib
import random
import tempfile
import warnings
from pathlib import Path

import numpy as np
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_array, check_is_fitted, column_or_1d, validate_data

from kseq.config import check_values, load_config, merge_into
from kseq.data.sequence_set import SequenceSet
from kseq.models import accepts_any_length
from kseq.utils.errors import InputError

# The generic recipe the estimator's config starts from; its parameters then replace values.
_BASE_EXPERIMENT = "resnet"


class SequenceClassifier(ClassifierMixin, BaseEstimator):
    """A kseq model trained on arrays, with the adaptive defaults of the generic experiments.

    Args:
        model: a registered builder (`kseq.model_names()`): "resnet", "fcn", "inception_time",
            "cnn", "rnn", "hybrid", "attention", or the random-kernel "minirocket" and
            "multirocket_hydra", whose transforms are fitted by `adapt` and whose head (unless
            `model_params` names one) is ridge regression in closed form below 10,000 series and
            a trained logistic layer above (`kseq.models.random_kernels`); for those,
            `normalize="none"` and `validation_split=0.0` are what their experiments use.
        model_params: the builder's keyword arguments (None: its defaults, but for the models
            built for any length, whose `length_feature` and `length_scale` are "auto": on when
            the training series' lengths differ, and where they give the class away,
            `kseq.training.recipe`).
        loss: "crossentropy", "focal", "smoothed_crossentropy" or "logit_adjusted" (`kseq.get_loss`;
            the last shifts the logits by the training labels' log class priors in training).
        loss_params: the loss's keyword arguments, e.g. `{"gamma": 2.0}`, or
            `{"class_weights": "balanced"}` for a class-weighted loss.
        sampler: how training batches are drawn (`kseq.make_train_dataset`): "none", "rejection",
            "weighted", "oversample" or "class_weight"; a ridge head, solved rather than trained
            on batches, weighs each series' error as the sampler would weigh it
            (`kseq.data.sampling.expected_weights`).
        sampler_target: the class distribution "rejection" and "weighted" aim for.
        batch_size, steps: numbers, or "auto" (resolved from the data: `kseq.training.recipe`).
        learning_rate, weight_decay, schedule: AdamW and its schedule ("cosine" or "constant").
        normalize: "auto" (resolved from the data: `kseq.training.recipe.resolve_normalize`),
            "series" (per-series z-normalisation), "channel" (per-channel standardisation fitted
            on the training series), "series+channel" (both) or "none"; inside the model.
        fill_gaps: how NaN bursts are interpolated before the model ("linear", "spline", "none").
        validation_split: a fraction of the training series, or "auto"; ignored when `fit` is
            given `validation_data`.
        early_stopping_patience: epochs, or "auto" (a quarter of the budget's epochs). Without
            a validation split, the training loss gaining under 1e-3 counts as no gain
            (`kseq.training.recipe.FLAT_LOSS`).
        dtype_policy: "float32", "mixed_bfloat16", or "auto" (mixed bfloat16 for `fcn` and
            `resnet` when a batch computes at least 1,000 series-steps, where the hardware
            computes it natively; a layer this machine computes wrong in bfloat16 computes in
            float32: `kseq.training.mixed_precision`); `model_` is float32 either way.
        jit_compile: True (training steps compiled by XLA), False, "keras" (Keras' own choice: XLA
            on a GPU, never on a CPU), or "auto" (on a CPU, XLA for the float32 steps of `cnn`,
            `fcn` and `resnet`, and of `inception_time` under 1,000 series-steps a batch, where a
            step is mostly per-step overhead, on series of one length; False for series of
            unequal lengths, whose batches come in many lengths that XLA would each compile; else
            Keras' choice: `kseq.training.recipe`).
        thresholds, calibrate: the decisions fitted on held-out data (`validation_data`, or the
            validation split when there is one), as a command-line run's `[decisions]`:
            "macro_f1" (per-class offsets maximising macro-F1) or "none" (the argmax), and
            temperature scaling (`kseq.serving.decisions`). Without held-out data: the argmax.
        channels_first: True when a 3-D `X` is `(N, C, T)` (aeon's and sktime's layout) rather
            than `(N, T, F)`; a shape that suggests the other layout is warned about.
        random_state: an int, a `numpy.random.Generator` or `RandomState` for reproducible data
            order and weights, or None (a fresh seed per fit). `fit` leaves the global `random`
            and `numpy.random` states as it found them.
        verbose: 0 silent, 1 the resolved values and one line per epoch.

    Attributes (after `fit`): `classes_`, `n_features_in_` (the size of X's second axis, as
    scikit-learn counts features), `model_` (the Keras model: raw `(N, T, F)` sequences -> logits),
    `decision_` (the fitted `kseq.models.decision.Decision`, or None), `decisions_` (what
    `metrics.json` says of it), `history_` (per-epoch logs), `config_` (the resolved config, as a
    run's `config.toml`).
    """

    def __init__(self, model="resnet", model_params=None, *, loss="crossentropy", loss_params=None,
                 sampler="none", sampler_target="uniform", batch_size="auto", steps="auto",
                 learning_rate=1e-3, weight_decay=1e-4, schedule="cosine", normalize="auto",
                 fill_gaps="linear", validation_split="auto", early_stopping_patience="auto", dtype_policy="auto",
                 jit_compile="auto", thresholds="macro_f1", calibrate=True, channels_first=False, random_state=None,
                 verbose=0):
        self.model = model
        self.model_params = model_params
        self.loss = loss
        self.loss_params = loss_params
        self.sampler = sampler
        self.sampler_target = sampler_target
        self.batch_size = batch_size
        self.steps = steps
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.normalize = normalize
        self.fill_gaps = fill_gaps
        self.validation_split = validation_split
        self.early_stopping_patience = early_stopping_patience
        self.dtype_policy = dtype_policy
        self.jit_compile = jit_compile
        self.thresholds = thresholds
        self.calibrate = calibrate
        self.channels_first = channels_first
        self.random_state = random_state
        self.verbose = verbose

    def to_config(self, seed: int = 0) -> dict:
        """The experiment config these parameters describe (checked like a TOML file's)."""
        config = load_config(_BASE_EXPERIMENT)
        config["model"] = {}
        config["loss"] = {}
        updates = {
            "experiment": {"name": f"SequenceClassifier-{self.model}"},
            "data": {"validation_split": self.validation_split},
            "preprocess": {"fill_gaps": self.fill_gaps, "normalize": self.normalize},
            "sampler": {"kind": self.sampler, "target": self.sampler_target, "batch_size": self.batch_size},
            # A model built for any length sees each series' length when lengths differ, as in
            # the generic experiments (`kseq.training.recipe`, `model.length_feature`, `length_scale`).
            "model": {"name": self.model,
                      **({"length_feature": "auto", "length_scale": "auto"} if self._any_length() else {}),
                      **(self.model_params or {})},
            "loss": {"name": self.loss, **(self.loss_params or {})},
            "optimizer": {"learning_rate": self.learning_rate, "weight_decay": self.weight_decay,
                          "schedule": self.schedule},
            "train": {"steps": self.steps, "seed": seed, "early_stopping_patience": self.early_stopping_patience,
                      "dtype_policy": self.dtype_policy, "jit_compile": self.jit_compile,
                      "verbose": 2 if self.verbose else 0},
            "decisions": {"thresholds": self.thresholds, "calibrate": self.calibrate},
        }
        config = merge_into(config, updates, type(self).__name__)
        check_values(config, type(self).__name__)
        return config

    def _any_length(self) -> bool:
        return isinstance(self.model, str) and accepts_any_length(self.model)

    def fit(self, X, y, validation_data=None, sample_weight=None):
        """Train on sequences `X` with labels `y`; returns self.

        A fit that raises leaves the estimator as it was (fitted or not).

        Args:
            validation_data: `(X_val, y_val)` to select the epoch by (validation macro-F1), stop
                early on and fit the decisions on, instead of the `validation_split` policy.
            sample_weight: per-series weights `(N,)`: each batch draws series with probability in
                proportion to them (the `weighted` sampler, PyTorch's `WeightedRandomSampler`),
                which matches a weighted loss in expectation. Needs `sampler="none"` or
                `"weighted"`.
        """
        before = dict(self.__dict__)
        try:
            return self._fit(X, y, validation_data, sample_weight)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    def _fit(self, X, y, validation_data, sample_weight):
        from kseq.serving import decisions
        from kseq.training import trainer

        x, labels = validate_data(self, X, y, **_ARRAY_RULES)
        check_classification_targets(labels)
        x = self._sequences(x)
        classes, y_index = np.unique(labels, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"y has 1 class ({classes[0].item()!r}); a classifier needs at least 2 classes")
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, x, dtype=np.float64, ensure_non_negative=True)
            if self.sampler not in ("none", "weighted"):
                raise ValueError(f"sample_weight is drawn by the 'weighted' sampler; sampler={self.sampler!r} "
                                 "draws by its own rule")
        seed = _seed(self.random_state)
        config = self.to_config(seed)
        if sample_weight is not None:
            config["sampler"]["kind"] = "weighted"
        names = tuple(str(c) for c in classes)
        train_set = SequenceSet(x, y_index, names)
        validation_set = None
        if validation_data is not None:
            x_val, y_val = validation_data
            x_val = self._sequences(check_array(x_val, **_ARRAY_RULES))
            y_val = column_or_1d(y_val)
            if x_val.shape[1:] != x.shape[1:]:
                raise ValueError(f"validation_data has sequences of shape {x_val.shape[1:]}; X has {x.shape[1:]}")
            unknown = sorted(set(np.unique(y_val).tolist()) - set(classes.tolist()))
            if unknown:
                raise ValueError(f"validation_data has labels {unknown} that are not in y")
            validation_set = SequenceSet(x_val, np.searchsorted(classes, y_val), names)
        try:
            decisions.check_settings(config["decisions"], names)
            splits = trainer.prepare_arrays(config, train_set, validation_set=validation_set)
            config = trainer.resolve_recipe(config, splits.fit, splits.validation, announce=bool(self.verbose))
            with tempfile.TemporaryDirectory(prefix="kseq-fit-") as work, _global_random_state_kept():
                fitted = trainer.fit(config, splits.fit, splits.validation, splits.transform, Path(work),
                                     sample_weight=None if sample_weight is None else sample_weight[splits.fit_index])
        except InputError as e:
            raise ValueError(str(e)) from None
        decision, fitted_decisions = None, {}
        if splits.validation is not None:
            val_logits = trainer.predict_logits(fitted.model, splits.validation.x, INFERENCE_BATCH_SIZE)
            decision, fitted_decisions = decisions.decide(val_logits, splits.validation.y, None, None, names,
                                                          config["decisions"])
        self.classes_, self.input_shape_ = classes, x.shape[1:]
        self.model_, self.history_, self.config_ = fitted.model, fitted.history, config
        self.decision_, self.decisions_ = decision, fitted_decisions
        return self

    def _sequences(self, x: np.ndarray) -> np.ndarray:
        """A checked array as float32 `(N, T, F)`: `(N, T)` is one feature; `(N, C, T)` with
        `channels_first`. Warns where the other layout looks likelier."""
        if x.ndim == 2:
            return x[:, :, None].astype(np.float32, copy=False)
        if x.ndim != 3:
            raise ValueError(f"X must be an (N, T, F) or (N, T) array; got {x.ndim} dimensions, shape {x.shape}")
        steps, channels = (x.shape[2], x.shape[1]) if self.channels_first else (x.shape[1], x.shape[2])
        if steps < channels:
            layout, other = ("(N, C, T)", "channels_first=False") if self.channels_first else \
                ("(N, T, F)", "channels_first=True")
            warnings.warn(f"X of shape {x.shape} read as {layout}: {steps} time steps of {channels} channels; "
                          f"if its layout is the other one, pass {other}", UserWarning, stacklevel=3)
        if self.channels_first:
            x = np.swapaxes(x, 1, 2)
        return np.ascontiguousarray(x, dtype=np.float32)

    def _logits(self, X) -> np.ndarray:
        from kseq.data.preprocess import fill_gaps
        from kseq.training import trainer

        check_is_fitted(self, "model_")
        x = self._sequences(validate_data(self, X, reset=False, **_ARRAY_RULES))
        if x.shape[1:] != tuple(self.input_shape_):
            raise ValueError(f"X has sequences of shape {x.shape[1:]}; "
                             f"the model was fitted on {tuple(self.input_shape_)}")
        pre = self.config_["preprocess"]
        return trainer.predict_logits(self.model_, fill_gaps(x, pre["fill_gaps"], pre["spline_order"]),
                                      INFERENCE_BATCH_SIZE)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities `(N, C)`, columns in the order of `classes_`: the softmax of the
        model's logits, temperature-scaled when `fit` had held-out data to calibrate on."""
        logits = self._logits(X)
        if self.decision_ is not None:
            return keras_numpy(self.decision_(logits)).astype(np.float64)
        return softmax(np.asarray(logits, np.float64), axis=1)

    def predict(self, X) -> np.ndarray:
        """The class of each sequence, as one of `classes_`: the argmax of `predict_proba`, after
        the per-class offsets fitted on held-out data (`decision_`) where there were some, as the
        exported `serving/` answers."""
        logits = self._logits(X)
        if self.decision_ is not None:
            return self.classes_[np.argmax(keras_numpy(self.decision_.scores(logits)), axis=1)]
        return self.classes_[np.argmax(logits, axis=1)]

    def export(self, path) -> Path:
        """Write the fitted model as a run folder writes it: `model.keras`, `serving/` (SavedModel
        with the fitted `Decision` layer, plus `model.tflite` where it converts), `config.toml` and
        `history.csv`, under a temporary name then renamed, so it serves like a model trained from
        the command line: `serving/` answers what `predict_proba` and `predict` answer.
        The serving input is `(N, T, F)` even when `fit` read `channels_first` arrays."""
        from kseq.serving import export

        check_is_fitted(self, "model_")
        return export.write_model_folder(Path(path), self.model_, self.config_, self.history_,
                                         tuple(str(c) for c in self.classes_), self.decision_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.input_tags.allow_nan = True  # NaN is a gap, filled before the model (`fill_gaps`)
        tags.non_deterministic = self.random_state is None
        # scikit-learn's score check fits 2-D blobs, read here as 300 "series" of two steps: a
        # convolutional sequence model on a few optimizer steps (0.42-0.64 at steps=40 measured)
        # is no tabular classifier, and per-series normalisation erases the blobs altogether.
        # Above-chance accuracy on sequences is tested in tests/test_estimator.py instead.
        tags.classifier_tags.poor_score = True
        return tags


# How X is checked (scikit-learn's own rules: no sparse, no infinity, NaN allowed as a gap).
_ARRAY_RULES = {"allow_nd": True, "dtype": (np.float64, np.float32), "ensure_all_finite": "allow-nan",
                "accept_sparse": False}
# The batch size of `predict`: inference needs no gradient noise, so one large batch per call
# (memory permitting) rather than the training batch, which is 2 on tiny data.
INFERENCE_BATCH_SIZE = 256


def keras_numpy(tensor) -> np.ndarray:
    import keras

    return keras.ops.convert_to_numpy(tensor)


@contextlib.contextmanager
def _global_random_state_kept():
    """Training seeds Python's `random` and NumPy's global generator (`keras.utils.set_random_seed`);
    put the user's states back afterwards, so `fit` draws nothing from them and leaves them as found."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def _seed(random_state) -> int:
    """An int seed from `random_state` (None: a fresh one, so fits differ); a Generator or
    RandomState is drawn from, as scikit-learn estimators do."""
    if isinstance(random_state, (int, np.integer)):
        return int(random_state)
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**31 - 1))
    if random_state is None:
        return int(np.random.default_rng().integers(0, 2**31 - 1))  # fresh entropy, not the global state
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    raise ValueError(f"random_state must be None, an int, a numpy.random.Generator or RandomState; "
                     f"got {random_state!r}")

