"""The whole scaling analysis of one table: every approach, intervals, comparison.

:func:`analyze` is the one call behind ``robnp scaling fit``.  It fits the
approaches asked for, bootstraps them over runs, cross-checks Approach 2,
computes compute-optimal allocations and the overhead curve, and builds the
comparison of the paper's Table 3.  :func:`report_to_dict` turns the result
into JSON-ready data with parameters named as in the paper, and
:func:`render_text` into the summary the command prints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from robnp.errors import ConfigError, DataError, RobnpError
from robnp.scaling.accuracy import LossAccuracyMap, loss_accuracy_from_table
from robnp.scaling.bootstrap import (
    BootstrapConfig, BootstrapResult, bootstrap_envelope, bootstrap_parametric,
)
from robnp.scaling.crosscheck import CrossCheckFit, compare_with_main, fit_approach2_varpro
from robnp.scaling.envelope import EnvelopeConfig, EnvelopeFit, fit_envelope
from robnp.scaling.fit import FitConfig, ParametricFit, fit_approach2, fit_approach3
from robnp.scaling.table import RunTable

#: Model-size multiples of the overhead curve (paper, Fig. 7); includes 1 exactly.
DEFAULT_OMEGA_N = tuple(float(v) for v in np.round(np.geomspace(0.1, 10.0, 81), 12))


@dataclass(frozen=True)
class AnalysisConfig:
    """What :func:`analyze` does.

    Parameters
    ----------
    approaches : tuple of int
        Any of 1, 2, 3.
    budgets : tuple of float, optional
        FLOPs budgets for N*, D*, L*; the first is used for the comparison
        table and the overhead curve.  Default: the largest FLOPs in the table.
    quality : float, optional
        Quality at which allocations and the comparison are reported (and the
        level Approach 1 uses).  Default: the highest finite level, else inf.
    strict : bool
        If True an approach that cannot be fitted raises; if False it is
        skipped and the reason recorded (used for "all").
    crosscheck : bool
        Run the variable-projection cross-check of Approach 2.
    omega_N : tuple of float
        Model-size multiples of the overhead curve.
    fit, envelope, bootstrap : FitConfig, EnvelopeConfig, BootstrapConfig
    """

    approaches: tuple = (1, 2, 3)
    budgets: tuple | None = None
    quality: float | None = None
    strict: bool = False
    crosscheck: bool = True
    omega_N: tuple = DEFAULT_OMEGA_N
    fit: FitConfig = field(default_factory=FitConfig)
    envelope: EnvelopeConfig = field(default_factory=EnvelopeConfig)
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)

    def __post_init__(self):
        if not self.approaches or any(a not in (1, 2, 3) for a in self.approaches):
            raise ConfigError(f"approaches must be a non-empty subset of (1, 2, 3), got {self.approaches!r}")
        if self.budgets is not None:
            for b in self.budgets:
                if not (math.isfinite(b) and b > 0):
                    raise ConfigError(f"FLOPs budget must be finite and > 0, got {b!r}")
        if self.quality is not None and not self.quality > 0:
            raise ConfigError(f"quality must be > 0 (inf allowed), got {self.quality!r}")
        if any(not (math.isfinite(w) and w > 0) for w in self.omega_N):
            raise ConfigError("omega_N values must be finite and > 0")
        if 2 not in self.approaches and self.fit.quality_fit != "joint":
            raise ConfigError(f"quality_fit={self.fit.quality_fit!r} is a setting of "
                              f"Approach 2, which approaches={tuple(self.approaches)!r} "
                              f"does not run")


@dataclass(frozen=True)
class ScalingReport:
    """Everything :func:`analyze` found.  Missing approaches are None."""

    table: RunTable
    config: AnalysisConfig
    budgets: np.ndarray
    quality: float
    envelope: EnvelopeFit | None
    approach2: ParametricFit | None
    approach3: ParametricFit | None
    bootstrap: dict
    crosscheck: CrossCheckFit | None
    agreements: list
    overhead: dict
    loss_accuracy: LossAccuracyMap | None
    comparison: list
    skipped: dict
    warnings: tuple


def _attempt(number, fn, config, skipped):
    try:
        return fn()
    except RobnpError as exc:
        if config.strict:
            raise
        skipped[number] = str(exc)
        return None


def analyze(table: RunTable, config: AnalysisConfig | None = None) -> ScalingReport:
    """Run the scaling analysis of the paper's Section 3 on a table.

    Parameters
    ----------
    table : RunTable
    config : AnalysisConfig, optional

    Returns
    -------
    ScalingReport

    Raises
    ------
    DataError, ConfigError
        With ``config.strict``, when an approach cannot be fitted; otherwise
        only when no approach could be fitted.
    """
    config = config or AnalysisConfig()
    quality = table.reference_quality() if config.quality is None else float(config.quality)
    budgets = np.asarray(config.budgets if config.budgets else [float(table.flops.max())], dtype=np.float64)
    if np.any(budgets / table.flops_per_nd <= 1):
        raise ConfigError(f"FLOPs budget {budgets.min():g} is too small for "
                          f"flops_per_nd={table.flops_per_nd:g} (need FLOPs / k > 1)")
    skipped, warnings, boot, overhead = {}, [], {}, {}
    env = fit2 = fit3 = None

    if 1 in config.approaches:
        env = _attempt(1, lambda: fit_envelope(table, quality=quality, config=config.envelope),
                       config, skipped)
        if env is not None and config.bootstrap.n_boot:
            boot[1] = bootstrap_envelope(table, budgets, quality=quality, config=config.bootstrap,
                                         envelope_config=config.envelope)
    # the parametric laws model finished runs: with a train_fraction column, only the
    # rows at the end of their run's schedule (every row otherwise)
    final = table.final()
    if 2 in config.approaches:
        fit2 = _attempt(2, lambda: fit_approach2(final, config.fit, reference_quality=quality),
                        config, skipped)
    if 3 in config.approaches:
        fit3 = _attempt(3, lambda: fit_approach3(final, config.fit, reference_quality=quality),
                        config, skipped)
    if env is None and fit2 is None and fit3 is None:
        reasons = "; ".join(f"Approach {k}: {v}" for k, v in sorted(skipped.items()))
        raise DataError(f"no approach could be fitted. {reasons}")

    for number, fit in ((2, fit2), (3, fit3)):
        if fit is None:
            continue
        for conv in fit.convergence:
            if not conv.converged:
                warnings.append(f"Approach {number} ({conv.stage} stage) did not converge: largest "
                                f"gradient component {conv.grad_inf:.3g} > {conv.grad_tol:.3g} ({conv.message})")
            if conv.at_bound:
                warnings.append(f"Approach {number} ({conv.stage} stage): {', '.join(conv.at_bound)} "
                                "ended on the bound of the search box")
        if not fit.quality_terms and math.isfinite(quality) and np.isfinite(table.quality).any():
            warnings.append(f"Approach {number}: one quality level only, so the quality terms were "
                            "not fitted; infinite-quality predictions are not available")
        if config.bootstrap.n_boot:
            boot[number] = bootstrap_parametric(final, fit, budgets, config=config.bootstrap,
                                                fit_config=config.fit)
        if fit.law.alpha > 0 and fit.law.beta > 0:
            overhead[number] = fit.overhead(np.asarray(config.omega_N), flops=budgets[0])

    for number, result in boot.items():
        if result.n_boot and result.n_failed > 0.1 * result.n_boot:
            warnings.append(f"Approach {number}: {result.n_failed} of {result.n_boot} bootstrap "
                            "replicates could not be fitted; its intervals rest on the rest")
        if result.n_unconverged:
            warnings.append(f"Approach {number}: {result.n_unconverged} bootstrap refits did not meet "
                            "the convergence test")

    cross, agreements = None, []
    if fit2 is not None and config.crosscheck:
        cross = _attempt(2, lambda: fit_approach2_varpro(final, quality_terms=fit2.quality_terms),
                         config, skipped)
        if cross is not None:
            intervals = boot[2].intervals() if 2 in boot else None
            agreements, disagree = compare_with_main(fit2.law, cross.law, intervals, fit2.quality_terms)
            warnings.extend(disagree)

    acc_map = None
    if table.accuracy is not None:
        try:
            acc_map = loss_accuracy_from_table(table)
        except DataError as exc:
            warnings.append(f"loss-to-accuracy map not fitted: {exc}")

    if table.has_flops and table.flops_relative_error() > 0.05:
        warnings.append(f"the flops column differs from k N D (k={table.flops_per_nd:.4g}) by up to "
                        f"{100 * table.flops_relative_error():.1f}%; allocations assume FLOPs = k N D")
    if budgets.max() > table.flops.max():
        warnings.append(f"budget {budgets.max():.3g} FLOPs is beyond the largest run "
                        f"({table.flops.max():.3g}); allocations there are extrapolations")

    report = ScalingReport(table=table, config=config, budgets=budgets, quality=quality, envelope=env,
                           approach2=fit2, approach3=fit3, bootstrap=boot, crosscheck=cross,
                           agreements=agreements, overhead=overhead, loss_accuracy=acc_map,
                           comparison=[], skipped=skipped, warnings=())
    return ScalingReport(**{**report.__dict__, "comparison": comparison_table(report),
                            "warnings": tuple(warnings)})


def _interval(boot: BootstrapResult | None, name, index=None):
    if boot is None or name not in boot.samples:
        return None
    lo, hi = boot.interval(name)
    if index is not None:
        lo, hi = lo[index], hi[index]
    return (float(lo), float(hi))


def comparison_table(report: ScalingReport) -> list:
    """Rows of the paper's Table 3 at the first budget.

    Each row has the approach and two blocks, ``at_quality`` (the report's
    quality) and ``infinite_quality``, each with ``a``, ``b``, ``L_star`` and
    the irreducible loss (``E_eff`` at the quality, ``E`` at infinity), or
    None where the approach cannot say (Approach 1 does not model quality or
    E; a fit without quality terms cannot extrapolate in quality).  Intervals
    come from the bootstrap at the report's quality.
    """
    F = float(report.budgets[0])
    q = report.quality
    acc = report.loss_accuracy
    rows = []

    def block(a, b, loss, floor, floor_name, boot=None):
        out = {"a": a, "b": b, "L_star": loss, floor_name: floor}
        if acc is not None and loss is not None:
            out["accuracy_star"] = float(acc.predict(loss))
        if boot is not None:
            out["intervals"] = {"a": _interval(boot, "a"), "b": _interval(boot, "b"),
                                "L_star": _interval(boot, "L_star", 0)}
        return out

    if report.envelope is not None:
        env = report.envelope
        at_q = block(env.a, env.b, float(env.L_star(F)), None, "E_eff", report.bootstrap.get(1))
        rows.append({"approach": 1, "at_quality": at_q,
                     "infinite_quality": at_q if math.isinf(env.quality) else None})
    for number, fit in ((2, report.approach2), (3, report.approach3)):
        if fit is None:
            continue
        a, b = fit.exponents(flops=F, quality=q)
        floor_q = float(fit.law.E_eff(q)) if fit.quality_terms else fit.law.E
        at_q = block(a, b, float(fit.optimal(F, q).loss[0]), floor_q, "E_eff", report.bootstrap.get(number))
        if fit.quality_terms or math.isinf(q):
            a_inf, b_inf = fit.exponents(flops=F, quality=math.inf)
            inf_q = block(a_inf, b_inf, float(fit.optimal(F, math.inf).loss[0]), fit.law.E, "E")
        else:
            inf_q = None
        rows.append({"approach": number, "at_quality": at_q, "infinite_quality": inf_q})
    return rows


# ---------------------------------------------------------------- JSON output

def _jsonable(value):
    """Plain JSON types: arrays to lists, inf to "inf", NaN to None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return None
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    return value


