"""``robnp scaling run``: the scaling study from its configuration to its report.

:func:`run_scaling_study`

1. checks the configuration's memory and the output directory, opens the study's
   store (``tasks.sqlite``; the sweep's crash-safe store, keyed by each run's
   content) and locks the directory;
2. fits each source's generator once, here (``generators/<source>.npz``: a resumed
   study loads them back and checks they are the generators its configuration
   describes);
3. runs every run not yet stored on an executor (:mod:`robnp.study.executors`),
   committing each as it finishes;
4. from the stored runs writes ``runs.csv`` (the table ``robnp scaling fit`` reads:
   one row per checkpoint), fits the laws (``fit/``: Approaches 1-3 as
   :func:`robnp.scaling.run_scaling_fit` writes them; the parametric ones on the
   finished runs), tests them on runs left out, puts their plateau next to the
   data's truth and the invalid share along the grid (:mod:`robnp.scaling.heldout`),
   and writes ``scaling.json`` and the figures.

Every file is written atomically; an interruption loses at most the runs in flight,
and ``resume=True`` finishes the study with the same numbers.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import _checks
from .._io import atomic_write_text
from ..errors import StoreError
from .study import ScalingConfig, Source, true_test_sample, truth_source

__all__ = ["run_scaling_study", "plan", "ScalingOutcome", "runs_table_rows", "RUNS_COLUMNS",
           "fit_sources", "measure_rate"]

#: Columns of runs.csv, in order: the fitter's, then the study's own.
RUNS_COLUMNS = ("N", "D", "flops", "quality", "loss", "accuracy", "run", "train_fraction",
                "source", "fid", "w1", "width", "depth", "seed", "examples", "clean_acc",
                "invalid_share", "invalid_error_share", "cross_entropy", "kl", "dataset",
                "eps")


@dataclass(frozen=True)
class ScalingOutcome:
    """What :func:`run_scaling_study` did and wrote."""

    document: dict
    paths: dict
    n_tasks: int
    n_ran: int
    seconds: float


def fit_sources(config: ScalingConfig, out_dir=None) -> dict:
    """Each source's fitted generator, by its spec. With ``out_dir``, kept in
    ``out_dir/generators/<label>.npz``: loaded when present (and refused, one line,
    when it is not the generator the configuration describes), written otherwise."""
    from ..data.generators import load_generator, save_generator

    task = config.data_task()
    generators = {}
    for spec in config.sources:
        source = Source.parse(spec)
        path = None if out_dir is None else Path(out_dir) / "generators" / f"{source.label()}.npz"
        fitted = None
        if path is not None and path.is_file():
            fitted = load_generator(path, task)
            if (fitted.kind, fitted.m, fitted.seed, fitted.options.to_dict()) != \
                    _expected(source, config.generator_seed):
                raise StoreError(f"{path} holds another generator than source {spec!r} "
                                 f"with generator_seed {config.generator_seed}; move it away")
        if fitted is None:
            fitted = source.fit(task, config.generator_seed)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                save_generator(fitted, path)
        generators[spec] = fitted
    return generators


def _expected(source: Source, seed: int) -> tuple:
    """What a fitted generator of ``source`` must say of itself (its task is checked
    by :func:`robnp.data.generators.load_generator`)."""
    from ..data.generators import GENERATORS

    options = GENERATORS.lookup(source.kind).make_options(dict(source.knobs)).to_dict()
    if source.kind == "true":
        return (source.kind, None, None, options)
    return (source.kind, source.m, seed, options)


def runs_table_rows(config: ScalingConfig, stored: dict, quality: dict) -> list[dict]:
    """One row per checkpoint of every run, in the grid's order (:data:`RUNS_COLUMNS`).
    ``quality`` maps each source spec to its :func:`source_quality` entry."""
    rows = []
    for task in config.tasks():
        result = stored[task.key]
        for row in result.rows:
            rows.append({
                "N": result.n_params, "D": row["D"], "flops": row["flops"],
                "quality": quality[task.source]["quality"], "loss": row["loss"],
                "accuracy": row["robust_acc"], "run": task.run_label,
                "train_fraction": row["train_fraction"], "source": task.source,
                "fid": quality[task.source]["fid"], "w1": quality[task.source]["w1"],
                "width": task.width,
                "depth": config.depth, "seed": task.seed, "examples": task.examples,
                "clean_acc": row["clean_acc"], "invalid_share": row["invalid_share"],
                "invalid_error_share": row["invalid_error_share"],
                "cross_entropy": row["cross_entropy"], "kl": row["kl"],
                "dataset": config.dataset, "eps": config.eps})
    return rows


def _csv_text(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RUNS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else (repr(v) if isinstance(v, float) else v))
                         for k, v in row.items()})
    return buffer.getvalue()


def source_quality(config: ScalingConfig, generators: dict) -> dict:
    """Each source's distance to the truth two ways, and its quality.

    ``w1``: the conditional Wasserstein-1 distance at ``w1_n`` points per side
    (:func:`robnp.data.quality.conditional_w1`) and ``w1_excess``, its excess over the
    true generator's own value at the same size (the estimator's floor); ``fid``: the
    FID analogue at ``fid_n`` points (:func:`robnp.data.quality.fid`). ``quality`` is
    ``1 / w1_excess`` or ``1 / fid`` (``quality_measure``), ``inf`` for the true
    generator, and ``inf`` too for a rung no farther from the truth than the floor
    (flagged ``at_floor``)."""
    from ..data.quality import conditional_w1, fid, true_generator

    floor = conditional_w1(true_generator(config.data_task()), config.w1_n, 0)["value"]
    out = {}
    for spec, generator in generators.items():
        w1 = conditional_w1(generator, config.w1_n, 0)["value"]
        value = fid(generator, config.fid_n, 0)
        distance = w1 - floor if config.quality_measure == "w1" else value["value"]
        true = Source.parse(spec).kind == "true"
        at_floor = not true and distance <= 0
        quality = math.inf if true or at_floor else 1.0 / distance
        out[spec] = {"quality": quality, "w1": w1, "w1_excess": w1 - floor,
                     "fid": value["value"], "fid_inf": value["fid_inf"], "at_floor": at_floor}
    return out


def truth_facts(config: ScalingConfig) -> dict:
    """What the data allows at the study's radius on its test sample: the Bayes
    classifier's clean and robust accuracy (exact for the radial tasks, an attack's
    upper bound for the mixtures) with 95% Wilson intervals; None without densities."""
    from ..verify.truth import bayes_robust_accuracy
    from .heldout import binomial_interval

    task = config.data_task()
    source = truth_source(task)
    if source is None:
        return {"bayes_robust_acc": None, "reason": f"{task.describe()} has no exact density"}
    X, y = true_test_sample(task, config.n_test, config.test_seed)
    clean = float((source.label(np.asarray(X, dtype=np.float64)) == y).mean())
    robust, exact = bayes_robust_accuracy(source, X, y, [config.eps], seed=config.test_seed)
    n = len(y)
    return {"bayes_clean_acc": clean,
            "bayes_clean_interval": list(binomial_interval(clean * n, n)),
            "bayes_robust_acc": float(robust[0]), "bayes_exact": bool(exact),
            "bayes_interval": list(binomial_interval(float(robust[0]) * n, n)),
            "n_test": n}


def run_scaling_study(config: ScalingConfig, out_dir, *, jobs: int | None = None,
                      executor=None, resume: bool = False, n_boot: int = 100,
                      threads_per_run: int = 1, on_progress=None, on_start=None,
                      figures: bool = True) -> ScalingOutcome:
    """Run every run of ``config`` not yet stored in ``out_dir``, then fit and report
    (module docstring).

    Parameters
    ----------
    config : ScalingConfig
    out_dir : path
    jobs : int, optional
        Worker processes of the local executor (default: every core); not with
        ``executor``.
    executor : robnp.study.executors.Executor, optional
    resume : bool
        Continue the study stored in ``out_dir`` (the same configuration only).
    n_boot : int >= 0
        Bootstrap replicates of the fits' intervals.
    threads_per_run : int >= 1
        Threads each run trains and attacks on (for workers with several cores each,
        so that the longest runs end sooner); the numbers are the same for any count.
    on_progress, on_start
        As :func:`robnp.study.run_study` takes them.
    figures : bool
        Draw the figures (matplotlib).
    """
    from ..study.runner import check_memory, choose_executor, output_dir, run_into_store
    from ..study.store import TaskStore, check_writable

    executor = choose_executor(jobs, executor)
    out_dir = output_dir(out_dir)
    threads_per_run = _checks.integer("threads_per_run", threads_per_run, 1)
    check_memory(config.tasks(), "run")
    check_writable(out_dir)
    start = time.perf_counter()
    with TaskStore.open(out_dir, config, resume=resume) as store:
        generators = fit_sources(config, out_dir)
        tasks = config.tasks(generators, threads_per_run)
        n_ran = run_into_store(store, tasks, executor, done=store.done_keys(), start=start,
                               on_progress=on_progress, on_start=on_start)
        grid = analyse_grid(config, store.results(), generators, out_dir, n_boot=n_boot)
        optimal, optimal_plan = optimal_tasks(config, grid, generators, threads_per_run)
        n_ran += run_into_store(store, optimal, executor, done=store.done_keys(), start=start,
                                on_progress=on_progress, on_start=on_start)
        document, paths = write_report(config, grid, store.results(), optimal, optimal_plan,
                                       out_dir, figures=figures)
    return ScalingOutcome(document, paths, len(tasks) + len(optimal), n_ran,
                          time.perf_counter() - start)


@dataclass(frozen=True)
class GridAnalysis:
    """The grid's runs as a table and the laws fitted to them."""

    rows: list
    table: object
    report: object
    quality: dict
    document: dict
    fit_config: object


