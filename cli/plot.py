"""``robnp plot``: figures that set attacks against what the data allows."""

from __future__ import annotations

import click

from .evaluate import data_options, model_task
from .options import NAME_LIST


@click.group()
def plot():
    """Teaching figures: a model's boundary under attack, robust accuracy vs the truth,
    exact robustness radii against the attacks'."""


def _check_png(out: str) -> None:
    from robnp.errors import ConfigError

    if not out.lower().endswith(".png"):
        raise ConfigError(f"--out must name a .png file, got {out!r}")


@plot.command()
@click.argument("model_file", type=click.Path(dir_okay=False))
@data_options
@click.option("--eps", type=float, required=True, help="L-infinity radius of the attack.")
@click.option("--attack", default="pgd", show_default=True, help="Registered attack.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG file.")
def boundary(model_file, eps, attack, out, **data):
    """Decision regions of a 2-D MODEL_FILE over its test points, the Bayes boundary,
    each broken point's eps-box and an arrow to its adversarial point; adversarial
    points whose Bayes label differs from the clean label are marked in red.

    The data settings are those given, else those in the JSON written beside the
    model (by robnp train, or by robnp sweep for the models it keeps), else the
    study's; --dataset and --seed are required when there is no such JSON."""
    import robnp
    from robnp._io import atomic_savefig
    from robnp.data import get_dataset
    from robnp.errors import ConfigError, DataError
    from robnp.report.teaching import boundary_figure
    from robnp.study import task_data
    from robnp.verify import DataSource
    from robnp.verify.boundary import boundary_map

    from .evaluate import model_task, require_data_record

    _check_png(out)
    if not eps >= 0:
        raise ConfigError(f"--eps must be >= 0, got {eps!r}")
    require_data_record(model_file, data)
    model = robnp.load_model(model_file)
    if model.n_features != 2:
        raise DataError(f"{model_file} has {model.n_features} inputs; the boundary figure "
                        f"needs a 2-D model")
    if data.get("n_classes") is None and get_dataset(
            data.get("dataset") or "circles").variable_classes:
        data = {**data, "n_classes": model.n_classes}
    model, task = model_task(model_file, data)
    _, X_test, _, y_test = task_data(task)
    classes = task.n_classes if get_dataset(task.dataset).variable_classes else None
    source = DataSource(task.dataset, task.n_samples, task.noise, 2, classes)
    evaluation = robnp.evaluate(model, X_test, y_test, (eps,), (attack,), seed=task.seed)
    adversarial = evaluation.attacks[attack].adversarial[0]
    fig = boundary_figure(boundary_map(model, X_test, y_test, source, eps, adversarial),
                          attack=attack)
    atomic_savefig(fig, out, dpi=130)
    click.echo(f"wrote {out}")


@plot.command()
@click.argument("results_dir", type=click.Path(file_okay=False))
@click.option("--population-size", type=int, default=1000, show_default=True,
              help="Points of a fresh draw whose sample ceiling, cut to the Bayes "
                   "accuracy, estimates the population's best robust accuracy "
                   "(optimistic; 0: none).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG file.")
def robustness(results_dir, population_size, out):
    """Robust accuracy against eps for a sweep run with --analyses: every attack, the
    exact value, the test split's sample ceiling, an estimate of the population's best
    robust accuracy with the Bayes accuracy that bounds it, and the Bayes classifier,
    at the largest width (means across seeds)."""
    from robnp._io import atomic_savefig
    from robnp.errors import ConfigError
    from robnp.report import load_results
    from robnp.report.teaching import robustness_figure
    from robnp.verify import population_ceiling

    _check_png(out)
    if population_size < 0 or population_size == 1:
        raise ConfigError(f"--population-size must be 0 or an integer >= 2, "
                          f"got {population_size}")
    doc = load_results(results_dir)
    config = doc["config"]
    population = {}
    if population_size:
        eps = list(config["epsilons"])
        for entry in config["datasets"]:
            result = population_ceiling(entry["name"], eps, sizes=(population_size,),
                                        noise=entry["noise"], input_dim=config["input_dim"],
                                        n_classes=config.get("n_classes"))
            population[entry["name"]] = {
                "eps": eps, "ceiling": list(result.ceilings[0]), "size": population_size,
                "bayes_accuracy": (None if result.bayes_accuracy is None
                                   else float(result.bayes_accuracy[0]))}
    atomic_savefig(robustness_figure(doc, population), out, dpi=130)
    click.echo(f"wrote {out}")


@plot.command()
@click.argument("model_path", type=click.Path(dir_okay=False))
@data_options
@click.option("--attacks", type=NAME_LIST, default="fab,apgd-ce", show_default=True,
              help="Attacks whose minimal perturbations are drawn (FAB reports its own; "
                   "the others are run at --n-eps radii up to the largest exact radius).")
@click.option("--n-eps", type=int, default=24, show_default=True,
              help="Radii the fixed-radius attacks run at.")
@click.option("--n-points", type=int, default=None,
              help="Use the first N test points (default: all).")
@click.option("--rtol", type=float, default=1e-3, show_default=True,
              help="Relative tolerance of the exact radii's bisection.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG file.")
def radii(model_path, attacks, n_eps, n_points, rtol, out, **data):
    """Each test point's exact robustness radius (bisection on the verifier) against the
    smallest perturbation FAB and APGD found, and robust accuracy at every eps from each.

    The data settings default to those in the JSON written beside the model by
    ``robnp train``, else to the study's."""
    import numpy as np

    from robnp._io import atomic_savefig
    from robnp.attacks import evaluate
    from robnp.errors import ConfigError
    from robnp.report.radii import radii_figure
    from robnp.study import task_data
    from robnp.verify import robustness_radius

    _check_png(out)
    if n_eps < 1:
        raise ConfigError(f"--n-eps must be an integer >= 1, got {n_eps}")
    if n_points is not None and n_points < 1:
        raise ConfigError(f"--n-points must be an integer >= 1, got {n_points}")
    model, task = model_task(model_path, data)
    _, X_test, _, y_test = task_data(task)
    X_test, y_test = X_test[:n_points], y_test[:n_points]
    exact = robustness_radius(model, X_test, y_test, rtol=rtol, seed=task.seed)
    finite = exact.upper[np.isfinite(exact.upper)]
    eps_max = 1.15 * float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    grid = tuple(float(e) for e in np.linspace(eps_max / n_eps, eps_max, n_eps))
    evaluation = evaluate(model, X_test, y_test, grid, attacks, seed=task.seed)
    found = {name: evaluation.minimal_radius(X_test, name) for name in evaluation.attacks}
    label = task.label.rsplit(" width=", 1)[0]
    fig = radii_figure(exact.lower, exact.upper, found, eps_max=eps_max,
                       undecided=exact.status == "undecided",
                       title=f"{model_path}: {label}, {X_test.shape[0]} test points")
    atomic_savefig(fig, out, dpi=130)
    undecided = int(np.sum(exact.status == "undecided"))
    click.echo(f"exact radii of {X_test.shape[0]} points ({exact.verify_calls} verifier calls, "
               f"{undecided} undecided); median exact {np.median(exact.lower):.4g}")
    for name, values in found.items():
        both = (exact.status == "exact") & np.isfinite(values) & (exact.upper > 0)
        ratio = values[both] / exact.upper[both]
        click.echo(f"  {name}: median attack/exact radius {np.median(ratio):.4f}, "
                   f"within 1%: {np.mean(ratio <= 1.01):.3f}" if both.any() else
                   f"  {name}: no point broken")
    click.echo(f"wrote {out}")
