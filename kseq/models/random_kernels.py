"""The random-kernel classifiers `minirocket` and `multirocket_hydra`, and how their heads are fitted.

Each is an encoder of fixed convolutions (`kseq.models.rocket`, `kseq.models.hydra`), whose
features are standardised in the model (`FeatureScaling`) and then go to the shared head
(`kseq.models.head`): `multirocket_hydra` is MR-Hydra of Middlehurst, Schäfer and Bagnall (2024),
MultiRocket and Hydra features side by side. Nothing in the encoder is trained by gradient: its
parameters are fitted by `adapt` on the training series, and the head is either

- `"ridge"`: ridge regression on one-vs-rest targets in closed form, its penalty chosen by
  leave-one-out error (`kseq.models.ridge`, as `RidgeClassifierCV`): the references' classifier,
  exact and fast while the series are few enough for an N x N (or D x D) eigendecomposition; or
- `"logistic"`: the `logits` layer trained as any kseq model is (softmax, kseq's samplers and
  losses), for large data, where the MiniRocket paper recommends logistic regression trained by
  gradient descent (ridge's decomposition grows with the cube of the series count), and for
  imbalanced data, which the samplers and losses handle.

The generic experiments leave `head = "auto"`, which `kseq.training.recipe` resolves by the
training-set size (ridge below `RIDGE_MAX_SERIES` series, the paper's rule of thumb).
`adapt_and_fit_head` is what `kseq.training.trainer.fit` calls before training.

Example:
    >>> import numpy as np
    >>> from kseq.models import build_model
    >>> x = np.random.default_rng(0).normal(size=(12, 32, 1)).astype("float32")
    >>> y = np.arange(12) % 2
    >>> model = build_model("minirocket", (32, 1), 2, num_features=168)
    >>> adapt_and_fit_head(model, x, y, "ridge")["epoch"]
    [0]
    >>> model.predict(x, verbose=0).shape
    (12, 2)
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from kseq.models.arguments import one_of, positive_int
from kseq.models.head import encoder_classifier, hidden_widths
from kseq.models.hydra import Hydra
from kseq.models.inference import predict_arrays
from kseq.models.layers import all_layers
from kseq.models.registry import register_model
from kseq.models.ridge import column_blocks, ridge_classifier
from kseq.models.rocket import MiniRocket, MultiRocket
from kseq.utils.errors import InputError

HEADS = ("ridge", "logistic")
SCALING_SAMPLE = 4096  # series the logistic head's feature statistics are taken from
TRANSFORMS = (MiniRocket, MultiRocket, Hydra)


@keras.saving.register_keras_serializable(package="kseq")
class FeatureScaling(layers.Layer):
    """Per-feature standardisation fitted by `adapt`: `(x - mean) / std` (std 0 counts as 1).

    With `sparse=True`, the scaling the Hydra reference gives its counts: `v = sqrt(max(x, 0))`,
    then `(v - mean) / (std + p**4)` where `v != 0` and 0 where `v == 0`, with `p` the fraction of
    training series whose count is 0 (so mostly-zero counts are damped).
    """

    def __init__(self, sparse: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.sparse = bool(sparse)

    def build(self, input_shape):
        self.mean = self.add_weight(shape=(input_shape[-1],), initializer="zeros", trainable=False, name="mean")
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", trainable=False, name="scale")

    def adapt(self, features):
        """Fit the statistics on training features (N, D), in float64 a block of columns at a time
        (`kseq.models.ridge.column_blocks`): a float64 copy of them all would be twice their size again."""
        features = np.asarray(features)
        if not self.built:
            self.build(features.shape)
        mean, scale = np.empty(features.shape[1]), np.empty(features.shape[1])
        for columns, block in column_blocks(features):
            if self.sparse:
                block = np.sqrt(np.maximum(block, 0))
                scale[columns] = (block.std(axis=0, ddof=1 if len(block) > 1 else 0) + (block == 0).mean(axis=0) ** 4
                                  + 1e-8)
            else:
                std = block.std(axis=0)
                scale[columns] = np.where(std == 0, 1.0, std)
            mean[columns] = block.mean(axis=0)
        self.mean.assign(mean.astype("float32"))
        self.scale.assign(scale.astype("float32"))

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        if not self.sparse:
            return (x - self.mean) / self.scale
        root = ops.sqrt(ops.maximum(x, 0.0))
        return ops.where(root != 0, (root - self.mean) / self.scale, 0.0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "sparse": self.sparse}


def random_kernel_encoder(inputs, *, transforms, regularizer=None):
    """(B, T, F) -> each transform's features, standardised (`<name>_scaling`), side by side."""
    del regularizer  # nothing in the encoder is trained
    scaled = [FeatureScaling(sparse=isinstance(t, Hydra), name=f"{t.name}_scaling")(t(inputs)) for t in transforms]
    return scaled[0] if len(scaled) == 1 else layers.Concatenate(name="features")(scaled)


