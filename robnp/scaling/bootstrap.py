"""Bootstrap intervals for the fitted exponents and allocations.

Checkpoints of one run are strongly correlated (same weights, same data
order), so resampling rows would treat them as independent evidence and give
intervals that are far too narrow.  robnp resamples *runs* with replacement:
a replicate draws n_runs run labels and weights every row by how often its run
was drawn.  Replicate r draws from ``default_rng(SeedSequence([seed, r]))``,
so each replicate's sample depends only on the seed and its index, and the
same runs are drawn for every approach (the intervals are paired).

The parametric refits start from the best distinct optima of the full fit
(warm starts) and run as one batch, replicates x starts, with the weighted
summed Huber loss: a resample is a set of integer weights on the original
rows, so every replicate shares the precomputed inputs.

Intervals are percentile intervals of the replicates that succeeded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robnp.errors import ConfigError, DataError
from robnp.scaling.allocation import approach2_optimal, numeric_optimal_batch
from robnp.scaling.envelope import EnvelopeConfig, fit_envelope, select_quality
from robnp.scaling.fit import (
    FitConfig, ParametricFit, Stage, from_base_relative, approach2_stages, approach3_stage,
    quality_grid,
)
from robnp.scaling.laws import Approach2Law, Approach3Law
from robnp.scaling.minimize import batched_lbfgs
from robnp.scaling.table import RunTable


@dataclass(frozen=True)
class BootstrapConfig:
    """Settings of the bootstrap.

    Parameters
    ----------
    n_boot : int
        Replicates (0 turns the bootstrap off).
    seed : int
        Seed of all replicates.
    level : float
        Coverage of the percentile intervals.
    n_starts : int
        Warm starts per replicate, from the full fit's best distinct optima.
    """

    n_boot: int = 200
    seed: int = 0
    level: float = 0.95
    n_starts: int = 3

    def __post_init__(self):
        if int(self.n_boot) < 0:
            raise ConfigError(f"n_boot must be >= 0, got {self.n_boot!r}")
        if not 0 < self.level < 1:
            raise ConfigError(f"level must be in (0, 1), got {self.level!r}")
        if int(self.n_starts) < 1:
            raise ConfigError(f"n_starts must be >= 1, got {self.n_starts!r}")
        if int(self.seed) < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed!r}")


@dataclass(frozen=True)
class BootstrapResult:
    """Replicate values and percentile intervals.

    Attributes
    ----------
    samples : dict of str to ndarray
        Scalars have shape (n_ok,); per-budget quantities (``N_star``,
        ``D_star``, ``L_star``) have shape (n_ok, n_budgets).
    budgets : ndarray of shape (n_budgets,)
    n_boot, n_failed, n_unconverged : int
        Replicates asked for, that could not be fitted (dropped), and whose
        refit did not meet the convergence test (kept).
    seed : int
    level : float
    """

    samples: dict
    budgets: np.ndarray
    n_boot: int
    n_failed: int
    n_unconverged: int
    seed: int
    level: float

    def interval(self, name):
        """Percentile interval of ``name``: (low, high), scalars or arrays of shape (n_budgets,)."""
        values = self.samples[name]
        if values.shape[0] == 0:
            nan = np.full(values.shape[1:], np.nan)
            return (float("nan"), float("nan")) if nan.ndim == 0 else (nan, nan)
        tail = 100 * (1 - self.level) / 2
        lo, hi = np.percentile(values, [tail, 100 - tail], axis=0)
        return (float(lo), float(hi)) if np.ndim(lo) == 0 else (lo, hi)

    def intervals(self) -> dict:
        return {name: self.interval(name) for name in self.samples}


def replicate_rng(seed: int, replicate: int) -> np.random.Generator:
    """The generator of one replicate, derived from its identity only."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(replicate)]))


def resample_groups(codes, rng) -> np.ndarray:
    """Row weights of one bootstrap resample of groups (runs or curves).

    Parameters
    ----------
    codes : ndarray of shape (n_rows,), int
        Group of each row, codes 0..n_groups-1.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of shape (n_rows,), float64
        How many times each row's group was drawn; all rows of a group share
        their weight, so a run is always kept or dropped whole.
    """
    n_groups = int(codes.max()) + 1
    counts = np.bincount(rng.integers(0, n_groups, size=n_groups), minlength=n_groups)
    return counts[codes].astype(np.float64)


def _weights(codes, config: BootstrapConfig) -> np.ndarray:
    return np.stack([resample_groups(codes, replicate_rng(config.seed, r)) for r in range(config.n_boot)])


