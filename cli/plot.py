"""``robnp plot``: figures that set attacks against what the data allows."""

from __future__ import annotations

import click

from .evaluate import data_options


@click.group()
def plot():
    """Teaching figures: a model's boundary under attack, robust accuracy vs the truth."""


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
              help="Points of the fresh draw whose sample ceiling is drawn as the "
                   "population ceiling (0: none).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG file.")
def robustness(results_dir, population_size, out):
    """Robust accuracy against eps for a sweep run with --analyses: every attack, the
    exact value, the sample and population ceilings and the Bayes classifier, at the
    largest width (means across seeds)."""
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
            population[entry["name"]] = (eps, list(result.ceilings[0]), population_size)
    atomic_savefig(robustness_figure(doc, population), out, dpi=130)
    click.echo(f"wrote {out}")
