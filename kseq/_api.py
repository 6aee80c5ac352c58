"""The public API that `import kseq` re-exports; importing it registers every kseq object with Keras."""

from kseq import callbacks, data, losses, metrics, models
from kseq.callbacks import ClassificationReport, ConfusionMatrixLogger, WarmupCosineDecay
from kseq.config import load_config
from kseq.data import SequenceSet
from kseq.data.pipeline import make_eval_dataset, make_train_dataset
from kseq.utils.errors import InputError
from kseq.estimator import SequenceClassifier
from kseq.reporting.evaluation import report
from kseq.serving.export import export_serving
from kseq.losses import (FocalLoss, LogitAdjustedCrossentropy, SmoothedCrossentropy, balanced_class_weights,
                         class_priors, get_loss)
from kseq.metrics import BalancedAccuracy, ClassRecall, MacroF1
from kseq.models import build_model, model_names, register_model
from kseq.serving.runtime import ServingFunction, configure_threads
from kseq.reporting.saliency import explain
from kseq.training.trainer import Run, train

__all__ = [
    "BalancedAccuracy", "ClassRecall", "ClassificationReport", "ConfusionMatrixLogger", "FocalLoss", "InputError",
    "LogitAdjustedCrossentropy", "MacroF1", "Run", "SequenceClassifier", "SequenceSet", "ServingFunction",
    "SmoothedCrossentropy", "WarmupCosineDecay", "balanced_class_weights", "build_model", "callbacks",
    "class_priors", "configure_threads", "data", "explain", "export_serving", "get_loss", "load_config", "losses",
    "make_eval_dataset", "make_train_dataset", "metrics", "model_names", "models", "register_model", "report",
    "train",
]