def _boot_dict(boot: BootstrapResult | None):
    if boot is None:
        return None
    return {"n_boot": boot.n_boot, "n_failed": boot.n_failed, "n_unconverged": boot.n_unconverged,
            "seed": boot.seed, "level": boot.level,
            "intervals": {name: [lo, hi] for name, (lo, hi) in boot.intervals().items()}}


def _allocation_rows(opt, boot: BootstrapResult | None, acc: LossAccuracyMap | None):
    rows = []
    for i, F in enumerate(opt.flops):
        row = {"flops": F, "quality": opt.quality, "N_star": opt.N[i], "D_star": opt.D[i],
               "L_star": opt.loss[i]}
        if acc is not None:
            row["accuracy_star"] = float(acc.predict(opt.loss[i]))
        if boot is not None:
            row["intervals"] = {k: _interval(boot, k, i) for k in ("N_star", "D_star", "L_star")}
        rows.append(row)
    return rows


def _overhead_dict(ov):
    if ov is None:
        return None
    return {"flops": ov.flops, "quality": ov.quality, "N_star": ov.N_star, "D_star": ov.D_star,
            "L_star": ov.loss_star, "omega_N": ov.omega_N, "omega_D": ov.omega_D,
            "overhead": ov.overhead, "feasible": ov.feasible}


