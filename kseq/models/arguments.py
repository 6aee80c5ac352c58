"""Value checks for model arguments: a bad value fails with an `InputError` that names it.

Keras' own errors for a negative width or a dropout of 1.5 come from deep inside a layer and name
the layer's argument (`rate`, `units`), not the one the user gave; these name the builder's.

>>> rate("dropout", 1.5)
Traceback (most recent call last):
...
kseq.utils.errors.InputError: dropout must be in [0, 1); got 1.5
"""

from __future__ import annotations

from numbers import Integral, Real

from kseq.utils.errors import InputError


def _is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def positive_int(name: str, value) -> int:
    """`value` as an int >= 1."""
    if not _is_int(value) or value < 1:
        raise InputError(f"{name} must be a positive int; got {value!r}")
    return int(value)


def non_negative_int(name: str, value) -> int:
    """`value` as an int >= 0."""
    if not _is_int(value) or value < 0:
        raise InputError(f"{name} must be an int >= 0; got {value!r}")
    return int(value)


def positive_ints(name: str, value, *, allow_empty: bool = False) -> tuple[int, ...]:
    """A list (or tuple) of positive ints, e.g. one width per layer, as a tuple."""
    iterable = hasattr(value, "__iter__") and not isinstance(value, (str, bytes))
    values = tuple(value) if iterable else ()
    if not iterable or not all(_is_int(v) and v >= 1 for v in values) or not (values or allow_empty):
        raise InputError(f"{name} must be a {'' if allow_empty else 'non-empty '}list of positive ints; "
                         f"got {value!r}")
    return tuple(int(v) for v in values)


def rate(name: str, value) -> float:
    """A dropout rate, in [0, 1)."""
    if not isinstance(value, Real) or isinstance(value, bool) or not 0 <= value < 1:
        raise InputError(f"{name} must be in [0, 1); got {value!r}")
    return float(value)


def non_negative(name: str, value) -> float:
    """A penalty weight such as `l1` or `l2`, >= 0."""
    if not isinstance(value, Real) or isinstance(value, bool) or value < 0:
        raise InputError(f"{name} must be a number >= 0; got {value!r}")
    return float(value)


def boolean(name: str, value) -> bool:
    """A true/false switch (TOML `true`/`false`, not 0/1 or a string)."""
    if not isinstance(value, bool):
        raise InputError(f"{name} must be true or false; got {value!r}")
    return value


def one_of(name: str, value, choices) -> str:
    """One of the named `choices`."""
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value
