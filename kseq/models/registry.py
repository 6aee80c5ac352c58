"""Name -> model builder registry behind `build_model`, which checks argument names.

A builder is `fn(input_shape, num_classes, *, hp1=..., hp2=...) -> keras.Model` whose further
parameters are its hyperparameters; `build_model` rejects any other name, listing the known ones,
so a typo in a config's `[model]` table fails instead of being ignored. Arguments renamed since
an earlier kseq are still accepted, and an argument whose meaning changed keeps its old meaning
unless the new argument is given too, each with a `FutureWarning` that names the old and the new
argument: an old config builds the same model as before.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Callable

import keras

from kseq.utils.errors import InputError

_BUILDERS: dict[str, Callable[..., keras.Model]] = {}
_RENAMED: dict[str, dict[str, str]] = {}
_REPURPOSED: dict[str, dict[str, str]] = {}
_ANY_LENGTH: set[str] = set()


def register_model(name: str, *, renamed: dict[str, str] | None = None,
                   repurposed: dict[str, str] | None = None, any_length: bool = False):
    """Decorator: make a builder buildable by name.

    Args:
        renamed: {old argument: new argument}; the old name still works, with a FutureWarning.
        repurposed: {argument: the argument that took over its old meaning}, for an argument
            whose meaning changed. Given without the new argument, it keeps its old meaning
            for now (it is read as the new one), with a FutureWarning, so an old config gives
            the same model; giving the new argument too opts into the new meaning.
        any_length: the builder takes `input_shape=(None, F)` and its features ignore trailing zero
            padding, so one model serves every length and training may cut each batch to its
            longest member (`accepts_any_length`).
    """

    def decorate(fn):
        _BUILDERS[name] = fn
        _RENAMED[name] = dict(renamed or {})
        _REPURPOSED[name] = dict(repurposed or {})
        if any_length:
            _ANY_LENGTH.add(name)
        return fn

    return decorate


def model_names() -> list[str]:
    return sorted(_BUILDERS)


def accepts_any_length(name: str) -> bool:
    """True when model `name` takes sequences of any length and its output for a series does not
    depend on the zero padding after it (registered with `any_length=True`)."""
    return name in _ANY_LENGTH


def model_arguments(name: str) -> list[str] | None:
    """The hyperparameters `build_model(name, ...)` accepts: the builder's arguments after
    `input_shape` and `num_classes`, or None when it takes `**hp` and so any name."""
    parameters = list(inspect.signature(_BUILDERS[name]).parameters.values())[2:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return [p.name for p in parameters]


def _upgrade(name: str, hp: dict) -> dict:
    """`hp` with renamed arguments under their new names, warning about each old one."""
    hp = dict(hp)
    for argument, new in _REPURPOSED[name].items():
        if argument in hp and new not in hp:
            warnings.warn(
                f"model {name!r}: {argument}={hp[argument]!r} without {new!r} keeps its kseq 0.1 meaning "
                f"and is read as {new}={hp[argument]!r}; give {new!r} too (0 for none) to make {argument!r} "
                f"mean what it means in every model, as a later kseq will always read it",
                FutureWarning, stacklevel=3)
            hp[new] = hp.pop(argument)
    for old, new in _RENAMED[name].items():
        if old not in hp:
            continue
        if new in hp:
            raise InputError(f"model {name!r}: {old!r} is the old name of {new!r}; give only {new!r}")
        warnings.warn(f"model {name!r}: argument {old!r} is deprecated; use {new!r}", FutureWarning,
                      stacklevel=3)
        hp[new] = hp.pop(old)
    return hp


def build_model(name: str, input_shape, num_classes: int, **hp) -> keras.Model:
    """Build the registered model `name`; it outputs logits of shape (batch, num_classes).

    `input_shape` is (steps, features), steps None for any length where the model allows it.
    Unknown model: KeyError; unknown argument or bad value: `kseq.utils.errors.InputError`.
    """
    if name not in _BUILDERS:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(model_names())}")
    hp = _upgrade(name, hp)
    known = model_arguments(name)
    for argument in hp:
        if known is not None and argument not in known:
            raise InputError(f"model {name!r}: unknown argument {argument!r}; known: {', '.join(known)}")
    input_shape = tuple(input_shape)
    if len(input_shape) != 2 or input_shape[1] is None or (
            input_shape[0] is not None and input_shape[0] < 1) or input_shape[1] < 1:
        raise InputError(f"model {name!r}: input_shape must be (steps, features), steps None or >= 1 and "
                         f"features >= 1; got {input_shape}")
    return _BUILDERS[name](input_shape, int(num_classes), **hp)
