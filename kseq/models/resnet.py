"""Residual network for time series, the deepest baseline of Wang et al. (2017).

Wang, Yan and Oates (2017), "Time series classification from scratch with deep neural networks:
a strong baseline"; the best model of the review by Ismail Fawaz et al. (2019), "Deep learning
for time series classification: a review", whose reference code (dl-4-tsc) this follows.
"""

from __future__ import annotations

import keras

from kseq.models.layers import batch_normalization, conv_bn, kernel_regularizer
from kseq.models.registry import register_model


@register_model("resnet")
def build_resnet(
    input_shape,
    num_classes,
    *,
    filters=(64, 128, 128),
    kernel_sizes=(8, 5, 3),
    dropout=0.0,
    l1=0.0,
    l2=0.0,
    name="resnet",
) -> keras.Model:
    """Residual blocks -> global average pooling -> [Dropout] -> logits.

    Each block is one `conv_bn` per kernel size, the last without ReLU, added to a shortcut and
    then passed through ReLU. The shortcut is a 1x1 convolution + batch norm where the block
    changes the channel count, and batch norm alone where it does not, as in the reference code.
    Zero padding is treated as data.

    Args:
        filters: channels of each residual block (the paper: 64, 128, 128).
        kernel_sizes: the convolutions inside every block (the paper: 8, 5, 3).
        dropout: dropout on the pooled features (0 in the paper).
        l1, l2: L1/L2 penalties on every kernel.
    """
    regularizer = kernel_regularizer(l1, l2)
    inputs = keras.Input(shape=input_shape, name="sequence")
    x = inputs
    for b, block_filters in enumerate(filters, start=1):
        shortcut = x
        for c, kernel_size in enumerate(kernel_sizes, start=1):
            last = c == len(kernel_sizes)
            x = conv_bn(x, block_filters, kernel_size, regularizer=regularizer,
                        activation=None if last else "relu", name=f"block{b}_{c}")
        if shortcut.shape[-1] != block_filters:
            shortcut = keras.layers.Conv1D(block_filters, 1, padding="same", use_bias=False,
                                           kernel_regularizer=regularizer,
                                           name=f"block{b}_shortcut_conv")(shortcut)
        shortcut = batch_normalization(f"block{b}_shortcut_bn")(shortcut)
        x = keras.layers.Add(name=f"block{b}_add")([x, shortcut])
        x = keras.layers.Activation("relu", name=f"block{b}_relu")(x)
    x = keras.layers.GlobalAveragePooling1D(name="average_pool")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    logits = keras.layers.Dense(num_classes, kernel_regularizer=regularizer, name="logits")(x)
    return keras.Model(inputs, logits, name=name)
