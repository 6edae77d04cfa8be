"""Numerical pieces of the parametric fits: the Huber loss and a batched L-BFGS.

The multi-start grid of Hoffmann et al. (2022, Appendix D.2) has thousands of
starting points (5^5 = 3125 for Approach 2).  Running SciPy's L-BFGS-B once
per start costs tens of milliseconds each, so robnp first runs *all* starts at
once with :func:`batched_lbfgs`: the same L-BFGS iteration, but every array
carries a leading batch axis, so one objective evaluation is one NumPy
expression over an (S, n_points) array.  The few best distinct end points are
then polished with SciPy's L-BFGS-B at tight tolerances (see ``fit.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def huber(r, delta):
    """Huber loss of residuals and its derivative.

    Parameters
    ----------
    r : ndarray
        Residuals (any shape).
    delta : float
        Transition point: quadratic for ``|r| <= delta``, linear beyond.

    Returns
    -------
    value : ndarray, same shape as ``r``
    derivative : ndarray, same shape as ``r``
        ``d value / d r``, i.e. ``r`` clipped to ``[-delta, delta]``.
    """
    # With c = clip(r, -delta, delta): c * (r - c/2) is r^2/2 inside the band
    # and delta * (|r| - delta/2) outside it, in four array operations.
    c = np.clip(r, -delta, delta)
    return c * (r - 0.5 * c), c


@dataclass(frozen=True)
class BatchedResult:
    """End points of :func:`batched_lbfgs`.

    Attributes
    ----------
    x : ndarray of shape (S, P)
    fun : ndarray of shape (S,)
    grad : ndarray of shape (S, P)
    n_iter : ndarray of shape (S,), int
    converged : ndarray of shape (S,), bool
        The projected gradient fell below ``gtol`` or the objective stopped
        decreasing (relative change below ``ftol``) before ``max_iter``.
    """

    x: np.ndarray
    fun: np.ndarray
    grad: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray


def projected_gradient(x, g, lower, upper):
    """The gradient with components that point out of the box set to 0.

    At a lower bound a positive gradient (descent would go below it) is
    dropped, and likewise at an upper bound.  Shapes: x, g (S, P); bounds (P,).
    """
    pg = g.copy()
    pg[(x <= lower) & (g > 0)] = 0.0
    pg[(x >= upper) & (g < 0)] = 0.0
    return pg


def _rowdot(a, b):
    return np.einsum("ij,ij->i", a, b)


def batched_lbfgs(fun, x0, lower, upper, *, memory=10, max_iter=1000, gtol=1e-10,
                  ftol=1e-12, max_backtracks=40):
    """Minimize S independent box-constrained problems with L-BFGS at once.

    Each problem keeps its own curvature history and step size; problems leave
    the batch as they converge, so the cost of an iteration falls as the batch
    empties.  The direction is the usual L-BFGS two-loop recursion (Nocedal &
    Wright, Algorithm 7.4), the step a backtracking Armijo line search on the
    projection of the trial point into the box.  Components of the direction
    that would push a variable further into an active bound are removed; a
    direction that is not a descent direction is replaced by the projected
    steepest descent direction and the history is reset.  A curvature pair is
    stored only when ``s.y > 0``, which keeps the implicit Hessian positive
    definite.

    Parameters
    ----------
    fun : callable
        ``fun(X, rows) -> (f, G)`` with ``X`` of shape (m, P), ``rows`` the
        indices (shape (m,)) of the problems those rows belong to, ``f`` of
        shape (m,) and ``G`` of shape (m, P).
    x0 : ndarray of shape (S, P)
        Starting points, one row per problem.
    lower, upper : ndarray of shape (P,)
        Box bounds shared by all problems.
    memory : int
        Number of curvature pairs kept.
    max_iter : int
        Iteration limit per problem.
    gtol : float
        Stop when the largest projected-gradient component is below this.
    ftol : float
        Stop when an iteration lowers the objective by less than
        ``ftol * max(|f|, 1e-300)``.
    max_backtracks : int
        Halvings of the step before a line search is declared failed (the
        problem then stops, as converged if its gradient is already small).

    Returns
    -------
    BatchedResult
    """
    lower = np.asarray(lower, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)
    X = np.clip(np.array(x0, dtype=np.float64), lower, upper)
    S, P = X.shape
    all_rows = np.arange(S)
    F, G = fun(X, all_rows)
    F = np.array(F, dtype=np.float64)
    G = np.array(G, dtype=np.float64)
    s_hist = np.zeros((S, memory, P))
    y_hist = np.zeros((S, memory, P))
    rho_hist = np.zeros((S, memory))
    n_pairs = np.zeros(S, dtype=np.int64)      # pairs stored since the last reset
    n_iter = np.zeros(S, dtype=np.int64)
    converged = np.zeros(S, dtype=bool)
    active = np.isfinite(F)

    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        x, f, g = X[idx], F[idx], G[idx]
        pg = projected_gradient(x, g, lower, upper)
        small = np.abs(pg).max(axis=1) < gtol
        if np.any(small):
            converged[idx[small]] = True
            active[idx[small]] = False
            keep = ~small
            idx, x, f, g, pg = idx[keep], x[keep], f[keep], g[keep], pg[keep]
            if idx.size == 0:
                break

        # Two-loop recursion, newest pair first; slots beyond n_pairs are unused.
        k = n_pairs[idx]
        q = pg.copy()
        coef = np.zeros((idx.size, memory))
        for j in range(memory):
            slot = (k - 1 - j) % memory
            used = j < np.minimum(k, memory)
            s_j, y_j = s_hist[idx, slot], y_hist[idx, slot]
            c = np.where(used, rho_hist[idx, slot] * _rowdot(s_j, q), 0.0)
            coef[:, j] = c
            q -= c[:, None] * y_j
        newest = (k - 1) % memory
        s_n, y_n = s_hist[idx, newest], y_hist[idx, newest]
        # Initial Hessian scale: s.y / y.y from the newest pair, or a unit-length
        # first step when there is no history yet.
        gamma = np.where(k > 0, _rowdot(s_n, y_n) / np.maximum(_rowdot(y_n, y_n), 1e-300),
                         1.0 / np.maximum(np.abs(pg).sum(axis=1), 1e-300))
        q *= gamma[:, None]
        for j in reversed(range(memory)):
            slot = (k - 1 - j) % memory
            used = j < np.minimum(k, memory)
            s_j, y_j = s_hist[idx, slot], y_hist[idx, slot]
            c2 = np.where(used, rho_hist[idx, slot] * _rowdot(y_j, q), 0.0)
            q += np.where(used, coef[:, j] - c2, 0.0)[:, None] * s_j
        d = -q
        # Do not push variables that sit on a bound further into it.
        d[((x <= lower) & (d < 0)) | ((x >= upper) & (d > 0))] = 0.0
        slope = _rowdot(g, d)
        bad = ~(slope < 0)
        if np.any(bad):
            d[bad] = -pg[bad] / np.maximum(np.abs(pg[bad]).sum(axis=1), 1e-300)[:, None]
            n_pairs[idx[bad]] = 0

        # Backtracking Armijo search along the projected path.
        step = np.ones(idx.size)
        pending = np.ones(idx.size, dtype=bool)
        x_new, f_new, g_new = x.copy(), f.copy(), g.copy()
        for _ in range(max_backtracks):
            p = np.flatnonzero(pending)
            if p.size == 0:
                break
            x_try = np.clip(x[p] + step[p, None] * d[p], lower, upper)
            f_try, g_try = fun(x_try, idx[p])
            decrease = _rowdot(g[p], x_try - x[p])
            ok = np.isfinite(f_try) & (f_try <= f[p] + 1e-4 * decrease) & (decrease < 0)
            done = p[ok]
            x_new[done], f_new[done], g_new[done] = x_try[ok], f_try[ok], g_try[ok]
            pending[done] = False
            step[p[~ok]] *= 0.5
        failed = pending

        s_vec = x_new - x
        y_vec = g_new - g
        sy = _rowdot(s_vec, y_vec)
        store = ~failed & (sy > 1e-12 * np.sqrt(_rowdot(s_vec, s_vec) * _rowdot(y_vec, y_vec)))
        rows = idx[store]
        slot = n_pairs[rows] % memory
        s_hist[rows, slot] = s_vec[store]
        y_hist[rows, slot] = y_vec[store]
        rho_hist[rows, slot] = 1.0 / sy[store]
        n_pairs[rows] += 1

        moved = ~failed
        X[idx[moved]], F[idx[moved]], G[idx[moved]] = x_new[moved], f_new[moved], g_new[moved]
        n_iter[idx] += 1
        stalled = moved & (f - f_new <= ftol * np.maximum(np.abs(f), 1e-300))
        finished = stalled | failed
        if np.any(failed):
            # A failed line search at a point with a tiny gradient is the
            # numerical end of the road, not a failure of the fit.
            pg_f = projected_gradient(x[failed], g[failed], lower, upper)
            converged[idx[failed]] = np.abs(pg_f).max(axis=1) < 1e3 * gtol
        converged[idx[stalled]] = True
        active[idx[finished]] = False

    return BatchedResult(x=X, fun=F, grad=G, n_iter=n_iter, converged=converged)
