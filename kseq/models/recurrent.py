"""Recurrent classifiers: a stack of SimpleRNN, LSTM or GRU layers, optionally bidirectional.

The seed's best pain model is `build_rnn(cell="gru", bidirectional=True, layers=3, units=100)`.
`recurrent_stack` is the part of the encoder that `hybrid` and `attention` reuse.
"""

from __future__ import annotations

import keras

from kseq.utils.errors import InputError
from kseq.models.arguments import boolean, one_of, positive_int, positive_ints, rate
from kseq.models.head import encoder_classifier
from kseq.models.registry import register_model

# cell name -> (Keras layer, short name used in layer names such as "bigru_1")
CELLS = {
    "simple": (keras.layers.SimpleRNN, "rnn"),
    "lstm": (keras.layers.LSTM, "lstm"),
    "gru": (keras.layers.GRU, "gru"),
}

POOLINGS = ("last", "average")

# Arguments of the recurrent builders (rnn, hybrid, attention) renamed or given a new meaning
# when every model got the shared head; see `register_model`.
RENAMED = {"dense_dropout": "dropout"}
REPURPOSED = {"dropout": "recurrent_input_dropout"}


def layer_units(units, layers):
    """`units` as one width per layer: an int is repeated, a list must have `layers` entries."""
    layers = positive_int("layers", layers)
    if isinstance(units, int) and not isinstance(units, bool):
        return [positive_int("units", units)] * layers
    units = positive_ints("units", units)
    if len(units) != layers:
        raise InputError(f"units has {len(units)} entries but layers={layers}")
    return list(units)


def recurrent_stack(x, *, cell, bidirectional, layers, units, recurrent_input_dropout,
                    recurrent_dropout, regularizer, return_sequences):
    """Apply `layers` recurrent layers of type `cell` to `x` and return the result.

    Every layer but the last returns the full sequence; the last returns it only when
    `return_sequences`, and otherwise its final state (at the last unmasked step when `x`
    carries a mask). `units` is an int or one width per layer; a bidirectional layer's output
    is twice as wide (forward and backward concatenated). `recurrent_input_dropout` and
    `recurrent_dropout` are each layer's dropout on its inputs and on its recurrent state
    (Keras' `dropout` and `recurrent_dropout`). `regularizer` goes on the input and recurrent
    kernels. Layers are named `{bi}{gru|lstm|rnn}_{i}` from 1, e.g. `bigru_1`.
    """
    if cell not in CELLS:
        raise InputError(f"unknown cell {cell!r}; known: {', '.join(CELLS)}")
    layer_class, short_name = CELLS[cell]
    prefix = "bi" if boolean("bidirectional", bidirectional) else ""
    widths = layer_units(units, layers)
    recurrent_input_dropout = rate("recurrent_input_dropout", recurrent_input_dropout)
    recurrent_dropout = rate("recurrent_dropout", recurrent_dropout)
    for i, width in enumerate(widths, start=1):
        name = f"{prefix}{short_name}_{i}"
        recurrent = layer_class(
            width,
            dropout=recurrent_input_dropout,
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


def masked_recurrent_stack(inputs, *, mask_zero_padding, **stack_args):
    """`recurrent_stack` on `inputs`, with `mask_zero_padding` behind `keras.layers.Masking(0.0)`,
    so all-zero steps (padding) are skipped."""
    x = inputs
    if boolean("mask_zero_padding", mask_zero_padding):
        x = keras.layers.Masking(mask_value=0.0, name="mask_padding")(x)
    return recurrent_stack(x, **stack_args)


def rnn_encoder(inputs, *, cell="gru", bidirectional=False, layers=1, units=64, recurrent_input_dropout=0.0,
                recurrent_dropout=0.0, pooling="last", mask_zero_padding=True, regularizer=None):
    """[Masking] -> recurrent stack -> last state or masked mean over time: (B, T, F) -> (B, width), any T.

    With `mask_zero_padding`, steps whose features are all 0 (the zero padding after a
    sequence's end) are skipped, so padding does not change the features; a real step that is
    exactly 0 in every feature is skipped too.
    """
    pooling = one_of("pooling", pooling, POOLINGS)
    x = masked_recurrent_stack(inputs, mask_zero_padding=mask_zero_padding, cell=cell, bidirectional=bidirectional,
                               layers=layers, units=units, recurrent_input_dropout=recurrent_input_dropout,
                               recurrent_dropout=recurrent_dropout, regularizer=regularizer,
                               return_sequences=pooling != "last")
    if pooling == "average":
        x = keras.layers.GlobalAveragePooling1D(name="average_pool")(x)
    return x


@register_model("rnn", renamed=RENAMED, repurposed=REPURPOSED)
def build_rnn(
    input_shape,
    num_classes,
    *,
    cell="gru",
    bidirectional=False,
    layers=1,
    units=64,
    recurrent_input_dropout=0.0,
    recurrent_dropout=0.0,
    pooling="last",
    mask_zero_padding=True,
    dense_units=(),
    dropout=0.0,
    l1=0.0,
    l2=0.0,
    name="rnn",
) -> keras.Model:
    """`rnn_encoder` -> the shared head.

    Args:
        cell: "simple" (SimpleRNN), "lstm" or "gru".
        bidirectional: wrap each layer in `keras.layers.Bidirectional` (outputs concatenated).
        layers, units: depth, and width per layer (an int, or a list of `layers` ints).
        recurrent_input_dropout, recurrent_dropout: dropout on each recurrent layer's inputs and
            on its recurrent state.
        pooling: "last" keeps the final state of the last layer (the last unmasked step);
            "average" averages its outputs over the unmasked steps.
        mask_zero_padding: skip all-zero steps (padding), see `rnn_encoder`.
        dense_units, dropout: the head's hidden layers and dropout (`kseq.models.head`).
        l1, l2: L1/L2 penalties on every kernel, recurrent kernels included.
    """
    return encoder_classifier(rnn_encoder, input_shape, num_classes, dense_units=dense_units, dropout=dropout,
                              l1=l1, l2=l2, name=name, cell=cell, bidirectional=bidirectional, layers=layers,
                              units=units, recurrent_input_dropout=recurrent_input_dropout,
                              recurrent_dropout=recurrent_dropout, pooling=pooling,
                              mask_zero_padding=mask_zero_padding)
