"""Auto-PGD (Croce and Hein, 2020, "Reliable evaluation of adversarial robustness with
an ensemble of diverse parameter-free attacks"), as the AutoAttack reference code runs
it.

Per point: a random start on the sphere of the ball (L-infinity: ``x + eps u /
max|u|`` with ``u`` uniform in ``[-1, 1]^d``), a step size of ``2 eps``, and iterates
``z = P(x_k + eta sign(g_k))``, ``x_{k+1} = P(x_k + a (z - x_k) + (1 - a)(x_k -
x_{k-1}))`` with ``a = 1`` for the first step and ``0.75`` after. At checkpoints (the
first after ``floor(0.22 N)`` iterations, each next interval ``floor(0.03 N)`` shorter
but never below ``floor(0.06 N)``, all at least 1) the step is halved and the point
restarted from the highest-loss iterate where (1) at most ``rho`` of the interval's
steps increased the loss, or (2) the step was not halved at the previous checkpoint
and the best loss did not grow since (the reference code's ``<=`` in (1), and its
loss history starting at zero). The gradient is that of each point's own loss.

Returned: the last misclassified iterate where one was found, else the highest-loss
one (the reference returns the clean point there; both have the same accuracy).
``apgd-ce``/``apgd-dlr`` ascend the cross-entropy / DLR loss; ``apgd-t`` runs
targeted DLR once per target class, the 9 most likely wrong classes at the clean
point in order (all of them when there are fewer), on the points still robust.
Restarts, like targets, attack only the points still robust.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _checks, kernels
from .._checks import Coerced, Integer, Real, Satisfies
from ..errors import ConfigError
from ..losses import check_loss_classes, loss_code
from ..threads import single_blas_thread
from ._pgd import NORM_CODES
from ._registry import AttackOptions
from ._threat import (AttackedModel, as_generator, check_bounds, check_eps, check_norm,
                      check_threads, over_chunks, row_flops, top_wrong_class)

__all__ = ["apgd", "APGDOptions", "APGDCEOptions", "APGDDLROptions", "APGDTOptions",
           "checkpoints", "check_intervals", "run",
           "apgd_single_run"]


#: Weight of the new step against the previous move (``alpha`` in the paper).
MOMENTUM = 0.75


def checkpoints(n_iter: int) -> list[int]:
    """Iteration counts after which APGD checks its step (``[22, 41, 57, 70, 80, 87,
    93, 99]`` for 100 iterations)."""
    n_iter = _checks.integer("n_iter", n_iter, 0)
    first = max(int(0.22 * n_iter), 1)
    shrink = max(int(0.03 * n_iter), 1)
    shortest = max(int(0.06 * n_iter), 1)
    out, at, k = [], 0, first
    while at + k <= n_iter:
        at += k
        out.append(at)
        k = max(k - shrink, shortest)
    return out


def check_intervals(n_iter: int) -> np.ndarray:
    """int64 of shape (n_iter,): at index ``i`` the length of the interval ending after
    iteration ``i + 1`` (0-based ``i``), 0 where no check falls."""
    checks = np.zeros(n_iter, np.int64)
    previous = 0
    for at in checkpoints(n_iter):
        checks[at - 1] = at - previous
        previous = at
    return checks


@dataclass(frozen=True)
class APGDOptions(AttackOptions):
    """Options of APGD.

    Attributes
    ----------
    n_iter : int >= 1
        Iterations per run (100 in AutoAttack). 0 is refused: a run would be its
        start alone, not the attack.
    loss : {"cross_entropy", "dlr"}
    norm : {"linf", "l2"}
        L2 projects exactly onto ball and box (the reference clips after the ball).
    n_restarts : int >= 1
    rho : float in (0, 1)
        Condition (1)'s fraction of increasing steps.
    bounds : (float, float) or None
    n_threads : int >= 1 or None
        Threads over fixed chunks of rows; never changes a result.
    """

    n_iter: int = 100
    loss: str = "cross_entropy"
    norm: str = "linf"
    n_restarts: int = 1
    rho: float = 0.75
    bounds: tuple[float, float] | None = None
    n_threads: int | None = None

    randomized = True

    constraints = {"n_iter": Integer(1),
                   "loss": Satisfies(loss_code),
                   "norm": Coerced(check_norm),
                   "n_restarts": Integer(1),
                   "rho": Real(0, 1, low_open=True, high_open=True),
                   "bounds": Satisfies(check_bounds),
                   "n_threads": Coerced(check_threads)}
    budget = "n_iter"

    def passes(self, n_classes: int | None = None) -> float:
        """``n_iter`` gradient steps per restart (and per target, for ``apgd-t``), then
        the evaluation: about 300 for AutoAttack's 100 iterations."""
        targets = getattr(self, "n_target_classes", 1)
        if n_classes is not None and hasattr(self, "n_target_classes"):
            targets = min(targets, n_classes - 1)
        return self.n_restarts * targets * self.GRADIENT_PASSES * self.n_iter + 1


