"""Fully convolutional network (FCN), the strong time-series baseline of Wang et al. (2017).

Wang, Yan and Oates (2017), "Time series classification from scratch with deep neural networks:
a strong baseline"; reviewed as one of the two best models by Ismail Fawaz et al. (2019), "Deep
learning for time series classification: a review".
"""

from __future__ import annotations

import keras

from kseq.errors import InputError
from kseq.models.layers import conv_bn, kernel_regularizer
from kseq.models.registry import register_model


@register_model("fcn")
def build_fcn(
    input_shape,
    num_classes,
    *,
    filters=(128, 256, 128),
    kernel_sizes=(8, 5, 3),
    dropout=0.0,
    l1=0.0,
    l2=0.0,
    name="fcn",
) -> keras.Model:
    """(Conv1D -> BatchNorm -> ReLU) per block -> global average pooling -> [Dropout] -> logits.

    No pooling between blocks and global average pooling at the end, so the model accepts any
    sequence length. Zero padding is treated as data, as in the paper's equal-length datasets.

    Args:
        filters, kernel_sizes: one entry per convolution block (the paper: 128/256/128, 8/5/3).
        dropout: dropout on the pooled features (0 in the paper).
        l1, l2: L1/L2 penalties on every kernel.
    """
    if len(filters) != len(kernel_sizes):
        raise InputError(f"filters {filters} and kernel_sizes {kernel_sizes} differ in length")
    regularizer = kernel_regularizer(l1, l2)
    inputs = keras.Input(shape=input_shape, name="sequence")
    x = inputs
    for i, (block_filters, kernel_size) in enumerate(zip(filters, kernel_sizes), start=1):
        x = conv_bn(x, block_filters, kernel_size, regularizer=regularizer, name=f"block{i}")
    x = keras.layers.GlobalAveragePooling1D(name="average_pool")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    logits = keras.layers.Dense(num_classes, kernel_regularizer=regularizer, name="logits")(x)
    return keras.Model(inputs, logits, name=name)
