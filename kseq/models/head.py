"""The classification head every model shares: features -> [Dense -> Dropout]... -> logits.

Every builder is an encoder, `(inputs) -> features`, followed by this head, so `dense_units`
and `dropout` mean the same thing in every model:

- `dense_units`: the widths of hidden ReLU layers before the logits, a list (empty: none);
- `dropout`: the rate of a Dropout after each hidden layer, or, with no hidden layer, on the
  features themselves.

>>> import keras
>>> features = keras.Input((16,))
>>> logits = classification_head(features, 5, dense_units=[8], dropout=0.5)
>>> [layer.name for layer in keras.Model(features, logits).layers[1:]]
['dense1', 'dropout1', 'logits']
"""

from __future__ import annotations

import warnings

import keras

from kseq.models.arguments import positive_int, positive_ints, rate
from kseq.models.layers import kernel_regularizer
from kseq.models.preprocessing import LengthFeature, LengthFraction


def hidden_widths(dense_units) -> tuple[int, ...]:
    """`dense_units` as a tuple of widths; an int (the old form) still works, with a FutureWarning."""
    if isinstance(dense_units, int) and not isinstance(dense_units, bool):
        widths = [dense_units] if dense_units else []
        warnings.warn(f"dense_units={dense_units}: an int is deprecated; give a list of widths, {widths}",
                      FutureWarning, stacklevel=6)  # the caller of build_model
        dense_units = widths
    return positive_ints("dense_units", dense_units, allow_empty=True)


def classification_head(features, num_classes, *, dense_units=(), dropout=0.0, regularizer=None):
    """(batch, width) features -> (batch, num_classes) logits; `regularizer` on every kernel.

    Layers: `dense1`, `dropout1`, `dense2`, ... and `logits`; with no hidden layer, `dropout` then
    `logits`.
    """
    widths = hidden_widths(dense_units)
    dropout = rate("dropout", dropout)
    num_classes = positive_int("num_classes", num_classes)
    x = features
    if not widths:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    for i, units in enumerate(widths, start=1):
        x = keras.layers.Dense(units, activation="relu", kernel_regularizer=regularizer, name=f"dense{i}")(x)
        x = keras.layers.Dropout(dropout, name=f"dropout{i}")(x)
    # float32 whatever the dtype policy: bfloat16 logits keep 2-3 significant digits, too few for
    # the loss of a nearly fitted model (Keras' mixed-precision guide keeps the last layer float32).
    return keras.layers.Dense(num_classes, kernel_regularizer=regularizer, dtype="float32", name="logits")(x)


def encoder_classifier(encoder, input_shape, num_classes, *, dense_units, dropout, l1, l2, name,
                       length_feature=False, length_scale=False, **encoder_args) -> keras.Model:
    """The model every builder returns: input `sequence` -> `encoder` -> `classification_head` -> logits.

    `encoder(inputs, regularizer=..., **encoder_args)` gives the features; the L1/L2 penalty
    (`l1`, `l2`) goes on every kernel of the encoder and the head alike. A model that pools over
    real steps only sees no length otherwise, so two options hand it each series' real length,
    their layers adapted on the training series by `kseq.training.trainer.build_window_model`:
    `length_feature`, the standardised log length (`LengthFeature`) beside the features, and
    `length_scale`, the features (averages over the real steps) times the series' length over the
    longest training series' (`LengthFraction`), so they average over that window as zero padding
    to it would.
    """
    regularizer = kernel_regularizer(l1, l2)
    inputs = keras.Input(shape=input_shape, name="sequence")
    features = encoder(inputs, regularizer=regularizer, **encoder_args)
    if length_scale:
        fraction = LengthFraction(name="length_fraction")(inputs)
        features = keras.layers.Multiply(name="window_average")([features, fraction])
    if length_feature:
        length = LengthFeature(name="length_feature")(inputs)
        features = keras.layers.Concatenate(name="features_and_length")([features, length])
    logits = classification_head(features, num_classes, dense_units=dense_units, dropout=dropout,
                                 regularizer=regularizer)
    return keras.Model(inputs, logits, name=name)
