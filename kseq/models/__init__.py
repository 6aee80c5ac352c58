"""Model builders, each registered by name: `build_model(name, input_shape, num_classes, **hp)`."""

from kseq.models import cnn  # noqa: F401  (registers "cnn")
from kseq.models.registry import build_model, model_names, register_model

__all__ = ["build_model", "model_names", "register_model"]
