"""The fast gradient sign method (Goodfellow et al., 2015): one step of size ``eps``
along the sign of the input gradient, in the L-infinity ball."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import kernels
from .._checks import Satisfies
from ..errors import ConfigError
from ..losses import loss_code
from ..threads import single_blas_thread
from ._clean import CleanPoints
from ._registry import AttackOptions
from ._threat import AttackedModel, check_bounds, check_eps, gradient_sign

__all__ = ["fgsm", "fgsm_from_gradient", "FGSMOptions", "run"]


@dataclass(frozen=True)
class FGSMOptions(AttackOptions):
    """Options of FGSM.

    Attributes
    ----------
    loss : {"cross_entropy", "cw_margin"}
        The loss whose gradient's sign is followed.
    bounds : (float, float) or None
        Keep the result in this box as far as the eps-ball allows.
    """

    loss: str = "cross_entropy"
    bounds: tuple[float, float] | None = None

    constraints = {"loss": Satisfies(loss_code), "bounds": Satisfies(check_bounds)}

    def passes(self, n_classes: int | None = None) -> float:
        """One gradient step and the evaluation: 4 forward-pass equivalents."""
        return self.GRADIENT_PASSES + 1


def fgsm_from_gradient(X: np.ndarray, dL_dX: np.ndarray, eps: float, bounds=None) -> np.ndarray:
    """``X + eps * sign(dL_dX)``; with ``bounds``, projected onto the intersection of
    the eps-ball and the box (see :func:`robnp.kernels.project_linf`).

    The gradient at ``X`` does not depend on ``eps``, so a sweep over many radii
    computes it once and calls this for each. ``X`` must be a 2-D float array and
    ``dL_dX`` an array of the same shape; the result has ``X``'s dtype.
    """
    eps = check_eps(eps)
    lower, upper, use_bounds = check_bounds(bounds)
    X = np.asarray(X)
    if X.ndim != 2 or X.dtype.kind != "f" or X.dtype.itemsize not in (4, 8):
        raise ConfigError(f"X must be a 2-D float32 or float64 array, got {X.dtype} "
                          f"with shape {X.shape}")
    direction = gradient_sign("dL_dX", dL_dX, X, "fiu")
    X_adv = np.array(X, order="C")
    if eps == 0:
        return X_adv
    cast = X.dtype.type
    kernels.sign_step(X_adv, direction, cast(eps))
    if use_bounds:
        kernels.project_linf(np.ascontiguousarray(X), X_adv, cast(eps), cast(lower),
                             cast(upper), True)
    return X_adv


@single_blas_thread
def fgsm(model, X, y, eps: float, *, loss: str = "cross_entropy", bounds=None) -> np.ndarray:
    """Fast gradient sign method: ``X + eps * sign(dL/dX)``.

    Parameters
    ----------
    model : MLP, or any model of the attack protocol (see :mod:`robnp.attacks`)
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    eps : float >= 0
        L-infinity radius. ``eps = 0`` returns a copy of ``X``.
    loss : {"cross_entropy", "cw_margin", "dlr"}
    bounds : (float, float), optional
        Keep the result in this box as far as the eps-ball allows (the ball always
        holds; see :func:`pgd`).

    Returns
    -------
    X_adv : ndarray of shape (n_samples, n_features), in the model's dtype
    """
    eps = check_eps(eps)
    target = AttackedModel(model)
    X = target.check_input(X)
    y = target.check_labels(y, X)
    if eps == 0:
        return X.copy()
    loss_code(loss)
    return fgsm_from_gradient(X, CleanPoints(target, X, y).gradient(loss), eps, bounds)


def run(model, X, y, radii, options: FGSMOptions, rng, clean=None) -> list[np.ndarray]:
    """Registry entry: FGSM at every radius from one gradient at ``X`` (``clean``'s,
    the evaluation's, when given)."""
    clean = clean if clean is not None else CleanPoints(AttackedModel(model), X, y)
    dL_dX = clean.gradient(options.loss)
    return [fgsm_from_gradient(X, dL_dX, eps, options.bounds) for eps in radii]