def _classifier(transforms, input_shape, num_classes, *, head, dense_units, dropout, l1, l2, name):
    one_of("head", head, HEADS)
    if input_shape[0] is None:
        raise InputError(f"{name} needs a fixed sequence length (its dilations come from it); got input_shape "
                         f"{tuple(input_shape)}")
    if head == "ridge" and (hidden_widths(dense_units) or dropout or l1 or l2):
        raise InputError(f"{name}: the ridge head is solved in closed form, so it takes no dense_units, dropout, "
                         f"l1 or l2; use head = 'logistic' for those")
    return encoder_classifier(random_kernel_encoder, input_shape, num_classes, dense_units=dense_units,
                              dropout=dropout, l1=l1, l2=l2, name=name, transforms=transforms)


@register_model("minirocket")
def build_minirocket(input_shape, num_classes, *, num_features=10_000, max_dilations_per_kernel=32, seed=0,
                     head="ridge", dense_units=(), dropout=0.0, l1=0.0, l2=0.0, name="minirocket") -> keras.Model:
    """MiniRocket features (`kseq.models.rocket.MiniRocket`) -> `FeatureScaling` -> the shared head.

    Args:
        num_features: MiniRocket's features (the reference: 10,000, rounded down to 9,996).
        max_dilations_per_kernel: the reference's 32.
        seed: the seed of the channel combinations and bias series.
        head: "ridge" (closed form) or "logistic" (trained); see this module's docstring.
        dense_units, dropout, l1, l2: the logistic head's hidden layers, dropout and penalties.
    """
    transforms = [MiniRocket(positive_int("num_features", num_features),
                             positive_int("max_dilations_per_kernel", max_dilations_per_kernel), seed,
                             name="minirocket_transform")]
    return _classifier(transforms, input_shape, num_classes, head=head, dense_units=dense_units, dropout=dropout,
                       l1=l1, l2=l2, name=name)


@register_model("multirocket_hydra")
def build_multirocket_hydra(input_shape, num_classes, *, num_features=6_250, max_dilations_per_kernel=32,
                            num_kernels=8, num_groups=64, seed=0, head="ridge", dense_units=(), dropout=0.0,
                            l1=0.0, l2=0.0, name="multirocket_hydra") -> keras.Model:
    """MR-Hydra: MultiRocket and Hydra features, each standardised, concatenated -> the shared head.

    Args:
        num_features: MultiRocket's biases per representation (aeon's `n_kernels`, 6,250: 49,728
            features).
        max_dilations_per_kernel: MultiRocket's 32.
        num_kernels, num_groups: Hydra's kernels per group (8) and groups (64).
        seed: the seed of both transforms' random parameters.
        head, dense_units, dropout, l1, l2: as `minirocket`'s.
    """
    transforms = [MultiRocket(positive_int("num_features", num_features),
                              positive_int("max_dilations_per_kernel", max_dilations_per_kernel), seed,
                              name="multirocket"),
                  Hydra(positive_int("num_kernels", num_kernels), positive_int("num_groups", num_groups), seed,
                        name="hydra")]
    return _classifier(transforms, input_shape, num_classes, head=head, dense_units=dense_units, dropout=dropout,
                       l1=l1, l2=l2, name=name)


