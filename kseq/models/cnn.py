"""The seed's best heartbeat net: 2 Conv1D, 1 pooling, 3 dense layers (Kaggle MIT-BIH pipeline)."""

from __future__ import annotations

import keras
from keras import layers

from kseq.models.layers import kernel_regularizer
from kseq.models.registry import register_model


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
    """Conv1D x2 -> MaxPool -> Dense x2 (+dropout) -> Dense logits, L1/L2 on every kernel."""
    reg = kernel_regularizer(l1, l2)
    inputs = keras.Input(shape=input_shape, name="sequence")
    x = inputs
    for i, f in enumerate(filters):
        x = layers.Conv1D(f, kernel_size, padding="same", activation="relu",
                          kernel_regularizer=reg, name=f"conv{i + 1}")(x)
    x = layers.MaxPooling1D(pool_size, name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    for i, units in enumerate(dense_units):
        x = layers.Dense(units, activation="relu", kernel_regularizer=reg, name=f"dense{i + 1}")(x)
        x = layers.Dropout(dropout, name=f"dropout{i + 1}")(x)
    logits = layers.Dense(num_classes, kernel_regularizer=reg, name="logits")(x)
    return keras.Model(inputs, logits, name=name)
