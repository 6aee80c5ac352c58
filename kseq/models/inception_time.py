"""InceptionTime: one network of the ensemble of Ismail Fawaz et al. (2020).

Ismail Fawaz et al. (2020), "InceptionTime: finding AlexNet for time series classification".
The paper averages five such networks trained from different initialisations; `kseq.ensemble`
does that over saved runs, so this builds one.
"""

from __future__ import annotations

import keras

from kseq.models.arguments import non_negative_int, positive_int, positive_ints
from kseq.models.head import encoder_classifier
from kseq.models.layers import RealSteps, batch_normalization, mask_padding
from kseq.models.registry import register_model


def inception_module(x, steps, *, filters, bottleneck_size, kernel_sizes, regularizer, name):
    """Bottleneck -> a convolution per kernel size, plus max pool -> 1x1 conv; concat, BN, ReLU.

    The bottleneck (a linear 1x1 convolution to `bottleneck_size` channels) is skipped when the
    input has a single channel, as in the reference code. The output has the input's length and
    `filters * (len(kernel_sizes) + 1)` channels. `x` must be zero past the model input's real
    `steps` (`kseq.models.layers.RealSteps`); the max pool sees `-inf` there, so that, as at the end of an
    unpadded series, a window past the end takes the maximum of its real steps alone; batch norm
    takes its statistics over real steps, and the output is zero on the padding again.
    """
    branch_input = x
    if bottleneck_size and x.shape[-1] > 1:
        branch_input = keras.layers.Conv1D(bottleneck_size, 1, padding="same", use_bias=False,
                                           kernel_regularizer=regularizer,
                                           name=f"{name}_bottleneck")(x)
    branches = [
        keras.layers.Conv1D(filters, kernel_size, padding="same", use_bias=False,
                            kernel_regularizer=regularizer,
                            name=f"{name}_conv{kernel_size}")(branch_input)
        for kernel_size in kernel_sizes
    ]
    pooled = mask_padding(x, steps, fill_value=float("-inf"), masked=False, name=f"{name}_maxpool_fill")
    pooled = keras.layers.MaxPooling1D(3, strides=1, padding="same", name=f"{name}_maxpool")(pooled)
    pooled = mask_padding(pooled, steps, masked=False, name=f"{name}_maxpool_mask")
    branches.append(keras.layers.Conv1D(filters, 1, padding="same", use_bias=False,
                                        kernel_regularizer=regularizer,
                                        name=f"{name}_maxpool_conv")(pooled))
    x = keras.layers.Concatenate(name=f"{name}_concat")(branches)
    x = batch_normalization(f"{name}_bn")(mask_padding(x, steps, name=f"{name}_concat_mask"))
    x = keras.layers.Activation("relu", name=f"{name}_relu")(x)
    return mask_padding(x, steps, masked=False, name=f"{name}_mask")


def inception_time_encoder(inputs, *, filters=32, bottleneck_size=32, kernel_sizes=(39, 19, 9), depth=6,
                           residual_every=3, regularizer=None):
    """`depth` inception modules, a residual shortcut every `residual_every` -> global average pooling.

    (B, T, F) -> (B, 4 * filters) for any T. A shortcut (1x1 convolution + batch norm, as in the
    reference code) joins the input of every run of `residual_every` modules to its output,
    followed by ReLU. Trailing zero padding is not data: every module sees zeros past a series'
    end and the average pools its real steps only (`kseq.models.layers.mask_padding`), so a
    series' features do not depend on how much padding follows it.
    """
    filters = positive_int("filters", filters)
    bottleneck_size = non_negative_int("bottleneck_size", bottleneck_size)
    kernel_sizes = positive_ints("kernel_sizes", kernel_sizes)
    depth = positive_int("depth", depth)
    residual_every = non_negative_int("residual_every", residual_every)
    x = shortcut = inputs
    steps = RealSteps(name="real_steps")(inputs)
    for d in range(1, depth + 1):
        x = inception_module(x, steps, filters=filters, bottleneck_size=bottleneck_size,
                             kernel_sizes=kernel_sizes, regularizer=regularizer,
                             name=f"inception{d}")
        if residual_every and d % residual_every == 0:
            shortcut = keras.layers.Conv1D(x.shape[-1], 1, padding="same", use_bias=False,
                                           kernel_regularizer=regularizer,
                                           name=f"residual{d}_conv")(shortcut)
            shortcut = mask_padding(shortcut, steps, name=f"residual{d}_conv_mask")  # for batch norm
            shortcut = batch_normalization(f"residual{d}_bn")(shortcut)
            x = keras.layers.Add(name=f"residual{d}_add")([x, shortcut])
            x = keras.layers.Activation("relu", name=f"residual{d}_relu")(x)
            x = shortcut = mask_padding(x, steps, masked=False, name=f"residual{d}_mask")
    x = mask_padding(x, steps, name="padding_mask")  # the average reads the mask
    return keras.layers.GlobalAveragePooling1D(name="average_pool")(x)


@register_model("inception_time", any_length=True)
def build_inception_time(
    input_shape,
    num_classes,
    *,
    filters=32,
    bottleneck_size=32,
    kernel_sizes=(39, 19, 9),
    depth=6,
    residual_every=3,
    dense_units=(),
    dropout=0.0,
    l1=0.0,
    l2=0.0,
    length_feature=False,
    length_scale=False,
    name="inception_time",
) -> keras.Model:
    """`inception_time_encoder` -> the shared head (the paper: no hidden layer, no dropout).

    Args:
        filters: filters of each branch (a module outputs 4x as many channels).
        bottleneck_size: channels of the 1x1 bottleneck before the wide convolutions (0: none).
        kernel_sizes: the parallel convolutions: the paper's 40/20/10 made odd, as PyTorch ports
            such as tsai's do, so "same" padding is symmetric (the original Keras code uses
            the even sizes).
        depth: number of inception modules.
        residual_every: modules per residual block (0: no shortcuts).
        dense_units, dropout: the head's hidden layers and dropout (`kseq.models.head`).
        l1, l2: L1/L2 penalties on every kernel.
        length_feature: append each series' standardised log real length to the features
            (`kseq.models.preprocessing.LengthFeature`), for data of unequal lengths.
        length_scale: scale the pooled features by each series' length over the longest training
            series' (`kseq.models.preprocessing.LengthFraction`), where lengths tell the class.
    """
    return encoder_classifier(inception_time_encoder, input_shape, num_classes, dense_units=dense_units,
                              dropout=dropout, l1=l1, l2=l2, name=name, length_feature=length_feature,
                              length_scale=length_scale, filters=filters,
                              bottleneck_size=bottleneck_size, kernel_sizes=kernel_sizes, depth=depth,
                              residual_every=residual_every)
