"""PGD adversarial training (Madry et al., 2018, "Towards deep learning models resistant
to adversarial attacks").

Each row is trained on the cross-entropy at the point PGD finds for it: from the
uniform start ``x + eps u`` (``u`` the loop's U(-1, 1) draws), ``steps`` signed
steps of ``step_fraction * eps`` on the cross-entropy, each followed by the projection
onto the L-infinity ball of radius ``eps``. The attack is the evaluation's own compiled
PGD loop (:func:`robnp.kernels.pgd_linf`); the whole chunk (start, attack, training
step) is one call of :func:`robnp.kernels.pgd_at_gradient`. The point is held fixed in
the training gradient (Danskin's theorem). With ``smoothing > 0`` the training step uses
label-smoothed cross-entropy (Szegedy et al., 2016); the attack still ascends the plain
one, as the evaluation's PGD does. No box constraint is applied to the points.

Cost per example: ``2 steps + 3`` forward passes (a forward and an input backward per
step, a training step of three).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import flops, kernels
from ._adversarial import (ATTACK_STEPS, SMOOTHING, STEP_FRACTION, attack_workspace,
                           eps_constraint)
from ._registry import RecipeOptions

__all__ = ["PGDATOptions", "gradient", "workspace"]


@dataclass(frozen=True)
class PGDATOptions(RecipeOptions):
    """Options of PGD adversarial training.

    Attributes
    ----------
    eps : float > 0, required
        The L-infinity radius of the attack.
    steps : int >= 1
        PGD steps (``K``).
    step_fraction : float > 0
        Step size as a fraction of ``eps`` (0.25: eps/4).
    smoothing : float in [0, 1)
        Label smoothing of the training cross-entropy.
    """

    eps: float | None = None
    steps: int = 10
    step_fraction: float = 0.25
    smoothing: float = 0.0

    needs_noise = True
    adversarial = True

    constraints = {"eps": eps_constraint("pgd-at"),
                   "steps": ATTACK_STEPS,
                   "step_fraction": STEP_FRACTION,
                   "smoothing": SMOOTHING}

    @property
    def step_size(self) -> float:
        return self.step_fraction * self.eps

    @property
    def forward_passes(self) -> int:
        """``2 K + 3``: two per attack step, three for the training step."""
        return 2 * self.steps + 3

    def example_flops(self, sizes) -> int:
        """A random start, ``steps`` attack steps on the cross-entropy, a training step
        at the point found (:mod:`robnp.flops`)."""
        sizes = flops.check_sizes(sizes)
        return (flops.random_start_flops(sizes[0]) + self.steps * flops.gradient_step_flops(sizes)
                + flops.training_step_flops(sizes))



#: Buffers for chunks of at most ``rows`` rows (``X_adv`` holds the last points).
workspace = attack_workspace


def gradient(params, sizes, X, y, noise, options: PGDATOptions, workspace, grad,
             scale: float) -> float:
    """``scale`` times the summed cross-entropy at the PGD points of the chunk ``X``
    (returned) and its parameter gradient (into ``grad``); see the recipe contract in
    :mod:`robnp.training.recipes`."""
    return float(kernels.pgd_at_gradient(params, sizes, X, y, noise, options.eps,
                                         options.step_size, options.steps,
                                         options.smoothing, workspace, grad, float(scale)))
