"""The training-recipe registry: a name -> the objective a minibatch is trained on.

A recipe is one file (``robnp/training/_<name>.py``) holding a frozen options
dataclass (defaults written once, checked in ``__post_init__``), a ``workspace`` factory
and a ``gradient`` function, plus one :func:`register_recipe` line at the bottom of
this module. The training loop (:func:`robnp.fit`) knows nothing else about it.

The contract the loop relies on:

``workspace(model, rows) -> object``
    Every buffer the recipe needs for a chunk of at most ``rows`` rows (activations,
    deltas, adversarial points, clean distributions). Made once per chunk and reused
    for every minibatch, so no minibatch allocates.
``gradient(params, sizes, X, y, noise, options, workspace, grad, scale) -> float``
    For one chunk of a minibatch (``X`` of shape ``(rows, n_features)``, C-contiguous,
    the model's dtype; ``y`` int64), overwrite ``grad`` (shape ``(n_params,)``) with
    ``scale`` times the sum over the chunk's rows of the gradient of each row's
    objective with respect to the parameters, and return ``scale`` times the sum of
    the rows' objective values. The loop passes ``scale = 1 / batch_rows`` and adds
    the chunks' gradients in a fixed order, so the minibatch mean is the same for any
    number of threads. ``noise`` is ``None`` unless the recipe's options say
    ``needs_noise``; then it is an array of ``X``'s shape and dtype of independent
    U(-1, 1) draws that the loop takes from its own generator for the whole
    minibatch before splitting it (so the draws do not depend on the chunking),
    and the recipe scales it to its start (``eps * noise`` for a uniform start in the
    L-inf ball). All work of one call, every attack step included, is compiled code.
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


# -- the registry: one line per recipe ---------------------------------------------------
from . import _fgsm_rs, _n_fgsm, _pgd_at, _standard, _trades  # noqa: E402  (they import this module)

register_recipe("standard", _standard.gradient, _standard.workspace, _standard.StandardOptions,
                "cross-entropy on the clean minibatch (label smoothing optional)")
register_recipe("pgd-at", _pgd_at.gradient, _pgd_at.workspace, _pgd_at.PGDATOptions,
                "cross-entropy at PGD points from a uniform start (Madry et al., 2018)")
register_recipe("trades", _trades.gradient, _trades.workspace, _trades.TRADESOptions,
                "smoothed clean cross-entropy + beta KL(clean || adversarial) "
                "(Zhang et al., 2019)")
register_recipe("fgsm-rs", _fgsm_rs.gradient, _fgsm_rs.workspace, _fgsm_rs.FGSMRSOptions,
                "cross-entropy after one FGSM step from a uniform start, projected "
                "(Wong et al., 2020)")
register_recipe("n-fgsm", _n_fgsm.gradient, _n_fgsm.workspace, _n_fgsm.NFGSMOptions,
                "cross-entropy after noise of 2 eps and an eps step, unprojected "
                "(de Jorge et al., 2022)")
