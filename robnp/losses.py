"""Losses on logits: each written once, as a value and its gradient w.r.t. the logits.

The arithmetic lives in :func:`robnp.kernels.loss_grad_logits`; this module names the
losses and offers NumPy-facing wrappers. A loss is selected by name everywhere
(training, input gradients, attacks):

``"cross_entropy"``
    ``logsumexp(z) - z[y]``, the training loss and the loss FGSM/PGD ascend.
``"cw_margin"``
    ``max_{j != y} z[j] - z[y]`` (Carlini and Wagner, 2017): positive exactly when the
    example is misclassified, so an attack ascending it aims straight at the boundary.
"""

from __future__ import annotations

import numpy as np

from .threads import single_blas_thread
from . import kernels
from .errors import ConfigError

__all__ = ["LOSSES", "loss_code", "loss_and_grad_logits", "per_example_loss", "mean_loss"]

LOSSES = {
    "cross_entropy": kernels.LOSS_CROSS_ENTROPY,
    "cw_margin": kernels.LOSS_CW_MARGIN,
}


def loss_code(name: str) -> int:
    """The kernel code of the loss ``name``."""
    try:
        return LOSSES[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown loss {name!r}; known losses: {', '.join(sorted(LOSSES))}") from None


def loss_and_grad_logits(Z, y, loss: str = "cross_entropy"):
    """Mean loss over rows and its gradient w.r.t. the logits.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_classes), float32 or float64
    y : ndarray of shape (n_samples,), integer labels

    Returns
    -------
    loss : float
    dL_dZ : ndarray of shape (n_samples, n_classes), dtype of ``Z``
    """
    Z = np.ascontiguousarray(Z)
    if Z.dtype not in (np.float32, np.float64):
        Z = Z.astype(np.float64)
    y = np.ascontiguousarray(y, dtype=np.int64)
    dZ = np.empty_like(Z)
    total = kernels.loss_grad_logits(loss_code(loss), Z, y, dZ, 1.0 / Z.shape[0], True)
    return total / Z.shape[0], dZ


@single_blas_thread
def per_example_loss(model, X, y, loss: str = "cross_entropy") -> np.ndarray:
    """Loss of each example, ndarray of shape (n_samples,), float64."""
    X = model.check_input(X)
    y = model.check_labels(y, X.shape[0])
    out = np.empty(X.shape[0], np.float64)
    kernels.per_example_loss(model.params, model._sizes, X, y, loss_code(loss),
                             model.workspace(X.shape[0]).acts, out)
    return out


def mean_loss(model, X, y, loss: str = "cross_entropy") -> float:
    """Mean loss of ``model`` over ``(X, y)``."""
    return float(per_example_loss(model, X, y, loss).mean())
