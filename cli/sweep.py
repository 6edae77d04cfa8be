"""``robnp sweep``, ``robnp report`` and ``robnp validate``."""

from __future__ import annotations

import sys

import click

from robnp.study.config import StudyConfig, format_setting

from .options import FLOAT_LIST, INT_LIST, NAME_LIST
from .progress import Status as _Status
from .progress import format_seconds as _format_seconds

_DEFAULTS = StudyConfig()


# (option, field, type, help) — the defaults shown come from StudyConfig.
_STUDY_OPTIONS = [
    ("--datasets", "datasets", NAME_LIST, "Datasets (comma-separated registered names)."),
    ("--noise", "noise", float, "Gaussian noise of the generators."),
    ("--n-samples", "n_samples", int, "Points per dataset and seed (train + test)."),
    ("--test-fraction", "test_fraction", float, "Fraction of points held out for testing."),
    ("--widths", "widths", INT_LIST, "Hidden widths."),
    ("--depth", "depth", int, "Hidden layers per model."),
    ("--input-dim", "input_dim", int, "Input dimension (>2 adds label-free noise coordinates)."),
    ("--n-classes", "n_classes", int, "Classes of blobs and spirals (others keep theirs)."),
    ("--epsilons", "epsilons", FLOAT_LIST, "L-infinity attack radii."),
    ("--seeds", "seeds", INT_LIST, "Seeds (each: one data draw, init and shuffle per width)."),
    ("--lr", "lr", float, "Adam learning rate."),
    ("--batch-size", "batch_size", int, "Minibatch size."),
    ("--max-epochs", "max_epochs", int, "Epoch limit."),
    ("--patience", "patience", int, "Stop after this many epochs without improvement; 0 "
                                    "turns early stopping off."),
    ("--pgd-steps", "pgd_steps", int, "PGD iterations (step size eps/4)."),
    ("--recipe", "recipe", str, "Training recipe: standard, pgd-at, trades, fgsm-rs, n-fgsm; "
                                "further options in the config file's [recipe_options]."),
    ("--train-eps", "train_eps", float, "L-infinity radius an adversarial recipe trains at "
                                        "(the loop's other settings: the config file's "
                                        "[train_options])."),
    ("--attacks", "attacks", NAME_LIST, "Registered attacks run on every model; options of "
                                         "each from the config file's [attacks.NAME] table."),
    ("--analyses", "analyses", NAME_LIST, "What the data allows, added to the records: any of "
                                           "exact, ceiling, bayes (none by default)."),
    ("--train-source", "train_source", str, "A generator file (robnp data fit-generator) to "
                                            "train on instead of each draw's training rows; "
                                            "the test rows stay the true distribution's."),
]


def study_options(command):
    for flag, field, kind, help_text in reversed(_STUDY_OPTIONS):
        default = format_setting(getattr(_DEFAULTS, field))
        command = click.option(flag, field, type=kind, default=None,
                               help=f"{help_text}  [default: {default}]")(command)
    return command


_FLAGS = {field: flag for flag, field, _, _ in _STUDY_OPTIONS}


