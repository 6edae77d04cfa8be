"""Compute-optimal model and data sizes, and the overhead of a smaller model.

Under the constraint FLOPs = k N D a fitted law gives, for each budget F, the
model size N* and data size D* with the lowest predicted loss L*.

* Approach 2 has the closed form of the paper's Eq. 4 (:func:`approach2_optimal`).
* Approach 3 has none at finite quality; :func:`numeric_optimal` searches
  along N = F / (k D) with a bounded golden-section search in log D.  Along
  that line ``A/N^alpha`` is ``exp`` of a linear function of log D and the data
  term of Eq. 5 is convex in log D too, so the loss is unimodal and the search
  cannot stop at a wrong local minimum.

The compute overhead of a model omega_N times N* (paper, Section 3.3.2) is the
FLOPs multiple omega_N * omega_D needed to reach the same predicted loss,
where omega_D multiplies D*.  Approach 2 has the closed form of Eq. 6
(:func:`approach2_overhead`); :func:`numeric_overhead` solves the same
equation by bisection for any law.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robnp.errors import ConfigError
from robnp.scaling.laws import LawInputs

_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0


@dataclass(frozen=True)
class Allocation:
    """Compute-optimal sizes at a set of budgets; arrays of shape (n_budgets,), float64."""

    flops: np.ndarray
    N: np.ndarray
    D: np.ndarray
    loss: np.ndarray
    quality: float
    flops_per_nd: float


@dataclass(frozen=True)
class Overhead:
    """Data multiple and compute overhead of model sizes omega_N * N*.

    Attributes
    ----------
    omega_N, omega_D, overhead : ndarray of shape (n,)
        Model multiple, the data multiple that keeps the predicted loss at
        L*, and the FLOPs multiple omega_N * omega_D.  Where no data size
        reaches L* (the model is too small: even unlimited data leaves its
        loss above L*), omega_D and overhead are ``inf``.
    feasible : ndarray of shape (n,), bool
        Whether an omega_D exists.
    flops, quality, N_star, D_star, loss_star : float
        The budget and quality the overhead is measured at, and the optimum.
    """

    omega_N: np.ndarray
    omega_D: np.ndarray
    overhead: np.ndarray
    feasible: np.ndarray
    flops: float
    quality: float
    N_star: float
    D_star: float
    loss_star: float


def check_budget(flops, flops_per_nd):
    """``flops`` as a float64 array of budgets and ``flops_per_nd`` as a float, each
    finite and > 0, with every budget above ``flops_per_nd`` (at least one N D);
    a ConfigError otherwise. Shared with :mod:`robnp.scaling.envelope`."""
    flops = np.atleast_1d(np.asarray(flops, dtype=np.float64))
    if not np.all(np.isfinite(flops) & (flops > 0)):
        bad = flops[~(np.isfinite(flops) & (flops > 0))][0]
        raise ConfigError(f"FLOPs budget must be finite and > 0, got {float(bad)!r}")
    k = float(flops_per_nd)
    if not (np.isfinite(k) and k > 0):
        raise ConfigError(f"flops_per_nd must be finite and > 0, got {flops_per_nd!r}")
    if np.any(flops / k <= 1.0):
        raise ConfigError(f"FLOPs budget {float(flops.min())!r} is too small for flops_per_nd={k!r} "
                          "(need FLOPs / k > 1 so that N and D can both be >= 1)")
    return flops, k


def _check_quality(quality):
    q = float(quality)
    if not q > 0:
        raise ConfigError(f"quality must be > 0 (inf allowed), got {quality!r}")
    return q


def approach2_optimal(law, flops, flops_per_nd, quality=np.inf) -> Allocation:
    """N*, D*, L* of Approach 2 from the paper's Eq. 4.

    ``N* = G (F/k)^a``, ``D* = G^-1 (F/k)^b`` with
    ``G = (alpha A / (beta B'))^(1/(alpha+beta))``, ``a = beta/(alpha+beta)``,
    ``b = alpha/(alpha+beta)``.

    Parameters
    ----------
    law : Approach2Law
    flops : float or array_like of shape (n_budgets,)
    flops_per_nd : float
        k in FLOPs = k N D.
    quality : float
        Data quality (``inf`` for perfect data).

    Returns
    -------
    Allocation
    """
    flops, k = check_budget(flops, flops_per_nd)
    q = _check_quality(quality)
    if not (law.alpha > 0 and law.beta > 0):
        raise ConfigError(f"compute-optimal sizes need alpha > 0 and beta > 0, "
                          f"got alpha={law.alpha!r}, beta={law.beta!r}")
    G = float(law.G(q))
    C = flops / k
    N = G * C ** law.a
    D = C ** law.b / G
    return Allocation(flops=flops, N=N, D=D, loss=law.loss(N, D, q), quality=q, flops_per_nd=k)


def paired_log_loss(log_loss_fn, thetas, log_N, log_D, quality, *, block=32):
    """log L of law r at its own points: row r of ``thetas`` with row r of the sizes.

    The ``*_log_loss`` functions evaluate every parameter vector at every
    point.  Blocks of ``block`` laws are evaluated against the points of the
    whole block and the matching diagonal blocks kept, so the one
    implementation of each law also serves many laws at once.

    Parameters
    ----------
    log_loss_fn : callable
        ``approach2_log_loss`` or ``approach3_log_loss``.
    thetas : ndarray of shape (R, P)
    log_N, log_D : ndarray of shape (R, m)
    quality : float

    Returns
    -------
    ndarray of shape (R, m)
    """
    R, m = log_N.shape
    out = np.empty((R, m))
    for start in range(0, R, block):
        stop = min(start + block, R)
        r = stop - start
        x = LawInputs.from_logs(log_N[start:stop].reshape(-1), log_D[start:stop].reshape(-1), quality)
        log_loss, _ = log_loss_fn(thetas[start:stop], x)
        out[start:stop] = log_loss.reshape(r, r, m)[np.arange(r), np.arange(r)]
    return out


def numeric_optimal_batch(log_loss_fn, thetas, flops, flops_per_nd, quality=np.inf, *, n_iter=80):
    """Compute-optimal sizes of R laws at m budgets by golden-section search.

    A bounded search over log D in ``[0, log(F/k)]`` (both N and D at least
    1) along N = F / (k D), for all laws and budgets at once.

    Parameters
    ----------
    log_loss_fn : callable
        ``approach2_log_loss`` or ``approach3_log_loss``.
    thetas : ndarray of shape (R, P)
        Fitted parameter vectors.
    flops : array_like of shape (m,)
    flops_per_nd : float
    quality : float
    n_iter : int
        Golden-section steps; each shrinks the interval by 0.618, so 80 steps
        reach the float64 resolution of log D for any realistic budget.

    Returns
    -------
    N, D, loss : ndarray of shape (R, m)
    """
    flops, k = check_budget(flops, flops_per_nd)
    q = _check_quality(quality)
    thetas = np.atleast_2d(np.asarray(thetas, dtype=np.float64))
    log_c = np.broadcast_to(np.log(flops / k), (thetas.shape[0], flops.size))

    def log_loss_at(log_d):
        return paired_log_loss(log_loss_fn, thetas, log_c - log_d, log_d, q)

    lo, hi = np.zeros_like(log_c), log_c.copy()
    x1 = hi - _GOLDEN * (hi - lo)
    x2 = lo + _GOLDEN * (hi - lo)
    f1, f2 = log_loss_at(x1), log_loss_at(x2)
    for _ in range(n_iter):
        left = f1 <= f2            # minimum lies in [lo, x2]
        hi = np.where(left, x2, hi)
        lo = np.where(left, lo, x1)
        new_x1 = np.where(left, hi - _GOLDEN * (hi - lo), x2)
        new_x2 = np.where(left, x1, lo + _GOLDEN * (hi - lo))
        x1, x2 = new_x1, new_x2
        # Only one of the two points is new each step; re-evaluating both keeps
        # the vectorized code simple and costs one extra loss evaluation.
        f1, f2 = log_loss_at(x1), log_loss_at(x2)
    log_d = 0.5 * (lo + hi)
    return np.exp(log_c - log_d), np.exp(log_d), np.exp(log_loss_at(log_d))


def numeric_optimal(law, flops, flops_per_nd, quality=np.inf, *, n_iter=80) -> Allocation:
    """N*, D*, L* of one law by a bounded search along N = F / (k D) (paper, Appendix F.3.2).

    See :func:`numeric_optimal_batch`.  Works for any law whose loss is
    unimodal along the line, which holds for Approaches 2 and 3.

    Parameters
    ----------
    law : Approach2Law or Approach3Law
    flops : float or array_like of shape (n_budgets,)
    flops_per_nd : float
    quality : float
    n_iter : int

    Returns
    -------
    Allocation
    """
    flops, k = check_budget(flops, flops_per_nd)
    q = _check_quality(quality)
    N, D, loss = numeric_optimal_batch(law.log_loss_fn, law.theta()[None], flops, k, q, n_iter=n_iter)
    return Allocation(flops=flops, N=N[0], D=D[0], loss=loss[0], quality=q, flops_per_nd=k)


def local_exponents(optimal, flops, *, step=0.05):
    """Local a = dlog N*/dlog F and b = dlog D*/dlog F by central differences.

    Parameters
    ----------
    optimal : callable
        ``optimal(flops) -> Allocation``.
    flops : float or array_like of shape (n_budgets,)
    step : float
        Half-width of the difference in natural-log FLOPs.

    Returns
    -------
    a, b : ndarray of shape (n_budgets,)
    """
    flops = np.atleast_1d(np.asarray(flops, dtype=np.float64))
    up, down = optimal(flops * np.exp(step)), optimal(flops * np.exp(-step))
    a = (np.log(up.N) - np.log(down.N)) / (2 * step)
    b = (np.log(up.D) - np.log(down.D)) / (2 * step)
    return a, b


def _check_omega(omega_N):
    omega = np.atleast_1d(np.asarray(omega_N, dtype=np.float64))
    if not np.all(np.isfinite(omega) & (omega > 0)):
        bad = omega[~(np.isfinite(omega) & (omega > 0))][0]
        raise ConfigError(f"omega_N must be finite and > 0, got {float(bad)!r}")
    return omega


def approach2_overhead(law, omega_N, flops, flops_per_nd, quality=np.inf) -> Overhead:
    """omega_D and the compute overhead from the paper's Eq. 6.

    ``omega_D = (1 - (omega_N^-alpha - 1) A N*^-alpha / (B' D*^-beta))^(-1/beta)``;
    where the bracket is <= 0 no data size keeps the loss at L*.

    Parameters
    ----------
    law : Approach2Law
    omega_N : float or array_like of shape (n,)
        Model size as a multiple of N*.
    flops : float
        Budget at which N*, D* are taken.
    flops_per_nd : float
    quality : float

    Returns
    -------
    Overhead
    """
    omega = _check_omega(omega_N)
    opt = approach2_optimal(law, flops, flops_per_nd, quality)
    n_star, d_star = float(opt.N[0]), float(opt.D[0])
    ratio = law.A * n_star ** -law.alpha / (law.B_eff(opt.quality) * d_star ** -law.beta)
    base = 1.0 - (omega ** -law.alpha - 1.0) * ratio
    feasible = base > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        omega_D = np.where(feasible, np.where(feasible, base, 1.0) ** (-1.0 / law.beta), np.inf)
    return Overhead(omega_N=omega, omega_D=omega_D, overhead=omega * omega_D, feasible=feasible,
                    flops=float(opt.flops[0]), quality=opt.quality, N_star=n_star, D_star=d_star,
                    loss_star=float(opt.loss[0]))


def numeric_overhead(law, omega_N, flops, flops_per_nd, quality=np.inf, *, optimal=None,
                     n_iter=200) -> Overhead:
    """omega_D and the compute overhead by solving L(omega_N N*, D) = L* for D.

    The data term decreases monotonically in D, so the root is unique when it
    exists; it exists exactly when the loss with unlimited data
    (``law.loss_data_limit``) is below L*.  The root is bracketed by doubling
    and then found by bisection in log D, for all omega_N at once.

    Parameters
    ----------
    law : Approach2Law or Approach3Law
    omega_N : float or array_like of shape (n,)
    flops : float
    flops_per_nd : float
    quality : float
    optimal : Allocation, optional
        The optimum at ``flops``; computed with :func:`numeric_optimal` if absent.
    n_iter : int
        Bisection steps.

    Returns
    -------
    Overhead
    """
    omega = _check_omega(omega_N)
    q = _check_quality(quality)
    opt = optimal if optimal is not None else numeric_optimal(law, flops, flops_per_nd, q)
    n_star, d_star, loss_star = float(opt.N[0]), float(opt.D[0]), float(opt.loss[0])
    N = omega * n_star
    feasible = law.loss_data_limit(N, q) < loss_star
    excess = lambda log_d: law.loss(N, np.exp(log_d), q) - loss_star   # decreasing in log_d

    # Bracket: lo where the loss is above L*, hi where it is below.
    lo = np.full(omega.shape, np.log(d_star))
    hi = lo.copy()
    width = 1.0
    for _ in range(200):
        need_hi = feasible & (excess(hi) > 0)
        need_lo = feasible & (excess(lo) < 0)
        if not (need_hi.any() or need_lo.any()):
            break
        hi = np.where(need_hi, hi + width, hi)
        lo = np.where(need_lo, lo - width, lo)
        width *= 2.0
    for _ in range(n_iter):
        mid = 0.5 * (lo + hi)
        above = excess(mid) > 0
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    omega_D = np.where(feasible, np.exp(0.5 * (lo + hi)) / d_star, np.inf)
    return Overhead(omega_N=omega, omega_D=omega_D, overhead=omega * omega_D, feasible=feasible,
                    flops=float(opt.flops[0]), quality=q, N_star=n_star, D_star=d_star,
                    loss_star=loss_star)
