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

What the rest of the code needs to know about an attack is asked of its options
(:class:`AttackOptions`): its ball (``norm``), whether it is randomized or black-box,
what one run costs (:meth:`AttackOptions.passes`), and which option sets its work
(``budget``, doubled by the convergence check).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

from .._options import Entry, Options, Registry

__all__ = ["Attack", "AttackOptions", "ATTACKS", "register_attack", "get_attack",
           "attack_names"]


@dataclass(frozen=True)
class AttackOptions(Options):
    """Base of every attack's options: a frozen dataclass whose fields are checked
    against its declared ``constraints`` (see :class:`robnp._options.Options`).

    A subclass says what the rest of the code needs to know about its attack:

    * ``norm``: the ball (a class attribute, or a field where it is an option);
    * ``randomized``: True when the result depends on the generator passed to ``run``;
    * ``black_box``: True when the attack uses only the logits, never a gradient;
    * ``budget``: the name of the option that sets the attack's work (``"steps"``),
      which the convergence check doubles, or None when there is none;
    * :meth:`passes`: what one run at one radius costs, in forward passes.
    """

    norm = "linf"
    #: True when the result depends on the random generator passed to ``run``.
    randomized = False
    #: True for attacks that use only the logits (score-based), never a gradient.
    black_box = False
    #: The option that sets the attack's work (gradient steps, iterations, queries):
    #: the convergence check reruns the attack with twice its value. None: no such
    #: option, nothing to double.
    budget: ClassVar[str | None] = None

    #: Forward-pass equivalents of one gradient step: the forward pass and a backward
    #: pass to the input (about twice a forward's work).
    GRADIENT_PASSES: ClassVar[float] = 3.0

    def passes(self, n_classes: int | None = None) -> float:
        """Forward-pass equivalents of one run of the attack at one radius, per point: a
        gradient step costs :attr:`GRADIENT_PASSES`, a query of the logits 1, the final
        evaluation 1, all times the restarts the options ask for. ``n_classes`` is the
        class count of the model attacked, for attacks whose work grows with it (one
        run per target class, a gradient per class); None: every target the options
        ask for, and AutoAttack's 10 classes where a count is needed. The study orders
        its tasks and estimates the time left with it."""
        raise NotImplementedError(f"{type(self).__name__} does not say what one run of "
                                  f"its attack costs: define passes()")

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
class Attack(Entry):
    """A registered attack."""

    name: str
    run: Callable[..., list]
    options: type
    summary: str

    kind: ClassVar[str] = "attack"


ATTACKS: Registry = Registry("attack", AttackOptions)


def register_attack(name: str, run: Callable[..., list], options: type, summary: str) -> Attack:
    """Add an attack to the registry (see the module docstring for ``run``)."""
    return ATTACKS.add(Attack(name, run, options, summary))


def attack_names() -> list[str]:
    return ATTACKS.names()


def get_attack(name) -> Attack:
    """The registered attack ``name``; a clear error lists the known ones."""
    return ATTACKS.lookup(name)
