"""Recurrent classifiers: a stack of SimpleRNN, LSTM or GRU layers, optionally bidirectional.

The seed's best heartbeat model is `build_rnn(cell="gru", bidirectional=True, layers=3,
units=100)`. `recurrent_stack` is the shared encoder that `hybrid` and `attention` reuse.
"""

from __future__ import annotations

import keras

from kseq.errors import InputError
from kseq.models.layers import kernel_regularizer
from kseq.models.registry import register_model

# cell name -> (Keras layer, short name used in layer names such as "bigru_1")
CELLS = {
    "simple": (keras.layers.SimpleRNN, "rnn"),
    "lstm": (keras.layers.LSTM, "lstm"),
    "gru": (keras.layers.GRU, "gru"),
}

POOLINGS = ("last", "average")


def layer_units(units, layers):
    """`units` as one width per layer: an int is repeated, a list must have `layers` entries."""
    if isinstance(units, int):
        return [units] * layers
    units = [int(u) for u in units]
    if len(units) != layers:
        raise InputError(f"units has {len(units)} entries but layers={layers}")
    return units


def recurrent_stack(x, cell, bidirectional, layers, units, dropout, recurrent_dropout,
                    regularizer, return_sequences):
    """Apply `layers` recurrent layers of type `cell` to `x` and return the result.

    Every layer but the last returns the full sequence; the last returns it only when
    `return_sequences`, and otherwise its final state (at the last unmasked step when `x`
    carries a mask). `units` is an int or one width per layer; a bidirectional layer's output
    is twice as wide (forward and backward concatenated). `regularizer` goes on the input and
    recurrent kernels. Layers are named `{bi}{gru|lstm|rnn}_{i}` from 1, e.g. `bigru_1`.
    """
    if cell not in CELLS:
        raise InputError(f"unknown cell {cell!r}; known: {', '.join(CELLS)}")
    layer_class, short_name = CELLS[cell]
    prefix = "bi" if bidirectional else ""
    widths = layer_units(units, layers)
    for i, width in enumerate(widths, start=1):
        name = f"{prefix}{short_name}_{i}"
        recurrent = layer_class(
            width,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            kernel_regularizer=regularizer,
            recurrent_regularizer=regularizer,
            return_sequences=return_sequences or i < len(widths),
            name=f"{short_name}_{i}" if bidirectional else name,
        )
        if bidirectional:
            recurrent = keras.layers.Bidirectional(recurrent, name=name)
        x = recurrent(x)
    return x


def classification_head(x, num_classes, *, dense_units, dense_dropout, regularizer):
    """[Dense(dense_units, relu) -> Dropout] -> Dense logits; dense_units=0: no hidden layer."""
    if dense_units:
        x = keras.layers.Dense(dense_units, activation="relu", kernel_regularizer=regularizer,
                               name="dense")(x)
        x = keras.layers.Dropout(dense_dropout, name="dense_dropout")(x)
    return keras.layers.Dense(num_classes, kernel_regularizer=regularizer, name="logits")(x)


@register_model("rnn")
def build_rnn(
    input_shape,
    num_classes,
    *,
    cell="gru",
    bidirectional=False,
    layers=1,
    units=64,
    dropout=0.0,
    recurrent_dropout=0.0,
    pooling="last",
    dense_units=0,
    dense_dropout=0.0,
    l1=0.0,
    l2=0.0,
    mask_zero_padding=True,
    name="rnn",
) -> keras.Model:
    """[Masking] -> recurrent stack -> last state or masked mean -> [Dense] -> Dense logits.

    Args:
        cell: "simple" (SimpleRNN), "lstm" or "gru".
        bidirectional: wrap each layer in `keras.layers.Bidirectional` (outputs concatenated).
        layers, units: depth, and width per layer (an int, or a list of `layers` ints).
        dropout, recurrent_dropout: dropout on each layer's inputs and on its recurrent state.
        pooling: "last" keeps the final state of the last layer (the last unmasked step);
            "average" averages its outputs over the unmasked steps.
        dense_units, dense_dropout: an optional hidden ReLU layer (0: none) before the logits.
        l1, l2: L1/L2 penalties on every kernel, recurrent kernels included.
        mask_zero_padding: put `keras.layers.Masking(0.0)` first, so steps whose features are all
            0 (the zero padding after a sequence's end) are skipped and padding does not change
            the prediction. A real step that is exactly 0 in every feature is skipped too.
    """
    if pooling not in POOLINGS:
        raise InputError(f"unknown pooling {pooling!r}; known: {', '.join(POOLINGS)}")
    regularizer = kernel_regularizer(l1, l2)
    inputs = keras.Input(shape=input_shape, name="sequence")
    x = inputs
    if mask_zero_padding:
        x = keras.layers.Masking(mask_value=0.0, name="mask_padding")(x)
    x = recurrent_stack(x, cell, bidirectional, layers, units, dropout, recurrent_dropout,
                        regularizer, return_sequences=pooling != "last")
    if pooling == "average":
        x = keras.layers.GlobalAveragePooling1D(name="average_pool")(x)
    logits = classification_head(x, num_classes, dense_units=dense_units,
                                 dense_dropout=dense_dropout, regularizer=regularizer)
    return keras.Model(inputs, logits, name=name)
