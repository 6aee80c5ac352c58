"""Convolutional front end followed by a recurrent encoder (a CNN-RNN hybrid).

The convolutions learn local shape features and the pooling shortens the sequence, so the
recurrent layers run over fewer, richer steps; the layout of DeepConvLSTM (Ordonez and Roggen,
2016, "Deep convolutional and LSTM recurrent neural networks for multimodal wearable activity
recognition"), with pooling added between the convolutions.
"""

from __future__ import annotations

import keras

from kseq.models.arguments import boolean, positive_int, positive_ints
from kseq.models.head import encoder_classifier
from kseq.models.layers import PooledPaddingMask, batch_normalization
from kseq.models.recurrent import RENAMED, REPURPOSED, recurrent_stack
from kseq.models.registry import register_model


def hybrid_encoder(inputs, *, filters=(64, 64), kernel_size=5, pool_size=2, batch_norm=True, cell="gru",
                   bidirectional=True, layers=1, units=64, recurrent_input_dropout=0.0,
                   recurrent_dropout=0.0, mask_zero_padding=True, regularizer=None):
    """(Conv1D -> [BatchNorm] -> ReLU -> MaxPool) per filter count -> recurrent stack's last state.

    (B, T, F) -> (B, width), any T. Masking: convolution and pooling mix neighbouring steps, so
    the raw input's padding mask no longer marks the pooled steps exactly. With
    `mask_zero_padding`, the mask is downsampled instead (`PooledPaddingMask`): a pooled step is
    skipped by the recurrent layers only when every raw step it summarises is padding. Steps that
    straddle the end of a sequence are kept, and their features may be influenced by the padding
    through the convolutions, so unlike `rnn`, extra zero padding can change the prediction
    slightly.
    """
    filters = positive_ints("filters", filters)
    kernel_size = positive_int("kernel_size", kernel_size)
    pool_size = positive_int("pool_size", pool_size)
    batch_norm = boolean("batch_norm", batch_norm)
    x = inputs
    for i, block_filters in enumerate(filters, start=1):
        x = keras.layers.Conv1D(block_filters, kernel_size, padding="same", use_bias=not batch_norm,
                                kernel_regularizer=regularizer, name=f"conv{i}")(x)
        if batch_norm:
            x = batch_normalization(f"conv{i}_bn")(x)
        x = keras.layers.Activation("relu", name=f"conv{i}_relu")(x)
        if pool_size > 1:
            x = keras.layers.MaxPooling1D(pool_size, name=f"conv{i}_pool")(x)
    if boolean("mask_zero_padding", mask_zero_padding):
        x = PooledPaddingMask(pool_size ** len(filters), name="mask_padding")([x, inputs])
    return recurrent_stack(x, cell=cell, bidirectional=bidirectional, layers=layers, units=units,
                           recurrent_input_dropout=recurrent_input_dropout,
                           recurrent_dropout=recurrent_dropout, regularizer=regularizer,
                           return_sequences=False)


@register_model("hybrid", renamed={"conv_filters": "filters", **RENAMED}, repurposed=REPURPOSED)
def build_hybrid(
    input_shape,
    num_classes,
    *,
    filters=(64, 64),
    kernel_size=5,
    pool_size=2,
    batch_norm=True,
    cell="gru",
    bidirectional=True,
    layers=1,
    units=64,
    recurrent_input_dropout=0.0,
    recurrent_dropout=0.0,
    mask_zero_padding=True,
    dense_units=(),
    dropout=0.0,
    l1=0.0,
    l2=0.0,
    name="hybrid",
) -> keras.Model:
    """`hybrid_encoder` -> the shared head.

    Args:
        filters: filters of each convolution block; one block per entry.
        kernel_size: convolution width (same padding).
        pool_size: max-pooling factor after each block (1: no pooling).
        batch_norm: batch normalisation between each convolution and its ReLU.
        cell, bidirectional, layers, units, recurrent_input_dropout, recurrent_dropout: the
            recurrent stack, as in `build_rnn`; the last layer's final state is the features.
        mask_zero_padding: skip pooled steps that are wholly zero padding (see `hybrid_encoder`).
        dense_units, dropout: the head's hidden layers and dropout (`kseq.models.head`).
        l1, l2: L1/L2 penalties on every kernel.
    """
    return encoder_classifier(hybrid_encoder, input_shape, num_classes, dense_units=dense_units,
                              dropout=dropout, l1=l1, l2=l2, name=name, filters=filters,
                              kernel_size=kernel_size, pool_size=pool_size, batch_norm=batch_norm, cell=cell,
                              bidirectional=bidirectional, layers=layers, units=units,
                              recurrent_input_dropout=recurrent_input_dropout,
                              recurrent_dropout=recurrent_dropout, mask_zero_padding=mask_zero_padding)
