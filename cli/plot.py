"""``robnp plot``: figures that set attacks against what the data allows."""

from __future__ import annotations

import click


@click.group()
def plot():
    """Teaching figures: a model's boundary under attack, robust accuracy vs the truth."""


def _check_png(out: str) -> None:
    from robnp.errors import ConfigError

    if not out.lower().endswith(".png"):
        raise ConfigError(f"--out must name a .png file, got {out!r}")


@plot.command()
@click.argument("model_file", type=click.Path(dir_okay=False))
@click.option("--dataset", required=True, help="Registered dataset the model was trained on.")
@click.option("--seed", type=int, required=True, help="Seed of the study's data draw.")
@click.option("--eps", type=float, required=True, help="L-infinity radius of the attack.")
@click.option("--attack", default="pgd", show_default=True, help="Registered attack.")
@click.option("--n-samples", type=int, default=2000, show_default=True,
              help="Points drawn (train + test), as in the study.")
@click.option("--noise", type=float, default=0.15, show_default=True)
@click.option("--test-fraction", type=float, default=0.2, show_default=True)
@click.option("--n-classes", type=int, default=None,
              help="Classes of blobs and spirals (the model's output count by default).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG file.")
def boundary(model_file, dataset, seed, eps, attack, n_samples, noise, test_fraction,
             n_classes, out):
    """Decision regions of a 2-D MODEL_FILE over its test points, the Bayes boundary,
    each broken point's eps-box and an arrow to its adversarial point; adversarial
    points whose Bayes label differs from the clean label are marked in red."""
    import robnp
    from robnp._io import atomic_savefig
    from robnp.data import get_dataset
    from robnp.errors import ConfigError, DataError
    from robnp.report.teaching import boundary_figure
    from robnp.verify import DataSource
    from robnp.verify.boundary import boundary_map

    _check_png(out)
    if not eps >= 0:
        raise ConfigError(f"--eps must be >= 0, got {eps!r}")
    model = robnp.load_model(model_file)
    if model.n_features != 2:
        raise DataError(f"{model_file} has {model.n_features} inputs; the boundary figure "
                        f"needs a 2-D model")
    spec = get_dataset(dataset)
    k = spec.classes(n_classes if n_classes is not None else
                     (model.n_classes if spec.variable_classes else None))
    if model.n_classes != k:
        raise DataError(f"{model_file} has {model.n_classes} outputs but dataset {dataset!r} "
                        f"has {k} classes")
    classes = k if spec.variable_classes else None
    X, y = robnp.make_dataset(dataset, n_samples, noise, seed=seed, n_classes=classes)
    _, X_test, _, y_test = robnp.train_test_split(X, y, test_fraction)
    source = DataSource(dataset, n_samples, noise, 2, classes)
    evaluation = robnp.evaluate(model, X_test, y_test, (eps,), (attack,), seed=seed)
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
