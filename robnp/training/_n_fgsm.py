"""N-FGSM (de Jorge et al., 2022, "Make some noise: reliable and efficient single-step
adversarial training").

Each row is trained on the cross-entropy at ``x + eta + step_multiple eps sign(g)``,
``eta`` uniform in ``[-noise_multiple eps, noise_multiple eps]`` (here
``noise_multiple eps u`` with ``u`` the loop's U(-1, 1) draws) and ``g`` the gradient
of the cross-entropy at ``x + eta``. Unlike FGSM-RS nothing is projected: the point may
lie up to ``(noise_multiple + step_multiple) eps`` from ``x`` in every coordinate; the
paper's defaults are ``k = 2`` and a step of ``eps``. The chunk is one call of
:func:`robnp.kernels.n_fgsm_gradient`. No box constraint is applied.

Cost per example: 5 forward passes.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import flops, kernels
from .._checks import Real
from ._adversarial import SMOOTHING, attack_workspace, eps_constraint
from ._registry import RecipeOptions

__all__ = ["NFGSMOptions", "gradient", "workspace"]


@dataclass(frozen=True)
class NFGSMOptions(RecipeOptions):
    """Options of N-FGSM.

    Attributes
    ----------
    eps : float > 0, required
        The radius the noise and the step are measured in.
    noise_multiple : float >= 0
        ``k``: the noise is uniform in ``[-k eps, k eps]`` per coordinate.
    step_multiple : float > 0
        The signed step as a multiple of ``eps``.
    smoothing : float in [0, 1)
        Label smoothing of the training cross-entropy.
    """

    eps: float | None = None
    noise_multiple: float = 2.0
    step_multiple: float = 1.0
    smoothing: float = 0.0

    needs_noise = True
    adversarial = True
    single_step = True

    constraints = {"eps": eps_constraint("n-fgsm"),
                   "noise_multiple": Real(0),
                   "step_multiple": Real(0, low_open=True),
                   "smoothing": SMOOTHING}

    @property
    def forward_passes(self) -> int:
        """5: one attack step of two, a training step of three."""
        return 5

    def example_flops(self, sizes) -> int:
        """The noise (an add per feature), the cross-entropy's input gradient there, a
        signed step without projection (3 per feature), a training step at the result
        (:mod:`robnp.flops`)."""
        sizes = flops.check_sizes(sizes)
        n_features = sizes[0]
        return (n_features + flops.forward_flops(sizes)
                + flops.cross_entropy_flops(sizes[-1], value=False)
                + flops.input_backward_flops(sizes) + 3 * n_features
                + flops.training_step_flops(sizes))

    @property
    def noise_radius(self) -> float:
        return self.noise_multiple * self.eps

    @property
    def step_size(self) -> float:
        return self.step_multiple * self.eps



#: Buffers for chunks of at most ``rows`` rows (``X_adv`` holds the last points).
workspace = attack_workspace


def gradient(params, sizes, X, y, noise, options: NFGSMOptions, workspace, grad,
             scale: float) -> float:
    """``scale`` times the summed cross-entropy at the N-FGSM points (returned) and its
    parameter gradient (into ``grad``); see :mod:`robnp.training.recipes`."""
    return float(kernels.n_fgsm_gradient(params, sizes, X, y, noise, options.noise_radius,
                                         options.step_size, options.smoothing, workspace,
                                         grad, float(scale)))
