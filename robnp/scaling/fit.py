"""Fitting Approaches 2 and 3: Huber loss on log residuals, multi-start L-BFGS.

The procedure is that of Hoffmann et al. (2022, Appendix D.2), used by the
paper for both parametric approaches (Appendices F.2.1 and F.3.1):

1. predict ``log L`` as a log-sum-exp of the law's terms (``laws.py``);
2. score the residuals ``log L_pred - log L`` with the Huber loss, delta = 1e-3;
3. minimize with L-BFGS from every point of a grid of initial values and keep
   the best end point.

Besiroglu et al. (2024) found that the original fit stopped early: the loss
was averaged over points, which makes it tiny, and the optimizer's default
tolerances then declare convergence long before the optimum.  robnp therefore

* sums the Huber loss over points instead of averaging it;
* supplies the analytic gradient (``*_log_loss`` vector-Jacobian products),
  checked against central differences in the tests;
* polishes the best grid end points with SciPy's L-BFGS-B at ``ftol=1e-15``,
  ``gtol=1e-12`` and a high iteration limit; and
* reports convergence (:class:`Convergence`): the largest projected-gradient
  component at the end compared with a threshold one millionth of the
  gradient's natural scale, the optimizer's message, and how many grid starts
  reached the best objective.

The grid is run as one vectorized batch (``optim.batched_lbfgs``) before the
polish, which keeps the paper's 3125-point grid for Approach 2 fast.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

from robnp.errors import ConfigError, DataError
from robnp.scaling.allocation import (
    Allocation, Overhead, approach2_optimal, approach2_overhead, local_exponents,
    numeric_optimal, numeric_overhead,
)
from robnp.scaling.laws import (
    APPROACH2_PARAMS, APPROACH3_PARAMS, Approach2Law, Approach3Law, LawInputs,
    approach2_log_loss, approach3_log_loss,
)
from robnp.scaling.minimize import batched_lbfgs, huber, projected_gradient
from robnp.scaling.table import RunTable

#: Grid of Hoffmann et al. (2022) used by the paper for Approach 2 (Appendix F.2.1).
PAPER_GRID_APPROACH2 = {
    "log_A": (0.0, 1.0, 2.0, 5.0, 10.0),
    "log_B": (0.0, 1.0, 2.0, 5.0, 10.0),
    "log_E": (-1.0, -0.5, 0.0, 0.5, 1.0),
    "alpha": (0.0, 0.1, 0.25, 0.5, 1.0),
    "beta": (0.0, 0.1, 0.25, 0.5, 1.0),
}
SMALL_GRID_APPROACH2 = {
    "log_A": (0.0, 2.0, 5.0),
    "log_B": (0.0, 2.0, 5.0),
    "log_E": (-1.0, 0.0, 1.0),
    "alpha": (0.1, 0.3, 0.6),
    "beta": (0.1, 0.3, 0.6),
}
#: Starting values of the quality exponents (paper, Appendix F.2.1).
QUALITY_GRID = {"eps_q": (0.01, 0.1, 0.2), "zeta": (-0.3, -0.15, 0.15, 0.3)}

#: Approach 3 grid with the paper's shape (Appendix F.3.1).  B/D enters
#: linearly, so log B is placed relative to the data: offsets from the median
#: log D (the paper's B ~ 7000 with D ~ 1e7 is an offset of about -7).
PAPER_GRID_APPROACH3 = {
    "log_A": (0.0, 2.0, 5.0),
    "log_B_offset": (-6.0, -3.0, 0.0),
    "log_E": (-1.0, 0.0),
    "log_Q0": (math.log(0.01), math.log(0.5)),
    "alpha": (0.1, 0.3, 0.6),
    "beta": (0.1, 0.3, 0.6),
    "kappa": (0.6, 0.8),
    "eps_q": (0.01,),
}
SMALL_GRID_APPROACH3 = {
    "log_A": (0.0, 3.0),
    "log_B_offset": (-4.0, 0.0),
    "log_E": (-1.0, 0.0),
    "log_Q0": (math.log(0.05),),
    "alpha": (0.2, 0.5),
    "beta": (0.2, 0.5),
    "kappa": (0.7,),
    "eps_q": (0.01,),
}

_LOG_BOUND = 100.0  # |log A|, |log B|, ... beyond this the law is meaningless
_BOUNDS_APPROACH2 = (np.array([-_LOG_BOUND] * 3 + [0.0, 0.0, -10.0, -10.0]),
                     np.array([_LOG_BOUND] * 3 + [4.0, 4.0, 10.0, 10.0]))
_BOUNDS_APPROACH3 = (np.array([-_LOG_BOUND] * 4 + [0.0, 0.01, 1e-3, -10.0]),
                     np.array([_LOG_BOUND] * 4 + [4.0, 4.0, 20.0, 10.0]))

QUALITY_FIT_MODES = ("joint", "two-stage")
_BLOCK_ELEMENTS = 8192  # size of one objective block, see Stage.objective
GRIDS = ("paper", "small")


@dataclass(frozen=True)
class FitConfig:
    """Settings of the parametric fits; one source of their defaults.

    Parameters
    ----------
    huber_delta : float
        Huber transition point on log residuals (Hoffmann et al.: 1e-3).
    grid : {"paper", "small"}
        Multi-start grid: the paper's, or a small one for quick looks and tests.
    quality_fit : {"joint", "two-stage"}
        Approach 2 with several quality levels: fit all parameters on all rows
        at once, or the paper's two stages (base parameters on one quality
        level, then eps_q and zeta on the others).
    base_quality : float or None
        Quality level of the first stage; default the level with most runs.
        Only with ``quality_fit="two-stage"``.
    n_polish : int
        Distinct best grid end points polished with SciPy's L-BFGS-B.
    batch_max_iter : int
        Iteration limit of the batched grid stage.
    polish_max_iter : int
        Iteration limit of each polish.
    ftol, gtol : float
        L-BFGS-B tolerances of the polish (tight on purpose, see module doc).
    """

    huber_delta: float = 1e-3
    grid: str = "paper"
    quality_fit: str = "joint"
    base_quality: float | None = None
    n_polish: int = 5
    batch_max_iter: int = 400
    polish_max_iter: int = 20000
    ftol: float = 1e-15
    gtol: float = 1e-12

    def __post_init__(self):
        if not (math.isfinite(self.huber_delta) and self.huber_delta > 0):
            raise ConfigError(f"huber_delta must be finite and > 0, got {self.huber_delta!r}")
        if self.grid not in GRIDS:
            raise ConfigError(f"grid must be one of {GRIDS}, got {self.grid!r}")
        if self.quality_fit not in QUALITY_FIT_MODES:
            raise ConfigError(f"quality_fit must be one of {QUALITY_FIT_MODES}, got {self.quality_fit!r}")
        if self.base_quality is not None and not self.base_quality > 0:
            raise ConfigError(f"base_quality must be > 0 (inf allowed), got {self.base_quality!r}")
        if self.base_quality is not None and self.quality_fit != "two-stage":
            raise ConfigError(f"base_quality is the first stage of quality_fit='two-stage' "
                              f"and applies to no other fit, got base_quality="
                              f"{self.base_quality!r} with quality_fit={self.quality_fit!r}")
        for name in ("n_polish", "batch_max_iter", "polish_max_iter"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("ftol", "gtol"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class Convergence:
    """How one optimization stage ended.

    Attributes
    ----------
    stage : str
        Which stage ("joint", "base", "quality", ...).
    converged : bool
        ``grad_inf <= grad_tol`` at a finite objective.
    message : str
        SciPy's L-BFGS-B message of the winning polish.
    n_iter : int
        Iterations of the winning polish.
    grad_inf : float
        Largest projected-gradient component at the solution.
    grad_tol : float
        1e-6 times the gradient's natural scale, delta * (sum of weights) *
        max(1, largest |log N|, |log D|, |log(1 + 1/Q)|).
    objective : float
        Summed Huber loss at the solution.
    n_starts : int
        Grid starts run.
    n_starts_at_best : int
        Grid starts whose batched end point is within 1e-6 (relative) of the
        best objective; many agreeing starts is evidence of a global optimum.
    at_bound : tuple of str
        Parameters that ended on a bound of the search box.
    """

    stage: str
    converged: bool
    message: str
    n_iter: int
    grad_inf: float
    grad_tol: float
    objective: float
    n_starts: int
    n_starts_at_best: int
    at_bound: tuple = ()

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class Stage:
    """One minimization problem: a law, its data, which parameters are free.

    ``fixed`` holds the values of the parameters that are not free, either one
    vector of shape (P,) or one per replicate, shape (R, P) (the bootstrap's
    second stage has a different fixed base for every replicate).
    """

    name: str
    approach: int
    inputs: LawInputs
    log_loss: np.ndarray
    free: np.ndarray
    fixed: np.ndarray
    delta: float

    @property
    def log_loss_fn(self):
        return approach2_log_loss if self.approach == 2 else approach3_log_loss

    @property
    def param_names(self):
        names = APPROACH2_PARAMS if self.approach == 2 else APPROACH3_PARAMS
        return tuple(n for n, f in zip(names, self.free) if f)

    @property
    def bounds(self):
        lower, upper = _BOUNDS_APPROACH2 if self.approach == 2 else _BOUNDS_APPROACH3
        return lower[self.free], upper[self.free]

    def full_theta(self, theta_free, fixed_rows=None):
        """Insert free values into the fixed vector; shape (S, P)."""
        theta_free = np.atleast_2d(theta_free)
        fixed = self.fixed if self.fixed.ndim == 1 else self.fixed[fixed_rows]
        full = np.array(np.broadcast_to(fixed, (theta_free.shape[0], self.free.size)))
        full[:, self.free] = theta_free
        return full

    def grad_scale(self, total_weight):
        feats = [1.0, np.abs(self.inputs.log_N).max(), np.abs(self.inputs.log_D).max(),
                 np.abs(self.inputs.log1p_inv_q).max()]
        return self.delta * float(total_weight) * float(max(feats))

    def objective(self, weights=None, weight_rows=None, fixed_rows=None):
        """``fun(X, rows) -> (f, G)``: summed Huber loss and its gradient.

        Parameters
        ----------
        weights : ndarray of shape (R, n_points), optional
            Per-replicate point weights (bootstrap counts); default all ones.
        weight_rows, fixed_rows : ndarray of shape (S,), optional
            For problem s, the row of ``weights`` and of ``fixed`` to use.
        """
        def block(theta_free, rows):
            full = self.full_theta(theta_free, None if fixed_rows is None else fixed_rows[rows])
            log_pred, vjp = self.log_loss_fn(full, self.inputs)
            value, dvalue = huber(log_pred - self.log_loss, self.delta)
            if weights is not None:
                w = weights[weight_rows[rows]]
                value, dvalue = value * w, dvalue * w
            grad = vjp(dvalue)[:, self.free]
            f = value.sum(axis=1)
            bad = ~np.isfinite(f) | ~np.all(np.isfinite(grad), axis=1)
            f[bad], grad[bad] = np.inf, 0.0
            return f, grad

        # Problems are evaluated in blocks of about 8192 array elements: the
        # (block, n_points) temporaries then stay in cache and below the size
        # at which the C allocator maps fresh pages for each of them; one big
        # batch is several times slower.
        size = max(1, _BLOCK_ELEMENTS // self.log_loss.size)

        def fun(theta_free, rows):
            if theta_free.shape[0] <= size:
                return block(theta_free, rows)
            parts = [block(theta_free[i:i + size], rows[i:i + size])
                     for i in range(0, theta_free.shape[0], size)]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        return fun


def _distinct_best(x, f, k):
    """Indices of up to k best end points that differ from each other."""
    order = np.argsort(f, kind="stable")
    chosen = []
    for i in order:
        if not np.isfinite(f[i]):
            break
        if all(np.max(np.abs(x[i] - x[j]) / (1.0 + np.abs(x[j]))) > 1e-4 for j in chosen):
            chosen.append(i)
            if len(chosen) == k:
                break
    return np.asarray(chosen, dtype=np.int64)


@dataclass(frozen=True)
class StageResult:
    """Best free parameters of a stage, its convergence, and its distinct optima."""

    theta_free: np.ndarray
    convergence: Convergence
    local_optima: np.ndarray   # (K, p) distinct best end points, best first


def run_stage(stage: Stage, starts, config: FitConfig) -> StageResult:
    """Multi-start fit of one stage: batched grid, then L-BFGS-B polish.

    Parameters
    ----------
    stage : Stage
    starts : ndarray of shape (S, p)
        Initial values of the free parameters.
    config : FitConfig

    Returns
    -------
    StageResult
    """
    lower, upper = stage.bounds
    fun = stage.objective()
    starts = np.asarray(starts, dtype=np.float64)
    batch = batched_lbfgs(fun, starts, lower, upper, max_iter=config.batch_max_iter)
    candidates = _distinct_best(batch.x, batch.fun, config.n_polish)
    if candidates.size == 0:
        raise DataError(f"{stage.name} fit: the objective is not finite at any grid point")

    def scalar(theta):
        f, g = fun(theta[None], np.zeros(1, dtype=np.int64))
        return float(f[0]), g[0]

    best = None
    polished = []
    for i in candidates:
        res = minimize(scalar, batch.x[i], jac=True, method="L-BFGS-B",
                       bounds=list(zip(lower, upper)),
                       options={"maxiter": config.polish_max_iter,
                                "maxfun": 4 * config.polish_max_iter,
                                "ftol": config.ftol, "gtol": config.gtol, "maxcor": 20})
        polished.append(res.x)
        if best is None or res.fun < best.fun:
            best = res
    f_best, g_best = scalar(best.x)
    pg = projected_gradient(best.x[None], g_best[None], lower, upper)[0]
    grad_inf = float(np.max(np.abs(pg)))
    grad_tol = 1e-6 * stage.grad_scale(stage.inputs.log_N.size)
    f_min = min(f_best, float(np.min(batch.fun)))
    at_best = int(np.sum(batch.fun <= f_min + 1e-6 * abs(f_min) + 1e-300))
    names = stage.param_names
    at_bound = tuple(n for n, v, lo, hi in zip(names, best.x, lower, upper) if v <= lo or v >= hi)
    conv = Convergence(stage=stage.name, converged=bool(np.isfinite(f_best) and grad_inf <= grad_tol),
                       message=str(best.message), n_iter=int(best.nit), grad_inf=grad_inf,
                       grad_tol=grad_tol, objective=f_best, n_starts=int(starts.shape[0]),
                       n_starts_at_best=at_best, at_bound=at_bound)
    polished = np.asarray(polished)
    order = np.argsort([scalar(p)[0] for p in polished], kind="stable")
    return StageResult(theta_free=np.asarray(best.x), convergence=conv, local_optima=polished[order])


def _grid(axes: dict) -> np.ndarray:
    return np.array(list(itertools.product(*axes.values())), dtype=np.float64)


def approach2_grid(kind: str) -> np.ndarray:
    """Grid of (log_A, log_B, log_E, alpha, beta) starts, shape (S, 5)."""
    return _grid(PAPER_GRID_APPROACH2 if kind == "paper" else SMALL_GRID_APPROACH2)


def approach3_grid(kind: str, median_log_D: float) -> np.ndarray:
    """Grid of Approach 3 starts in the order of ``APPROACH3_PARAMS``, shape (S, 8)."""
    grid = _grid(PAPER_GRID_APPROACH3 if kind == "paper" else SMALL_GRID_APPROACH3)
    grid[:, 1] += median_log_D
    return grid


def quality_grid() -> np.ndarray:
    """Grid of (eps_q, zeta) starts, shape (12, 2)."""
    return _grid(QUALITY_GRID)


@dataclass(frozen=True)
class ParametricFit:
    """A fitted Approach 2 or 3 law with what is needed to use it.

    Attributes
    ----------
    approach : {2, 3}
    law : Approach2Law or Approach3Law
    quality_fit : str
        "joint", "two-stage", or "base-only" (no quality terms fitted).
    quality_terms : bool
        Whether the quality parameters were fitted; when not, predictions
        ignore quality and hold for the quality level(s) in the table.
    flops_per_nd : float
        k of FLOPs = k N D used for allocations.
    reference_quality : float
        Default quality of :meth:`predict`, :meth:`optimal`, :meth:`overhead`.
    reference_flops : float
        Default budget of :meth:`overhead` (the largest FLOPs in the table).
    convergence : tuple of Convergence
        One per stage.
    n_points : int
        Rows used.
    local_optima : ndarray of shape (K, P)
        Distinct best solutions of the final stage, full parameter vectors,
        best first (the bootstrap starts from these).
    base_quality : float or None
        First-stage quality level of a two-stage fit.
    """

    approach: int
    law: object
    quality_fit: str
    quality_terms: bool
    flops_per_nd: float
    reference_quality: float
    reference_flops: float
    convergence: tuple
    n_points: int
    local_optima: np.ndarray = field(repr=False)
    base_quality: float | None = None

    @property
    def converged(self) -> bool:
        return all(c.converged for c in self.convergence)

    def params(self) -> dict:
        """Fitted parameters named as in the paper."""
        p = self.law.params()
        if not self.quality_terms:
            for name in ("eps_q", "zeta", "Q0", "kappa"):
                p.pop(name, None)
        return p

    def _quality(self, quality):
        return self.reference_quality if quality is None else quality

    def predict(self, N, D, quality=None) -> np.ndarray:
        """Predicted loss, float64, broadcast over N, D and quality.

        ``quality`` defaults to :attr:`reference_quality`.
        """
        return self.law.loss(N, D, self._quality(quality))

    def optimal(self, flops, quality=None) -> Allocation:
        """Compute-optimal N*, D*, L* at the budget(s) ``flops``."""
        q = self._quality(quality)
        if self.approach == 2:
            return approach2_optimal(self.law, flops, self.flops_per_nd, q)
        return numeric_optimal(self.law, flops, self.flops_per_nd, q)

    def exponents(self, flops=None, quality=None):
        """(a, b) of N* ~ F^a, D* ~ F^b at ``quality``.

        Exact for Approach 2 and for Approach 3 at infinite quality; for
        Approach 3 at finite quality the local slopes at ``flops`` (default
        :attr:`reference_flops`), which change with the budget.
        """
        q = self._quality(quality)
        if self.approach == 2 or np.isinf(q):
            return float(self.law.a), float(self.law.b)
        f = self.reference_flops if flops is None else flops
        a, b = local_exponents(lambda F: self.optimal(F, q), f)
        return float(a[0]), float(b[0])

    def overhead(self, omega_N, flops=None, quality=None) -> Overhead:
        """Data multiple and compute overhead of models omega_N * N* (paper, Eq. 6)."""
        q = self._quality(quality)
        f = self.reference_flops if flops is None else flops
        if self.approach == 2:
            return approach2_overhead(self.law, omega_N, f, self.flops_per_nd, q)
        return numeric_overhead(self.law, omega_N, f, self.flops_per_nd, q)


def _check_enough(table: RunTable, n_params: int, what: str):
    if table.n_rows < n_params + 1:
        raise DataError(f"{what} fits {n_params} parameters and needs at least {n_params + 1} "
                        f"points; the table has {table.n_rows}")
    for col in ("N", "D"):
        if np.unique(getattr(table, col)).size < 2:
            raise DataError(f"{what} needs at least 2 distinct values of {col}; "
                            f"the table has {np.unique(getattr(table, col)).size}")


def _base_level(table: RunTable, config: FitConfig) -> float:
    levels = table.quality_levels()
    if config.base_quality is not None:
        match = levels[np.isclose(levels, config.base_quality, rtol=1e-9)] if np.isfinite(
            config.base_quality) else levels[np.isinf(levels)]
        if match.size == 0:
            raise ConfigError(f"base_quality {config.base_quality!r} is not a quality level of the "
                              f"table (levels: {', '.join(f'{q:g}' for q in levels)})")
        return float(match[0])
    codes = table.run_codes()
    runs_per_level = [np.unique(codes[table.quality == q]).size for q in levels]
    # Most runs first; ties go to the higher quality, the cleaner data.
    return float(levels[max(range(levels.size), key=lambda i: (runs_per_level[i], levels[i]))])


def approach2_stages(table: RunTable, config: FitConfig):
    """The plan of an Approach 2 fit: mode, stages and their starts.

    Returns
    -------
    mode : str
        "base-only", "joint" or "two-stage".
    plan : list of (Stage, starts, rows)
        ``rows`` are the table rows the stage uses.  A two-stage plan's second
        stage has ``fixed`` filled in by the caller from the first.
    base_quality : float or None
    """
    inputs = LawInputs.from_arrays(table.N, table.D, table.quality)
    log_loss = np.log(table.loss)
    levels = table.quality_levels()
    base_grid = approach2_grid(config.grid)
    all_rows = np.arange(table.n_rows)
    if levels.size < 2:
        _check_enough(table, 5, "Approach 2")
        stage = Stage("base", 2, inputs, log_loss, np.array([True] * 5 + [False] * 2),
                      np.zeros(7), config.huber_delta)
        return "base-only", [(stage, base_grid, all_rows)], None
    if config.quality_fit == "joint":
        _check_enough(table, 7, "Approach 2 with quality terms")
        stage = Stage("joint", 2, inputs, log_loss, np.ones(7, dtype=bool), np.zeros(7),
                      config.huber_delta)
        starts = np.hstack([base_grid, np.zeros((base_grid.shape[0], 2))])
        return "joint", [(stage, starts, all_rows)], None
    base_q = _base_level(table, config)
    base_rows = np.flatnonzero(table.quality == base_q)
    other_rows = np.flatnonzero(table.quality != base_q)
    _check_enough(table.take(base_rows), 5, f"Approach 2 two-stage base level (quality {base_q:g})")
    if other_rows.size < 3:
        raise DataError(f"Approach 2 two-stage needs at least 3 points off the base quality level "
                        f"{base_q:g} to fit eps_q and zeta; the table has {other_rows.size}")
    # Measuring quality from the base level makes the first stage's log B and
    # log E the constants *at* that level; the second stage then fits only how
    # they move with quality and cannot disturb the first stage's fit.
    rel = inputs.relative_to_quality(base_q)
    stage1 = Stage("base", 2, rel.take(base_rows), log_loss[base_rows],
                   np.array([True] * 5 + [False] * 2), np.zeros(7), config.huber_delta)
    stage2 = Stage("quality", 2, rel.take(other_rows), log_loss[other_rows],
                   np.array([False] * 5 + [True] * 2), np.zeros(7), config.huber_delta)
    return "two-stage", [(stage1, base_grid, base_rows), (stage2, quality_grid(), other_rows)], base_q


def from_base_relative(theta, base_q):
    """Turn constants measured at quality base_q back into the paper's B and E."""
    theta = np.array(theta, dtype=np.float64)
    u = math.log1p(1.0 / base_q)
    theta[..., 1] -= theta[..., 6] * u   # log B = log B'(Q_base) - zeta * u_base
    theta[..., 2] -= theta[..., 5] * u   # log E = log E'(Q_base) - eps_q * u_base
    return theta


