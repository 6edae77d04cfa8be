"""``robnp sweep``, ``robnp report`` and ``robnp validate``."""

from __future__ import annotations

import sys

import click

from robnp.study.config import StudyConfig

from .options import FLOAT_LIST, INT_LIST, NAME_LIST

_DEFAULTS = StudyConfig()


def _show(values) -> str:
    if isinstance(values, tuple):
        return ",".join(v[0] if isinstance(v, tuple) else str(v) for v in values)
    return str(values)


# (option, field, type, help) — the defaults shown come from StudyConfig.
_STUDY_OPTIONS = [
    ("--datasets", "datasets", NAME_LIST, "Datasets (comma-separated registered names)."),
    ("--noise", "noise", float, "Gaussian noise of the generators."),
    ("--n-samples", "n_samples", int, "Points per dataset and seed (train + test)."),
    ("--test-fraction", "test_fraction", float, "Fraction of points held out for testing."),
    ("--widths", "widths", INT_LIST, "Hidden widths."),
    ("--depth", "depth", int, "Hidden layers per model."),
    ("--input-dim", "input_dim", int, "Input dimension (>2 adds label-free noise coordinates)."),
    ("--epsilons", "epsilons", FLOAT_LIST, "L-infinity attack radii."),
    ("--seeds", "seeds", INT_LIST, "Seeds (each: one data draw, init and shuffle per width)."),
    ("--lr", "lr", float, "Adam learning rate."),
    ("--batch-size", "batch_size", int, "Minibatch size."),
    ("--max-epochs", "max_epochs", int, "Epoch limit."),
    ("--patience", "patience", int, "Stop after this many epochs without improvement."),
    ("--pgd-steps", "pgd_steps", int, "PGD iterations (step size eps/4)."),
    ("--attacks", "attacks", NAME_LIST, "Registered attacks run on every model; options of "
                                         "each from the config file's [attacks.NAME] table."),
]


def study_options(command):
    for flag, field, kind, help_text in reversed(_STUDY_OPTIONS):
        command = click.option(flag, field, type=kind, default=None,
                               help=f"{help_text}  [default: {_show(getattr(_DEFAULTS, field))}]")(command)
    return command


def _format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


@click.command()
@study_options
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="TOML file with any of the settings above (same names); "
                   "command-line options win.")
@click.option("--out", "out_dir", default="results", show_default=True,
              type=click.Path(file_okay=False), help="Output directory.")
@click.option("--jobs", type=int, default=None,
              help="Worker processes.  [default: all cores]")
@click.option("--resume", is_flag=True, help="Continue a study stored in --out (same config).")
@click.option("--quiet", "-q", is_flag=True, help="No line per finished task.")
def sweep(config_file, out_dir, jobs, resume, quiet, **options):
    """Train every (dataset, seed, width), attack it with every attack (FGSM and PGD
    unless --attacks says otherwise) at every eps, and write results.json, the summary
    table and figures to --out.

    With no options this is the robustness-scaling study: circles and moons,
    widths 16-512, eps 0.01-0.5, seeds 42, 123, 7 (36 trainings, 180 runs).
    """
    from robnp.report import format_summary_table
    from robnp.study import default_jobs, load_config_file, run_study

    values = load_config_file(config_file) if config_file else {}
    names = options.pop("attacks")
    if names is not None or "attacks" in values:
        values["attacks"] = StudyConfig.merge_attacks(values.get("attacks"), names)
    values.update({name: value for name, value in options.items() if value is not None})
    config = StudyConfig.from_mapping(values, source=config_file or "options")
    if jobs is not None and jobs < 1:
        raise click.BadParameter(f"must be >= 1, got {jobs}", param_hint="--jobs")
    jobs = jobs or default_jobs()

    bar = None

    def on_start(n_todo, n_stored):
        nonlocal bar
        if n_stored:
            click.echo(f"{n_stored} task(s) already stored in {out_dir}; "
                       f"running the remaining {n_todo}.", err=True)
        click.echo(f"Running {n_todo} training task(s) ({config.n_runs} runs in all) "
                   f"on {jobs} worker(s).", err=True)
        bar = click.progressbar(length=n_todo, label="tasks", show_pos=True, show_eta=True,
                                file=sys.stderr)
        bar.__enter__()

    def on_progress(progress):
        if not quiet:
            r = progress.result
            line = (f"[{progress.n_done:>3}/{progress.n_total}] {progress.task.label:<32} "
                    f"{r.epochs:>5} epochs  loss {r.final_loss:.4f}  clean {r.clean_acc:.4f}  "
                    f"{r.seconds:6.1f}s  ETA {_format_seconds(progress.eta)}")
            click.echo(f"\r\033[K{line}" if sys.stderr.isatty() else line, err=True)
        bar.update(1)

    try:
        outcome = run_study(config, out_dir, jobs=jobs, resume=resume,
                            on_progress=on_progress, on_start=on_start)
    except KeyboardInterrupt:
        click.echo(f"\nInterrupted. Finished tasks are stored in {out_dir}; "
                   f"rerun with --resume to finish.", err=True)
        sys.exit(130)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    click.echo(format_summary_table(outcome.document))
    click.echo(f"\nRan {outcome.n_ran} task(s), reused {outcome.n_reused}, "
               f"in {_format_seconds(outcome.seconds)}.")
    for name, path in outcome.paths.items():
        click.echo(f"  wrote {path}")


@click.command()
@click.argument("out_dir", type=click.Path(file_okay=False))
def report(out_dir):
    """Rebuild the summary table, results.json statistics and figures of OUT_DIR
    from its stored records, without training."""
    from robnp.report import format_summary_table, regenerate

    document = regenerate(out_dir)
    click.echo(format_summary_table(document))
    click.echo(f"\nRegenerated results.json and figures in {out_dir}.")


@click.command()
@click.argument("out_dir", type=click.Path(file_okay=False))
def validate(out_dir):
    """Check the results in OUT_DIR: completeness, consistency, the study's sanity
    checks, statistics, environment, figures. Exit 0 if all pass, 1 otherwise."""
    from robnp.report.validate import validate_results

    outcome = validate_results(out_dir)
    for line in outcome.summary_lines:
        click.echo(line)
    if outcome.passed:
        click.echo(f"PASSED: all {len(outcome.checks)} checks passed.")
        return
    click.echo(f"FAILED: {len(outcome.failures)} problem(s):")
    for failure in outcome.failures:
        click.echo(f"  - {failure}")
    sys.exit(1)
