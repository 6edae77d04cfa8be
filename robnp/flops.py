"""Exact floating-point operation counts of training an MLP, per example.

The scaling-law paper (Bartoldson et al., 2024, Appendix B) counts training compute in
*forward passes*: a training step is 3 (forward, and a backward pass twice as
expensive), an attack step 2 (forward, and a backward pass to the input only, about as
expensive as the forward), so TRADES with 10 attack steps is 27 forward passes, and
``FLOPs = k N D`` with ``k = 7822`` for its WideResNets. This module counts the same
work exactly for an MLP, so the convention can be checked rather than assumed.

What is counted (per example; ``sizes = (d_0, ..., d_L)``, ``P_W = sum d_l d_{l+1}``
weights, ``P_b = sum_{l>=1} d_l`` biases, ``H = sum_{0<l<L} d_l`` hidden units,
``K = d_L`` classes):

* a multiply-add of a matrix product is 2 FLOPs; a bias add, a ReLU (one compare) and
  a ReLU mask in the backward pass (one compare/select) are 1 each;
* **forward** (logits only): ``2 P_W + P_b + H``;
* **training backward** from dL/dlogits: weight gradients ``2 P_W``, bias gradients
  ``P_b``, the deltas carried down to the first hidden layer ``2 (P_W - d_0 d_1)``
  (never to the input) and their ReLU masks ``H``;
* **input backward** (an attack step): deltas through every layer to the input,
  ``2 P_W``, and the masks ``H``; no weight or bias gradient;
* **softmax cross-entropy**, value and logit gradient of one row: ``5 K + 4`` (per logit
  a max compare, the shift, an exp, an add to the sum, the division giving the
  softmax; per row the log, adding the max back, subtracting the label's logit, and
  the label's ``- 1`` in the gradient). Gradient only (an attack's loss): ``5 K + 1``;
* **KL divergence** to a fixed clean distribution (TRADES): the adversarial row's
  softmax ``5 K``, its gradient ``p_adv - p_clean`` ``K``; in the training loss also
  its value, per logit a log, a subtraction, a product and an add (``4 K``), and the
  gradient reaching the clean logits ``3 K``;
* **attack step** per input feature: a signed step (sign, multiply, add: 3) and the
  L-infinity projection (subtract, two clip compares, add back: 4); a random start
  costs one add per feature and its projection 4 (the random draws are not FLOPs);
* **optimizer update** per parameter and minibatch: SGD ``2`` (``p -= lr g``), ``+2``
  for weight decay, ``+3`` for the momentum buffer, ``+2`` for Nesterov; Adam 13
  (moments 3 + 4, denominator 3, step 3); AdamW 14.

Each training recipe combines these for its own work
(:meth:`robnp.training.recipes.RecipeOptions.example_flops`, in the recipe's module)
and states the paper's convention beside it (``forward_passes``);
:func:`robnp.training.recipes.recipe_flops` looks a recipe up by name.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import _checks
from .errors import ConfigError

__all__ = ["RecipeFlops", "check_sizes", "layer_counts", "forward_flops", "training_backward_flops",
           "input_backward_flops", "cross_entropy_flops", "attack_step_flops",
           "random_start_flops", "training_step_flops", "gradient_step_flops",
           "optimizer_flops", "update_flops_per_example"]


def check_sizes(sizes) -> tuple[int, ...]:
    """The MLP's layer sizes ``(d_0, ..., d_L)`` as a tuple of ints: at least an input
    and an output size, each >= 1, at least 2 classes."""
    sizes = _checks.sequence("layer sizes", sizes, lambda n, v: _checks.integer(n, v, 1),
                             what="integers >= 1", unique=False)
    if len(sizes) < 2:
        raise ConfigError(f"an MLP needs at least an input and an output size, got {sizes}")
    if sizes[-1] < 2:
        raise ConfigError(f"n_classes must be >= 2, got {sizes[-1]}")
    return sizes


def layer_counts(sizes) -> tuple[int, int, int]:
    """``(P_W, P_b, H)``: weights, biases and hidden units of the MLP ``sizes``."""
    sizes = check_sizes(sizes)
    weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return weights, sum(sizes[1:]), sum(sizes[1:-1])


def forward_flops(sizes) -> int:
    """One forward pass to the logits: ``2 P_W + P_b + H``."""
    weights, biases, hidden = layer_counts(sizes)
    return 2 * weights + biases + hidden


def training_backward_flops(sizes) -> int:
    """The backward pass of a training step: ``2 P_W + P_b + 2 (P_W - d_0 d_1) + H``."""
    sizes = check_sizes(sizes)
    weights, biases, hidden = layer_counts(sizes)
    return 2 * weights + biases + 2 * (weights - sizes[0] * sizes[1]) + hidden


def input_backward_flops(sizes) -> int:
    """The backward pass of an attack step, to the input only: ``2 P_W + H``."""
    weights, _, hidden = layer_counts(sizes)
    return 2 * weights + hidden


def cross_entropy_flops(n_classes: int, value: bool = True) -> int:
    """Softmax cross-entropy of one row, its logit gradient and (when ``value``) its
    value: ``5 K + 4``, or ``5 K + 1`` for the gradient alone."""
    n_classes = _checks.integer("n_classes", n_classes, 2)
    return 5 * n_classes + (4 if value else 1)


def attack_step_flops(n_features: int) -> int:
    """A signed step and the L-infinity projection: 7 per input feature."""
    return 7 * _checks.integer("n_features", n_features, 1)


def random_start_flops(n_features: int) -> int:
    """A uniform random start in the L-infinity ball: an add and the projection (4)
    per input feature, 5 in all (the draws are not FLOPs)."""
    n_features = _checks.integer("n_features", n_features, 1)
    return n_features + 4 * n_features


def training_step_flops(sizes) -> int:
    """One training step on one example: forward, softmax cross-entropy with its value,
    training backward."""
    sizes = check_sizes(sizes)
    return forward_flops(sizes) + cross_entropy_flops(sizes[-1]) + training_backward_flops(sizes)


def gradient_step_flops(sizes) -> int:
    """One step of a signed-gradient attack on the cross-entropy: forward, the loss's
    logit gradient, input backward, signed step and L-infinity projection."""
    sizes = check_sizes(sizes)
    return (forward_flops(sizes) + cross_entropy_flops(sizes[-1], value=False)
            + input_backward_flops(sizes) + attack_step_flops(sizes[0]))


def optimizer_flops(optimizer: str = "sgd", *, momentum: bool = False,
                    nesterov: bool = False, weight_decay: bool = False) -> int:
    """FLOPs per parameter of one update: ``"sgd"`` 2, plus 2 for weight decay, 3 for
    momentum, 2 more for Nesterov; ``"adam"`` 13; ``"adamw"`` 14."""
    _checks.choice("optimizer", optimizer, ("sgd", "adam", "adamw"), "optimizer")
    if optimizer == "adam":
        return 13
    if optimizer == "adamw":
        return 14
    if nesterov and not momentum:
        raise ConfigError("nesterov needs momentum")
    return 2 + 2 * bool(weight_decay) + 3 * bool(momentum) + 2 * bool(nesterov)


def update_flops_per_example(sizes, batch_size: int, optimizer: str = "sgd", *,
                             momentum: bool = True, nesterov: bool = True,
                             weight_decay: bool = True) -> float:
    """The optimizer's update of every parameter of the MLP ``sizes``
    (:func:`optimizer_flops` each), shared over a minibatch of ``batch_size``
    examples."""
    weights, biases, _ = layer_counts(sizes)
    batch_size = _checks.integer("batch_size", batch_size, 1)
    per_param = optimizer_flops(optimizer, momentum=momentum, nesterov=nesterov,
                                weight_decay=weight_decay)
    return per_param * (weights + biases) / batch_size


@dataclass(frozen=True)
class RecipeFlops:
    """Training FLOPs of one example under a recipe.

    Attributes
    ----------
    flops : int
        The exact count per example (the optimizer's share per example included when
        a batch size was given).
    forward : int
        One forward pass of the network (:func:`forward_flops`).
    paper_forward_passes : int
        The paper's convention for the recipe (its options' ``forward_passes``).
    n_params : int
        ``N``, weights and biases.
    """

    recipe: str
    steps: int | None
    flops: float
    forward: int
    paper_forward_passes: int
    n_params: int

    @property
    def forward_passes(self) -> float:
        """The exact count in forward passes (compare with ``paper_forward_passes``)."""
        return self.flops / self.forward

    @property
    def k(self) -> float:
        """``FLOPs / (N D)``: FLOPs per parameter and training example."""
        return self.flops / self.n_params

    @property
    def paper_k(self) -> float:
        """``k`` under the paper's convention, taking a forward pass as ``2 N``."""
        return 2.0 * self.paper_forward_passes
