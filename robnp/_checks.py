"""One validation vocabulary for every layer: integers, reals, ranges, choices,
sequences.

Each checker takes the parameter's name and the value received, returns the value
coerced to a plain Python type, and raises :class:`~robnp.errors.ConfigError` with one
line naming the parameter, what is allowed and what was received. The rules are the
same everywhere:

* an *integer* is a Python or NumPy integer, never a bool (``True`` as a width is a
  bug, not a value);
* a *real* is a Python or NumPy integer or float, or a 0-d array of one; never a bool,
  string or complex number; NaN is never a real; infinity only where asked for;
* a *range* is written as it is checked: ``[0, 1)`` means ``0 <= value < 1``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from .errors import ConfigError

__all__ = ["is_integer", "is_real", "integer", "real", "choice", "flag", "sequence",
           "describe_range"]


def is_integer(value) -> bool:
    """A Python or NumPy integer, not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_real(value) -> bool:
    """A Python or NumPy int or float (or a 0-d array of one), not a bool, string or
    complex number, and not NaN."""
    if isinstance(value, (bool, np.bool_, str, bytes)):
        return False
    if isinstance(value, np.ndarray):
        if value.ndim != 0 or value.dtype.kind not in "iuf":
            return False
        value = value.item()
    if not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    return not math.isnan(float(value))


def describe_range(low=None, high=None, low_open=False, high_open=False) -> str:
    """``">= 0"``, ``"> 0"``, ``"in [0, 1)"``, ... as the checks phrase a range."""
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high}"
    return ""


def _in_range(value, low, high, low_open, high_open) -> bool:
    if low is not None and (value <= low if low_open else value < low):
        return False
    if high is not None and (value >= high if high_open else value > high):
        return False
    return True


def integer(name: str, value, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an ``int``; a ConfigError unless it is an integer in
    ``[low, high]``."""
    if not is_integer(value) or not _in_range(value, low, high, False, False):
        bounds = describe_range(low, high)
        raise ConfigError(f"{name} must be an integer{' ' + bounds if bounds else ''}, "
                          f"got {value!r}")
    return int(value)


def real(name: str, value, low: float | None = None, high: float | None = None, *,
         low_open: bool = False, high_open: bool = False, finite: bool = True) -> float:
    """``value`` as a ``float``; a ConfigError unless it is a real number in the range
    (``low``/``high`` excluded when ``low_open``/``high_open``), finite unless
    ``finite=False``."""
    bounds = describe_range(low, high, low_open, high_open)
    what = "a finite number" if finite else "a number"
    message = f"{name} must be {what}{' ' + bounds if bounds else ''}, got {value!r}"
    if not is_real(value):
        raise ConfigError(message)
    number = float(value.item() if isinstance(value, np.ndarray) else value)
    if (finite and not math.isfinite(number)) or not _in_range(number, low, high,
                                                               low_open, high_open):
        raise ConfigError(message)
    return number


def choice(name: str, value, choices: Iterable[str], what: str | None = None) -> str:
    """``value`` if it is one of ``choices``; otherwise a ConfigError listing them."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        label = what or name
        raise ConfigError(f"unknown {label} {value!r}; known: {', '.join(choices)}")
    return value


def flag(name: str, value) -> bool:
    """``value`` as a ``bool``; a ConfigError unless it is one."""
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def sequence(name: str, values, item: Callable[[str, object], object], *,
             what: str | None = None, allow_empty: bool = False, unique: bool = True) -> tuple:
    """``values`` as a tuple, each element passed through ``item(name, element)``
    (one of the checkers above, or one built from them). With ``what`` (say
    ``"integers >= 1"``) a bad element is reported as ``name must hold what``.

    A single string is not a sequence of strings; an empty sequence and repeated
    values are refused unless allowed.
    """
    if (isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray))
            and not hasattr(values, "__iter__")):
        raise ConfigError(f"{name} must be a list, got {values!r}")
    if isinstance(values, np.ndarray) and values.ndim != 1:
        raise ConfigError(f"{name} must be a flat list, got an array of shape {values.shape}")
    checked = []
    for value in values:
        try:
            checked.append(item(name, value))
        except ConfigError:
            if what is None:
                raise
            raise ConfigError(f"{name} must hold {what}, got {value!r}") from None
    checked = tuple(checked)
    if not checked and not allow_empty:
        raise ConfigError(f"{name} must not be empty")
    if unique:
        repeated = sorted({repr(v) for v in checked if checked.count(v) > 1})
        if repeated:
            raise ConfigError(f"{name} has duplicate values: {', '.join(repeated)}")
    return checked


def options_from(options_type, values, *, kind: str, name: str, source: str | None = None):
    """An options dataclass of ``options_type`` from a mapping of option names (dashes
    or underscores; lists become tuples); an unknown name is one ConfigError naming
    the ``kind`` (attack, recipe) ``name`` and listing the known options."""
    known = [f.name for f in dataclasses.fields(options_type)]
    cleaned = {}
    for key, value in (values or {}).items():
        option = str(key).replace("-", "_")
        if option not in known:
            where = f"{source}: " if source else ""
            raise ConfigError(f"{where}unknown option {key!r} for {kind} {name!r}; "
                              f"known options: {', '.join(known) or 'none'}")
        cleaned[option] = tuple(value) if isinstance(value, list) else value
    return options_type(**cleaned)

