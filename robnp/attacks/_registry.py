"""The attack registry: a name -> the function that runs the attack and the frozen
dataclass of its options (defaults written once, there).

An attack's ``run(model, X, y, radii, options, rng)`` receives inputs already checked
(``X`` C-contiguous in the model's dtype, ``y`` int64 labels, ``radii`` a tuple of
floats >= 0, ``rng`` a :class:`numpy.random.Generator`) and returns one array of
adversarial points per radius, each of ``X``'s shape and dtype and inside that
radius's ball. Running every radius in one call lets an attack share work across
radii. An attack that starts from the clean points may also take a keyword
``clean``: :func:`robnp.evaluate` then hands it the
:class:`~robnp.attacks._clean.CleanPoints` of ``X``, whose gradient of each loss is
computed once for every attack (FGSM's step, PGD's first step at every radius).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .. import _checks
from ..errors import ConfigError

__all__ = ["Attack", "AttackOptions", "ATTACKS", "register_attack", "get_attack",
           "attack_names"]


@dataclass(frozen=True)
class AttackOptions:
    """Base of every attack's options. Subclasses are frozen dataclasses whose
    ``__post_init__`` checks each value; ``norm`` names the ball."""

    norm = "linf"
    #: True when the result depends on the random generator passed to ``run``.
    randomized = False
    #: True for attacks that use only the logits (score-based), never a gradient.
    black_box = False

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def check_classes(self, n_classes: int) -> None:
        """Raise ConfigError if these options cannot attack a ``n_classes``-class model
        (DLR needs at least 3 classes, targeted DLR 4); checked before any attack runs.
        Options with a ``loss`` are checked by the loss's rule."""
        loss = getattr(self, "loss", None)
        if loss is None:
            return
        from ..losses import check_loss_classes

        targeted = getattr(self, "targeted", False) or getattr(self, "n_target_classes", 0)
        check_loss_classes(f"{loss}_targeted" if targeted else loss, n_classes)

    def to_dict(self) -> dict:
        """Every option by name, as JSON-ready values (tuples become lists)."""
        return {name: list(value) if isinstance(value, tuple) else value
                for name, value in ((f, getattr(self, f)) for f in self.field_names())}


@dataclass(frozen=True)
class Attack:
    """A registered attack."""

    name: str
    run: Callable[..., list]
    options: type
    summary: str

    def make_options(self, values: Mapping[str, Any] | None = None,
                     source: str | None = None) -> AttackOptions:
        """Options from a mapping of option names (dashes or underscores); an unknown
        name is one error listing the known ones."""
        return _checks.options_from(self.options, values, kind="attack", name=self.name,
                                    source=source)


ATTACKS: dict[str, Attack] = {}


def register_attack(name: str, run: Callable[..., list], options: type, summary: str) -> Attack:
    """Add an attack to the registry (see the module docstring for ``run``)."""
    if not (isinstance(options, type) and issubclass(options, AttackOptions)):
        raise ConfigError(f"options of attack {name!r} must be an AttackOptions dataclass")
    ATTACKS[name] = Attack(name, run, options, summary)
    return ATTACKS[name]


def attack_names() -> list[str]:
    return list(ATTACKS)


def get_attack(name) -> Attack:
    """The registered attack ``name``; a clear error lists the known ones."""
    try:
        return ATTACKS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown attack {name!r}; known attacks: "
                          f"{', '.join(ATTACKS)}") from None
