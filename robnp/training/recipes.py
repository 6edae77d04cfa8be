"""The training-recipe registry: a name -> the objective a minibatch is trained on.

A recipe is one file (``robnp/training/_<name>.py``) holding a frozen options
dataclass (defaults written once, each field's rule declared in its ``constraints``;
its cost in ``example_flops`` and ``forward_passes``; ``single_step`` and the other
facts of :class:`RecipeOptions`), a ``workspace`` factory and a ``gradient``
function, plus one :func:`register_recipe` line at the bottom of this module. The
training loop (:func:`robnp.fit`), the FLOP count and the study know nothing else
about it.

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

from .. import _checks
from ..errors import ConfigError
from ..flops import RecipeFlops
from ._registry import (RECIPES, Recipe, RecipeOptions, get_recipe, recipe_names,
                        register_recipe)

__all__ = ["Recipe", "RecipeOptions", "RECIPES", "register_recipe", "get_recipe",
           "recipe_names", "recipe_flops", "paper_forward_passes"]


def _cost_options(recipe: str, steps) -> RecipeOptions:
    """Options of the registered ``recipe`` with ``steps`` attack steps (required by a
    recipe that takes steps, refused by one that does not), for counting its cost."""
    _checks.choice("recipe", recipe, RECIPES, "recipe")
    options = RECIPES[recipe].options
    values = {}
    if "steps" in options.field_names():
        values["steps"] = _checks.integer("steps", steps, 1)
    elif steps is not None:
        raise ConfigError(f"the {recipe} recipe takes no steps, got steps={steps!r}")
    if options.adversarial:
        values["eps"] = 1.0  # no count depends on the radius
    return options(**values)


def recipe_flops(sizes, recipe: str = "standard", steps: int | None = None,
                 **kwargs) -> RecipeFlops:
    """Exact training FLOPs per example of the registered ``recipe`` with ``steps``
    attack steps (for PGD-AT and TRADES) for the MLP ``sizes``; ``kwargs`` as
    :meth:`RecipeOptions.flops` (``batch_size``, ``optimizer``, ``momentum``,
    ``nesterov``, ``weight_decay``). Each recipe counts its own work
    (:meth:`RecipeOptions.example_flops`, in its module)."""
    options = _cost_options(recipe, steps)
    return RECIPES[recipe].flops(options, sizes, **kwargs)


def paper_forward_passes(recipe: str, steps: int | None = None) -> int:
    """Forward passes per example in the scaling-law paper's convention: standard 3,
    PGD-AT ``2K + 3``, TRADES ``2K + 7`` (Appendix B's 27 for K = 10), FGSM-RS and
    N-FGSM 5 (each recipe's :attr:`RecipeOptions.forward_passes`)."""
    return _cost_options(recipe, steps).forward_passes

# -- the registry: one line per recipe ---------------------------------------------------
from . import _fgsm_rs, _n_fgsm, _pgd_at, _standard, _trades  # noqa: E402

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