def _parametric_dict(fit: ParametricFit, report: ScalingReport, number: int):
    boot = report.bootstrap.get(number)
    a, b = fit.exponents(flops=report.budgets[0])
    out = {
        "form": "Eq. 3" if number == 2 else "Eq. 5",
        "quality_fit": fit.quality_fit,
        "base_quality": fit.base_quality,
        "params": fit.params(),
        "a": a, "b": b,
        "a_b_local": number == 3 and math.isfinite(report.quality),
        "n_points": fit.n_points,
        "flops_per_nd": fit.flops_per_nd,
        "reference_quality": fit.reference_quality,
        "convergence": [c.to_dict() for c in fit.convergence],
        "converged": fit.converged,
        "bootstrap": _boot_dict(boot),
        "optimal": _allocation_rows(fit.optimal(report.budgets), boot, report.loss_accuracy),
        "overhead": _overhead_dict(report.overhead.get(number)),
    }
    if number == 2:
        out["G"] = float(fit.law.G(report.quality))
        out["B_eff"] = float(fit.law.B_eff(report.quality))
        out["E_eff"] = float(fit.law.E_eff(report.quality))
    if number == 3:
        out["chinchilla_B"] = fit.law.chinchilla_B
        out["E_eff"] = float(fit.law.E_eff(report.quality))
    return out