def analyse_grid(config: ScalingConfig, stored: dict, generators: dict, out_dir,
                 *, n_boot: int = 100) -> GridAnalysis:
    """Write runs.csv from the grid's stored runs and fit the laws to it (the
    parametric ones on the finished runs); the fits' intervals from ``n_boot``
    bootstrap replicates."""
    from ..errors import RobnpError
    from .analysis import AnalysisConfig, analyze, report_to_dict
    from .bootstrap import BootstrapConfig
    from .fit import FitConfig
    from .table import read_table

    out_dir = Path(out_dir)
    quality = source_quality(config, generators)
    rows = runs_table_rows(config, stored, quality)
    atomic_write_text(out_dir / "runs.csv", _csv_text(rows))
    table = read_table(out_dir / "runs.csv")
    fit_config = FitConfig(grid="small")
    document: dict = {"format": "robnp.scaling_study", "config": config.to_dict(),
                      "sources": quality, "n_runs": len(rows) // len(config.checkpoints)}
    try:
        # reported at the reference source's quality (the truth's, infinite, when the
        # ladder has it): Approach 1's curves and the comparison are the truth's runs
        report = analyze(table, AnalysisConfig(
            quality=quality[config.reference_source()]["quality"], fit=fit_config,
            bootstrap=BootstrapConfig(n_boot=n_boot, seed=0)))
        document["fits"] = report_to_dict(report)
    except RobnpError as exc:  # a grid too small to fit still reports its runs
        report = None
        document["fits"] = None
        document["fit_error"] = str(exc)
    return GridAnalysis(rows, table, report, quality, document, fit_config)


def optimal_tasks(config: ScalingConfig, grid: GridAnalysis, generators: dict,
                  threads: int = 1):
    """The compute-optimal test's runs (paper, Section 3.3.1): Approach 2's N* at the
    budget (``optimal_budget``) on the reference source's quality, and the other
    multiples of ``optimal_factors``; each model's D spends the budget exactly (the
    run's own FLOP count), every seed of the grid. Returns ``(tasks, plan)``; no
    tasks, and the reason in ``plan``, when there is no check to make."""
    from .study import ScalingTask

    if not config.optimal_factors:
        return [], {"skipped": "no optimal_factors"}
    fit = None if grid.report is None else grid.report.approach2
    if fit is None or not (fit.law.alpha > 0 and fit.law.beta > 0):
        return [], {"skipped": "Approach 2 could not be fitted with alpha, beta > 0"}
    source = config.reference_source()
    budget = config.optimal_budget or config.default_optimal_budget()
    quality = grid.quality[source]["quality"]
    allocation = fit.optimal(budget, quality=quality)
    N_star = float(allocation.N[0])
    seeds = config.seeds + config.extra_seeds
    tasks, runs = [], []
    for factor in config.optimal_factors:
        width = config.width_for(N_star * factor)
        if any(r["width"] == width for r in runs):
            continue
        per_example = ScalingTask(config, source, width, 1 << 20, seeds[0]).train_flops() / (1 << 20)
        D = max(int(round(budget / per_example)),
                config.periods * config.batch_size_for(config.data_sizes[0]))
        runs.append({"factor": factor, "width": width, "N": config.n_params(width),
                     "examples": D})
        tasks += [ScalingTask(config, source, width, D, seed, generators[source], threads)
                  for seed in seeds]
    plan = {"budget": budget, "source": source, "quality": quality, "N_star": N_star,
            "D_star": float(allocation.D[0]), "L_star": float(allocation.loss[0]),
            "runs": runs, "seeds": list(seeds)}
    return tasks, plan


def optimal_outcome(plan: dict, tasks, stored: dict) -> dict:
    """Per model of the compute-optimal test: its final test losses over seeds, mean
    and standard error, and whether N* is the best within noise (its mean no more
    than two combined standard errors above every other model's)."""
    if "skipped" in plan:
        return plan
    runs = []
    for run in plan["runs"]:
        finals = [stored[t.key].rows[-1] for t in tasks
                  if t.width == run["width"] and t.examples == run["examples"]]
        losses = [row["loss"] for row in finals]
        se = float(np.std(losses, ddof=1) / math.sqrt(len(losses))) if len(losses) > 1 \
            else math.nan
        runs.append({**run, "losses": losses, "mean_loss": float(np.mean(losses)),
                     "se": se,
                     "mean_robust_acc": float(np.mean([row["robust_acc"] for row in finals]))})
    star = next(r for r in runs if r["factor"] == 1.0)
    others = [r for r in runs if r is not star]
    margins = [r["mean_loss"] - star["mean_loss"] for r in others]
    noise = [2 * math.sqrt(star["se"] ** 2 + r["se"] ** 2) for r in others]
    return {**plan, "runs": runs,
            "n_star_lowest": all(m > 0 for m in margins),
            "n_star_best_within_noise": all(m > -n for m, n in zip(margins, noise)),
            "predicted_loss_at_n_star": plan["L_star"]}


def write_report(config: ScalingConfig, grid: GridAnalysis, stored: dict, optimal,
                 optimal_plan: dict, out_dir, *, figures: bool = True) -> tuple[dict, dict]:
    """The fits' files, the held-out checks, the plateau, the invalid share, the
    compute-optimal test, the figures and scaling.json."""
    from .analysis import save_report
    from .heldout import heldout_predictions, invalid_trend, plateau_against_truth

    out_dir = Path(out_dir)
    document = dict(grid.document)
    paths = {"runs": out_dir / "runs.csv"}
    truth = truth_facts(config)
    if grid.report is not None:
        report = grid.report
        fits = {n: f for n, f in ((2, report.approach2), (3, report.approach3)) if f is not None}
        document["plateau"] = plateau_against_truth(grid.table, fits, truth,
                                                    report.loss_accuracy)
        paths.update({f"fit_{k}": v for k, v in
                      enumerate(save_report(report, out_dir / "fit", figures=figures))})
    else:
        document["plateau"] = {"truth": truth}
    document["heldout"] = heldout_predictions(grid.table, grid.fit_config)
    document["invalid"] = invalid_trend(grid.rows)
    document["optimal"] = optimal_outcome(optimal_plan, optimal, stored)
    if figures:
        from .study_plots import study_figures

        paths.update(study_figures(grid.rows, document, out_dir))
    paths["document"] = out_dir / "scaling.json"
    atomic_write_text(paths["document"], json.dumps(document, indent=2, default=_json_default,
                                                    allow_nan=True))
    return document, paths


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


# -- the plan ---------------------------------------------------------------------------

def measure_rate(width: int = 128, examples: int = 4096) -> float:
    """FLOPs per second this machine sustains on one core for the study's own work:
    one short TRADES run of the small preset's recipe (its exact FLOP count over its
    wall time, the second of two runs, after compilation)."""
    from ..data.generators import true_generator
    from ..data.quality import GeneratorStream
    from ..model import MLP
    from ..training.stream import fit_stream

    config = ScalingConfig(widths=(width,), data_sizes=(examples,))
    task = config.data_task()
    rate = 0.0
    for _ in range(2):
        model = MLP(config.input_dim, (width,) * config.depth, config.n_classes, seed=0)
        start = time.perf_counter()
        history = fit_stream(
            model, GeneratorStream(true_generator(task), 0), examples,
            config.train_config(examples, 0), n_threads=1)
        rate = history.train_flops / (time.perf_counter() - start)
    return rate


def plan(config: ScalingConfig, *, workers: tuple[int, ...] = (2, 64),
         rate: float | None = None) -> dict:
    """The grid of ``config`` without running it: its runs with their FLOPs, the
    total, and the projected wall time at ``rate`` FLOPs per second per worker
    (:func:`measure_rate` by default) for each worker count (the longest run bounds
    the time from below however many workers there are)."""
    tasks = config.tasks()
    costs = [task.cost() for task in tasks]
    total = float(sum(costs))
    rate = measure_rate() if rate is None else float(rate)
    projections = {}
    for count in workers:
        projections[str(count)] = max(total / (rate * count), max(costs) / rate)
    runs = [{"source": t.source, "width": t.width, "examples": t.examples, "seed": t.seed,
             "flops": c} for t, c in zip(tasks, costs)]
    return {"n_runs": len(tasks), "total_flops": total, "rate_flops_per_second": rate,
            "projected_seconds": projections, "longest_run_seconds": max(costs) / rate,
            "runs": runs,
            "widths": list(config.widths), "data_sizes": list(config.data_sizes),
            "sources": list(config.sources)}


def _g(value, spec=".4f") -> str:
    return "-" if value is None else format(value, spec)


def summary_text(document: dict) -> str:
    """The study's findings as a few plain-text tables (what ``robnp scaling run``
    prints; every number is in ``scaling.json``)."""
    measure = document["config"]["quality_measure"]
    lines = [f"Sources (quality = 1/{'(W1 - W1 of the truth)' if measure == 'w1' else 'FID'}; "
             f"W1 and the FID analogue both shown):"]
    for spec, facts in document["sources"].items():
        lines.append(f"  {spec:<26} W1 {facts['w1']:.4f} (excess {facts['w1_excess']:+.4f})  "
                     f"FID {facts['fid']:.4g}  quality {facts['quality']:.4g}")
    fits = document.get("fits")
    if fits is None:
        lines.append(f"No law could be fitted: {document.get('fit_error')}")
    plateau = document.get("plateau") or {}
    truth = plateau.get("truth") or {}
    if truth.get("bayes_robust_acc") is not None:
        lo, hi = truth["bayes_interval"]
        how = "exact" if truth["bayes_exact"] else "an attack's upper bound"
        lines.append(f"What the data allows: Bayes classifier robust accuracy "
                     f"{truth['bayes_robust_acc']:.4f} [{lo:.4f}, {hi:.4f}] ({how}), clean "
                     f"{truth['bayes_clean_acc']:.4f}, on {truth['n_test']} test points")
    best = plateau.get("best_measured")
    if best:
        lines.append(f"Best finished run: loss {best['loss']:.4f}, robust accuracy "
                     f"{_g(best['accuracy'])}")
    for number in (2, 3):
        for entry in plateau.get(f"approach{number}", []):
            lines.append(f"Approach {number} asymptote at quality {entry['quality']:.4g}: loss "
                         f"{entry['loss']:.4f} -> robust accuracy {_g(entry['accuracy'])}"
                         + (" (the line extrapolated)" if entry.get("extrapolated") else ""))
    lines.append("Runs left out (relative error of the predicted final loss):")
    for entry in document.get("heldout", []):
        if "error" in entry:
            lines.append(f"  without the {entry['split']} runs, Approach {entry['approach']}: "
                         f"not fitted ({entry['error']})")
        else:
            per = ", ".join(f"{100 * q['median_abs_error']:.1f}% at Q={q['quality']:.3g}"
                            for q in entry["by_quality"])
            lines.append(f"  without the {entry['split']} runs, Approach {entry['approach']}: "
                         f"median {100 * entry['median_abs_error']:.1f}%, max "
                         f"{100 * entry['max_abs_error']:.1f}% over {len(entry['rows'])} runs "
                         f"(medians {per})")
    optimal = document.get("optimal") or {}
    if "skipped" in optimal:
        lines.append(f"Compute-optimal test: not run ({optimal['skipped']})")
    elif optimal:
        lines.append(f"Compute-optimal test at {optimal['budget']:.3g} FLOPs ({optimal['source']}): "
                     f"N* = {optimal['N_star']:.3g}, predicted loss {optimal['L_star']:.4f}")
        for run in optimal["runs"]:
            lines.append(f"  {run['factor']:g} x N*: width {run['width']}, N {run['N']}, "
                         f"D {run['examples']}: loss {run['mean_loss']:.4f} +- {run['se']:.4f} "
                         f"over {len(run['losses'])} seeds")
        lines.append(f"  N* lowest: {optimal['n_star_lowest']}; best within noise: "
                     f"{optimal['n_star_best_within_noise']}")
    lines.append("Invalid adversarial points at the largest D (share of successful attacks; "
                 "of all robust errors):")
    for entry in document.get("invalid", []):
        lines.append(f"  {entry['source']:<26} N {entry['N']:>8}  robust {_g(entry['robust_acc'])}  "
                     f"{_g(entry['invalid_share'])}  {_g(entry['invalid_error_share'])}")
    return "\n".join(lines)