def fit_approach2(table: RunTable, config: FitConfig | None = None, *,
                  reference_quality: float | None = None) -> ParametricFit:
    """Fit the paper's Approach 2 (Eq. 3) to a table.

    With one quality level (or no ``quality`` column) the quality terms cannot
    be told apart from B and E; then only A, B, E, alpha, beta are fitted
    (the Chinchilla form, mode "base-only").  With several levels the quality
    exponents are fitted jointly with the rest or in the paper's two stages
    (``config.quality_fit``).

    Parameters
    ----------
    table : RunTable
    config : FitConfig, optional
    reference_quality : float, optional
        Default quality of the returned fit; the highest finite level in the
        table, or ``inf`` without one.

    Returns
    -------
    ParametricFit

    Raises
    ------
    DataError
        Too few points or distinct sizes for the parameters asked.
    """
    config = config or FitConfig()
    mode, plan, base_q = approach2_stages(table, config)
    convs = []
    if mode == "joint":
        stage, starts, _ = plan[0]
        # First round: the paper's grid over the five base parameters with the
        # quality exponents held at 0 (a cheaper, 5-dimensional batch).
        base_only = Stage("joint", 2, stage.inputs, stage.log_loss,
                          np.array([True] * 5 + [False] * 2), np.zeros(7), stage.delta)
        first = _batched_best(base_only, starts[:, :5], config)
        # Second round, all seven free: the best distinct base end points, each
        # combined with the paper's grid of quality exponents (Appendix F.2.1).
        qgrid = quality_grid()
        seeds = first[:3]
        starts2 = np.vstack([np.hstack([np.repeat(seeds, qgrid.shape[0], axis=0),
                                        np.tile(qgrid, (seeds.shape[0], 1))]),
                             np.hstack([first, np.zeros((first.shape[0], 2))])])
        result = run_stage(stage, starts2, config)
        theta = result.theta_free
        local = result.local_optima
        convs.append(_with_starts(result.convergence, starts.shape[0] + starts2.shape[0]))
    elif mode == "base-only":
        stage, starts, _ = plan[0]
        result = run_stage(stage, starts, config)
        theta = stage.full_theta(result.theta_free)[0]
        local = stage.full_theta(result.local_optima)
        convs.append(result.convergence)
    else:
        (stage1, starts1, _), (stage2, starts2, _) = plan
        r1 = run_stage(stage1, starts1, config)
        base_theta = stage1.full_theta(r1.theta_free)[0]
        stage2 = Stage(stage2.name, 2, stage2.inputs, stage2.log_loss, stage2.free, base_theta,
                       stage2.delta)
        r2 = run_stage(stage2, starts2, config)
        theta = from_base_relative(stage2.full_theta(r2.theta_free)[0], base_q)
        local = from_base_relative(stage2.full_theta(r2.local_optima), base_q)
        convs.extend([r1.convergence, r2.convergence])
    rq = table.reference_quality() if reference_quality is None else float(reference_quality)
    return ParametricFit(approach=2, law=Approach2Law.from_theta(theta), quality_fit=mode,
                         quality_terms=mode != "base-only", flops_per_nd=table.flops_per_nd,
                         reference_quality=rq, reference_flops=float(table.flops.max()),
                         convergence=tuple(convs), n_points=table.n_rows,
                         local_optima=np.atleast_2d(local), base_quality=base_q)


