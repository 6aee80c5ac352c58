"""The seed's best heartbeat net: 2 Conv1D, 1 pooling, 3 dense layers (Kaggle MIT-BIH pipeline)."""

from __future__ import annotations

import keras
from keras import layers

from kseq.utils.errors import InputError
from kseq.models.arguments import positive_int, positive_ints
from kseq.models.head import encoder_classifier
from kseq.models.registry import register_model


def cnn_encoder(inputs, *, filters=(32, 64), kernel_size=5, pool_size=2, regularizer=None):
    """(Conv1D + ReLU) per entry of `filters` -> MaxPool -> Flatten: (B, T, F) -> (B, T // pool_size * filters[-1]).

    Flatten keeps where along the beat each feature fired, which suits aligned heartbeats, but
    ties the model to one sequence length.
    """
    if inputs.shape[1] is None:
        raise InputError("cnn needs a fixed sequence length (its Flatten layer sizes the head); "
                         "input_shape[0] is None")
    filters = positive_ints("filters", filters)
    kernel_size = positive_int("kernel_size", kernel_size)
    pool_size = positive_int("pool_size", pool_size)
    x = inputs
    for i, f in enumerate(filters):
        x = layers.Conv1D(f, kernel_size, padding="same", activation="relu",
                          kernel_regularizer=regularizer, name=f"conv{i + 1}")(x)
    x = layers.MaxPooling1D(pool_size, name="pool")(x)
    return layers.Flatten(name="flatten")(x)


@register_model("cnn")
def build_cnn(
    input_shape,
    num_classes,
    *,
    filters=(32, 64),
    kernel_size=5,
    pool_size=2,
    dense_units=(128, 64),
    dropout=0.6,
    l1=0.0,
    l2=1e-4,
    name="cnn",
) -> keras.Model:
    """`cnn_encoder` -> the shared head (by default Dense 128 -> Dense 64, dropout 0.6 after each).

    Args:
        filters, kernel_size, pool_size: the encoder's convolutions ("same" padding) and pooling.
        dense_units, dropout: the head's hidden layers and dropout (`kseq.models.head`).
        l1, l2: L1/L2 penalties on every kernel.
    """
    return encoder_classifier(cnn_encoder, input_shape, num_classes, dense_units=dense_units, dropout=dropout,
                              l1=l1, l2=l2, name=name, filters=filters, kernel_size=kernel_size,
                              pool_size=pool_size)
