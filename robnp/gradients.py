"""Analytic gradients of a loss w.r.t. the parameters and w.r.t. the input.

Both run the same forward pass and start from the same dL/dlogits
(:mod:`robnp.losses`); they differ only in what the backward pass forms. The input
gradient is ordinary backpropagation carried one step further: after the first
layer's delta ``D_1 = dL/d(X W_1 + b_1)``, one more product ``dL/dX = D_1 W_1^T``.
FGSM, PGD and every later attack are built on :func:`input_gradient`.

The functions take any model with an MLP's kernel-facing attributes (``params``,
``sizes``, ``check_input``, ``check_labels``, ``workspace``) and import nothing of
:mod:`robnp.model`, whose :meth:`~robnp.MLP.input_gradient` calls them.
"""

from __future__ import annotations

import numpy as np

from .threads import single_blas_thread
from . import kernels
from .loss_codes import check_smoothing, loss_code

__all__ = ["input_gradient", "loss_and_input_gradient", "param_gradient",
           "smoothed_param_gradient"]


@single_blas_thread
def loss_and_input_gradient(model, X, y, loss: str = "cross_entropy"):
    """Mean loss and its gradient w.r.t. ``X``.

    Returns
    -------
    loss : float
    dL_dX : ndarray of shape (n_samples, n_features), the model's dtype
    """
    X = model.check_input(X)
    y = model.check_labels(y, X.shape[0])
    ws = model.workspace(X.shape[0])
    dL_dX = np.empty_like(X)
    value = kernels.loss_and_input_grad(model.params, model.sizes, X, y, loss_code(loss),
                                        dL_dX, ws.acts, ws.dZ, ws.d0, ws.d1, True)
    return float(value), dL_dX


def input_gradient(model, X, y, loss: str = "cross_entropy") -> np.ndarray:
    """Gradient of the mean loss over the rows of ``X`` with respect to ``X``.

    Parameters
    ----------
    model : MLP
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,), integer labels
    loss : {"cross_entropy", "cw_margin"}

    Returns
    -------
    dL_dX : ndarray of shape (n_samples, n_features), in the model's dtype
    """
    return loss_and_input_gradient(model, X, y, loss)[1]


@single_blas_thread
def param_gradient(model, X, y, loss: str = "cross_entropy"):
    """Mean loss and its gradient w.r.t. every parameter.

    Returns
    -------
    loss : float
    grad : ndarray of shape (n_params,), laid out like ``model.params``
        (``model.split_params(grad)`` gives per-layer views).
    """
    X = model.check_input(X)
    y = model.check_labels(y, X.shape[0])
    ws = model.workspace(X.shape[0])
    grad = np.empty_like(model.params)
    value = kernels.loss_and_param_grad(model.params, model.sizes, X, y, loss_code(loss),
                                        grad, ws.acts, ws.dZ, ws.d0, ws.d1)
    return float(value), grad


@single_blas_thread
def smoothed_param_gradient(model, X, y, smoothing: float = 0.1):
    """Mean label-smoothed cross-entropy (:func:`robnp.losses.cross_entropy_smoothed`)
    and its gradient w.r.t. every parameter.

    Returns
    -------
    loss : float
    grad : ndarray of shape (n_params,), laid out like ``model.params``
    """
    smoothing = check_smoothing(smoothing)
    X = model.check_input(X)
    y = model.check_labels(y, X.shape[0])
    ws = model.workspace(X.shape[0])
    grad = np.empty_like(model.params)
    # the training step at fixed points, scaled to the mean
    value = kernels.ce_training_step(model.params, model.sizes, X, y, smoothing, grad,
                                     ws.acts, ws.dZ, ws.d0, ws.d1, 1.0 / X.shape[0])
    return float(value), grad