@dataclass(frozen=True)
class APGDCEOptions(APGDOptions):
    """APGD on the cross-entropy (AutoAttack's ``apgd-ce``)."""


@dataclass(frozen=True)
class APGDDLROptions(APGDOptions):
    """APGD on the DLR loss (``apgd-dlr``; at least 3 classes)."""

    loss: str = "dlr"


@dataclass(frozen=True)
class APGDTOptions(APGDOptions):
    """APGD on the targeted DLR loss (``apgd-t``; at least 4 classes), one run per
    target among the ``n_target_classes`` most likely wrong classes at the clean point.
    ``loss`` is fixed to ``"dlr"``."""

    loss: str = "dlr"
    n_target_classes: int = 9

    constraints = {"n_target_classes": Integer(1)}

    def __post_init__(self):
        super().__post_init__()
        if self.loss != "dlr":
            raise ConfigError(f"apgd-t ascends the targeted DLR loss; loss must be 'dlr', "
                              f"got {self.loss!r}")


def start_points(rng, X, eps_rows, norm, bounds) -> np.ndarray:
    """APGD's random start: ``x + eps u / (||u|| + 1e-12)`` (L-infinity: ``u`` uniform in
    ``[-1, 1]^d``, max-norm; L2: ``u`` Gaussian, Euclidean norm), then into the box."""
    lower, upper, use_bounds = check_bounds(bounds)
    if norm == "linf":
        u = 2 * rng.random(X.shape) - 1
        scale = np.abs(u).max(axis=1, keepdims=True)
    else:
        u = rng.standard_normal(X.shape)
        scale = np.linalg.norm(u, axis=1, keepdims=True)
    start = np.ascontiguousarray(
        X + (eps_rows.astype(np.float64)[:, None] * u / (scale + 1e-12)).astype(X.dtype))
    kernels.project_rows(X, start, eps_rows, NORM_CODES[norm], X.dtype.type(lower),
                         X.dtype.type(upper), use_bounds)
    return start


def _single_numpy(target, X, y, t, X_adv, eps_rows, step_rows, loss, norm, bounds, checks,
                  rho, trace):
    """One APGD run over the protocol: the loop of :func:`robnp.kernels.apgd_rows`."""
    lower, upper, use_bounds = check_bounds(bounds)
    cast = X.dtype.type
    n, d = X.shape
    n_iter = checks.shape[0]
    row_loss, pred, grad = target.evaluate(X_adv, y, t, loss)
    grad_best = grad.copy()
    X_old = X_adv.copy()
    scratch = np.empty_like(X_adv)
    loss_steps = np.zeros((n_iter, n))
    robust = pred == y
    loss_best = row_loss.copy()
    loss_best_last = row_loss.copy()
    reduced_last = np.ones(n, bool)
    X_best, X_best_adv = X_adv.copy(), X_adv.copy()
    if trace is not None:
        trace[0] = X_adv
    for i in range(n_iter):
        kernels.apgd_step(X, X_adv, X_old, grad, step_rows, 1.0 if i == 0 else MOMENTUM, eps_rows,
                          NORM_CODES[norm], cast(lower), cast(upper), use_bounds, scratch)
        row_loss, pred, grad = target.evaluate(X_adv, y, t, loss)
        if trace is not None:
            trace[i + 1] = X_adv
        kernels.apgd_record(i, X_adv, grad, row_loss, pred, y, robust, X_best_adv, X_best,
                            grad_best, loss_best, loss_steps)
        if checks[i] > 0:
            kernels.apgd_checkpoint(i, checks[i], rho, loss_steps, loss_best, loss_best_last,
                                    reduced_last, step_rows, X_adv, grad, X_best, grad_best)
    return X_best, X_best_adv, robust, loss_best


def apgd_single_run(target, X, y, t, start, eps_rows, n_iter, loss, norm, bounds, rho,
                    n_threads=None, trace=None):
    """One APGD run from ``start`` on rows with radii ``eps_rows``.

    Returns ``(X_best, X_best_adv, robust, loss_best)``: the highest-loss iterate, the
    last misclassified one, whether none was, and the best loss (float64). ``trace``,
    an array of shape (n_iter + 1, n, d), receives every evaluated iterate."""
    code = loss_code(loss, targeted_ok=True)
    checks = check_intervals(n_iter)
    step_rows = (2 * eps_rows).astype(X.dtype)
    X_adv = np.array(start, dtype=X.dtype, order="C")
    if not target.fast:
        return _single_numpy(target, X, y, t, X_adv, eps_rows, step_rows, loss, norm, bounds,
                             checks, rho, trace)
    lower, upper, use_bounds = check_bounds(bounds)
    cast = X.dtype.type
    model = target.model
    n, d = X.shape
    X_best, X_best_adv = np.empty_like(X), np.empty_like(X)
    robust = np.empty(n, bool)
    loss_best = np.empty(n)
    record = trace if trace is not None else np.empty((0, n, d), X.dtype)

    def work(lo, hi):
        ws = model.workspace(hi - lo)
        kernels.apgd_rows(model.params, model.sizes, X[lo:hi], y[lo:hi], t[lo:hi],
                          X_adv[lo:hi], eps_rows[lo:hi], step_rows[lo:hi], code,
                          NORM_CODES[norm], cast(lower), cast(upper), use_bounds, checks,
                          rho, MOMENTUM, X_best[lo:hi], X_best_adv[lo:hi], robust[lo:hi],
                          loss_best[lo:hi], np.empty((hi - lo, d), X.dtype), ws.acts,
                          ws.dZ, ws.d0, ws.d1, np.empty(hi - lo), np.empty(hi - lo, np.int64),
                          record[:, lo:hi])

    if trace is not None:
        work(0, n)  # a trace is for tests: one chunk, so its slices stay contiguous
    else:
        over_chunks(work, n, n_threads, row_flops(target, 3 * n_iter))
    return X_best, X_best_adv, robust, loss_best