def _batched_refit(stage: Stage, starts, weights, fit_config: FitConfig, fixed_per_rep=None):
    """Refit one stage for every replicate from shared warm starts.

    Parameters
    ----------
    stage : Stage
    starts : ndarray of shape (K, p)
        Free-parameter starts shared by all replicates.
    weights : ndarray of shape (R, n_points)
    fixed_per_rep : ndarray of shape (R, P), optional
        Per-replicate values of the fixed parameters.

    Returns
    -------
    theta_free : ndarray of shape (R, p)
    ok : ndarray of shape (R,), bool
        The replicate had data and a finite objective.
    converged : ndarray of shape (R,), bool
    """
    n_rep, n_starts = weights.shape[0], starts.shape[0]
    rep_of = np.repeat(np.arange(n_rep), n_starts)
    if fixed_per_rep is not None:
        stage = Stage(stage.name, stage.approach, stage.inputs, stage.log_loss, stage.free,
                      fixed_per_rep, stage.delta)
    fun = stage.objective(weights=weights, weight_rows=rep_of,
                          fixed_rows=rep_of if fixed_per_rep is not None else None)
    lower, upper = stage.bounds
    res = batched_lbfgs(fun, np.tile(starts, (n_rep, 1)), lower, upper,
                        max_iter=fit_config.batch_max_iter)
    f = res.fun.reshape(n_rep, n_starts)
    best = np.argmin(np.where(np.isfinite(f), f, np.inf), axis=1)
    pick = np.arange(n_rep) * n_starts + best
    ok = np.isfinite(f[np.arange(n_rep), best]) & (weights.sum(axis=1) > 0)
    return res.x[pick], ok, res.converged[pick]


def _to_base_relative(theta, base_q):
    """Inverse of ``fit.from_base_relative``."""
    theta = np.array(theta, dtype=np.float64)
    u = math.log1p(1.0 / base_q)
    theta[..., 1] += theta[..., 6] * u
    theta[..., 2] += theta[..., 5] * u
    return theta


def _parametric_thetas(table: RunTable, fit: ParametricFit, weights, config: BootstrapConfig,
                       fit_config: FitConfig):
    """Full parameter vectors of every replicate, shape (R, P), with ok/converged flags."""
    local = np.atleast_2d(fit.local_optima)[:config.n_starts]
    if fit.approach == 3:
        stage, _ = approach3_stage(table, fit_config)
        theta, ok, conv = _batched_refit(stage, local, weights, fit_config)
        return theta, ok, conv
    mode, plan, base_q = approach2_stages(table, fit_config)
    if mode != fit.quality_fit:
        raise DataError(f"the table no longer supports the fit's mode {fit.quality_fit!r}")
    if mode in ("joint", "base-only"):
        stage, _, rows = plan[0]
        theta_free, ok, conv = _batched_refit(stage, local[:, stage.free], weights[:, rows], fit_config)
        return stage.full_theta(theta_free), ok, conv
    (stage1, _, rows1), (stage2, _, rows2) = plan
    rel = _to_base_relative(local, base_q)
    free1, ok1, conv1 = _batched_refit(stage1, rel[:, stage1.free], weights[:, rows1], fit_config)
    base = stage1.full_theta(free1)
    starts2 = np.vstack([rel[:1, stage2.free], quality_grid()])
    free2, ok2, conv2 = _batched_refit(stage2, starts2, weights[:, rows2], fit_config, fixed_per_rep=base)
    full = base.copy()
    full[:, stage2.free] = free2
    return from_base_relative(full, base_q), ok1 & ok2, conv1 & conv2