def report_to_dict(report: ScalingReport) -> dict:
    """Everything fitted, as JSON-ready data (parameters named as in the paper)."""
    t = report.table
    out = {
        "table": {"source": t.source, "n_rows": t.n_rows, "n_runs": t.n_runs,
                  "quality_levels": t.quality_levels(), "flops_per_nd": t.flops_per_nd,
                  "flops_per_nd_source": t.flops_per_nd_source,
                  "flops_max_relative_error": t.flops_relative_error(),
                  "flops_range": [float(t.flops.min()), float(t.flops.max())]},
        "budgets": report.budgets,
        "quality": report.quality,
        "settings": {"huber_delta": report.config.fit.huber_delta, "grid": report.config.fit.grid,
                     "quality_fit": report.config.fit.quality_fit,
                     "n_boot": report.config.bootstrap.n_boot, "seed": report.config.bootstrap.seed,
                     "level": report.config.bootstrap.level,
                     "envelope_censor_edges": report.config.envelope.censor_edges,
                     "envelope_weighting": report.config.envelope.weighting},
        "approach1": None, "approach2": None, "approach3": None,
        "crosscheck": None,
        "loss_to_accuracy": None,
        "comparison": report.comparison,
        "skipped": {f"approach{k}": v for k, v in report.skipped.items()},
        "warnings": list(report.warnings),
    }
    env = report.envelope
    if env is not None:
        kept = env.status == 0
        out["approach1"] = {
            "quality": env.quality, "a": env.a, "b": env.b,
            "N_star": {"coef": env.N_star.coef, "exponent": env.N_star.exponent, "r2": env.N_star.r2},
            "D_star": {"coef": env.D_star.coef, "exponent": env.D_star.exponent, "r2": env.D_star.r2},
            "L_star": {"coef": env.L_star.coef, "exponent": env.L_star.exponent, "r2": env.L_star.r2},
            "n_grid": int(env.flops.size), "n_kept": env.n_kept,
            "n_edge_censored": int(np.sum(env.status == 3)),
            "n_not_improving": int(np.sum(env.status == 2)),
            "n_curves": int(env.curve_N.size), "n_skipped_curves": env.n_skipped_curves,
            "bootstrap": _boot_dict(report.bootstrap.get(1)),
            "optimal": _allocation_rows(env.optimal(report.budgets), report.bootstrap.get(1),
                                        report.loss_accuracy),
            "envelope": {"flops": env.flops[kept], "loss": env.loss[kept], "N": env.N[kept],
                         "D": env.D[kept], "weight": env.weights[kept]},
        }
    if report.approach2 is not None:
        out["approach2"] = _parametric_dict(report.approach2, report, 2)
    if report.approach3 is not None:
        out["approach3"] = _parametric_dict(report.approach3, report, 3)
    if report.crosscheck is not None:
        c = report.crosscheck
        out["crosscheck"] = {
            "method": "variable projection (NNLS for A, B, E; Nelder-Mead for the exponents)",
            "params": {k: v for k, v in c.law.params().items()
                       if c.quality_terms or k not in ("eps_q", "zeta")},
            "a": c.law.a, "b": c.law.b, "rss": c.rss, "converged": c.converged, "message": c.message,
            "agreement": [a.__dict__ for a in report.agreements],
        }
    if report.loss_accuracy is not None:
        m = report.loss_accuracy
        out["loss_to_accuracy"] = {"slope": m.slope, "intercept": m.intercept, "r2": m.r2,
                                   "n_points": m.n_points, "loss_range": list(m.loss_range)}
    return _jsonable(out)


