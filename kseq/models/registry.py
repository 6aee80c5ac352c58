"""Name -> builder registry behind `build_model`."""

from __future__ import annotations

from typing import Callable

import keras

_BUILDERS: dict[str, Callable[..., keras.Model]] = {}


def register_model(name: str):
    """Decorator: make a builder `fn(input_shape, num_classes, **hp) -> keras.Model` buildable by name."""

    def decorate(fn):
        _BUILDERS[name] = fn
        return fn

    return decorate


def model_names() -> list[str]:
    return sorted(_BUILDERS)


def build_model(name: str, input_shape, num_classes: int, **hp) -> keras.Model:
    """Build the registered model `name`; it outputs logits of shape (batch, num_classes)."""
    if name not in _BUILDERS:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(model_names())}")
    return _BUILDERS[name](tuple(input_shape), int(num_classes), **hp)
