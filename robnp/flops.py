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

Recipes (``RECIPES``) combine these; :func:`recipe_flops` gives the exact count and
:data:`PAPER_FORWARD_PASSES` the paper's convention.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import _checks
from .errors import ConfigError

__all__ = ["RECIPES", "PAPER_FORWARD_PASSES", "RecipeFlops", "layer_counts", "forward_flops",
           "training_backward_flops", "input_backward_flops", "cross_entropy_flops",
           "attack_step_flops", "optimizer_flops", "recipe_flops", "paper_forward_passes"]

#: Training recipes and whether they take a number of attack steps.
RECIPES = {"standard": False, "pgd-at": True, "trades": True, "fgsm-rs": False,
           "n-fgsm": False}


def paper_forward_passes(recipe: str, steps: int | None = None) -> int:
    """Forward passes per example in the paper's convention: standard 3, PGD-AT
    ``2K + 3``, TRADES ``2K + 7`` (Appendix B's 27 for K = 10), FGSM-RS and N-FGSM 5."""
    steps = _check_recipe(recipe, steps)
    return {"standard": 3, "pgd-at": 2 * (steps or 0) + 3, "trades": 2 * (steps or 0) + 7,
            "fgsm-rs": 5, "n-fgsm": 5}[recipe]


#: The paper's convention as formulas in K, for reference.
PAPER_FORWARD_PASSES = {"standard": "3", "pgd-at": "2K + 3", "trades": "2K + 7",
                        "fgsm-rs": "5", "n-fgsm": "5"}


def _check_sizes(sizes) -> tuple[int, ...]:
    sizes = _checks.sequence("layer sizes", sizes, lambda n, v: _checks.integer(n, v, 1),
                             what="integers >= 1", unique=False)
    if len(sizes) < 2:
        raise ConfigError(f"an MLP needs at least an input and an output size, got {sizes}")
    if sizes[-1] < 2:
        raise ConfigError(f"n_classes must be >= 2, got {sizes[-1]}")
    return sizes


def _check_recipe(recipe: str, steps) -> int | None:
    _checks.choice("recipe", recipe, RECIPES, "recipe")
    if RECIPES[recipe]:
        return _checks.integer("steps", steps, 1)
    if steps is not None:
        raise ConfigError(f"the {recipe} recipe takes no steps, got steps={steps!r}")
    return None


def layer_counts(sizes) -> tuple[int, int, int]:
    """``(P_W, P_b, H)``: weights, biases and hidden units of the MLP ``sizes``."""
    sizes = _check_sizes(sizes)
    weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return weights, sum(sizes[1:]), sum(sizes[1:-1])


def forward_flops(sizes) -> int:
    """One forward pass to the logits: ``2 P_W + P_b + H``."""
    weights, biases, hidden = layer_counts(sizes)
    return 2 * weights + biases + hidden


def training_backward_flops(sizes) -> int:
    """The backward pass of a training step: ``2 P_W + P_b + 2 (P_W - d_0 d_1) + H``."""
    sizes = _check_sizes(sizes)
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
        The paper's convention for the recipe.
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


def recipe_flops(sizes, recipe: str = "standard", steps: int | None = None, *,
                 batch_size: int | None = None, optimizer: str = "sgd",
                 momentum: bool = True, nesterov: bool = True,
                 weight_decay: bool = True) -> RecipeFlops:
    """Exact training FLOPs per example of ``recipe`` for the MLP ``sizes``.

    * ``standard``: forward, cross-entropy, training backward;
    * ``pgd-at`` (Madry et al., 2018) with ``steps`` K: K attack steps (forward,
      cross-entropy gradient, input backward, step and projection) from a random start,
      then a standard step on the adversarial example;
    * ``trades`` (Zhang et al., 2019) as the paper counts it: a clean forward for the
      clean distribution, K attack steps on the KL divergence, two more forward passes
      (clean and adversarial) for the loss, cross-entropy on the clean logits plus the
      KL term, and a training backward through both;
    * ``fgsm-rs`` (Wong et al., 2020) and ``n-fgsm`` (de Jorge et al., 2022): a random
      start, one attack step, a standard step on the result (N-FGSM skips the
      projection: its cost differs by 4 FLOPs per feature).

    With ``batch_size``, the optimizer's update (:func:`optimizer_flops`) is shared
    over the batch's examples and added.
    """
    sizes = _check_sizes(sizes)
    steps = _check_recipe(recipe, steps)
    weights, biases, _ = layer_counts(sizes)
    n_features, n_classes = sizes[0], sizes[-1]
    fwd = forward_flops(sizes)
    train_back = training_backward_flops(sizes)
    in_back = input_backward_flops(sizes)
    ce = cross_entropy_flops(n_classes)
    ce_grad = cross_entropy_flops(n_classes, value=False)
    step = attack_step_flops(n_features)
    start = n_features + 4 * n_features
    standard = fwd + ce + train_back
    if recipe == "standard":
        total = standard
    elif recipe == "pgd-at":
        total = start + steps * (fwd + ce_grad + in_back + step) + standard
    elif recipe == "trades":
        clean = fwd + 5 * n_classes                    # clean logits and their softmax
        kl_grad = 5 * n_classes + n_classes
        attack = start + steps * (fwd + kl_grad + in_back + step)
        kl_train = 5 * n_classes + 4 * n_classes + n_classes + 3 * n_classes
        total = clean + attack + 2 * fwd + ce + kl_train + 2 * train_back
    elif recipe == "fgsm-rs":
        total = start + fwd + ce_grad + in_back + step + standard
    else:  # n-fgsm: noise, a step, no projection
        total = n_features + fwd + ce_grad + in_back + 3 * n_features + standard
    if batch_size is not None:
        batch_size = _checks.integer("batch_size", batch_size, 1)
        per_param = optimizer_flops(optimizer, momentum=momentum, nesterov=nesterov,
                                    weight_decay=weight_decay)
        total = total + per_param * (weights + biases) / batch_size
    return RecipeFlops(recipe, steps, total, fwd, paper_forward_passes(recipe, steps),
                       weights + biases)
