"""Adversarial attacks in the L-infinity ball, built on the analytic input gradient.

* :func:`fgsm` (Goodfellow et al., 2015): one step of size ``eps`` along the sign
  of the input gradient.
* :func:`pgd` (Madry et al., 2018): ``steps`` signed-gradient steps of
  ``step_size`` (default ``eps / 4``), each followed by projection onto the
  ``eps``-ball around the clean input (and into ``bounds`` when given).

Both ascend the loss named by ``loss`` (cross-entropy by default) through
:func:`robnp.gradients.input_gradient` or the same compiled kernel; neither
re-derives backpropagation. Inputs are not clipped to any data range unless
``bounds=(lower, upper)`` is passed.
"""

from __future__ import annotations

import numpy as np

from .threads import single_blas_thread
from . import kernels
from .errors import ConfigError
from .gradients import input_gradient
from .losses import loss_code

__all__ = ["fgsm", "pgd", "fgsm_from_gradient"]


def _real_number(name: str, value) -> float:
    """``value`` as a float; a clear error unless it is one real number (not a bool,
    string or complex number). Infinite values pass; NaN does not."""
    array = np.asarray(value) if not isinstance(value, (str, bytes)) else None
    if array is None or array.ndim != 0 or array.dtype.kind not in "fiu":
        raise ConfigError(f"{name} must be a real number, got {value!r}")
    number = float(array)
    if np.isnan(number):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    return number


def _finite_number(name: str, value) -> float:
    """``value`` as a float; a clear error unless it is a real, finite number."""
    number = _real_number(name, value)
    if not np.isfinite(number):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    return number


def check_eps(eps) -> float:
    """``eps`` as a float; a clear error unless it is a finite number >= 0."""
    value = _finite_number("eps", eps)
    if value < 0:
        raise ConfigError(f"eps must be a finite number >= 0, got {eps!r}")
    return value


def _check_bounds(bounds):
    if bounds is None:
        return 0.0, 0.0, False
    if np.ndim(bounds) != 1 or len(bounds) != 2:
        raise ConfigError(f"bounds must be a pair (lower, upper), got {bounds!r}")
    lower, upper = (_real_number("bounds", b) for b in bounds)  # one side may be infinite
    if not lower < upper:
        raise ConfigError(f"bounds must satisfy lower < upper, got {bounds!r}")
    return lower, upper, True


def _gradient_sign(name: str, gradient, X: np.ndarray, kinds: str) -> np.ndarray:
    """``sign(gradient)`` (-1, 0 or 1; NaN stays NaN) as a new C-contiguous array of
    ``X``'s dtype, once ``gradient`` is checked to be an array of ``X``'s shape with a
    dtype kind in ``kinds``. The sign is taken before the cast: a float64 gradient
    too small for float32 still points somewhere."""
    gradient = np.asarray(gradient)
    if gradient.shape != X.shape or gradient.dtype.kind not in kinds:
        what = "float" if kinds == "f" else "real"
        raise ConfigError(f"{name} must be a {what} array of X's shape {X.shape}, got "
                          f"{gradient.dtype} with shape {gradient.shape}")
    return np.ascontiguousarray(np.sign(gradient), dtype=X.dtype)


