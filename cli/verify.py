"""``robnp verify``: exact robust accuracy of a saved model on its study dataset."""

from __future__ import annotations

import time

import click

from .evaluate import data_options, thread_choice, threads_option
from .options import FLOAT_LIST
from .progress import DelayedProgress

_STUDY_EPSILONS = "0.01,0.05,0.1,0.2,0.5"


@click.command()
@click.argument("model_file", type=click.Path(dir_okay=False))
@data_options
@click.option("--eps", "epsilons", type=FLOAT_LIST, default=_STUDY_EPSILONS,
              show_default=True, help="Radii (comma-separated).")
@click.option("--norm", type=click.Choice(["linf", "l2"]), default="linf", show_default=True)
@click.option("--budget", type=int, default=4096, show_default=True,
              help="Sub-boxes branch and bound may bound per point.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False),
              help="Also write the counts per radius to this JSON file.")
@threads_option
def verify(model_file, epsilons, norm, budget, json_file, threads, **data):
    """Verify every test point of MODEL_FILE's dataset at each radius.

    The dataset is regenerated as the study draws it, with the data settings given,
    else those in the JSON that ``robnp train`` wrote beside the model; --dataset and
    --seed are required when there is no such JSON. Each test point is robust
    (proven), not robust (a re-checked counterexample) or undecided (budget spent).
    The bracket [certified, attack] holds the exact robust accuracy, and is a single
    number when nothing is undecided.
    """
    import robnp
    from robnp._io import atomic_write_json, check_output_file
    from robnp.errors import ConfigError, DataError
    from robnp.study import task_data
    from robnp.attacks._threat import default_threads
    from robnp.verify import verify_radii

    from .evaluate import model_task, require_data_record

    for eps in epsilons:
        if not eps >= 0:
            raise ConfigError(f"--eps values must be >= 0, got {eps!r}")
    threads = thread_choice(threads)
    if budget <= 0:
        raise ConfigError(f"--budget must be an integer >= 1, got {budget}")
    if json_file:
        check_output_file(json_file, "--json file")
    require_data_record(model_file, data)
    model, task = model_task(model_file, data)
    _, X_test, _, y_test = task_data(task)
    if X_test.shape[0] == 0:
        raise DataError(f"the test split is empty (--n-samples {task.n_samples}, "
                        f"--test-fraction {task.test_fraction})")
    dataset, seed = task.dataset, task.seed
    start = time.perf_counter()
    progress = DelayedProgress("verify")
    try:
        with default_threads(threads):
            results = verify_radii(model, X_test, y_test, epsilons, norm=norm, budget=budget,
                                   seed=seed, progress=progress)
    finally:
        progress.close()
    seconds = time.perf_counter() - start
    clean = robnp.accuracy(model, X_test, y_test)
    click.echo(f"verify {model_file}: layers {model.layer_sizes}, {dataset} seed {seed}, "
               f"{X_test.shape[0]} test points, {norm}, clean accuracy {clean:.4f}")
    click.echo(f"  {'eps':>8}{'robust':>8}{'not':>6}{'undec':>7}   robust accuracy")
    rows = []
    for eps, result in zip(epsilons, results):
        bracket = result.bracket
        value = (f"{bracket.exact:.4f} (exact)" if bracket.exact is not None
                 else f"[{bracket.certified:.4f}, {bracket.attack:.4f}]")
        click.echo(f"  {eps:>8g}{result.count('robust'):>8}{result.count('not_robust'):>6}"
                   f"{result.count('undecided'):>7}   {value}")
        counts = {}
        for how in result.decided_by:
            counts[str(how)] = counts.get(str(how), 0) + 1
        rows.append({"eps": eps, "robust": result.count("robust"),
                     "not_robust": result.count("not_robust"),
                     "undecided": result.count("undecided"),
                     "certified_accuracy": bracket.certified,
                     "attack_accuracy": bracket.attack, "exact": bracket.exact,
                     "decided_by": dict(sorted(counts.items())),
                     "branches": int(result.branches.sum())})
    click.echo(f"  {seconds:.1f}s")
    if json_file:
        atomic_write_json(json_file, {
            "model": str(model_file), "layer_sizes": list(model.layer_sizes),
            "dataset": dataset, "seed": seed, "n_samples": task.n_samples,
            "noise": task.noise, "test_fraction": task.test_fraction, "input_dim": task.input_dim,
            "n_classes": task.n_classes, "norm": norm, "budget": budget,
            "n_points": int(X_test.shape[0]), "clean_accuracy": clean,
            "seconds": seconds, "results": rows})
        click.echo(f"  wrote {json_file}")