def executor_options(command):
    """``--jobs``, ``--executor``, ``--scheduler`` and ``--allowed-failures``: where a
    study's tasks run (``robnp sweep``, ``robnp scaling run``; :func:`_executor`)."""
    options = [
        click.option("--jobs", type=int, default=None,
                     help="Worker processes.  [default: all cores]"),
        click.option("--executor", "executor_name", type=click.Choice(["local", "dask"]),
                     default="local", show_default=True,
                     help="Where tasks run: worker processes of this machine, or a Dask "
                          "cluster (the 'dask' extra; see docs/cluster.md)."),
        click.option("--scheduler", default=None,
                     help="With --executor dask: a running scheduler's address "
                          "(tcp://host:8786); without it a local cluster of --jobs workers."),
        click.option("--allowed-failures", type=int, default=None,
                     help="With --executor dask: how many times a task may lose its worker "
                          "before the study ends.  [default: 3]"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


class _Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an exception so that it unwinds like Ctrl-C."""


def _raise_terminated(signum, frame):
    raise _Terminated()


@click.command()
@study_options
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="TOML file with any of the settings above (same names); "
                   "command-line options win.")
@click.option("--out", "out_dir", default="results", show_default=True,
              type=click.Path(file_okay=False), help="Output directory.")
@executor_options
@click.option("--resume", is_flag=True,
              help="Continue the study stored in --out with its stored settings "
                   "(options given must agree with them).")
@click.option("--quiet", "-q", is_flag=True, help="No line per finished task.")
@click.pass_context
def sweep(ctx, config_file, out_dir, jobs, executor_name, scheduler, allowed_failures, resume,
          quiet, **options):
    """Train every (dataset, seed, width), attack it with every attack (FGSM and PGD
    unless --attacks says otherwise) at every eps, and write results.json, the summary
    table and figures to --out.

    With no options this is the robustness-scaling study: circles and moons,
    widths 16-512, eps 0.01-0.5, seeds 42, 123, 7 (36 trainings, 180 runs).
    """
    from robnp.report import format_summary_table
    from robnp.study import default_jobs, load_config_file, run_study
    from robnp.study.models import model_path
    from robnp.study.store import study_config

    values = load_config_file(config_file) if config_file else {}
    run = _run_settings(values, config_file)
    given = {name for name in ("out_dir", "jobs") if ctx.get_parameter_source(name)
             not in (click.core.ParameterSource.DEFAULT, None)}
    out_dir = out_dir if "out_dir" in given or "out" not in run else run["out"]
    jobs = jobs if "jobs" in given or "jobs" not in run else run["jobs"]
    resume = resume or run.get("resume", False)
    quiet = quiet or run.get("quiet", False)
    if not out_dir.strip():
        raise click.BadParameter("must name a directory, got an empty value",
                                 param_hint="--out")
    if jobs is not None and jobs < 1:
        raise click.BadParameter(f"must be >= 1, got {jobs}", param_hint="--jobs")
    names = options.pop("attacks")
    if names is not None or "attacks" in values:
        values["attacks"] = StudyConfig.merge_attacks(values.get("attacks"), names)
    values.update({name: value for name, value in options.items() if value is not None})
    config = study_config(values, out_dir, resume=resume, source=config_file or "options",
                          option_names=_FLAGS)
    cores = default_jobs()
    asked = jobs
    executor = _executor(executor_name, jobs, cores, scheduler, allowed_failures)

    status = None

    def on_start(n_todo, n_stored):
        nonlocal status
        if n_stored:
            click.echo(f"{n_stored} task(s) already stored in {out_dir}; "
                       f"running the remaining {n_todo}.", err=True)
        workers = executor.n_workers(n_todo)
        if asked is not None and asked > cores:
            click.echo(f"Warning: --jobs {asked} exceeds the {cores} core(s) available; "
                       f"workers will share cores.", err=True)
        where = f"in {workers} worker processes" if workers else "in this process"
        if executor_name == "dask":
            where = (f"on the Dask scheduler at {scheduler}" if scheduler else
                     f"on a local Dask cluster of {workers} worker(s)")
        click.echo(f"Running {n_todo} training task(s) ({config.n_runs} runs in all) "
                   f"{where}.", err=True)
        for dataset, notices in config.attack_notices().items():
            for notice in notices:
                click.echo(f"Note ({dataset}): {notice}", err=True)
        status = _Status(n_todo)
        status.update(0, None)

    def on_progress(progress):
        if not quiet:
            r = progress.result
            eta = f"  ETA {_format_seconds(progress.eta)}" if not status.tty else ""
            status.log(f"[{progress.n_done:>3}/{progress.n_total}] {progress.task.label:<32} "
                       f"{r.epochs:>5} epochs  loss {r.final_loss:.4f}  "
                       f"clean {r.clean_acc:.4f}  {r.seconds:6.1f}s{eta}")
        status.update(progress.n_done, progress.eta)

    outcome = run_interruptibly(
        lambda: run_study(config, out_dir, executor=executor, resume=resume,
                          on_progress=on_progress, on_start=on_start),
        lambda: status, f"Finished tasks are stored in {out_dir}; finish with "
                        f"robnp sweep --out {out_dir} --resume")
    click.echo(format_summary_table(outcome.document))
    click.echo(f"\nRan {outcome.n_ran} task(s), reused {outcome.n_reused}, "
               f"in {_format_seconds(outcome.seconds)}.")
    for name, path in outcome.paths.items():
        click.echo(f"  wrote {path}")
    models = model_path(out_dir, config.tasks()[0]).parent
    click.echo(f"  kept {outcome.n_tasks} model(s) in {models}")


def run_interruptibly(run, status, advice: str):
    """``run()`` with SIGTERM turned into an interruption like Ctrl-C; either ends with
    one line, ``Interrupted.`` or ``Terminated.`` and ``advice`` (what is stored and how
    to finish), and exit code 130 or 143. ``status()`` is the progress bar to close
    (or None), on any ending."""
    import signal

    try:
        previous_term = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: signals stay as they are
        previous_term = None
    try:
        return run()
    except KeyboardInterrupt as exc:
        if status() is not None:
            status().close()
        what = "Terminated" if isinstance(exc, _Terminated) else "Interrupted"
        click.echo(f"{what}. {advice}", err=True)
        sys.exit(143 if isinstance(exc, _Terminated) else 130)
    finally:
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)
        if status() is not None:
            status().close()


def _run_settings(values: dict, source) -> dict:
    """Take the settings of the run itself (``out``, ``jobs``, ``quiet``, ``resume``)
    out of a config file's ``values``, checked; what is left is the study's."""
    from robnp.errors import ConfigError

    run = {}
    for key in [k for k in values if str(k).replace("-", "_") in _RUN_KEYS]:
        name, value = str(key).replace("-", "_"), values.pop(key)
        kind = _RUN_KEYS[name]
        if (kind is bool) != isinstance(value, bool) or not isinstance(value, kind) or (
                name == "jobs" and value < 1) or (name == "out" and not value.strip()):
            rule = {"out": "a non-empty string", "jobs": "an integer >= 1",
                    "quiet": "true or false", "resume": "true or false"}[name]
            raise ConfigError(f"{source}: {key} must be {rule}, got {value!r}")
        run[name] = value
    return run


# Settings of the run, not of the study: a config file may hold them too.
_RUN_KEYS = {"out": str, "jobs": int, "quiet": bool, "resume": bool}


def _executor(name, jobs, cores, scheduler, allowed_failures):
    """The executor the options name; options of the other one are refused."""
    from robnp.study import LocalExecutor

    if name == "local":
        for flag, value in (("--scheduler", scheduler), ("--allowed-failures", allowed_failures)):
            if value is not None:
                raise click.BadParameter("is for --executor dask", param_hint=flag)
        return LocalExecutor(jobs or cores)
    from robnp.study.executors import DaskExecutor

    return DaskExecutor(scheduler=scheduler, jobs=jobs if scheduler else (jobs or cores),
                        allowed_failures=3 if allowed_failures is None else allowed_failures)


@click.command()
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--runs-table", "runs_path", type=click.Path(dir_okay=False),
              help="Also write the runs table robnp scaling fit reads (.csv: N, D, loss, "
                   "accuracy, flops per model; loss the adversarial test loss) from "
                   "OUT_DIR's tasks.sqlite.")
@click.option("--eps", type=float, default=None,
              help="Radius of the runs table's loss and accuracy (needed when the study "
                   "has several).")
@click.option("--dataset", default=None,
              help="Dataset of the runs table (needed when the study has several).")
@click.option("--attack", default="pgd", show_default=True,
              help="Attack whose points give the runs table's loss and accuracy.")
def report(out_dir, runs_path, eps, dataset, attack):
    """Rebuild the summary table, results.json statistics and figures of OUT_DIR
    from its stored records, without training; from tasks.sqlite when results.json
    is missing. Refuses (exit 2, nothing rewritten) records robnp validate finds
    inconsistent. With --runs-table, also write the table of runs robnp scaling fit
    reads."""
    from pathlib import Path

    from robnp._io import check_output_file
    from robnp.report import RESULTS_FILE, format_summary_table, regenerate
    from robnp.report.runs import write_runs_table
    from robnp.study.runner import rebuild_report, runs_rows
    from robnp.study.store import STORE_NAME

    rows = None
    if runs_path is not None:
        if not str(runs_path).lower().endswith(".csv"):
            raise click.BadParameter(f"the runs table is a .csv file, got {runs_path!r}",
                                     param_hint="--runs-table")
        check_output_file(runs_path, "--runs-table file")
        rows = runs_rows(out_dir, eps=eps, dataset=dataset, attack=attack)
    elif (eps, dataset, attack) != (None, None, "pgd"):
        raise click.BadParameter("--eps, --dataset and --attack choose the runs table's "
                                 "rows: give them with --runs-table", param_hint="--runs-table")
    if not (Path(out_dir) / RESULTS_FILE).exists() and (Path(out_dir) / STORE_NAME).is_file():
        document, _ = rebuild_report(out_dir)
        source = STORE_NAME
    else:
        document = regenerate(out_dir)
        source = "its records"
    click.echo(format_summary_table(document))
    click.echo(f"\nRegenerated results.json and figures in {out_dir} from {source}.")
    if rows is not None:
        click.echo(f"  wrote {write_runs_table(rows, runs_path)} ({len(rows)} runs)")


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
