"""The recipe registry's machinery: options base class, registry entries, look-up.

The contract a recipe keeps with the training loop, and the registry lines, are in
:mod:`robnp.training.recipes`; recipe modules import their base class from here, so
that importing one of them alone needs nothing that imports it back.
"""


from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from .. import flops as _flops
from .._options import Entry, Options, Registry

__all__ = ["Recipe", "RecipeOptions", "RECIPES", "register_recipe", "get_recipe",
           "recipe_names"]


@dataclass(frozen=True)
class RecipeOptions(Options):
    """Base of every recipe's options: a frozen dataclass whose fields are checked
    against its declared ``constraints`` (see :class:`robnp._options.Options`).

    A subclass says what the training loop, the FLOP count and the study need to know
    about its recipe: the class attributes below, :attr:`forward_passes` and
    :meth:`example_flops` (both default to one plain training step on the rows as
    given, the standard recipe's cost; a recipe that does more overrides them).
    """

    #: True when ``gradient`` needs the loop's U(-1, 1) draws (a random start).
    needs_noise: ClassVar[bool] = False
    #: True when the recipe trains on adversarial points (it then has an ``eps``).
    adversarial: ClassVar[bool] = False
    #: True for single-step adversarial training (FGSM-RS, N-FGSM), which can overfit
    #: catastrophically (Wong et al., 2020): the loop then runs its overfitting check
    #: unless told otherwise.
    single_step: ClassVar[bool] = False
    #: Rows of model workspace the recipe's workspace holds per row of its chunk (2
    #: where clean and adversarial rows go through the network together); read by
    #: the memory estimate (:func:`robnp.limits.training_memory`).
    model_rows_per_row: ClassVar[int] = 1

    @property
    def forward_passes(self) -> int:
        """Forward passes per training example in the scaling-law paper's convention
        (Bartoldson et al., 2024, Appendix B): a training step 3, an attack step 2."""
        return 3

    def example_flops(self, sizes) -> int:
        """Exact FLOPs of training on one example of the MLP ``sizes``, the optimizer's
        update aside (counted with :mod:`robnp.flops`): here one training step (forward,
        cross-entropy, training backward) on the example as given."""
        return _flops.training_step_flops(sizes)

    def flops(self, sizes, *, batch_size: int | None = None, optimizer: str = "sgd",
              momentum: bool = True, nesterov: bool = True,
              weight_decay: bool = True) -> float:
        """Training FLOPs per example: :meth:`example_flops`, plus, with ``batch_size``,
        the optimizer's update (:func:`robnp.flops.optimizer_flops`) shared over the
        batch's examples."""
        total = self.example_flops(sizes)
        if batch_size is not None:
            total = total + _flops.update_flops_per_example(
                sizes, batch_size, optimizer, momentum=momentum, nesterov=nesterov,
                weight_decay=weight_decay)
        return total


@dataclass(frozen=True)
class Recipe(Entry):
    """A registered recipe (see :mod:`robnp.training.recipes` for the two functions)."""

    name: str
    gradient: Callable[..., float]
    workspace: Callable[..., Any]
    options: type
    summary: str

    kind: ClassVar[str] = "recipe"

    def flops(self, options: RecipeOptions, sizes, **kwargs) -> _flops.RecipeFlops:
        """Training FLOPs per example of this recipe with ``options`` for the MLP
        ``sizes`` (:meth:`RecipeOptions.flops`; ``kwargs`` as there: ``batch_size``,
        ``optimizer``, ...), beside the paper's count."""
        weights, biases, _ = _flops.layer_counts(sizes)
        return _flops.RecipeFlops(self.name, getattr(options, "steps", None),
                                  options.flops(sizes, **kwargs), _flops.forward_flops(sizes),
                                  options.forward_passes, weights + biases)


RECIPES: Registry = Registry("recipe", RecipeOptions)


def register_recipe(name: str, gradient: Callable[..., float], workspace: Callable[..., Any],
                    options: type, summary: str) -> Recipe:
    """Add a recipe to the registry (see :mod:`robnp.training.recipes` for the
    contract)."""
    return RECIPES.add(Recipe(name, gradient, workspace, options, summary))


def recipe_names() -> list[str]:
    return RECIPES.names()


def get_recipe(name) -> Recipe:
    """The registered recipe ``name``; a clear error lists the known ones."""
    return RECIPES.lookup(name)
