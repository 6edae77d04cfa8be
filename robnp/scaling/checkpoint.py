"""One checkpoint of a scaling-study run, evaluated as the scaling-law paper does.

The paper (Bartoldson et al., 2024, Section 3.1, "Evaluation") reports, for every
model it fits, the **TRADES loss with beta = 5 on the test set after a 40-step PGD
attack on the CW loss**, and the accuracy at the same attacked points. Here:

* ``x_adv`` is robnp's ``pgd-cw`` (40 steps of eps/4 on the CW margin from a
  uniform start in the L-infinity ball, the best point of the run kept) at the
  study's radius, on a fixed sample of the **true** distribution, whatever
  distribution the model was trained on;
* the loss is ``mean_i CE(f(x_i), y_i) + beta * mean_i KL(p(x_i) || p(x_adv_i))``,
  ``p = softmax(f)``: plain cross-entropy (the label smoothing is a training
  device), the KL term summed over classes and averaged over points;
* ``robust_acc`` is the share of points classified correctly at ``x_adv`` (a point
  already misclassified counts as an error), ``clean_acc`` the share at ``x``;
* ``invalid_share`` is, of the points the attack broke, the share whose Bayes label
  at ``x_adv`` is no longer ``y`` (an "invalid" adversarial example, which the
  paper's human study finds behind the last errors of its plateau), and
  ``invalid_error_share`` is the same question over every robust error: of the points
  not robust, the share whose Bayes label at the point that counts (``x_adv`` where
  the attack broke the point, ``x`` where it was misclassified already) is not ``y``.
  Both NaN when there is nothing to count.

All arithmetic on logits is float64.
"""

from __future__ import annotations

import numpy as np

from ..attacks import evaluate, get_attack
from ..verify import DataSource

__all__ = ["checkpoint_metrics", "trades_test_loss", "ATTACK"]

#: The attack of the paper's scaling-law evaluation: robnp's PGD-40 on the CW loss.
ATTACK = "pgd-cw"


def _log_softmax(Z: np.ndarray) -> np.ndarray:
    Z = np.asarray(Z, dtype=np.float64)
    shifted = Z - Z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def trades_test_loss(logits_clean, logits_adv, y, beta: float) -> tuple[float, float, float]:
    """``(loss, cross_entropy, kl)``: the TRADES test loss of the module docstring
    from the clean and adversarial logits (float64 arithmetic)."""
    log_p = _log_softmax(logits_clean)
    log_q = _log_softmax(logits_adv)
    y = np.asarray(y, dtype=np.int64)
    ce = float(-log_p[np.arange(len(y)), y].mean())
    kl = float((np.exp(log_p) * (log_p - log_q)).sum(axis=1).mean())
    return ce + beta * kl, ce, kl


def checkpoint_metrics(model, X, y, eps: float, *, beta: float, steps: int,
                       source: DataSource | None, seed: int) -> dict:
    """The evaluation of ``model`` (the checkpoint's weights, the average's when the
    run keeps one) on the true test sample ``(X, y)``: ``loss``, ``cross_entropy``,
    ``kl``, ``clean_acc``, ``robust_acc``, ``invalid_share`` and
    ``invalid_error_share`` (None without a ``source``, the task's exact truth), as
    the module docstring defines them. The attack's randomness comes from ``seed``."""
    options = get_attack(ATTACK).make_options({"steps": steps})
    evaluation = evaluate(model, X, y, [eps], [(ATTACK, options)], seed=seed)
    result = evaluation.attacks[ATTACK]
    X_adv = np.asarray(result.adversarial[0])
    loss, ce, kl = trades_test_loss(model.logits(X), model.logits(X_adv), y, beta)
    clean_correct = np.asarray(evaluation.clean_correct, dtype=bool)
    # a point is robust when the attack's point is classified correctly (a clean error
    # is never robust); the attack "broke" the correctly classified points it moved
    robust = clean_correct & ~np.asarray(result.success[0], dtype=bool)
    broken = clean_correct & ~robust
    out = {"loss": loss, "cross_entropy": ce, "kl": kl,
           "clean_acc": float(clean_correct.mean()), "robust_acc": float(robust.mean()),
           "invalid_share": None, "invalid_error_share": None}
    if source is not None:
        at = np.where(broken[:, None], X_adv, X).astype(np.float64)
        invalid = source.label(at) != np.asarray(y)
        n_broken, errors = int(broken.sum()), int((~robust).sum())
        out["invalid_share"] = (float((invalid & broken).sum() / n_broken) if n_broken
                                else None)
        out["invalid_error_share"] = (float((invalid & ~robust).sum() / errors)
                                      if errors else None)
    return out
