"""kseq: imbalanced sequence classification with Keras 3 on TensorFlow.

`import kseq` registers every kseq layer, loss, metric and schedule with Keras, so `.keras`
files that use them load with `keras.saving.load_model` and no `custom_objects`.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter off the terminal

from kseq import callbacks, data, losses, metrics, models  # noqa: E402
from kseq.callbacks import ClassificationReport, ConfusionMatrixLogger, WarmupCosineDecay  # noqa: E402
from kseq.config import load_config  # noqa: E402
from kseq.data import SequenceSet  # noqa: E402
from kseq.data.pipeline import make_eval_dataset, make_train_dataset  # noqa: E402
from kseq.errors import InputError  # noqa: E402
from kseq.evaluation import report  # noqa: E402
from kseq.export import export_serving  # noqa: E402
from kseq.losses import FocalLoss, SmoothedCrossentropy, balanced_class_weights, get_loss  # noqa: E402
from kseq.metrics import BalancedAccuracy, ClassRecall, MacroF1  # noqa: E402
from kseq.models import build_model, model_names, register_model  # noqa: E402
from kseq.runtime import ServingFunction, configure_threads  # noqa: E402
from kseq.training import Run, train  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "BalancedAccuracy", "ClassRecall", "ClassificationReport", "ConfusionMatrixLogger", "FocalLoss",
    "InputError", "MacroF1", "Run", "SequenceSet", "ServingFunction", "SmoothedCrossentropy",
    "WarmupCosineDecay", "balanced_class_weights", "build_model", "callbacks", "configure_threads",
    "data", "export_serving", "get_loss", "load_config",
    "losses", "make_eval_dataset", "make_train_dataset", "metrics", "model_names", "models",
    "register_model", "report", "train",
]
