"""The standard recipe: cross-entropy on the clean minibatch, optionally against
label-smoothed targets (Szegedy et al., 2016).

The loss of a row labelled ``y`` among ``K`` classes is
``-sum_j q_j log softmax(z)_j`` with ``q = (1 - s) onehot(y) + s / K``; ``s = 0`` is
the plain cross-entropy the study trains on. The arithmetic is the kernels'
(:func:`robnp.kernels.ce_training_step`, which calls the cross-entropy and the
smoothed cross-entropy kernels and the weight-gradient backward pass).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import kernels
from .._checks import Coerced
from ..losses import check_smoothing
from ._registry import RecipeOptions

__all__ = ["StandardOptions", "workspace", "gradient"]


@dataclass(frozen=True)
class StandardOptions(RecipeOptions):
    """Options of the standard recipe.

    Attributes
    ----------
    smoothing : float in [0, 1)
        Label smoothing ``s``; 0 trains on the plain cross-entropy.
    """

    smoothing: float = 0.0

    constraints = {"smoothing": Coerced(check_smoothing)}
    # Cost: one training step per example, the base class's ``example_flops`` and
    # ``forward_passes`` (3).


def workspace(model, rows: int):
    """The model's own kernel workspace for ``rows`` rows (:meth:`robnp.MLP.workspace`)."""
    return model.workspace(rows)


def gradient(params, sizes, X, y, noise, options: StandardOptions, workspace, grad,
             scale) -> float:
    """``grad = scale * sum of the rows' loss gradients``; returns ``scale`` times the
    sum of the rows' losses (the recipe contract of :mod:`robnp.training.recipes`).
    ``noise`` is unused."""
    return kernels.ce_training_step(params, sizes, X, y, options.smoothing, grad,
                                           workspace.acts, workspace.dZ, workspace.d0,
                                           workspace.d1, scale)
