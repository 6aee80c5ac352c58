"""Convolutional front end followed by a recurrent classifier (a CNN-RNN hybrid).

The convolutions learn local shape features and the pooling shortens the sequence, so the
recurrent layers run over fewer, richer steps; the layout of DeepConvLSTM (Ordonez and Roggen,
2016, "Deep convolutional and LSTM recurrent neural networks for multimodal wearable activity
recognition"), with pooling added between the convolutions.
"""

from __future__ import annotations

import keras

from kseq.models.layers import PooledPaddingMask, batch_normalization, kernel_regularizer
from kseq.models.recurrent import classification_head, recurrent_stack
from kseq.models.registry import register_model


@register_model("hybrid")
def build_hybrid(
    input_shape,
    num_classes,
    *,
    conv_filters=(64, 64),
    kernel_size=5,
    pool_size=2,
    batch_norm=True,
    cell="gru",
    bidirectional=True,
    layers=1,
    units=64,
    dropout=0.0,
    recurrent_dropout=0.0,
    dense_units=0,
    dense_dropout=0.0,
    l1=0.0,
    l2=0.0,
    mask_zero_padding=True,
    name="hybrid",
) -> keras.Model:
    """(Conv1D -> [BatchNorm] -> ReLU -> MaxPool) per filter count -> recurrent stack -> logits.

    Masking: convolution and pooling mix neighbouring steps, so the raw input's padding mask no
    longer marks the pooled steps exactly. With `mask_zero_padding`, the mask is downsampled
    instead (`PooledPaddingMask`): a pooled step is skipped by the recurrent layers only when
    every raw step it summarises is padding. Steps that straddle the end of a sequence are kept,
    and their features may be influenced by the padding through the convolutions, so unlike
    `rnn`, extra zero padding can change the prediction slightly.

    Args:
        conv_filters: filters of each convolution block; one block per entry.
        kernel_size: convolution width (same padding).
        pool_size: max-pooling factor after each block (1: no pooling).
        batch_norm: batch normalisation between each convolution and its ReLU.
        cell, bidirectional, layers, units, dropout, recurrent_dropout: the recurrent stack,
            as in `build_rnn`; the last layer's final state feeds the head.
        dense_units, dense_dropout: an optional hidden ReLU layer (0: none) before the logits.
        l1, l2: L1/L2 penalties on every kernel.
        mask_zero_padding: skip pooled steps that are wholly zero padding (see above).
    """
    regularizer = kernel_regularizer(l1, l2)
    inputs = keras.Input(shape=input_shape, name="sequence")
    x = inputs
    for i, filters in enumerate(conv_filters, start=1):
        x = keras.layers.Conv1D(filters, kernel_size, padding="same", use_bias=not batch_norm,
                                kernel_regularizer=regularizer, name=f"conv{i}")(x)
        if batch_norm:
            x = batch_normalization(f"conv{i}_bn")(x)
        x = keras.layers.Activation("relu", name=f"conv{i}_relu")(x)
        if pool_size > 1:
            x = keras.layers.MaxPooling1D(pool_size, name=f"conv{i}_pool")(x)
    if mask_zero_padding:
        total_pool = pool_size ** len(conv_filters) if pool_size > 1 else 1
        x = PooledPaddingMask(total_pool, name="mask_padding")([x, inputs])
    x = recurrent_stack(x, cell, bidirectional, layers, units, dropout, recurrent_dropout,
                        regularizer, return_sequences=False)
    logits = classification_head(x, num_classes, dense_units=dense_units,
                                 dense_dropout=dense_dropout, regularizer=regularizer)
    return keras.Model(inputs, logits, name=name)
