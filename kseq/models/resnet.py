"""Residual network for time series, the deepest baseline of Wang et al. (2017).

Wang, Yan and Oates (2017), "Time series classification from scratch with deep neural networks:
a strong baseline"; the best model of the review by Ismail Fawaz et al. (2019), "Deep learning
for time series classification: a review", whose reference code (dl-4-tsc) this follows.
"""

from __future__ import annotations

import keras

from kseq.models.arguments import positive_ints
from kseq.models.head import encoder_classifier
from kseq.models.layers import RealSteps, batch_normalization, conv_bn, mask_padding
from kseq.models.registry import register_model


def resnet_encoder(inputs, *, filters=(64, 128, 128), kernel_sizes=(8, 5, 3), regularizer=None):
    """Residual blocks -> global average pooling: (B, T, F) -> (B, filters[-1]), any T.

    Each block is one `conv_bn` per kernel size, the last without ReLU, added to a shortcut and
    then passed through ReLU. The shortcut is a 1x1 convolution + batch norm where the block
    changes the channel count, and batch norm alone where it does not, as in the reference code.
    Trailing zero padding is not data: every block sees zeros past a series' end and the average
    pools its real steps only (`kseq.models.layers.mask_padding`), so a series' features do not
    depend on how much padding follows it.
    """
    filters = positive_ints("filters", filters)
    kernel_sizes = positive_ints("kernel_sizes", kernel_sizes)
    x, steps = inputs, RealSteps(name="real_steps")(inputs)
    for b, block_filters in enumerate(filters, start=1):
        shortcut = x
        for c, kernel_size in enumerate(kernel_sizes, start=1):
            last = c == len(kernel_sizes)
            x = conv_bn(x, block_filters, kernel_size, steps=steps, regularizer=regularizer,
                        activation=None if last else "relu", name=f"block{b}_{c}")
        if shortcut.shape[-1] != block_filters:
            shortcut = keras.layers.Conv1D(block_filters, 1, padding="same", use_bias=False,
                                           kernel_regularizer=regularizer,
                                           name=f"block{b}_shortcut_conv")(shortcut)
        shortcut = mask_padding(shortcut, steps, name=f"block{b}_shortcut_mask")
        shortcut = batch_normalization(f"block{b}_shortcut_bn")(shortcut)
        x = keras.layers.Add(name=f"block{b}_add")([x, shortcut])
        x = keras.layers.Activation("relu", name=f"block{b}_relu")(x)
        x = mask_padding(x, steps, masked=False, name=f"block{b}_mask")
    x = mask_padding(x, steps, name="padding_mask")  # the average reads the mask
    return keras.layers.GlobalAveragePooling1D(name="average_pool")(x)


@register_model("resnet", any_length=True)
def build_resnet(
    input_shape,
    num_classes,
    *,
    filters=(64, 128, 128),
    kernel_sizes=(8, 5, 3),
    dense_units=(),
    dropout=0.0,
    l1=0.0,
    l2=0.0,
    length_feature=False,
    length_scale=False,
    name="resnet",
) -> keras.Model:
    """`resnet_encoder` -> the shared head (the paper: no hidden layer, no dropout).

    Args:
        filters: channels of each residual block (the paper: 64, 128, 128).
        kernel_sizes: the convolutions inside every block (the paper: 8, 5, 3).
        dense_units, dropout: the head's hidden layers and dropout (`kseq.models.head`).
        l1, l2: L1/L2 penalties on every kernel.
        length_feature: append each series' standardised log real length to the features
            (`kseq.models.preprocessing.LengthFeature`), for data of unequal lengths.
        length_scale: scale the pooled features by each series' length over the longest training
            series' (`kseq.models.preprocessing.LengthFraction`), where lengths tell the class.
    """
    return encoder_classifier(resnet_encoder, input_shape, num_classes, dense_units=dense_units,
                              dropout=dropout, l1=l1, l2=l2, name=name, length_feature=length_feature,
                              length_scale=length_scale, filters=filters,
                              kernel_sizes=kernel_sizes)