# ---------------------------------------------------------------- text output

def _fmt(v, digits=4):
    if v is None:
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return f"{v:.{digits}g}"


def _with_interval(value, interval, digits=4):
    if interval is None or any(x is None or not math.isfinite(x) for x in interval):
        return _fmt(value, digits)
    return f"{_fmt(value, digits)} [{_fmt(interval[0], digits)}, {_fmt(interval[1], digits)}]"


def _quality_name(q):
    return "inf (FID=0)" if math.isinf(q) else f"{q:g}"


def render_text(report: ScalingReport) -> str:
    """The human-readable summary printed by ``robnp scaling fit``."""
    t = report.table
    lines = []
    level = int(round(100 * report.config.bootstrap.level))
    lines.append(f"Table: {t.source or '(arrays)'}: {t.n_rows} rows, {t.n_runs} runs, quality levels "
                 f"{', '.join(_quality_name(q) for q in t.quality_levels())}; FLOPs = k N D with "
                 f"k = {t.flops_per_nd:.4g} ({t.flops_per_nd_source})")
    lines.append(f"Reported at quality {_quality_name(report.quality)}; budgets "
                 f"{', '.join(f'{b:.3g}' for b in report.budgets)} FLOPs; intervals: {level}% bootstrap "
                 f"over runs ({report.config.bootstrap.n_boot} replicates, seed {report.config.bootstrap.seed})")

    env = report.envelope
    if env is not None:
        boot = report.bootstrap.get(1)
        lines += ["", f"Approach 1 (envelope of training curves, quality {_quality_name(env.quality)})",
                  f"  a = {_with_interval(env.a, _interval(boot, 'a'))}   "
                  f"b = {_with_interval(env.b, _interval(boot, 'b'))}   "
                  f"L* ~ F^{_with_interval(env.L_star.exponent, _interval(boot, 'L_exponent'))}",
                  f"  {env.n_kept} of {env.flops.size} grid points used ({int(np.sum(env.status == 3))} "
                  f"edge-censored, {int(np.sum(env.status == 2))} not improving); {env.curve_N.size} curves"]
        lines += _allocation_lines(env.optimal(report.budgets), boot)

    for number, fit in ((2, report.approach2), (3, report.approach3)):
        if fit is None:
            continue
        boot = report.bootstrap.get(number)
        title = ("Approach 2 (parametric loss with data-quality terms, Eq. 3)" if number == 2
                 else "Approach 3 (data-quality bottleneck, Eq. 5)")
        lines += ["", f"{title}; fit: {fit.quality_fit}, {fit.n_points} points"]
        params = "   ".join(f"{k} = {_with_interval(v, _interval(boot, k))}" for k, v in fit.params().items())
        lines.append(f"  {params}")
        a, b = fit.exponents(flops=report.budgets[0])
        local = " (local, at the first budget)" if number == 3 and math.isfinite(report.quality) else ""
        lines.append(f"  a = {_with_interval(a, _interval(boot, 'a'))}   "
                     f"b = {_with_interval(b, _interval(boot, 'b'))}{local}")
        for c in fit.convergence:
            state = "converged" if c.converged else "NOT converged"
            lines.append(f"  {c.stage} stage {state}: gradient {c.grad_inf:.2g} (tol {c.grad_tol:.2g}), "
                         f"objective {c.objective:.6g}, {c.n_starts_at_best} of {c.n_starts} starts at the best")
        lines += _allocation_lines(fit.optimal(report.budgets), boot)
        ov = report.overhead.get(number)
        if ov is not None:
            picks = [w for w in (0.25, 0.5, 2.0, 4.0)]
            parts = []
            for w in picks:
                i = int(np.argmin(np.abs(np.log(ov.omega_N / w))))
                parts.append(f"omega_N={ov.omega_N[i]:.3g}: " + (f"+{100 * (ov.overhead[i] - 1):.1f}%"
                                                                 if ov.feasible[i] else "unreachable"))
            lines.append(f"  compute overhead at {ov.flops:.3g} FLOPs: " + "; ".join(parts))
        if number == 2 and report.crosscheck is not None:
            c = report.crosscheck
            agree = all(a.agrees for a in report.agreements)
            lines.append(f"  cross-check (variable projection): alpha = {_fmt(c.law.alpha)}, beta = "
                         f"{_fmt(c.law.beta)}, a = {_fmt(c.law.a)} -> "
                         + ("agrees" if agree else "DISAGREES") + " with the main fit")

    if report.loss_accuracy is not None:
        m = report.loss_accuracy
        lines += ["", f"Loss to accuracy: accuracy = {m.intercept:.4g} + ({m.slope:.4g}) * loss "
                      f"(R^2 = {m.r2:.3f}, {m.n_points} best checkpoints)"]

    if report.comparison:
        F = report.budgets[0]
        e_prime = "E'"
        lines += ["", f"Comparison (as the paper's Table 3) at {F:.3g} FLOPs",
                  f"  {'':10} | {'quality ' + _quality_name(report.quality):^34} | {'infinite quality (FID=0)':^34}",
                  f"  {'approach':10} | {_cells('a', 'b', 'L*', e_prime)} | {_cells('a', 'b', 'L*', 'E')}"]
        for row in report.comparison:
            q, inf = row["at_quality"], row["infinite_quality"]
            left = _cells(_fmt(q["a"], 3), _fmt(q["b"], 3), _fmt(q["L_star"], 4), _fmt(q["E_eff"], 3))
            if inf is None:
                right = _cells("-", "-", "-", "-")
            else:
                floor = inf["E"] if "E" in inf else inf.get("E_eff")   # Approach 1 at infinite quality
                right = _cells(_fmt(inf["a"], 3), _fmt(inf["b"], 3), _fmt(inf["L_star"], 4), _fmt(floor, 3))
            lines.append(f"  {row['approach']:<10} | {left} | {right}")

    for number, reason in sorted(report.skipped.items()):
        lines += ["", f"Approach {number} skipped: {reason}"]
    if report.warnings:
        lines += [""] + [f"warning: {w}" for w in report.warnings]
    return "\n".join(lines)


