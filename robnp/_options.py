"""One frozen-options base and one registry class for everything robnp looks up by
name: attacks (:mod:`robnp.attacks`), training recipes (:mod:`robnp.training.recipes`)
and whatever registry comes next.

An options class is a frozen dataclass deriving from :class:`Options`: its fields are
the options with their defaults (written once, there), its class-level
``constraints`` say what each field must be (:mod:`robnp._checks`), and the facts the
rest of the code needs about the item (its cost, its budget, ...) are attributes or
methods of the class, asked of it rather than kept in a list elsewhere.

A :class:`Registry` is a dict from name to entry (an :class:`Entry` dataclass, such as
:class:`robnp.attacks.Attack`) with the checks and look-ups every registry repeats.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from . import _checks
from .errors import ConfigError

__all__ = ["Options", "Entry", "Registry"]


@dataclass(frozen=True)
class Options:
    """Base of every options dataclass.

    Subclasses declare ``constraints``, a mapping from field name to a constraint of
    :mod:`robnp._checks` (``{"steps": Integer(1)}``), merged along the class's bases;
    construction checks every field against it in field order and stores the coerced
    value. A rule across fields goes in the subclass's ``__post_init__``, after
    ``super().__post_init__()``.
    """

    constraints: ClassVar[Mapping[str, Any]] = {}

    def __post_init__(self):
        _checks.validate(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def to_dict(self) -> dict:
        """Every option by name, in field order."""
        return {name: getattr(self, name) for name in self.field_names()}


class Entry:
    """What every registry entry shares: a ``name``, an ``options`` class and the
    ``kind`` of thing it is (``"attack"``, ``"recipe"``), set by the entry class."""

    kind: ClassVar[str] = "entry"
    name: str
    options: type

    def make_options(self, values: Mapping[str, Any] | None = None,
                     source: str | None = None) -> Options:
        """Options from a mapping of option names (dashes or underscores); an unknown
        name is one error listing the known ones."""
        return _checks.options_from(self.options, values, kind=self.kind, name=self.name,
                                    source=source)


class Registry(dict):
    """Registered entries by name, in registration order.

    Parameters
    ----------
    kind : str
        What the entries are, in messages (``"attack"``).
    base : type
        The options base every entry's ``options`` must derive from.
    """

    def __init__(self, kind: str, base: type):
        super().__init__()
        self.kind = kind
        self.base = base

    def add(self, entry: Entry) -> Entry:
        """Register ``entry`` under its name (replacing one of the same name)."""
        if not (isinstance(entry.options, type) and issubclass(entry.options, self.base)):
            base = self.base.__name__
            article = "an" if base[0] in "AEIOU" else "a"
            raise ConfigError(f"options of {self.kind} {entry.name!r} must be {article} "
                              f"{base} dataclass")
        self[entry.name] = entry
        return entry

    def copy(self) -> "Registry":
        """A registry of the same kind holding the same entries."""
        out = type(self)(self.kind, self.base)
        out.update(self)
        return out

    def names(self) -> list[str]:
        return list(self)

    def lookup(self, name) -> Entry:
        """The entry ``name``; a ConfigError lists the known ones."""
        try:
            return self[name]
        except (KeyError, TypeError):
            raise ConfigError(f"unknown {self.kind} {name!r}; known {self.kind}s: "
                              f"{', '.join(self)}") from None
