"""Every class's input gradient at once: the Jacobian of the logits w.r.t. the input,
and the gradients of the logit differences ``z_j - z_y`` that FAB linearises.

For an MLP the Jacobian is one forward pass and one backward pass per class through
the compiled backward kernel (:func:`robnp.kernels.backward_input`), each started
from a one-hot dL/dlogits: the gradient of ``sum_i z_ik`` w.r.t. the rows of ``X`` is
row ``i``'s gradient of ``z_ik`` because the rows do not interact.

A model of the attack protocol may offer ``logit_jacobian(X) -> (n, n_classes,
n_features)``; without it the differences come from ``input_gradient`` with the
cross-entropy: its dL/dlogits for label ``k`` is ``p - e_k``, so the gradients for
labels ``y`` and ``j`` differ by the gradient of ``z_j - z_y`` exactly (the softmax
term cancels). The protocol allows the gradient of the mean or of the sum over rows;
FAB needs the true scale, so it is read off one row asked for on its own.
"""

from __future__ import annotations

import numpy as np

from .. import kernels
from ..errors import DataError
from ..threads import single_blas_thread
from ._threat import refuse_nan

__all__ = ["logit_jacobian", "logits_and_jacobian", "margin_gradients"]


def _mlp_logits_and_jacobian(model, X):
    n, d = X.shape
    K = model.n_classes
    ws = model.workspace(n)
    Z = kernels.forward(model.params, model.sizes, X, ws.acts).copy()
    J = np.empty((n, K, d), X.dtype)
    seed = np.zeros((n, K), X.dtype)
    dX = np.empty_like(X)
    for k in range(K):
        seed[:, k] = 1
        kernels.backward_input(model.params, model.sizes, X, ws.acts, seed, dX, ws.d0, ws.d1)
        seed[:, k] = 0
        J[:, k] = dX
    return Z, J


@single_blas_thread
def logits_and_jacobian(model, X):
    """Logits (n, n_classes) and their Jacobian (n, n_classes, n_features) at the rows
    of ``X``, both in the model's dtype: ``J[i, k] = d z_k(x_i) / d x_i``.

    Parameters
    ----------
    model : MLP
    X : array-like of shape (n_samples, n_features)
    """
    X = model.check_input(X)
    return _mlp_logits_and_jacobian(model, X)


def logit_jacobian(model, X) -> np.ndarray:
    """The Jacobian of an MLP's logits w.r.t. its input, ndarray of shape (n_samples,
    n_classes, n_features) in the model's dtype; see :func:`logits_and_jacobian`."""
    return logits_and_jacobian(model, X)[1]


def _scale(model, X, labels, grads) -> float:
    """The factor turning the protocol's ``input_gradient`` rows into per-row
    gradients: ``n`` when it returns the gradient of the mean, 1 for the sum. Read off
    the row of ``grads`` (the cross-entropy gradient for ``labels``) with the largest
    gradient, asked for again on its own."""
    n = X.shape[0]
    if n == 1:
        return 1.0
    size = np.abs(grads).sum(axis=1)
    row = int(np.argmax(size))
    if size[row] == 0:
        return 1.0
    alone = np.asarray(model.input_gradient(X[row:row + 1], labels[row:row + 1],
                                            "cross_entropy"), np.float64)
    ratio = np.abs(alone).sum() / size[row]
    for factor in (float(n), 1.0):
        if abs(ratio - factor) <= 1e-3 * factor:
            return factor
    raise DataError(f"model.input_gradient is neither the gradient of the mean nor of the "
                    f"sum over rows: one row alone gives {ratio:.6g} times its gradient in a "
                    f"batch of {n}")


def margin_gradients(target, X, y, t=None):
    """Logits and the gradients of ``z_j - z_y`` at the rows of ``X``.

    Parameters
    ----------
    target : robnp.attacks._threat.AttackedModel
    X : ndarray of shape (n, d), checked, in the model's dtype
    y : ndarray of shape (n,), int64
    t : ndarray of shape (n,), int64, optional
        Targets: only ``z_t - z_y`` is needed (one backward pass for an MLP).

    Returns
    -------
    Z : ndarray of shape (n, n_classes), float64
    G : ndarray of shape (n, m, d), float64
        ``m = n_classes`` without targets (row ``y`` is zero), else 1.
    """
    model = target.model
    n = X.shape[0]
    rows = np.arange(n)
    if target.fast:
        ws = model.workspace(n)
        if t is not None:
            Z = kernels.forward(model.params, model.sizes, X, ws.acts).copy()
            seed = np.zeros_like(Z)
            seed[rows, t] += 1
            seed[rows, y] -= 1
            dX = np.empty_like(X)
            kernels.backward_input(model.params, model.sizes, X, ws.acts, seed, dX,
                                   ws.d0, ws.d1)
            return Z.astype(np.float64), dX.astype(np.float64)[:, None, :]
        Z, J = _mlp_logits_and_jacobian(model, X)
        J = J.astype(np.float64)
        return Z.astype(np.float64), J - J[rows, y][:, None, :]
    Z = target.logits(X).astype(np.float64)
    K = Z.shape[1]
    if callable(getattr(model, "logit_jacobian", None)):
        J = np.asarray(model.logit_jacobian(X), np.float64)
        if J.shape != (n, K, X.shape[1]):
            raise DataError(f"model.logit_jacobian returned shape {J.shape} for X of shape "
                            f"{X.shape} and {K} classes")
        refuse_nan(J, "model.logit_jacobian")
        G = J - J[rows, y][:, None, :]
        return Z, (G[rows, t][:, None, :] if t is not None else G)

    def ce_gradient(labels):
        grad = np.asarray(model.input_gradient(X, labels, "cross_entropy"), np.float64)
        if grad.shape != X.shape:
            raise DataError(f"model.input_gradient returned shape {grad.shape} for X of "
                            f"shape {X.shape}")
        return refuse_nan(grad, "model.input_gradient")

    # The label's own cross-entropy gradient vanishes where the softmax saturates;
    # another label's does not, so the scale is read off one of those.
    at_label = ce_gradient(y)
    if t is not None:
        at_target = ce_gradient(t)
        scale = _scale(model, X, t, at_target)
        return Z, (scale * (at_label - at_target))[:, None, :]
    per_label = np.empty((K, n, X.shape[1]))
    for k in range(K):
        per_label[k] = ce_gradient(np.full(n, k, np.int64))
    k = int(np.argmax(np.abs(per_label).sum(axis=2).max(axis=1)))
    scale = _scale(model, X, np.full(n, k, np.int64), per_label[k])
    G = scale * (at_label[None] - per_label).transpose(1, 0, 2)
    G[rows, y] = 0
    return Z, np.ascontiguousarray(G)