def _encoder_input(model: keras.Model, x: np.ndarray, batch_size: int):
    """(the model holding the transforms, `x` as its input receives it), through wrapping models.

    The trainer wraps a builder's model in preprocessing (`kseq.models.preprocessing`): layers in
    front of the model, which may branch (`"series+channel"` concatenates two normalisations), so
    the input the model receives is computed as the output of the layer feeding it."""
    chain = [layer for layer in model.layers if not isinstance(layer, layers.InputLayer)]
    if any(isinstance(layer, TRANSFORMS) for layer in chain):
        return model, x
    for i, layer in enumerate(chain):
        if isinstance(layer, keras.Model) and holds_random_kernels(layer):
            if i:  # layers are in graph order: the one before the model is the one feeding it
                x = predict_arrays(keras.Model(model.inputs, chain[i - 1].output), x, batch_size)
            return _encoder_input(layer, x, batch_size)
    raise ValueError(f"model {model.name!r} holds no random-kernel transform")


def holds_random_kernels(model: keras.Model) -> bool:
    """Whether `model` (or a model inside it) has a MiniRocket, MultiRocket or Hydra layer."""
    return any(isinstance(layer, TRANSFORMS) for layer in all_layers(model))


def adapt_and_fit_head(model: keras.Model, x: np.ndarray, y: np.ndarray, head: str, *, seed: int = 0,
                       batch_size: int = 256, sample_weight: np.ndarray | None = None) -> dict | None:
    """Fit a random-kernel model on training series `x` (N, T, F), labels `y`.

    Adapts the transforms (their biases) and the feature scaling on `x`; for the `"ridge"` head
    also solves the `logits` layer in closed form, each series' error weighed by `sample_weight`
    (the run's sampler as weights, `kseq.data.sampling.expected_weights`), and returns the run's
    one-row history (`epoch`, training `accuracy`, the chosen `ridge_alpha`); for `"logistic"`
    returns None, and the logits are trained as usual.
    """
    one_of("head", head, HEADS)
    encoder, x_in = _encoder_input(model, np.asarray(x, dtype="float32"), batch_size)
    transforms = [layer for layer in encoder.layers if isinstance(layer, TRANSFORMS)]
    for transform in transforms:
        if hasattr(transform, "adapt"):
            transform.adapt(x_in)
    if head == "logistic" and len(x_in) > SCALING_SAMPLE:
        x_in = x_in[np.sort(np.random.default_rng(seed).choice(len(x_in), SCALING_SAMPLE, replace=False))]
    raw = predict_arrays(keras.Model(encoder.input, [t.output for t in transforms]), x_in, batch_size)
    raw = list(raw) if isinstance(raw, (list, tuple)) else [raw]
    scalings = [encoder.get_layer(f"{transform.name}_scaling") for transform in transforms]
    for scaling, features in zip(scalings, raw):
        scaling.adapt(features)
    if head == "logistic":
        return None
    # The head's input, written in place a transform and a batch of series at a time: the features
    # of thousands of series take gigabytes, so neither they nor a scaling's temporaries are held
    # twice (6,599 series of 93 steps, `multirocket_hydra`: the run's peak 18.7 -> 5.2 GB).
    features = np.empty((len(x_in), sum(f.shape[1] for f in raw)), "float32")
    offset = 0
    for i, scaling in enumerate(scalings):
        width = raw[i].shape[1]
        for start in range(0, len(x_in), batch_size):
            rows = slice(start, start + batch_size)
            features[rows, offset:offset + width] = ops.convert_to_numpy(scaling(raw[i][rows]))
        raw[i], offset = None, offset + width
    logits = encoder.get_layer("logits")
    fit = ridge_classifier(features, y, logits.units, sample_weight=sample_weight)
    logits.set_weights([fit.kernel, fit.bias])
    accuracy = float(np.mean(np.argmax(features @ fit.kernel + fit.bias, axis=1) == y))
    return {"epoch": [0], "accuracy": [accuracy], "ridge_alpha": [fit.alpha]}
