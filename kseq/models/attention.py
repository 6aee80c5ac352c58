"""Recurrent encoder with attention pooling over time, optionally after multi-head self-attention.

Instead of keeping only the last state, the classifier averages all encoder states with learned
weights (`AttentionPooling1D`, after Yang et al. 2016), so evidence anywhere in a long sequence
reaches the head directly. `multi_head=N` first lets every step attend to every other step
(Vaswani et al. 2017, "Attention is all you need": residual connection then layer norm).
"""

from __future__ import annotations

import keras

from kseq.models.arguments import non_negative_int, positive_int, rate
from kseq.models.head import encoder_classifier
from kseq.models.layers import AttentionPooling1D
from kseq.models.recurrent import RENAMED, REPURPOSED, masked_recurrent_stack
from kseq.models.registry import register_model


def attention_encoder(inputs, *, cell="gru", bidirectional=True, layers=1, units=64,
                      recurrent_input_dropout=0.0, recurrent_dropout=0.0, multi_head=0, key_dim=None,
                      attention_dropout=0.0, attention_units=64, mask_zero_padding=True, regularizer=None):
    """[Masking] -> recurrent stack (all steps) -> [self-attention] -> attention pooling.

    (B, T, F) -> (B, width), any T. The padding mask from `Masking` flows through the encoder
    and the self-attention block (queries and keys at padded steps are masked) to the pooling,
    which gives padded steps weight 0, so zero padding does not change the features.
    """
    multi_head = non_negative_int("multi_head", multi_head)
    if key_dim is not None:
        key_dim = positive_int("key_dim", key_dim)
    attention_dropout = rate("attention_dropout", attention_dropout)
    attention_units = positive_int("attention_units", attention_units)
    x = masked_recurrent_stack(inputs, mask_zero_padding=mask_zero_padding, cell=cell, bidirectional=bidirectional,
                               layers=layers, units=units, recurrent_input_dropout=recurrent_input_dropout,
                               recurrent_dropout=recurrent_dropout, regularizer=regularizer, return_sequences=True)
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
    return AttentionPooling1D(attention_units, kernel_regularizer=regularizer, name="attention_pool")(x)


@register_model("attention", renamed=RENAMED, repurposed=REPURPOSED)
def build_attention(
    input_shape,
    num_classes,
    *,
    cell="gru",
    bidirectional=True,
    layers=1,
    units=64,
    recurrent_input_dropout=0.0,
    recurrent_dropout=0.0,
    multi_head=0,
    key_dim=None,
    attention_dropout=0.0,
    attention_units=64,
    mask_zero_padding=True,
    dense_units=(),
    dropout=0.0,
    l1=0.0,
    l2=0.0,
    name="attention",
) -> keras.Model:
    """`attention_encoder` -> the shared head.

    Args:
        cell, bidirectional, layers, units, recurrent_input_dropout, recurrent_dropout: the
            recurrent encoder, as in `build_rnn`; every layer returns the whole sequence.
        multi_head: number of heads of a `keras.layers.MultiHeadAttention` self-attention block
            (with residual and `LayerNormalization`) after the encoder; 0 for none.
        key_dim: size of each head's queries and keys; default: encoder width // multi_head.
        attention_dropout: dropout on the self-attention weights.
        attention_units: width of the pooling's scoring layer.
        mask_zero_padding: put `keras.layers.Masking(0.0)` first, so all-zero steps are ignored.
        dense_units, dropout: the head's hidden layers and dropout (`kseq.models.head`).
        l1, l2: L1/L2 penalties on every kernel.
    """
    return encoder_classifier(attention_encoder, input_shape, num_classes, dense_units=dense_units,
                              dropout=dropout, l1=l1, l2=l2, name=name, cell=cell,
                              bidirectional=bidirectional, layers=layers, units=units,
                              recurrent_input_dropout=recurrent_input_dropout,
                              recurrent_dropout=recurrent_dropout, multi_head=multi_head, key_dim=key_dim,
                              attention_dropout=attention_dropout, attention_units=attention_units,
                              mask_zero_padding=mask_zero_padding)
