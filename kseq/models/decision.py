"""`Decision`: the fitted decision rule (temperature and per-class offsets) as a layer of the export.

A run's `model.keras` stays the raw network (logits out). Its serving export (`kseq.serving.export`)
appends this layer, so TensorFlow Serving, `tf.saved_model.load` and LiteRT all answer with the
decision fitted on the validation split (`kseq.serving.decisions`), not the argmax of the raw softmax.
"""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="kseq")
class Decision(layers.Layer):
    """Logits (B, C) -> calibrated probabilities softmax(logits / temperature) (B, C).

    `scores(logits)` are the calibrated log-probabilities plus `offsets`, one per class: their
    argmax is the decision. An offset `b_c` on log-probabilities is a weight `exp(b_c)` on
    probabilities, i.e. a per-class threshold; all zeros and `temperature = 1` give the plain
    argmax and the model's own probabilities.
    """

    def __init__(self, temperature: float = 1.0, offsets=None, **kwargs):
        super().__init__(**kwargs)
        if not temperature > 0:
            raise ValueError(f"temperature must be positive; got {temperature}")
        self.temperature = float(temperature)
        self.offsets = None if offsets is None else [float(b) for b in offsets]

    def call(self, logits):
        return ops.softmax(logits / self.temperature, axis=-1)

    def scores(self, logits):
        """Calibrated log-probabilities plus the offsets: the decision is their argmax."""
        log_p = ops.log_softmax(logits / self.temperature, axis=-1)
        if self.offsets is None:
            return log_p
        return log_p + ops.convert_to_tensor(self.offsets, dtype=log_p.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature, "offsets": self.offsets}
