"""kseq: imbalanced sequence classification with Keras 3 on TensorFlow."""

from kseq.data import SequenceSet
from kseq.errors import InputError
from kseq.models import build_model, model_names, register_model

__version__ = "0.1.0"
