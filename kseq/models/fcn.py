"""Fully convolutional network (FCN), the strong time-series baseline of Wang et al. (2017).

Wang, Yan and Oates (2017), "Time series classification from scratch with deep neural networks:
a strong baseline"; reviewed as one of the two best models by Ismail Fawaz et al. (2019), "Deep
learning for time series classification: a review".
"""

from __future__ import annotations

import keras

from kseq.utils.errors import InputError
from kseq.models.arguments import positive_ints
from kseq.models.head import encoder_classifier
from kseq.models.layers import RealSteps, conv_bn, mask_padding
from kseq.models.registry import register_model


def fcn_encoder(inputs, *, filters=(128, 256, 128), kernel_sizes=(8, 5, 3), regularizer=None):
    """(Conv1D -> BatchNorm -> ReLU) per block -> global average pooling: (B, T, F) -> (B, filters[-1]).

    No pooling between blocks and global average pooling at the end, so the encoder accepts any
    sequence length. Trailing zero padding is not data: every block sees zeros past a series' end
    and the average pools its real steps only (`kseq.models.layers.conv_bn`), so a series'
    features do not depend on how much padding follows it.
    """
    filters = positive_ints("filters", filters)
    kernel_sizes = positive_ints("kernel_sizes", kernel_sizes)
    if len(filters) != len(kernel_sizes):
        raise InputError(f"filters {list(filters)} and kernel_sizes {list(kernel_sizes)} differ in length")
    x, steps = inputs, RealSteps(name="real_steps")(inputs)
    for i, (block_filters, kernel_size) in enumerate(zip(filters, kernel_sizes), start=1):
        x = conv_bn(x, block_filters, kernel_size, steps=steps, regularizer=regularizer, name=f"block{i}")
    x = mask_padding(x, steps, name="padding_mask")  # the average reads the mask
    return keras.layers.GlobalAveragePooling1D(name="average_pool")(x)


@register_model("fcn", any_length=True)
def build_fcn(
    input_shape,
    num_classes,
    *,
    filters=(128, 256, 128),
    kernel_sizes=(8, 5, 3),
    dense_units=(),
    dropout=0.0,
    l1=0.0,
    l2=0.0,
    length_feature=False,
    length_scale=False,
    name="fcn",
) -> keras.Model:
    """`fcn_encoder` -> the shared head (the paper: no hidden layer, no dropout).

    Args:
        filters, kernel_sizes: one entry per convolution block (the paper: 128/256/128, 8/5/3).
        dense_units, dropout: the head's hidden layers and dropout (`kseq.models.head`).
        l1, l2: L1/L2 penalties on every kernel.
        length_feature: append each series' standardised log real length to the features
            (`kseq.models.preprocessing.LengthFeature`), for data of unequal lengths.
        length_scale: scale the pooled features by each series' length over the longest training
            series' (`kseq.models.preprocessing.LengthFraction`), where lengths tell the class.
    """
    return encoder_classifier(fcn_encoder, input_shape, num_classes, dense_units=dense_units, dropout=dropout,
                              l1=l1, l2=l2, name=name, length_feature=length_feature,
                              length_scale=length_scale, filters=filters,
                              kernel_sizes=kernel_sizes)