def _cells(a, b, loss, floor):
    return f"{a:>7} {b:>7} {loss:>8} {floor:>8}"


def _allocation_lines(opt, boot):
    lines = [f"  {'FLOPs':>10} {'N*':>24} {'D*':>24} {'L*':>24}"]
    for i, F in enumerate(opt.flops):
        cells = [_with_interval(v, _interval(boot, k, i), 3)
                 for k, v in (("N_star", opt.N[i]), ("D_star", opt.D[i]), ("L_star", opt.loss[i]))]
        lines.append(f"  {F:>10.3g} " + " ".join(f"{c:>24}" for c in cells))
    return lines


# ---------------------------------------------------------------- files

RESULTS_JSON = "scaling_fit.json"


def save_report(report: ScalingReport, out_dir, *, figures: bool = True) -> list:
    """Write the JSON of everything fitted and, optionally, the figures.

    Every file is written atomically.  The folder is created if missing.

    Parameters
    ----------
    report : ScalingReport
    out_dir : str or os.PathLike
    figures : bool
        Also draw the figures (needs matplotlib).

    Returns
    -------
    list of Path
        Files written, the JSON first.

    Raises
    ------
    ConfigError
        If the folder cannot be created or written to.
    """
    import json

    from robnp._io import atomic_write_text, ensure_writable_dir as ensure_out_dir

    out = ensure_out_dir(out_dir)
    written = [atomic_write_text(out / RESULTS_JSON,
                                 json.dumps(report_to_dict(report), indent=2, allow_nan=False) + "\n")]
    if figures:
        from robnp.scaling.plots import write_figures

        written += write_figures(report, out)
    return written


def run_scaling_fit(table_path, config: AnalysisConfig | None = None, *, flops_per_nd=None,
                    out_dir=None, figures: bool = True):
    """Read a table, analyze it and save the results: the ``robnp scaling fit`` command.

    The output folder is checked first, so a bad folder fails before the fit.

    Parameters
    ----------
    table_path : str or os.PathLike
        CSV or JSON table (see :func:`robnp.scaling.table.read_table`).
    config : AnalysisConfig, optional
    flops_per_nd : float, optional
        k in FLOPs = k N D.
    out_dir : str or os.PathLike, optional
        Where to write the JSON and figures; nothing is written without it.
    figures : bool

    Returns
    -------
    report : ScalingReport
    written : list of Path
    """
    from robnp._io import check_output_dir
    from robnp.scaling.table import read_table

    if out_dir is not None:
        check_output_dir(out_dir)  # created by save_report, once there is something to save
    table = read_table(table_path, flops_per_nd=flops_per_nd)
    report = analyze(table, config)
    written = save_report(report, out_dir, figures=figures) if out_dir is not None else []
    return report, written
