"""Losses on logits: each written once, as a value and its gradient w.r.t. the logits.

The arithmetic lives in :func:`robnp.kernels.loss_grad_logits`; this module names the
losses and offers NumPy-facing wrappers. A loss is selected by name everywhere
(training, input gradients, attacks):

``"cross_entropy"``
    ``logsumexp(z) - z[y]``, the training loss and the loss FGSM/PGD ascend.
``"cw_margin"``
    ``max_{j != y} z[j] - z[y]`` (Carlini and Wagner, 2017): positive exactly when the
    example is misclassified, so an attack ascending it aims straight at the boundary.

Label smoothing (Szegedy et al., 2016) is a training loss with a parameter, so it is
not among the names attacks choose from: :func:`cross_entropy_smoothed` takes the
smoothing ``s`` and compares the logits with ``(1 - s) onehot(y) + s / K``.

The names and their kernel codes (:data:`LOSSES`, :func:`loss_code`, ...) are kept in
:mod:`robnp.loss_codes`, below the model, and importable from here.
"""

from __future__ import annotations

import numpy as np

from .threads import single_blas_thread
from . import kernels
from .errors import ConfigError, DataError
from .loss_codes import (LOSSES, MIN_CLASSES, TARGETED_LOSSES, check_loss_classes,
                         check_smoothing, loss_code, targeted_loss)
from .model import MLP, check_labels

__all__ = ["LOSSES", "TARGETED_LOSSES", "MIN_CLASSES", "loss_code", "targeted_loss",
           "check_loss_classes", "loss_and_grad_logits", "per_example_loss", "mean_loss",
           "check_smoothing", "cross_entropy_smoothed", "per_example_smoothed_loss"]


def loss_and_grad_logits(Z, y, loss: str = "cross_entropy", y_target=None):
    """Mean loss over rows and its gradient w.r.t. the logits.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_classes), float32 or float64
    y : ndarray of shape (n_samples,), integer labels

    loss : str
        A name in :data:`LOSSES` or :data:`TARGETED_LOSSES`.
    y_target : ndarray of shape (n_samples,), integer classes
        The target of every row; required by (and only allowed with) a targeted loss.

    Returns
    -------
    loss : float
    dL_dZ : ndarray of shape (n_samples, n_classes)
        float32 for float32 ``Z``, float64 otherwise.

    Raises
    ------
    DataError
        When ``Z`` is not a non-empty real 2-D array with at least two columns, or
        ``y`` does not hold one integer label in ``[0, n_classes)`` per row.
    """
    code = loss_code(loss, targeted_ok=True)
    Z = _check_logits(Z)
    y = check_labels(y, Z.shape[0], Z.shape[1])
    check_loss_classes(loss, Z.shape[1])
    if (y_target is not None) != (loss in TARGETED_LOSSES):
        raise ConfigError(f"y_target is required by a targeted loss and only allowed with "
                          f"one; loss is {loss!r}")
    t = y if y_target is None else check_labels(y_target, Z.shape[0], Z.shape[1])
    dZ = np.empty_like(Z)
    total = kernels.loss_grad_logits_targeted(code, Z, y, t, dZ, 1.0 / Z.shape[0], True)
    return total / Z.shape[0], dZ


def _check_logits(Z) -> np.ndarray:
    """``Z`` as a C-contiguous float32 or float64 (n_samples, n_classes) array."""
    Z = np.asarray(Z)
    if Z.ndim != 2 or Z.shape[1] < 2:
        raise DataError(f"Z must have shape (n_samples, n_classes) with n_classes >= 2, "
                        f"got {Z.shape}")
    if Z.shape[0] == 0:
        raise DataError("Z has no rows")
    if Z.dtype.kind not in "iuf":
        raise DataError(f"Z must hold real numbers, got dtype {Z.dtype}")
    return np.ascontiguousarray(Z, dtype=Z.dtype if Z.dtype in (np.float32, np.float64)
                                else np.float64)


@single_blas_thread
def per_example_loss(model, X, y, loss: str = "cross_entropy") -> np.ndarray:
    """Loss of each example, ndarray of shape (n_samples,), float64."""
    if not isinstance(model, MLP):
        raise ConfigError(f"model must be an MLP, got {type(model).__name__}")
    code = loss_code(loss)
    X, y, acts, out = _per_example_buffers(model, X, y)
    kernels.per_example_loss(model.params, model.sizes, X, y, code, acts, out)
    return out


def _per_example_buffers(model, X, y):
    """Checked ``X`` and ``y``, activations and an output row for a per-example loss."""
    X = model.check_input(X)
    y = model.check_labels(y, X.shape[0])
    return X, y, model.workspace(X.shape[0]).acts, np.empty(X.shape[0], np.float64)


def mean_loss(model, X, y, loss: str = "cross_entropy") -> float:
    """Mean loss of ``model`` over ``(X, y)``."""
    return float(per_example_loss(model, X, y, loss).mean())


def cross_entropy_smoothed(Z, y, smoothing: float = 0.1):
    """Mean cross-entropy against smoothed targets and its gradient w.r.t. the logits.

    With ``K`` classes the target of a row labelled ``y`` is
    ``q = (1 - s) onehot(y) + s / K`` (Szegedy et al., 2016; PyTorch's
    ``CrossEntropyLoss(label_smoothing=s)``), the loss ``-sum_j q_j log softmax(z)_j``
    and its gradient ``softmax(z) - q`` (over the number of rows). ``s = 0`` is
    ``"cross_entropy"``.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_classes), float32 or float64
    y : ndarray of shape (n_samples,), integer labels
    smoothing : float in [0, 1)

    Returns
    -------
    loss : float
    dL_dZ : ndarray of shape (n_samples, n_classes)
        float32 for float32 ``Z``, float64 otherwise.
    """
    smoothing = check_smoothing(smoothing)
    Z = _check_logits(Z)
    y = check_labels(y, Z.shape[0], Z.shape[1])
    dZ = np.empty_like(Z)
    total = kernels.smoothed_ce_grad_logits(Z, y, smoothing, dZ, 1.0 / Z.shape[0], True)
    return total / Z.shape[0], dZ


@single_blas_thread
def per_example_smoothed_loss(model, X, y, smoothing: float = 0.1) -> np.ndarray:
    """Smoothed cross-entropy of each example, ndarray of shape (n_samples,), float64."""
    if not isinstance(model, MLP):
        raise ConfigError(f"model must be an MLP, got {type(model).__name__}")
    smoothing = check_smoothing(smoothing)
    X, y, acts, out = _per_example_buffers(model, X, y)
    kernels.smoothed_per_example_loss(model.params, model.sizes, X, y, smoothing, acts, out)
    return out
