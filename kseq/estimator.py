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

import tempfile
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted, column_or_1d

from kseq.config import check_values, load_config, merge_into
from kseq.data.sequence_set import SequenceSet
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
        model_params: the builder's keyword arguments (None: its defaults).
        loss: "crossentropy", "focal", "smoothed" or "weighted" (`kseq.get_loss`).
        loss_params: the loss's keyword arguments, e.g. `{"gamma": 2.0}`.
        sampler: how training batches are drawn (`kseq.make_train_dataset`): "none", "rejection",
            "weighted", "oversample" or "class_weight".
        sampler_target: the class distribution "rejection" and "weighted" aim for.
        batch_size, steps: numbers, or "auto" (resolved from the data: `kseq.training.recipe`).
        learning_rate, weight_decay, schedule: AdamW and its schedule ("cosine" or "constant").
        normalize: "series" (per-series z-normalisation inside the model) or "none".
        fill_gaps: how NaN bursts are interpolated before the model ("linear", "spline", "none").
        validation_split: a fraction of the training series, or "auto"; ignored when `fit` is
            given `validation_data`.
        early_stopping_patience: epochs, or "auto".
        random_state: an int for reproducible data order and weights, or None.
        verbose: 0 silent, 1 the resolved values and one line per epoch.

    Attributes (after `fit`): `classes_`, `model_` (the Keras model: raw sequences -> logits),
    `history_` (per-epoch logs), `config_` (the resolved config, as a run's `config.toml`).
    """

    def __init__(self, model="resnet", model_params=None, *, loss="crossentropy", loss_params=None,
                 sampler="none", sampler_target="uniform", batch_size="auto", steps="auto",
                 learning_rate=1e-3, weight_decay=1e-4, schedule="cosine", normalize="series",
                 fill_gaps="linear", validation_split="auto", early_stopping_patience="auto",
                 random_state=None, verbose=0):
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
            "model": {"name": self.model, **(self.model_params or {})},
            "loss": {"name": self.loss, **(self.loss_params or {})},
            "optimizer": {"learning_rate": self.learning_rate, "weight_decay": self.weight_decay,
                          "schedule": self.schedule},
            "train": {"steps": self.steps, "seed": seed, "early_stopping_patience": self.early_stopping_patience,
                      "verbose": 2 if self.verbose else 0},
        }
        config = merge_into(config, updates, type(self).__name__)
        check_values(config, type(self).__name__)
        return config

    def fit(self, X, y, validation_data=None, sample_weight=None):
        """Train on sequences `X` with labels `y`; returns self.

        Args:
            validation_data: `(X_val, y_val)` to select the epoch by (validation macro-F1) and
                stop early on, instead of the `validation_split` policy.
            sample_weight: per-series weights `(N,)`: each batch draws series with probability in
                proportion to them (the `weighted` sampler, PyTorch's `WeightedRandomSampler`),
                which matches a weighted loss in expectation. Needs `sampler="none"` or
                `"weighted"`.
        """
        from kseq.training import trainer

        x = _as_sequences(X)
        labels = column_or_1d(y, warn=True)
        if len(labels) != len(x):
            raise ValueError(f"X has {len(x)} sequences but y has {len(labels)} labels")
        self.classes_, y_index = np.unique(labels, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"y needs at least 2 classes; got {len(self.classes_)}")
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight, dtype="float64").reshape(-1)
            if sample_weight.shape != (len(x),) or (sample_weight < 0).any() or not sample_weight.any():
                raise ValueError(f"sample_weight must be {len(x)} non-negative weights, not all 0")
            if self.sampler not in ("none", "weighted"):
                raise ValueError(f"sample_weight is drawn by the 'weighted' sampler; sampler={self.sampler!r} "
                                 "draws by its own rule")
        seed = _seed(self.random_state)
        config = self.to_config(seed)
        if sample_weight is not None:
            config["sampler"]["kind"] = "weighted"
        names = tuple(str(c) for c in self.classes_)
        train_set = SequenceSet(x, y_index, names)
        validation_set = None
        if validation_data is not None:
            x_val, y_val = validation_data
            y_val = column_or_1d(y_val)
            unknown = sorted(set(np.unique(y_val).tolist()) - set(self.classes_.tolist()))
            if unknown:
                raise ValueError(f"validation_data has labels {unknown} that are not in y")
            validation_set = SequenceSet(_as_sequences(x_val), np.searchsorted(self.classes_, y_val), names)
        try:
            splits = trainer.prepare_arrays(config, train_set, validation_set=validation_set)
            config = trainer.resolve_recipe(config, splits.fit, splits.validation, announce=bool(self.verbose))
            with tempfile.TemporaryDirectory(prefix="kseq-fit-") as work:
                fitted = trainer.fit(config, splits.fit, splits.validation, splits.transform, Path(work),
                                     sample_weight=None if sample_weight is None else sample_weight[splits.fit_index])
        except InputError as e:
            raise ValueError(str(e)) from None
        self.model_, self.history_, self.config_ = fitted.model, fitted.history, config
        self.input_shape_ = x.shape[1:]
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities `(N, C)`, columns in the order of `classes_`."""
        from kseq.training import trainer

        check_is_fitted(self, "model_")
        x = _as_sequences(X)
        if x.shape[1:] != tuple(self.input_shape_):
            raise ValueError(f"X has sequences of shape {x.shape[1:]}; the model was fitted on {tuple(self.input_shape_)}")
        return trainer.predict_proba(self.model_, x, self.config_)

    def predict(self, X) -> np.ndarray:
        """The most probable class of each sequence, as one of `classes_`."""
        check_is_fitted(self, "model_")
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def export(self, path) -> Path:
        """Write the fitted model as a run folder writes it: `model.keras`, `serving/` (SavedModel,
        plus `model.tflite` where it converts), `config.toml` and `history.csv`, under a temporary
        name then renamed, so it serves exactly like a model trained from the command line."""
        from kseq.serving import export

        check_is_fitted(self, "model_")
        return export.write_model_folder(Path(path), self.model_, self.config_, self.history_,
                                         tuple(str(c) for c in self.classes_))

    save = export

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.non_deterministic = self.random_state is None
        return tags


def _as_sequences(X) -> np.ndarray:
    """`X` as float32 `(N, T, F)`; `(N, T)` is one feature."""
    x = np.asarray(X, dtype=np.float32)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3 or not len(x):
        raise ValueError(f"X must be a non-empty (N, T, F) or (N, T) array; got shape {x.shape}")
    if np.isinf(x).any():
        raise ValueError("X holds infinite values; expected finite numbers or NaN (gaps)")
    return x


def _seed(random_state) -> int:
    """An int seed from scikit-learn's `random_state` (None: a fresh one, so fits differ)."""
    if isinstance(random_state, (int, np.integer)):
        return int(random_state)
    rng = random_state if isinstance(random_state, np.random.RandomState) else np.random.RandomState()
    return int(rng.randint(0, 2**31 - 1))

