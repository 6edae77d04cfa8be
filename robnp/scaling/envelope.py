"""Approach 1: the envelope of training curves (paper, Section 3.2.1 and Appendix F.1).

After Hoffmann et al. (2022, Approach 1): at each FLOPs value on a log grid,
take the lowest loss any training curve reaches there and the (N, D) that
reaches it; then fit the power laws ``N* ~ F^a``, ``D* ~ F^b`` and
``L* ~ F^c`` by least squares in log space.

Each curve is interpolated linearly in (log FLOPs, log loss) only within its
own FLOPs range: no curve is extrapolated.  Three rules keep the regressions
honest:

1. *Only improving points* (the paper's set Q in Appendix F.1): a grid point
   is kept only if no smaller budget already reached a lower loss.  This drops
   the flat stretches and upticks where the runs are sparse.
2. *Edge censoring*: at a budget where the winning curve has the smallest or
   the largest N of all curves covering that budget, the true optimum may be a
   model size that was not trained (the grid is cut off there), so N* is
   censored rather than observed.  Such points are dropped.  This removes the
   envelope's low-FLOPs edge (where only the smallest models have data) and
   its high-FLOPs edge (only the largest), which would otherwise flatten N*.
3. *One vote per run*: a grid uniform in log FLOPs gives a run that wins a
   long stretch many points, all with the same N, which drags the slope of N*
   toward 0.  By default each winning run carries the same total weight
   (each of its points weighs 1 / (points it wins)).

Because N* and D* come from the same points with the same weights and
N D = F / k along every run, the fitted exponents satisfy a + b = 1 when the
FLOPs are k N D.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robnp.errors import ConfigError, DataError
from robnp.scaling.allocation import Allocation, check_budget
from robnp.scaling.table import RunTable

WEIGHTINGS = ("per-run", "uniform")

# Reasons a grid point is not used in the regressions.
KEPT, NOT_COVERED, NOT_IMPROVING, EDGE = 0, 1, 2, 3


@dataclass(frozen=True)
class EnvelopeConfig:
    """Settings of Approach 1.

    Parameters
    ----------
    n_grid : int
        Log-spaced FLOPs values (the paper uses 1000).
    censor_edges : bool
        Drop points whose winner is the smallest or largest covering model.
    weighting : {"per-run", "uniform"}
        Equal total weight per winning run, or equal weight per grid point.
    min_points : int
        Fewest envelope points a fit may use.
    """

    n_grid: int = 1000
    censor_edges: bool = True
    weighting: str = "per-run"
    min_points: int = 3

    def __post_init__(self):
        if int(self.n_grid) < 10:
            raise ConfigError(f"n_grid must be >= 10, got {self.n_grid!r}")
        if self.weighting not in WEIGHTINGS:
            raise ConfigError(f"weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
        if int(self.min_points) < 2:
            raise ConfigError(f"min_points must be >= 2, got {self.min_points!r}")


@dataclass(frozen=True)
class PowerLaw:
    """``y = coef * x**exponent`` fitted by weighted least squares in log space."""

    coef: float
    exponent: float
    r2: float

    def __call__(self, x):
        return self.coef * np.asarray(x, dtype=np.float64) ** self.exponent


def fit_power_law(x, y, weights=None) -> PowerLaw:
    """Weighted least squares of log y on log x.

    Parameters
    ----------
    x, y : array_like of shape (n,)
        Positive values.
    weights : array_like of shape (n,), optional

    Returns
    -------
    PowerLaw
    """
    lx, ly = np.log(np.asarray(x, dtype=float)), np.log(np.asarray(y, dtype=float))
    w = np.ones_like(lx) if weights is None else np.asarray(weights, dtype=float)
    w = w / w.sum()
    mx, my = w @ lx, w @ ly
    sxx = w @ (lx - mx) ** 2
    if sxx <= 0:
        raise DataError("power-law fit needs at least two distinct x values")
    slope = (w @ ((lx - mx) * (ly - my))) / sxx
    intercept = my - slope * mx
    resid = ly - (intercept + slope * lx)
    syy = w @ (ly - my) ** 2
    r2 = 1.0 - (w @ resid ** 2) / syy if syy > 0 else 1.0
    return PowerLaw(coef=float(np.exp(intercept)), exponent=float(slope), r2=float(r2))


@dataclass(frozen=True)
class EnvelopeFit:
    """Result of Approach 1.

    Attributes
    ----------
    flops : ndarray of shape (n_grid,)
        The log grid of budgets.
    loss, N, D : ndarray of shape (n_grid,)
        Envelope loss and the (N, D) reaching it; NaN where no curve covers.
    winner : ndarray of shape (n_grid,), int
        Index of the winning curve (into ``curve_labels``), -1 if none.
    status : ndarray of shape (n_grid,), int
        ``KEPT``, ``NOT_COVERED``, ``NOT_IMPROVING`` or ``EDGE``.
    weights : ndarray of shape (n_grid,)
        Regression weight of each point (0 where not kept).
    N_star, D_star, L_star : PowerLaw
        N*(F), D*(F), L*(F).
    curve_labels : ndarray of shape (n_curves,), str
    curve_N : ndarray of shape (n_curves,)
    quality : float
        Quality level the envelope was built from.
    flops_per_nd : float
    n_skipped_curves : int
        Curves with fewer than two distinct FLOPs values (not interpolable).
    """

    flops: np.ndarray
    loss: np.ndarray
    N: np.ndarray
    D: np.ndarray
    winner: np.ndarray
    status: np.ndarray
    weights: np.ndarray
    N_star: PowerLaw
    D_star: PowerLaw
    L_star: PowerLaw
    curve_labels: np.ndarray
    curve_N: np.ndarray
    quality: float
    flops_per_nd: float
    n_skipped_curves: int

    @property
    def a(self) -> float:
        """Exponent of N* ~ FLOPs^a."""
        return self.N_star.exponent

    @property
    def b(self) -> float:
        """Exponent of D* ~ FLOPs^b."""
        return self.D_star.exponent

    @property
    def n_kept(self) -> int:
        return int(np.sum(self.status == KEPT))

    def optimal(self, flops) -> Allocation:
        """N*, D*, L* at the budget(s) ``flops`` from the three power laws."""
        flops, k = check_budget(flops, self.flops_per_nd)
        return Allocation(flops=flops, N=self.N_star(flops), D=self.D_star(flops),
                          loss=self.L_star(flops), quality=self.quality, flops_per_nd=k)


def select_quality(table: RunTable, quality=None) -> tuple[RunTable, float]:
    """Rows of one quality level: ``quality``, or the highest finite level.

    Without finite levels (no quality column) all rows are used.

    Approach 1 does not model quality, so the paper fits it to one data
    source at a time.
    """
    levels = table.quality_levels()
    if quality is None:
        q = table.reference_quality()
    else:
        match = levels[np.isclose(levels, quality, rtol=1e-9)] if np.isfinite(quality) else levels[np.isinf(levels)]
        if match.size == 0:
            raise ConfigError(f"quality {quality!r} is not a level of the table "
                              f"(levels: {', '.join(f'{v:g}' for v in levels)})")
        q = float(match[0])
    return table.take(table.quality == q), q


def fit_envelope(table: RunTable, *, quality=None, config: EnvelopeConfig | None = None) -> EnvelopeFit:
    """Approach 1 on the rows of one quality level.

    Parameters
    ----------
    table : RunTable
        Curves are runs (``run`` column) or, without one, rows of equal N.
    quality : float, optional
        Quality level to use; default the highest finite level, or all rows
        when every row has infinite quality.
    config : EnvelopeConfig, optional

    Returns
    -------
    EnvelopeFit

    Raises
    ------
    DataError
        Fewer than two interpolable curves, a run with several N, or fewer
        than ``config.min_points`` usable envelope points.
    """
    config = config or EnvelopeConfig()
    sub, q = select_quality(table, quality)
    codes = sub.curve_codes()
    labels_all = sub.run if sub.has_run else np.asarray([f"N={n:g}" for n in sub.N])

    curves = []  # (label, N, log_f, log_loss, log_D)
    skipped = 0
    for c in np.unique(codes):
        rows = np.flatnonzero(codes == c)
        n_values = np.unique(sub.N[rows])
        if n_values.size > 1:
            raise DataError(f"run {str(labels_all[rows[0]])!r} has {n_values.size} different values of N; "
                            "the checkpoints of one run must share N")
        log_f = np.log(sub.flops[rows])
        order = np.lexsort((sub.loss[rows], log_f))
        log_f, rows = log_f[order], rows[order]
        first = np.concatenate([[True], np.diff(log_f) > 0])   # duplicate FLOPs: keep the lowest loss
        if first.sum() < 2:
            skipped += 1
            continue
        rows, log_f = rows[first], log_f[first]
        curves.append((str(labels_all[rows[0]]), float(n_values[0]), log_f,
                       np.log(sub.loss[rows]), np.log(sub.D[rows])))
    if len(curves) < 2:
        raise DataError(f"Approach 1 needs at least 2 training curves with 2 or more FLOPs values each; "
                        f"found {len(curves)} at quality {q:g}"
                        + (" (add a 'run' column to group checkpoints into curves)" if not sub.has_run else ""))

    lo = min(c[2][0] for c in curves)
    hi = max(c[2][-1] for c in curves)
    log_grid = np.linspace(lo, hi, int(config.n_grid))
    n_curves = len(curves)
    curve_N = np.array([c[1] for c in curves])
    loss_mat = np.full((n_curves, log_grid.size), np.inf)
    logd_mat = np.full((n_curves, log_grid.size), np.nan)
    for i, (_, _, log_f, log_l, log_d) in enumerate(curves):
        inside = (log_grid >= log_f[0]) & (log_grid <= log_f[-1])   # no extrapolation
        loss_mat[i, inside] = np.interp(log_grid[inside], log_f, log_l)
        logd_mat[i, inside] = np.interp(log_grid[inside], log_f, log_d)

    covered = np.isfinite(loss_mat)
    any_cover = covered.any(axis=0)
    winner = np.where(any_cover, np.argmin(loss_mat, axis=0), -1)
    cols = np.arange(log_grid.size)
    env_log_loss = np.where(any_cover, loss_mat[np.maximum(winner, 0), cols], np.nan)
    env_N = np.where(any_cover, curve_N[np.maximum(winner, 0)], np.nan)
    env_D = np.where(any_cover, np.exp(logd_mat[np.maximum(winner, 0), cols]), np.nan)

    status = np.full(log_grid.size, KEPT)
    status[~any_cover] = NOT_COVERED
    # Paper's set Q: no smaller budget has a lower loss.
    prev_best = np.concatenate([[np.inf], np.minimum.accumulate(np.where(any_cover, env_log_loss, np.inf))[:-1]])
    status[any_cover & ~(env_log_loss < prev_best)] = NOT_IMPROVING
    if config.censor_edges:
        n_cov = np.where(covered, curve_N[:, None], np.nan)
        with np.errstate(all="ignore"):
            smallest = np.nanmin(np.where(covered, n_cov, np.inf), axis=0)
            largest = np.nanmax(np.where(covered, n_cov, -np.inf), axis=0)
        edge = any_cover & ((env_N <= smallest) | (env_N >= largest))
        status[(status == KEPT) & edge] = EDGE

    kept = status == KEPT
    if kept.sum() < config.min_points:
        raise DataError(
            f"Approach 1 has {int(kept.sum())} usable envelope points at quality {q:g} "
            f"(need {config.min_points}): {int(np.sum(status == EDGE))} were won by the smallest or "
            f"largest model covering their budget and {int(np.sum(status == NOT_IMPROVING))} did not "
            "improve on smaller budgets; add runs whose sizes bracket the optimum")
    if np.unique(env_N[kept]).size < 2:
        raise DataError(f"Approach 1: one model size (N={env_N[kept][0]:g}) wins every usable envelope "
                        "point, so the growth of N* with FLOPs cannot be estimated; add model sizes")

    weights = np.zeros(log_grid.size)
    if config.weighting == "per-run":
        for w in np.unique(winner[kept]):
            mask = kept & (winner == w)
            weights[mask] = 1.0 / mask.sum()
    else:
        weights[kept] = 1.0
    flops = np.exp(log_grid)
    return EnvelopeFit(
        flops=flops, loss=np.exp(env_log_loss), N=env_N, D=env_D, winner=winner, status=status,
        weights=weights,
        N_star=fit_power_law(flops[kept], env_N[kept], weights[kept]),
        D_star=fit_power_law(flops[kept], env_D[kept], weights[kept]),
        L_star=fit_power_law(flops[kept], np.exp(env_log_loss[kept]), weights[kept]),
        curve_labels=np.asarray([c[0] for c in curves]), curve_N=curve_N, quality=q,
        flops_per_nd=sub.flops_per_nd, n_skipped_curves=skipped,
    )
