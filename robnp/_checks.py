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

Options classes declare their rules once, next to their fields, as a class-level
mapping ``constraints`` from field name to a constraint object (:class:`Integer`,
:class:`Real`, :class:`Flag`, :class:`Choice`, :class:`Optional`, :class:`Coerced`,
:class:`Satisfies`; the shape of scikit-learn's ``_parameter_constraints``), and
:func:`validate` applies them with the same one-line errors as the checkers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from .errors import ConfigError

__all__ = ["is_integer", "is_real", "integer", "real", "choice", "flag", "sequence",
           "describe_range", "comma_list", "names", "NORMS", "norm", "Integer", "Real",
           "Flag", "Choice", "Optional", "Coerced", "Satisfies", "declared_constraints",
           "validate", "options_from"]


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


def _rule(bounds: str, context: str | None) -> str:
    return "".join(f" {part}" for part in (bounds, context) if part)


def integer(name: str, value, low: int | None = None, high: int | None = None, *,
            context: str | None = None) -> int:
    """``value`` as an ``int``; a ConfigError unless it is an integer in
    ``[low, high]``. ``context`` (``"for dataset 'moons'"``) follows the range in the
    message."""
    if not is_integer(value) or not _in_range(value, low, high, False, False):
        raise ConfigError(f"{name} must be an integer{_rule(describe_range(low, high), context)}"
                          f", got {value!r}")
    return int(value)


def real(name: str, value, low: float | None = None, high: float | None = None, *,
         low_open: bool = False, high_open: bool = False, finite: bool = True,
         context: str | None = None) -> float:
    """``value`` as a ``float``; a ConfigError unless it is a real number in the range
    (``low``/``high`` excluded when ``low_open``/``high_open``), finite unless
    ``finite=False``. ``context`` follows the range in the message."""
    bounds = describe_range(low, high, low_open, high_open)
    what = "a finite number" if finite else "a number"
    message = f"{name} must be {what}{_rule(bounds, context)}, got {value!r}"
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


def comma_list(text, what: str = "names") -> list[str]:
    """The items of a comma-separated list (``"fgsm, pgd"`` -> ``["fgsm", "pgd"]``,
    spaces around items dropped); a ConfigError for an empty value or an empty item.
    ``what`` names the items in the message."""
    parts = [part.strip() for part in str(text).split(",")]
    if not any(parts):
        raise ConfigError(f"expected a comma-separated list of {what}, got an empty value")
    if any(part == "" for part in parts):
        raise ConfigError(f"{text!r} has an empty item; expected a comma-separated list "
                          f"of {what}")
    return parts


def _non_empty_name(name, value) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must hold non-empty names, got {value!r}")
    return value


def names(name: str, values) -> tuple[str, ...]:
    """Registered names (attacks, datasets, analyses) as a tuple of distinct non-empty
    strings, from a comma-separated string (``"fgsm,pgd"``, as a command line or a
    config file writes them) or a sequence of strings. Only the form is checked here;
    each registry says whether it knows a name."""
    if isinstance(values, str):
        try:
            values = comma_list(values, "names")
        except ConfigError as error:
            raise ConfigError(f"{name}: {error}") from None
    return sequence(name, values, _non_empty_name, what="non-empty names")


#: The balls of the threat model: L-infinity and L2.
NORMS = ("linf", "l2")


def norm(name: str, value) -> str:
    """``value`` if it names a ball in :data:`NORMS`; the one check of a norm for the
    attacks, the verifier and the data's ceiling."""
    if not isinstance(value, str) or value not in NORMS:
        raise ConfigError(f"{name} must be one of {', '.join(NORMS)}, got {value!r}")
    return value


# -- constraints declared next to the fields of an options class ---------------------

class _Constraint:
    """A rule for one value: :meth:`check` returns it coerced or raises ConfigError."""

    def check(self, name: str, value):
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in vars(self).items())
        return f"{type(self).__name__}({args})"


class Integer(_Constraint):
    """An integer in ``[low, high]`` (either side open-ended when None), as an ``int``
    (:func:`integer`)."""

    def __init__(self, low: int | None = None, high: int | None = None):
        self.low, self.high = low, high

    def check(self, name, value) -> int:
        return integer(name, value, self.low, self.high)


class Real(_Constraint):
    """A real number in the range, as a ``float`` (:func:`real`)."""

    def __init__(self, low: float | None = None, high: float | None = None, *,
                 low_open: bool = False, high_open: bool = False, finite: bool = True):
        self.low, self.high = low, high
        self.low_open, self.high_open, self.finite = low_open, high_open, finite

    def check(self, name, value) -> float:
        return real(name, value, self.low, self.high, low_open=self.low_open,
                    high_open=self.high_open, finite=self.finite)


class Flag(_Constraint):
    """True or false, as a ``bool`` (:func:`flag`)."""

    def check(self, name, value) -> bool:
        return flag(name, value)


class Choice(_Constraint):
    """One of ``choices`` (:func:`choice`)."""

    def __init__(self, choices: Iterable[str], what: str | None = None):
        self.choices, self.what = tuple(choices), what

    def check(self, name, value) -> str:
        return choice(name, value, self.choices, self.what)


class Optional(_Constraint):
    """None, or a value that ``inner`` accepts."""

    def __init__(self, inner: _Constraint):
        self.inner = inner

    def check(self, name, value):
        return None if value is None else self.inner.check(name, value)


class Coerced(_Constraint):
    """The value ``function(value)`` returns: a rule kept beside the quantity it
    belongs to (``check_smoothing``, ``check_threads``), whose own message names it."""

    def __init__(self, function: Callable[[object], object]):
        self.function = function

    def check(self, name, value):
        return self.function(value)


class Satisfies(_Constraint):
    """The value unchanged, once ``function(value)`` has returned without a
    ConfigError (``loss_code``, ``check_bounds``: checks whose result is not the
    value)."""

    def __init__(self, function: Callable[[object], object]):
        self.function = function

    def check(self, name, value):
        self.function(value)
        return value


def declared_constraints(cls) -> dict[str, _Constraint]:
    """The ``constraints`` of ``cls`` and its bases, a subclass's rule replacing its
    base's for the same field."""
    merged: dict[str, _Constraint] = {}
    for klass in reversed(cls.__mro__):
        merged.update(vars(klass).get("constraints", {}))
    return merged


def validate(options) -> None:
    """Check every field of the frozen dataclass ``options`` against its class's
    declared ``constraints``, in field order, and store each coerced value; the first
    bad value is one ConfigError naming the field, what is allowed and the value."""
    rules = declared_constraints(type(options))
    for field in dataclasses.fields(options):
        rule = rules.get(field.name)
        if rule is not None:
            value = rule.check(field.name, getattr(options, field.name))
            object.__setattr__(options, field.name, value)


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

