"""The Square attack (Andriushchenko et al., 2020, "Square Attack: a query-efficient
black-box adversarial attack via random search"), L-infinity, score-based.

It uses only the model's ``logits``: no gradient, so it is what exposes gradient
masking. An input of ``d`` features is treated as a 1 x d image with one channel. The
start puts every coordinate at ``x +- eps`` (the paper's vertical stripes: one column
is one coordinate here). Iteration ``i`` proposes, to every point whose margin
``z_y - max_{j != y} z_j`` is still positive, a window of ``s = max(round(sqrt(p d)),
1)`` consecutive coordinates (at most ``d``) at a uniformly drawn position, all set to
``x + eps`` or all to ``x - eps`` (one random sign), and keeps it when the margin
drops or turns non-positive; a point stops at success. ``p`` follows the paper's
schedule, ``p_init`` halved after iterations 10, 50, 200, 500, 1000, 2000, 4000, 6000
and 8000 of 10,000, rescaled to the query budget as the reference code does
(iteration ``i`` of ``n_queries`` counts as ``int(i / n_queries * 10000)``). Defaults
are AutoAttack's for L-infinity: 5000 queries, ``p_init = 0.8``. The window position
and sign are drawn once per iteration for the whole batch, as in the reference code.
Only points classified correctly when clean (positive margin) are attacked; restarts
attack only the points still robust, from a new start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import kernels
from .._checks import Coerced, Integer, Real, Satisfies
from ..threads import single_blas_thread
from ._registry import AttackOptions
from ._threat import (AttackedModel, as_generator, check_bounds, check_eps, check_threads,
                      over_chunks, row_flops)

__all__ = ["square", "SquareOptions", "p_schedule", "window_width", "run"]

_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def p_schedule(i: int, n_queries: int, p_init: float) -> float:
    """The fraction ``p`` at iteration ``i`` (0-based) of ``n_queries``: ``p_init``
    halved once for every threshold of :data:`_HALVINGS` the rescaled iteration
    ``int(i / n_queries * 10000)`` exceeds."""
    it = int(i / n_queries * 10000)
    return p_init / 2 ** sum(it > threshold for threshold in _HALVINGS)


def window_width(p: float, d: int) -> int:
    """Side of the square for a 1 x d image: ``max(round(sqrt(p d)), 1)``, at most d."""
    return min(max(int(round(math.sqrt(p * d))), 1), d)


@dataclass(frozen=True)
class SquareOptions(AttackOptions):
    """Options of the Square attack.

    Attributes
    ----------
    n_queries : int >= 1
        Iterations (one model query each) per run after the start. 0 is refused: a
        run would be its random start alone, not the attack.
    p_init : float in (0, 1]
    n_restarts : int >= 1
    bounds : (float, float) or None
    n_threads : int >= 1 or None
    """

    n_queries: int = 5000
    p_init: float = 0.8
    n_restarts: int = 1
    bounds: tuple[float, float] | None = None
    n_threads: int | None = None

    randomized = True
    #: Uses only the logits: the attack that exposes gradient masking.
    black_box = True

    constraints = {"n_queries": Integer(1),
                   "p_init": Real(0, 1, low_open=True),
                   "n_restarts": Integer(1),
                   "bounds": Satisfies(check_bounds),
                   "n_threads": Coerced(check_threads)}
    budget = "n_queries"

    def passes(self, n_classes: int | None = None) -> float:
        """Per restart a query at the start and one per iteration, then the
        evaluation: no gradient."""
        return self.n_restarts * (self.n_queries + 1.0) + 1


def _schedule(rng, n_queries, p_init, d):
    widths = np.array([window_width(p_schedule(i, n_queries, p_init), d)
                       for i in range(n_queries)], np.int64)
    starts = np.floor(rng.random(n_queries) * (d - widths + 1)).astype(np.int64)
    signs = np.where(rng.random(n_queries) < 0.5, -1.0, 1.0)
    return starts, widths, signs


def _square_numpy(target, X, y, X_best, margin, starts, widths, signs, eps, bounds, queries):
    lower, upper, use_bounds = check_bounds(bounds)
    cast = X.dtype.type
    X_new = np.empty_like(X)
    for i in range(starts.shape[0]):
        rows = np.flatnonzero(margin > 0)
        if rows.size == 0:
            break
        proposal = X_new[:rows.size]
        kernels.square_propose(X, X_best, proposal, rows, starts[i], widths[i],
                               cast(signs[i]), cast(eps), cast(lower), cast(upper), use_bounds)
        margin_new = np.empty(rows.size, X.dtype)
        kernels.margins(target.logits(proposal), np.ascontiguousarray(y[rows]), margin_new)
        kernels.square_accept(proposal, rows, margin_new, X_best, margin)
        queries[rows] += 1


def _single_run(target, X, y, eps, options, rng):
    """One run: returns the best points, their margins and the queries per point."""
    lower, upper, use_bounds = check_bounds(options.bounds)
    cast = X.dtype.type
    n, d = X.shape
    signs0 = np.where(rng.random((n, d)) < 0.5, -1.0, 1.0)
    X_best = np.ascontiguousarray(X + (eps * signs0).astype(X.dtype))
    kernels.project_linf(X, X_best, cast(eps), cast(lower), cast(upper), use_bounds)
    margin = np.empty(n, X.dtype)
    kernels.margins(target.logits(X_best), y, margin)
    queries = np.ones(n, np.int64)
    starts, widths, signs = _schedule(rng, options.n_queries, options.p_init, d)
    if not target.fast:
        _square_numpy(target, X, y, X_best, margin, starts, widths, signs.astype(X.dtype), eps,
                      options.bounds, queries)
        return X_best, margin, queries
    model = target.model
    signs = signs.astype(X.dtype)

    def work(lo, hi):
        kernels.square_rows(model.params, model.sizes, X[lo:hi], y[lo:hi], X_best[lo:hi],
                            margin[lo:hi], starts, widths, signs, cast(eps), cast(lower),
                            cast(upper), use_bounds, model.workspace(hi - lo).acts,
                            queries[lo:hi])

    over_chunks(work, n, options.n_threads, row_flops(target, options.n_queries))
    return X_best, margin, queries


@single_blas_thread
def square_general(target, X, y, radii, options: SquareOptions, rng):
    """The Square attack at every radius (one after the other)."""
    results = []
    clean = np.empty(X.shape[0], X.dtype)
    kernels.margins(target.logits(X), y, clean)
    for eps in radii:
        result = X.copy()
        if eps > 0:
            # as in the reference code, points misclassified when clean stay clean
            margin = np.where(clean > 0, np.inf, -np.inf)
            for _ in range(options.n_restarts):
                rows = np.flatnonzero(margin > 0)
                if rows.size == 0:
                    break
                X_best, margin_new, _ = _single_run(target, np.ascontiguousarray(X[rows]),
                                                    np.ascontiguousarray(y[rows]), eps,
                                                    options, rng)
                better = margin_new < margin[rows]
                result[rows[better]] = X_best[better]
                margin[rows[better]] = margin_new[better]
        results.append(result)
    return results


def square(model, X, y, eps: float, *, n_queries: int = 5000, p_init: float = 0.8,
           n_restarts: int = 1, bounds=None, seed=None, n_threads=None) -> np.ndarray:
    """The Square attack (Andriushchenko et al., 2020) at one L-infinity radius; see
    the module docstring and :class:`SquareOptions`.

    Returns
    -------
    X_adv : ndarray of shape (n_samples, n_features), in the model's dtype
    """
    eps = check_eps(eps)
    options = SquareOptions(n_queries=n_queries, p_init=p_init, n_restarts=n_restarts,
                            bounds=bounds, n_threads=n_threads)
    target = AttackedModel(model)
    X = target.check_input(X)
    y = target.check_labels(y, X)
    rng = as_generator(seed)
    return square_general(target, X, y, (eps,), options, rng)[0]


def run(model, X, y, radii, options: SquareOptions, rng) -> list[np.ndarray]:
    """Registry entry."""
    return square_general(AttackedModel(model), X, y, radii, options, rng)