@single_blas_thread
def apgd_general(target, X, y, radii, *, n_iter, loss, norm, bounds, n_restarts, rho, rng,
                 n_threads, n_target_classes=0) -> list[np.ndarray]:
    """APGD at every radius, radii stacked as rows; with ``n_target_classes > 0`` the
    targeted DLR loss over that many target classes (``apgd-t``)."""
    n, d = X.shape
    n_classes = target.n_classes(X)
    name = "dlr_targeted" if n_target_classes else loss
    check_loss_classes(name, n_classes)
    clean = target.logits(X)
    result = np.repeat(X[None], len(radii), axis=0)
    best = np.full((len(radii), n), -np.inf)
    clean_right = clean.argmax(axis=1) == y
    robust = np.array([clean_right & (eps > 0) for eps in radii])
    ranks = range(1, min(n_target_classes, n_classes - 1) + 1) if n_target_classes else [0]
    for rank in ranks:
        targets = top_wrong_class(clean, y, rank) if rank else y
        for _ in range(n_restarts):
            which, rows = np.nonzero(robust)
            if rows.size == 0:
                break
            Xs = np.ascontiguousarray(X[rows])
            eps_rows = np.array([radii[r] for r in which], X.dtype)
            start = start_points(rng, Xs, eps_rows, norm, bounds)
            X_best, X_best_adv, still, loss_best = apgd_single_run(
                target, Xs, np.ascontiguousarray(y[rows]),
                np.ascontiguousarray(targets[rows]), start, eps_rows, n_iter, name, norm,
                bounds, rho, n_threads)
            broken = ~still
            result[which[broken], rows[broken]] = X_best_adv[broken]
            robust[which[broken], rows[broken]] = False
            higher = still & (loss_best > best[which, rows])
            result[which[higher], rows[higher]] = X_best[higher]
            best[which[higher], rows[higher]] = loss_best[higher]
    return [np.ascontiguousarray(result[r]) for r in range(len(radii))]


def apgd(model, X, y, eps: float, *, n_iter: int = 100, loss: str = "cross_entropy",
         norm: str = "linf", n_restarts: int = 1, rho: float = 0.75, bounds=None,
         targeted: bool = False, n_target_classes: int = 9, seed=None,
         n_threads=None) -> np.ndarray:
    """Auto-PGD (Croce and Hein, 2020) at one radius; see the module docstring.

    Parameters
    ----------
    model : MLP, or any model of the attack protocol (see :mod:`robnp.attacks`)
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    eps : float >= 0
    n_iter, loss, norm, n_restarts, rho, bounds, n_threads
        See :class:`APGDOptions`.
    targeted : bool
        ``apgd-t``: targeted DLR over ``n_target_classes`` targets (``loss`` ignored).
    seed : int, numpy.random.Generator or None
        Source of the random starts.

    Returns
    -------
    X_adv : ndarray of shape (n_samples, n_features), in the model's dtype
    """
    eps = check_eps(eps)
    options = (APGDTOptions(n_iter=n_iter, norm=norm, n_restarts=n_restarts, rho=rho,
                            bounds=bounds, n_threads=n_threads,
                            n_target_classes=n_target_classes) if targeted else
               APGDOptions(n_iter=n_iter, loss=loss, norm=norm, n_restarts=n_restarts,
                           rho=rho, bounds=bounds, n_threads=n_threads))
    target = AttackedModel(model)
    X = target.check_input(X)
    y = target.check_labels(y, X)
    rng = as_generator(seed)
    return _run(target, X, y, (eps,), options, rng)[0]


def _run(target, X, y, radii, options, rng):
    return apgd_general(target, X, y, radii, n_iter=options.n_iter, loss=options.loss,
                        norm=options.norm, bounds=options.bounds,
                        n_restarts=options.n_restarts, rho=options.rho, rng=rng,
                        n_threads=options.n_threads,
                        n_target_classes=getattr(options, "n_target_classes", 0))


def run(model, X, y, radii, options: APGDOptions, rng) -> list[np.ndarray]:
    """Registry entry for ``apgd-ce``, ``apgd-dlr`` and ``apgd-t``."""
    return _run(AttackedModel(model), X, y, radii, options, rng)