def _with_starts(conv: Convergence, n_starts: int) -> Convergence:
    return Convergence(**{**conv.__dict__, "n_starts": n_starts})


def _batched_best(stage: Stage, starts, config: FitConfig, k: int = 8) -> np.ndarray:
    """Distinct best end points of a batched multi-start, shape (<=k, p)."""
    lower, upper = stage.bounds
    batch = batched_lbfgs(stage.objective(), np.asarray(starts, dtype=np.float64), lower, upper,
                          max_iter=config.batch_max_iter)
    idx = _distinct_best(batch.x, batch.fun, k)
    if idx.size == 0:
        raise DataError(f"{stage.name} fit: the objective is not finite at any grid point")
    return batch.x[idx]


def approach3_stage(table: RunTable, config: FitConfig):
    """The single stage of an Approach 3 fit and its grid of starts."""
    levels = table.quality_levels()
    finite = levels[np.isfinite(levels)]
    if finite.size < 2:
        raise DataError("Approach 3 needs at least 2 distinct finite quality levels to separate "
                        f"Q0 and kappa; the table has {finite.size} "
                        f"({'no quality column' if not table.has_quality else ', '.join(f'{q:g}' for q in levels)})")
    _check_enough(table, 8, "Approach 3")
    inputs = LawInputs.from_arrays(table.N, table.D, table.quality)
    stage = Stage("joint", 3, inputs, np.log(table.loss), np.ones(8, dtype=bool), np.zeros(8),
                  config.huber_delta)
    return stage, approach3_grid(config.grid, float(np.median(inputs.log_D)))


def fit_approach3(table: RunTable, config: FitConfig | None = None, *,
                  reference_quality: float | None = None) -> ParametricFit:
    """Fit the paper's Approach 3 (Eq. 5) to all rows of a table.

    Parameters
    ----------
    table : RunTable
        Needs at least two distinct finite quality levels.
    config : FitConfig, optional
    reference_quality : float, optional
        As for :func:`fit_approach2`.

    Returns
    -------
    ParametricFit

    Raises
    ------
    DataError
        Too few points or quality levels.
    """
    config = config or FitConfig()
    stage, starts = approach3_stage(table, config)
    result = run_stage(stage, starts, config)
    rq = table.reference_quality() if reference_quality is None else float(reference_quality)
    return ParametricFit(approach=3, law=Approach3Law.from_theta(result.theta_free), quality_fit="joint",
                         quality_terms=True, flops_per_nd=table.flops_per_nd, reference_quality=rq,
                         reference_flops=float(table.flops.max()), convergence=(result.convergence,),
                         n_points=table.n_rows, local_optima=result.local_optima)
