"""FGSM with a random start (Wong, Rice and Kolter, 2020, "Fast is better than free:
revisiting adversarial training").

Each row is trained on the cross-entropy at ``clip(x + eps u + alpha eps sign(g))``:
from the uniform start ``x + eps u`` (``u`` the loop's U(-1, 1) draws), one signed step
of ``alpha * eps`` along the gradient ``g`` of the cross-entropy there, then the
projection back onto the L-infinity ball of radius ``eps`` (the paper's clipping of the
perturbation to ``[-eps, eps]``; alpha 1.25 is its recommended step). That is PGD-AT
with one step of ``alpha * eps``, so it runs the same compiled call,
:func:`robnp.kernels.pgd_at_gradient`, with ``steps = 1``. No box constraint is applied.

Cost per example: 5 forward passes (one attack step of two, a training step of three).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import flops, kernels
from .._checks import Real
from ._adversarial import SMOOTHING, attack_workspace, eps_constraint
from ._registry import RecipeOptions

__all__ = ["FGSMRSOptions", "gradient", "workspace"]


@dataclass(frozen=True)
class FGSMRSOptions(RecipeOptions):
    """Options of FGSM adversarial training with a random start.

    Attributes
    ----------
    eps : float > 0, required
        The L-infinity radius.
    alpha : float > 0
        The step as a multiple of ``eps``.
    smoothing : float in [0, 1)
        Label smoothing of the training cross-entropy.
    """

    eps: float | None = None
    alpha: float = 1.25
    smoothing: float = 0.0

    needs_noise = True
    adversarial = True
    single_step = True

    constraints = {"eps": eps_constraint("fgsm-rs"),
                   "alpha": Real(0, low_open=True),
                   "smoothing": SMOOTHING}

    @property
    def step_size(self) -> float:
        return self.alpha * self.eps

    @property
    def forward_passes(self) -> int:
        """5: one attack step of two, a training step of three."""
        return 5

    def example_flops(self, sizes) -> int:
        """A random start, one attack step on the cross-entropy (projected), a training
        step at the point found (:mod:`robnp.flops`)."""
        sizes = flops.check_sizes(sizes)
        return (flops.random_start_flops(sizes[0]) + flops.gradient_step_flops(sizes)
                + flops.training_step_flops(sizes))



#: Buffers for chunks of at most ``rows`` rows (``X_adv`` holds the last points).
workspace = attack_workspace


def gradient(params, sizes, X, y, noise, options: FGSMRSOptions, workspace, grad,
             scale: float) -> float:
    """``scale`` times the summed cross-entropy at the FGSM-RS points (returned) and its
    parameter gradient (into ``grad``); see :mod:`robnp.training.recipes`."""
    return float(kernels.pgd_at_gradient(params, sizes, X, y, noise, options.eps,
                                         options.step_size, 1, options.smoothing,
                                         workspace, grad, float(scale)))
