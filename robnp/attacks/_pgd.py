"""Projected gradient descent on the negative loss (Madry et al., 2018).

``steps`` signed-gradient steps of ``step_size`` (default ``eps / 4``), each followed
by projection onto the ``eps``-ball around the clean input (and into ``bounds`` when
given), on the analytic input gradient through the compiled kernel
:func:`robnp.kernels.pgd_linf`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _checks, kernels
from ..errors import ConfigError
from ..gradients import input_gradient
from ..losses import loss_code
from ..threads import single_blas_thread
from ._registry import AttackOptions
from ._threat import check_bounds, check_eps, gradient_sign

__all__ = ["pgd", "PGDOptions", "run"]


@dataclass(frozen=True)
class PGDOptions(AttackOptions):
    """Options of PGD; the defaults are the robustness-scaling study's.

    Attributes
    ----------
    steps : int >= 0
        Signed-gradient steps.
    step_fraction : float > 0
        Step size as a fraction of eps (0.25: the study's eps/4).
    step_size : float >= 0 or None
        An absolute step size, the same at every radius; overrides ``step_fraction``.
    random_start : bool
        Start from a point drawn uniformly in the ball instead of the clean input.
    loss : {"cross_entropy", "cw_margin"}
    bounds : (float, float) or None
        Keep every iterate in this box as far as the ball allows.
    """

    steps: int = 10
    step_fraction: float = 0.25
    step_size: float | None = None
    random_start: bool = False
    loss: str = "cross_entropy"
    bounds: tuple[float, float] | None = None

    def __post_init__(self):
        object.__setattr__(self, "steps", _checks.integer("steps", self.steps, 0))
        object.__setattr__(self, "step_fraction", _checks.real(
            "step_fraction", self.step_fraction, 0, low_open=True))
        if self.step_size is not None:
            object.__setattr__(self, "step_size", _checks.real("step_size", self.step_size, 0))
        object.__setattr__(self, "random_start", _checks.flag("random_start", self.random_start))
        loss_code(self.loss)
        check_bounds(self.bounds)

    @property
    def randomized(self) -> bool:
        return self.random_start

    def step_for(self, eps: float) -> float:
        return self.step_fraction * eps if self.step_size is None else self.step_size


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
    steps = _checks.integer("steps", steps, 0)
    step_size = eps / 4 if step_size is None else _checks.real("step_size", step_size, 0)
    lower, upper, use_bounds = check_bounds(bounds)
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
        dX = gradient_sign("start_gradient", start_gradient, X, "f")
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


def run(model, X, y, radii, options: PGDOptions, rng) -> list[np.ndarray]:
    """Registry entry: PGD at every radius. Without a random start every radius takes
    its first step from ``X`` along the same gradient, computed once here."""
    common = dict(steps=options.steps, loss=options.loss, bounds=options.bounds)
    if options.random_start:
        return [pgd(model, X, y, eps, step_size=options.step_for(eps), random_start=True,
                    seed=rng, **common) for eps in radii]
    dL_dX = input_gradient(model, X, y, loss=options.loss)
    return [pgd(model, X, y, eps, step_size=options.step_for(eps), start_gradient=dL_dX,
                **common) for eps in radii]