def bootstrap_parametric(table: RunTable, fit: ParametricFit, budgets, *,
                         config: BootstrapConfig | None = None,
                         fit_config: FitConfig | None = None) -> BootstrapResult:
    """Bootstrap over runs of an Approach 2 or 3 fit.

    Parameters
    ----------
    table : RunTable
        The table ``fit`` was fitted to.
    fit : ParametricFit
    budgets : array_like of shape (n_budgets,)
        FLOPs at which N*, D*, L* are recorded, at ``fit.reference_quality``.
    config : BootstrapConfig, optional
    fit_config : FitConfig, optional
        The configuration ``fit`` was made with.

    Returns
    -------
    BootstrapResult
        Samples of every parameter, ``a``, ``b`` (local at the first budget
        for Approach 3 at finite quality) and ``N_star``, ``D_star``,
        ``L_star`` per budget.
    """
    config = config or BootstrapConfig()
    fit_config = fit_config or FitConfig()
    budgets = np.atleast_1d(np.asarray(budgets, dtype=np.float64))
    law_cls = Approach2Law if fit.approach == 2 else Approach3Law
    names = list(fit.params())
    samples = {n: [] for n in names + ["a", "b", "N_star", "D_star", "L_star"]}
    n_failed = n_unconverged = 0
    if config.n_boot > 0:
        weights = _weights(table.run_codes(), config)
        thetas, ok, conv = _parametric_thetas(table, fit, weights, config, fit_config)
        laws = [law_cls.from_theta(theta) for theta in thetas]
        good = ok & np.array([law.alpha > 0 and law.beta > 0 for law in laws])
        n_failed = int(np.sum(~good))
        n_unconverged = int(np.sum(good & ~conv))
        laws = [law for law, g in zip(laws, good) if g]
        q = fit.reference_quality
        for n in names:
            samples[n] = [law.params()[n] for law in laws]
        if fit.approach == 2:
            opts = [approach2_optimal(law, budgets, fit.flops_per_nd, q) for law in laws]
            samples["N_star"] = [o.N for o in opts]
            samples["D_star"] = [o.D for o in opts]
            samples["L_star"] = [o.loss for o in opts]
            samples["a"] = [law.a for law in laws]
            samples["b"] = [law.b for law in laws]
        elif laws:
            # All replicates in one golden-section search; two extra budgets
            # around the first give the local exponents (as ParametricFit.exponents).
            step = 0.05
            extra = budgets[0] * np.exp([step, -step])
            N, D, L = numeric_optimal_batch(law_cls.log_loss_fn, thetas[good],
                                            np.concatenate([budgets, extra]), fit.flops_per_nd, q)
            m = budgets.size
            samples["N_star"], samples["D_star"], samples["L_star"] = list(N[:, :m]), list(D[:, :m]), list(L[:, :m])
            if np.isinf(q):
                samples["a"] = [law.a for law in laws]
                samples["b"] = [law.b for law in laws]
            else:
                samples["a"] = list((np.log(N[:, m]) - np.log(N[:, m + 1])) / (2 * step))
                samples["b"] = list((np.log(D[:, m]) - np.log(D[:, m + 1])) / (2 * step))
    return _result(samples, budgets, config, n_failed, n_unconverged)


def bootstrap_envelope(table: RunTable, budgets, *, quality=None,
                       config: BootstrapConfig | None = None,
                       envelope_config: EnvelopeConfig | None = None) -> BootstrapResult:
    """Bootstrap over training curves of Approach 1.

    The envelope is a minimum over curves, so drawing a curve twice changes
    nothing: a replicate is the set of distinct curves drawn.  Replicates
    with too few curves or envelope points for a fit count as failed.

    Returns
    -------
    BootstrapResult
        Samples of ``a``, ``b``, ``L_exponent`` and ``N_star``, ``D_star``,
        ``L_star`` per budget.
    """
    config = config or BootstrapConfig()
    budgets = np.atleast_1d(np.asarray(budgets, dtype=np.float64))
    sub, q = select_quality(table, quality)
    codes = sub.curve_codes()
    samples = {n: [] for n in ("a", "b", "L_exponent", "N_star", "D_star", "L_star")}
    n_failed = 0
    for r in range(config.n_boot):
        rows = resample_groups(codes, replicate_rng(config.seed, r)) > 0
        try:
            env = fit_envelope(sub.take(rows), quality=q, config=envelope_config)
        except DataError:
            n_failed += 1
            continue
        samples["a"].append(env.a)
        samples["b"].append(env.b)
        samples["L_exponent"].append(env.L_star.exponent)
        opt = env.optimal(budgets)
        samples["N_star"].append(opt.N)
        samples["D_star"].append(opt.D)
        samples["L_star"].append(opt.loss)
    return _result(samples, budgets, config, n_failed, 0)


def _result(samples, budgets, config, n_failed, n_unconverged) -> BootstrapResult:
    arrays = {}
    for name, values in samples.items():
        per_budget = name in ("N_star", "D_star", "L_star")
        shape = (0, budgets.size) if per_budget else (0,)
        arrays[name] = np.asarray(values, dtype=np.float64) if values else np.empty(shape)
    return BootstrapResult(samples=arrays, budgets=budgets, n_boot=int(config.n_boot),
                           n_failed=int(n_failed), n_unconverged=int(n_unconverged),
                           seed=int(config.seed), level=float(config.level))
