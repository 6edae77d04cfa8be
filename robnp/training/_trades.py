"""TRADES (Zhang et al., 2019, "Theoretically principled trade-off between robustness
and accuracy"), as the scaling-law paper runs it (Bartoldson et al., 2024, Section 3.1
and Appendices B and D: 10 PGD steps of eps/4, label smoothing 0.1, beta 5).

The objective of a row ``(x, y)`` is

    ``LS-CE(f(x), y) + beta * KL(p_nat || softmax(f(x_adv)))``, ``p_nat = softmax(f(x))``,

both terms averaged over the minibatch (the KL term as PyTorch's ``"batchmean"``: summed
over classes, averaged over rows). ``x_adv`` maximises the KL term in the L-infinity
ball of radius ``eps``: from the uniform start ``x + eps u`` (``u`` the loop's U(-1, 1)
draws), ``steps`` signed steps of ``step_fraction * eps`` on
``KL(p_nat || softmax(f(x')))``, each projected onto the ball, with ``p_nat`` computed
once per minibatch and held fixed. The training gradient holds ``x_adv`` fixed (Danskin)
and flows through both the clean logits (the cross-entropy and the ``p_nat`` of the KL
term) and the adversarial logits. The chunk is one call of
:func:`robnp.kernels.trades_gradient`; the divergence and both its logit gradients are
:func:`robnp.kernels.kl_grad_logits`.

Where this differs from the original TRADES code (read for the formulas only):

* the start: the original starts from ``x + 0.001 N(0, 1)``; here, as in the scaling-law
  paper's PGD (its Eq. 2, "a random initial perturbation in the set S"), from a uniform
  point of the ball;
* the clean distribution: the original evaluates ``softmax(f(x))`` again inside every
  attack step; the network does not change during the attack (and an MLP has no
  batch-norm or dropout whose mode could differ), so the values are identical and it is
  computed once here, one forward pass instead of ``steps``;
* the defaults: beta 5 and a step of eps/4 (the paper) rather than the original's
  beta 6 and step 0.007 for eps 0.031; label smoothing 0.1 on the clean
  cross-entropy (the paper, after Wang et al., 2023), which the original does not use;
* no box: the original clips every iterate to the image range ``[0, 1]``; robnp's
  training data have no such range.

Cost per example: ``2 steps + 7`` forward passes in the paper's count (Appendix B): a
clean forward for ``p_nat``, two per attack step, and a training step on the clean and
adversarial rows together (two forward passes and a backward pass through both). The
kernel does exactly that; as the paper remarks, the training step's clean forward
could reuse the first one, saving one forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import flops, kernels
from .._checks import Real
from ._adversarial import (ATTACK_STEPS, SMOOTHING, STEP_FRACTION, eps_constraint,
                           trades_workspace)
from ._registry import RecipeOptions

__all__ = ["TRADESOptions", "gradient", "workspace"]


@dataclass(frozen=True)
class TRADESOptions(RecipeOptions):
    """Options of TRADES; the defaults are the scaling-law paper's.

    Attributes
    ----------
    eps : float > 0, required
        The L-infinity radius of the attack.
    beta : float >= 0
        Weight of the KL term (0: smoothed cross-entropy on the clean points only,
        though the attack still runs).
    steps : int >= 1
        Attack steps (``K``).
    step_fraction : float > 0
        Step size as a fraction of ``eps`` (0.25: eps/4).
    smoothing : float in [0, 1)
        Label smoothing of the clean cross-entropy.
    """

    eps: float | None = None
    beta: float = 5.0
    steps: int = 10
    step_fraction: float = 0.25
    smoothing: float = 0.1

    needs_noise = True
    adversarial = True
    model_rows_per_row = 2  # clean and adversarial rows stacked for the training step

    constraints = {"eps": eps_constraint("trades"),
                   "beta": Real(0),
                   "steps": ATTACK_STEPS,
                   "step_fraction": STEP_FRACTION,
                   "smoothing": SMOOTHING}

    @property
    def step_size(self) -> float:
        return self.step_fraction * self.eps

    @property
    def forward_passes(self) -> int:
        """``2 K + 7`` (Appendix B's 27 for K = 10): see the module docstring."""
        return 2 * self.steps + 7

    def example_flops(self, sizes) -> int:
        """As the paper counts it: a clean forward for the clean distribution, ``steps``
        attack steps on the KL divergence from a random start, two more forward passes
        (clean and adversarial) for the loss, cross-entropy on the clean logits plus the
        KL term, and a training backward through both (:mod:`robnp.flops`)."""
        sizes = flops.check_sizes(sizes)
        n_features, n_classes = sizes[0], sizes[-1]
        fwd = flops.forward_flops(sizes)
        clean = fwd + 5 * n_classes                    # clean logits and their softmax
        kl_grad = 5 * n_classes + n_classes
        attack = flops.random_start_flops(n_features) + self.steps * (
            fwd + kl_grad + flops.input_backward_flops(sizes)
            + flops.attack_step_flops(n_features))
        kl_train = 5 * n_classes + 4 * n_classes + n_classes + 3 * n_classes
        return (clean + attack + 2 * fwd + flops.cross_entropy_flops(n_classes) + kl_train
                + 2 * flops.training_backward_flops(sizes))



def workspace(model, rows: int):
    """Buffers for chunks of at most ``rows`` rows (``X_adv`` holds the last points;
    the model's buffers hold ``2 rows``)."""
    return trades_workspace(model, rows)


def gradient(params, sizes, X, y, noise, options: TRADESOptions, workspace, grad,
             scale: float) -> float:
    """``scale`` times the summed TRADES objective of the chunk's rows (returned) and its
    parameter gradient (into ``grad``); see :mod:`robnp.training.recipes`."""
    return float(kernels.trades_gradient(params, sizes, X, y, noise, options.eps,
                                         options.step_size, options.steps, options.beta,
                                         options.smoothing, workspace, grad, float(scale)))
