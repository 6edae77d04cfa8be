"""``robnp scaling``: scaling-law analysis of a table of runs.

Thin by design: parse and check options, call
:func:`robnp.scaling.run_scaling_fit`, print.  Library errors become the
group's one-line ``Error: ...`` with exit code 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from .sweep import executor_options


def _quality(ctx, param, value):
    if value is None:
        return None
    try:
        q = float(value)
    except ValueError:
        raise click.BadParameter(f"expected a number or 'inf', got {value!r}") from None
    if not q > 0:
        raise click.BadParameter(f"must be > 0 (inf allowed), got {value!r}")
    return q


@click.group(name="scaling")
def scaling():
    """Scaling laws: choose model size N and data size D for a FLOPs budget."""


@scaling.command("fit")
@click.argument("table", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--approach", type=click.Choice(["1", "2", "3", "all"]), default="all", show_default=True,
              help="Approach 1 (envelope), 2 (parametric with quality terms), 3 (quality bottleneck).")
@click.option("--flops-per-nd", type=float, default=None,
              help="k in FLOPs = k N D. Default: inferred from a flops column, else 6.")
@click.option("--budget", "budgets", type=float, multiple=True,
              help="FLOPs budget for N*, D*, L* (repeatable). Default: the largest FLOPs in the table.")
@click.option("--quality", callback=_quality, default=None,
              help="Quality to report at (e.g. 1/FID, or 'inf'). Default: the highest finite level.")
@click.option("--quality-fit", type=click.Choice(["joint", "two-stage"]), default="joint", show_default=True,
              help="Approach 2 with several quality levels: joint fit or the paper's two stages.")
@click.option("--base-quality", callback=_quality, default=None,
              help="First-stage quality level of --quality-fit two-stage. Default: the level with most runs.")
@click.option("--grid", type=click.Choice(["paper", "small"]), default="paper", show_default=True,
              help="Multi-start grid of the parametric fits.")
@click.option("--n-boot", type=int, default=200, show_default=True, help="Bootstrap replicates (0: none).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@click.option("--level", type=float, default=0.95, show_default=True, help="Coverage of the intervals.")
@click.option("--no-crosscheck", is_flag=True, help="Skip the variable-projection cross-check.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("scaling_fit"), show_default=True, help="Folder for the JSON and figures.")
@click.option("--no-plots", is_flag=True, help="Write the JSON only.")
@click.option("--json", "as_json", is_flag=True, help="Print everything fitted as JSON on stdout.")
def fit(table, approach, flops_per_nd, budgets, quality, quality_fit, base_quality, grid, n_boot,
        seed, level, no_crosscheck, out_dir, no_plots, as_json):
    """Fit scaling laws to TABLE (CSV or JSON with columns N, D, loss, and
    optionally quality, flops, run, accuracy)."""
    from robnp.scaling import (AnalysisConfig, BootstrapConfig, FitConfig, render_text,
                               report_to_dict, run_scaling_fit)

    approaches = (1, 2, 3) if approach == "all" else (int(approach),)
    config = AnalysisConfig(
        approaches=approaches,
        budgets=tuple(budgets) or None,
        quality=quality,
        strict=approach != "all",
        crosscheck=not no_crosscheck,
        fit=FitConfig(grid=grid, quality_fit=quality_fit, base_quality=base_quality),
        bootstrap=BootstrapConfig(n_boot=n_boot, seed=seed, level=level),
    )
    report, written = run_scaling_fit(table, config, flops_per_nd=flops_per_nd, out_dir=out_dir,
                                      figures=not no_plots)
    if as_json:
        click.echo(json.dumps(report_to_dict(report), indent=2, allow_nan=False))
        for warning in report.warnings:
            click.echo(f"warning: {warning}", err=True)
    else:
        click.echo(render_text(report))
    if written:
        click.echo(f"wrote {len(written)} files to {out_dir}: " + ", ".join(p.name for p in written),
                   err=as_json)


@scaling.command("run")
@click.option("--preset", type=click.Choice(["small", "paper"]), default=None,
              help="The grid to start from (docs/scaling.md).  [default: small]")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="TOML file of settings (robnp.scaling.ScalingConfig's names) that "
                   "replace the preset's.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output directory (store, runs.csv, fits, scaling.json, figures).")
@executor_options
@click.option("--resume", is_flag=True, help="Continue the study stored in --out.")
@click.option("--threads-per-run", type=int, default=1, show_default=True,
              help="Threads each run trains and attacks on (for workers with several cores "
                   "each; the numbers are the same for any count).")
@click.option("--dry-run", is_flag=True,
              help="Print the grid, its FLOPs and the projected time; run nothing.")
@click.option("--n-boot", type=int, default=100, show_default=True,
              help="Bootstrap replicates of the fits' intervals (0: none).")
@click.option("--no-plots", is_flag=True, help="Write the tables and JSON only.")
@click.option("--quiet", "-q", is_flag=True, help="No line per finished run.")
def run(preset, config_file, out_dir, jobs, executor_name, scheduler, allowed_failures,
        resume, threads_per_run, dry_run, n_boot, no_plots, quiet):
    """Train the scaling study's grid (model size x data seen x data quality) under
    the paper's TRADES recipe, evaluate every checkpoint on the true distribution,
    fit the laws, test them on runs left out and hold their plateau against the
    data's truth."""
    from robnp.scaling.run import plan, run_scaling_study
    from robnp.scaling.study import ScalingConfig, preset as make_preset
    from robnp.study import default_jobs, load_config_file
    from robnp.study.store import STORE_NAME, read_store

    from .progress import Status, format_seconds
    from .sweep import _executor, run_interruptibly

    if not out_dir.strip():
        raise click.BadParameter("must name a directory, got an empty value",
                                 param_hint="--out")
    if jobs is not None and jobs < 1:
        raise click.BadParameter(f"must be >= 1, got {jobs}", param_hint="--jobs")
    if n_boot < 0:
        raise click.BadParameter(f"must be >= 0, got {n_boot}", param_hint="--n-boot")
    if threads_per_run < 1:
        raise click.BadParameter(f"must be >= 1, got {threads_per_run}",
                                 param_hint="--threads-per-run")
    values = load_config_file(config_file) if config_file else {}
    if resume and not (Path(out_dir) / STORE_NAME).is_file():
        raise click.UsageError(f"nothing to resume: {out_dir} holds no {STORE_NAME}; run "
                               f"without --resume to start the study there")
    stored = (read_store(out_dir, with_results=False, config_type=ScalingConfig)
              if resume and preset is None and not values else None)
    if stored is not None:
        config = stored[0]
    else:
        config = make_preset(preset or "small", **values)
    if dry_run:
        info = plan(config)
        click.echo(f"{info['n_runs']} runs: widths {info['widths']}, D {info['data_sizes']}, "
                   f"sources {', '.join(info['sources'])}")
        for r in info["runs"]:
            click.echo(f"  {r['source']:<24} width {r['width']:>5}  D {r['examples']:>9}  "
                       f"seed {r['seed']}  {r['flops']:.3g} FLOPs")
        click.echo(f"total {info['total_flops']:.4g} FLOPs; this machine sustains "
                   f"{info['rate_flops_per_second']:.3g} FLOP/s per worker on the recipe")
        for workers, seconds in info["projected_seconds"].items():
            click.echo(f"projected wall time on {workers} workers of one core: "
                       f"{format_seconds(seconds)} ({seconds / 3600:.2f} h)")
        longest = info["longest_run_seconds"]
        click.echo(f"the longest run alone: {format_seconds(longest)} on one core (no more "
                   f"workers shorten it; --threads-per-run does)")
        return
    cores = default_jobs()
    executor = _executor(executor_name, jobs, cores, scheduler, allowed_failures)
    status = None

    phases = iter(["of the grid", "of the compute-optimal test"])

    def on_start(n_todo, n_stored):
        nonlocal status
        if status is not None:
            status.close()
        phase = next(phases, "")
        if n_stored:
            click.echo(f"{n_stored} run(s) {phase} already stored in {out_dir}; running the "
                       f"remaining {n_todo}.", err=True)
        workers = executor.n_workers(n_todo)
        where = f"in {workers} worker processes" if workers else "in this process"
        click.echo(f"Running {n_todo} run(s) {phase} {where}.", err=True)
        status = Status(n_todo)
        status.update(0, None)

    def on_progress(progress):
        if not quiet:
            r = progress.result
            last = r.rows[-1]
            eta = f"  ETA {format_seconds(progress.eta)}" if not status.tty else ""
            status.log(f"[{progress.n_done:>3}/{progress.n_total}] {progress.task.label:<48} "
                       f"loss {last['loss']:.4f}  robust {last['robust_acc']:.4f}  "
                       f"{r.seconds:6.1f}s{eta}")
        status.update(progress.n_done, progress.eta)

    outcome = run_interruptibly(
        lambda: run_scaling_study(config, out_dir, executor=executor, resume=resume,
                                  n_boot=n_boot, threads_per_run=threads_per_run,
                                  on_progress=on_progress,
                                  on_start=on_start, figures=not no_plots),
        lambda: status, f"Finished runs are stored in {out_dir}; finish with "
                        f"robnp scaling run --out {out_dir} --resume")
    from robnp.scaling.run import summary_text

    click.echo(summary_text(outcome.document))
    click.echo(f"\nRan {outcome.n_ran} run(s), reused {outcome.n_tasks - outcome.n_ran}, in "
               f"{format_seconds(outcome.seconds)}.")
    for path in outcome.paths.values():
        click.echo(f"  wrote {path}")
