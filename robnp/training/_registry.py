"""The recipe registry's machinery: options base class, registry entries, look-up.

The contract a recipe keeps with the training loop, and the registry lines, are in
:mod:`robnp.training.recipes`; recipe modules import their base class from here, so
that importing one of them alone needs nothing that imports it back.
"""


from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .. import _checks
from ..errors import ConfigError

__all__ = ["Recipe", "RecipeOptions", "RECIPES", "register_recipe", "get_recipe",
           "recipe_names"]


@dataclass(frozen=True)
class RecipeOptions:
    """Base of every recipe's options. Subclasses are frozen dataclasses whose
    ``__post_init__`` checks each value."""

    #: True when ``gradient`` needs the loop's U(-1, 1) draws (a random start).
    needs_noise = False
    #: True when the recipe trains on adversarial points (it then has an ``eps``).
    adversarial = False
    #: Rows of model workspace the recipe's workspace holds per row of its chunk (2
    #: where clean and adversarial rows go through the network together); read by
    #: the memory estimate (:func:`robnp.limits.training_memory`).
    model_rows_per_row = 1

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def to_dict(self) -> dict:
        """Every option by name, as JSON-ready values."""
        return {name: getattr(self, name) for name in self.field_names()}


@dataclass(frozen=True)
class Recipe:
    """A registered recipe (see the module docstring for the two functions)."""

    name: str
    gradient: Callable[..., float]
    workspace: Callable[..., Any]
    options: type
    summary: str

    def make_options(self, values: Mapping[str, Any] | None = None,
                     source: str | None = None) -> RecipeOptions:
        """Options from a mapping of option names (dashes or underscores); an unknown
        name is one error listing the known ones."""
        return _checks.options_from(self.options, values, kind="recipe", name=self.name,
                                    source=source)

    def flops(self, options: RecipeOptions, sizes, **kwargs):
        """Training FLOPs per example of this recipe with ``options`` for the MLP
        ``sizes`` (:func:`robnp.flops.recipe_flops`; ``kwargs`` as there:
        ``batch_size``, ``optimizer``, ...)."""
        from ..flops import recipe_flops

        return recipe_flops(sizes, self.name, getattr(options, "steps", None), **kwargs)


RECIPES: dict[str, Recipe] = {}


def register_recipe(name: str, gradient: Callable[..., float], workspace: Callable[..., Any],
                    options: type, summary: str) -> Recipe:
    """Add a recipe to the registry (see the module docstring for the contract)."""
    if not (isinstance(options, type) and issubclass(options, RecipeOptions)):
        raise ConfigError(f"options of recipe {name!r} must be a RecipeOptions dataclass")
    RECIPES[name] = Recipe(name, gradient, workspace, options, summary)
    return RECIPES[name]


def recipe_names() -> list[str]:
    return list(RECIPES)


def get_recipe(name) -> Recipe:
    """The registered recipe ``name``; a clear error lists the known ones."""
    try:
        return RECIPES[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown recipe {name!r}; known recipes: "
                          f"{', '.join(RECIPES)}") from None
