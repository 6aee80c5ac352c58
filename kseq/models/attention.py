"""Recurrent encoder with attention pooling over time, optionally after multi-head self-attention.

Instead of keeping only the last state, the classifier averages all encoder states with learned
weights (`AttentionPooling1D`, after Yang et al. 2016), so evidence anywhere in a long sequence
reaches the head directly. `multi_head=N` first lets every step attend to every other step
(Vaswani et al. 2017, "Attention is all you need": residual connection then layer norm).
"""

from __future__ import annotations

import keras

from kseq.models.layers import AttentionPooling1D, kernel_regularizer
from kseq.models.recurrent import classification_head, recurrent_stack
from kseq.models.registry import register_model


@register_model("attention")
def build_attention(
    input_shape,
    num_classes,
    *,
    cell="gru",
    bidirectional=True,
    layers=1,
    units=64,
    dropout=0.0,
    recurrent_dropout=0.0,
    multi_head=0,
    key_dim=None,
    attention_dropout=0.0,
    attention_units=64,
    dense_units=0,
    dense_dropout=0.0,
    l1=0.0,
    l2=0.0,
    mask_zero_padding=True,
    name="attention",
) -> keras.Model:
    """[Masking] -> recurrent stack (all steps) -> [self-attention] -> attention pooling -> logits.

    The padding mask from `Masking` flows through the encoder and the self-attention block
    (queries and keys at padded steps are masked) to the pooling, which gives padded steps
    weight 0, so zero padding does not change the prediction.

    Args:
        cell, bidirectional, layers, units, dropout, recurrent_dropout: the recurrent encoder,
            as in `build_rnn`; every layer returns the whole sequence.
        multi_head: number of heads of a `keras.layers.MultiHeadAttention` self-attention block
            (with residual and `LayerNormalization`) after the encoder; 0 for none.
        key_dim: size of each head's queries and keys; default: encoder width // multi_head.
        attention_dropout: dropout on the self-attention weights.
        attention_units: width of the pooling's scoring layer.
        dense_units, dense_dropout: an optional hidden ReLU layer (0: none) before the logits.
        l1, l2: L1/L2 penalties on every kernel.
        mask_zero_padding: put `keras.layers.Masking(0.0)` first, so all-zero steps are ignored.
    """
    regularizer = kernel_regularizer(l1, l2)
    inputs = keras.Input(shape=input_shape, name="sequence")
    x = inputs
    if mask_zero_padding:
        x = keras.layers.Masking(mask_value=0.0, name="mask_padding")(x)
    x = recurrent_stack(x, cell, bidirectional, layers, units, dropout, recurrent_dropout,
                        regularizer, return_sequences=True)
    if multi_head:
        width = x.shape[-1]
        attended = keras.layers.MultiHeadAttention(
            num_heads=multi_head,
            key_dim=key_dim or max(1, width // multi_head),
            dropout=attention_dropout,
            kernel_regularizer=regularizer,
            name="self_attention",
        )(x, x)
        x = keras.layers.Add(name="self_attention_residual")([x, attended])
        x = keras.layers.LayerNormalization(name="self_attention_norm")(x)
    x = AttentionPooling1D(attention_units, kernel_regularizer=regularizer,
                           name="attention_pool")(x)
    logits = classification_head(x, num_classes, dense_units=dense_units,
                                 dense_dropout=dense_dropout, regularizer=regularizer)
    return keras.Model(inputs, logits, name=name)