def fgsm_from_gradient(X: np.ndarray, dL_dX: np.ndarray, eps: float, bounds=None) -> np.ndarray:
    """``X + eps * sign(dL_dX)``; with ``bounds``, projected onto the intersection of
    the eps-ball and the box (see :func:`robnp.kernels.project_linf`).

    The gradient at ``X`` does not depend on ``eps``, so a sweep over many radii
    computes it once and calls this for each. ``X`` must be a 2-D float array and
    ``dL_dX`` an array of the same shape; the result has ``X``'s dtype.
    """
    eps = check_eps(eps)
    lower, upper, use_bounds = _check_bounds(bounds)
    X = np.asarray(X)
    if X.ndim != 2 or X.dtype.kind != "f" or X.dtype.itemsize not in (4, 8):
        raise ConfigError(f"X must be a 2-D float32 or float64 array, got {X.dtype} "
                          f"with shape {X.shape}")
    direction = _gradient_sign("dL_dX", dL_dX, X, "fiu")
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
    model : MLP
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    eps : float >= 0
        L-infinity radius. ``eps = 0`` returns a copy of ``X``.
    loss : {"cross_entropy", "cw_margin"}
    bounds : (float, float), optional
        Keep the result in this box as far as the eps-ball allows (the ball always
        holds; see :func:`pgd`).

    Returns
    -------
    X_adv : ndarray of shape (n_samples, n_features), in the model's dtype
    """
    eps = check_eps(eps)
    X = model.check_input(X)
    y = model.check_labels(y, X.shape[0])
    if eps == 0:
        return X.copy()
    return fgsm_from_gradient(X, input_gradient(model, X, y, loss=loss), eps, bounds)


@single_blas_thread
def pgd(model, X, y, eps: float, steps: int = 10, step_size: float | None = None, *,
        random_start: bool = False, seed=None, loss: str = "cross_entropy",
        bounds=None, start_gradient=None) -> np.ndarray:
    """Projected gradient descent on the negative loss, in the L-infinity ball.

    Parameters
    ----------
    model : MLP
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    eps : float >= 0
        L-infinity radius. ``eps = 0`` returns a copy of ``X``.
    steps : int >= 0
        Number of signed-gradient steps.
    step_size : float, optional
        Size of each step; default ``eps / 4`` (the study's choice).
    random_start : bool
        Start from a point drawn uniformly in the ball (Madry et al.) instead of ``X``.
    seed : int, numpy.random.Generator or None
        Source of the random start.
    loss : {"cross_entropy", "cw_margin"}
    bounds : (float, float), optional
        Also keep every coordinate in ``[lower, upper]`` after each step. The ball
        comes first: a clean coordinate more than ``eps`` outside the box moves only
        as far as the ball allows towards it.
    start_gradient : array of shape (n_samples, n_features), optional
        The gradient of ``loss`` at ``X`` (from :func:`robnp.input_gradient`), used
        for the first step instead of recomputing it. It does not depend on
        ``eps``, so a sweep over radii computes it once (as
        :func:`robnp.robust_accuracy` does); the result is identical. Not allowed
        with ``random_start``, whose first step is not taken at ``X``.

    Returns
    -------
    X_adv : ndarray of shape (n_samples, n_features), in the model's dtype;
        ``max |X_adv - X| <= eps`` up to the dtype's rounding.
    """
    eps = check_eps(eps)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ConfigError(f"steps must be an integer >= 0, got {steps!r}")
    step_size = eps / 4 if step_size is None else _finite_number("step_size", step_size)
    if step_size < 0:
        raise ConfigError(f"step_size must be a finite number >= 0, got {step_size!r}")
    lower, upper, use_bounds = _check_bounds(bounds)
    code = loss_code(loss)
    X = model.check_input(X)
    y = model.check_labels(y, X.shape[0])
    # The first step uses only the gradient's sign; the kernel overwrites dX, so the
    # caller's array is never touched.
    dX = np.empty_like(X)
    if start_gradient is not None:
        if random_start:
            raise ConfigError("start_gradient is the gradient at X; it cannot be used with "
                              "random_start")
        dX = _gradient_sign("start_gradient", start_gradient, X, "f")
    if eps == 0:
        return X.copy()
    X_adv = X.copy()
    if random_start:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        X_adv += rng.uniform(-eps, eps, size=X.shape).astype(X.dtype)
        kernels.project_linf(X, X_adv, X.dtype.type(eps), X.dtype.type(lower),
                             X.dtype.type(upper), use_bounds)
    ws = model.workspace(X.shape[0])
    cast = X.dtype.type
    kernels.pgd_linf(model.params, model._sizes, X, y, X_adv, cast(eps), cast(step_size),
                     int(steps), code, cast(lower), cast(upper), use_bounds,
                     dX, ws.acts, ws.dZ, ws.d0, ws.d1, start_gradient is not None)
    return X_adv
