"""``robnp scaling``: scaling-law analysis of a table of runs.

Thin by design: parse and check options, call
:func:`robnp.scaling.run_scaling_fit`, print.  Library errors become the
group's one-line ``Error: ...`` with exit code 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import click


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
