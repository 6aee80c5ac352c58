"""kseq: imbalanced sequence classification with Keras 3 on TensorFlow."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter off the terminal

from kseq.data import SequenceSet
from kseq.errors import InputError
from kseq.models import build_model, model_names, register_model

__version__ = "0.1.0"

from kseq import callbacks, losses, metrics
from kseq.callbacks import ClassificationReport, ConfusionMatrixLogger, WarmupCosineDecay
from kseq.losses import FocalLoss, SmoothedCrossentropy, balanced_class_weights
from kseq.metrics import BalancedAccuracy, ClassRecall, MacroF1
