"""``robnp data``: generators of a task's training data and their quality.

``robnp data fit-generator`` fits one generator to ``m`` real points per class and
writes it (``.npz``); ``robnp data quality`` measures generators (files) against the
truth three ways and prints a table, one row per rung of the ladder, the truth first,
with a figure of each rung's samples over true samples; ``--sampled`` adds the blurred
TV from samples, ``--accuracy`` the accuracy a fixed model trained on each rung reaches
on true test data and each measure's rank correlation with it.
"""

from __future__ import annotations

import click

from .options import INT_LIST


def _task_options(command):
    options = [
        click.option("--dataset", required=True, help="Registered dataset name."),
        click.option("--noise", type=float, default=0.15, show_default=True,
                     help="Gaussian noise of the dataset."),
        click.option("--input-dim", type=int, default=2, show_default=True,
                     help="Input dimension."),
        click.option("--n-classes", type=int, default=None,
                     help="Classes of blobs and spirals.  [default: the dataset's]"),
        click.option("--size", type=int, default=1024, show_default=True,
                     help="Points per draw of the truth (fixes moons' and spirals' arcs)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.group()
def data():
    """Generators of training data of controlled quality, and their quality."""


@data.command("fit-generator")
@_task_options
@click.option("--kind", default="kde", show_default=True,
              help="Generator kind: true (the task's own) or kde.")
@click.option("--m", "m", type=int, default=None,
              help="Real points per class the generator is fitted to (not for true).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the real points' draw.")
@click.option("--h", "h", type=float, default=None,
              help="Bandwidth of the kde (> 0; small h: resampling the m points).  "
                   "[default: 0.02]")
@click.option("--steps", type=int, default=None,
              help="Heun steps S of the diffusion sampler.  [default: 20]")
@click.option("--train-steps", type=int, default=None,
              help="Adam steps of each diffusion denoiser.  [default: 4000]")
@click.option("--width", type=int, default=None,
              help="Hidden width of the diffusion denoiser.  [default: 64]")
@click.option("--depth", type=int, default=None,
              help="Hidden layers of the diffusion denoiser.  [default: 3]")
@click.option("--out", required=True, help="Where to write the generator (.npz).")
def fit_generator(dataset, noise, input_dim, n_classes, size, kind, m, seed, h, steps,
                  train_steps, width, depth, out):
    """Fit a generator to m real points per class and write it (.npz)."""
    from robnp._io import check_output_file
    from robnp.data.generators import DataTask, fit_generator, save_generator
    import robnp.data.diffusion  # noqa: F401  (registers the kind "diffusion")

    check_output_file(out if str(out).endswith(".npz") else f"{out}.npz", "generator file")
    task = DataTask(dataset, noise=noise, input_dim=input_dim, n_classes=n_classes,
                    size=size)
    knobs = {name: value for name, value in (("h", h), ("steps", steps),
                                              ("train_steps", train_steps),
                                              ("width", width), ("depth", depth))
             if value is not None}
    generator = fit_generator(task, kind, m, seed, **knobs)
    path = save_generator(generator, out)
    click.echo(f"{generator.label()} of {task.describe()} -> {path}")


def _number(value, digits=4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def quality_table(reports: list[dict]) -> str:
    """The ladder's table: one row per generator."""
    header = ("generator", "knob", "FID@n", "FID_inf", "TV", "KL(p||q)", "KL(q||p)", "W1")
    with_sampled = any(report.get("sampled") for report in reports)
    if with_sampled:
        header += ("TV_b", "floor")
    with_accuracy = any("accuracy" in report for report in reports)
    if with_accuracy:
        header += ("clean", "robust")
    rows = []
    for report in reports:
        exact = report["exact"] or {}
        row = (report["kind"] + (f" m={report['generator']['m']}"
                                 if report["generator"]["m"] is not None else ""),
               report["knob"], _number(report["fid"]["value"]),
               _number(report["fid"]["fid_inf"]), _number(exact.get("tv")),
               _number(exact.get("kl")), _number(exact.get("kl_reverse")),
               _number(report["w1"]["value"]))
        if with_sampled:
            sampled = report.get("sampled") or {}
            row += (_number(sampled.get("tv")), _number(sampled.get("tv_floor")))
        if with_accuracy:
            accuracy = report.get("accuracy") or {}
            row += (_number(accuracy.get("clean_acc")), _number(accuracy.get("robust_acc")))
        rows.append(row)
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(w) if i < 2 else str(cell).rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths)))
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


_MEASURE_NAMES = {"fid": "FID@n", "fid_inf": "FID_inf", "tv": "TV", "kl": "KL(p||q)",
                  "kl_reverse": "KL(q||p)", "tv_b": "TV_b", "w1": "W1"}


def correlation_lines(correlations: dict) -> list[str]:
    """Spearman's rank correlation of each measure with the accuracies, one line each,
    and the measure that predicts robust accuracy best."""
    lines = ["Spearman rank correlation over the ladder (a distance that predicts the "
             "accuracy well is near -1):"]
    for name, values in correlations["measures"].items():
        lines.append(f"  {_MEASURE_NAMES[name]:<9} robust {values['robust']:+.3f}  clean "
                     f"{values['clean']:+.3f}  ({values['rungs']} rungs)")
    best = correlations["best"]
    lines.append(f"best predictor of robust accuracy: "
                 f"{_MEASURE_NAMES[best] if best else 'none (no ordering)'}")
    return lines


def _figure(generators, reports, path, n_points: int, seed: int):
    """One panel per rung: its samples (coloured by class) over true samples (grey),
    first two coordinates."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from robnp._io import atomic_savefig
    from robnp.data.generators import true_generator

    task = generators[0].task
    Xt, _ = true_generator(task).sample(n_points, seed + 1)
    cols = len(generators)
    fig = Figure(figsize=(3.1 * cols, 3.4))
    FigureCanvasAgg(fig)
    colours = colormaps["tab10"]
    # Every panel shows the truth's square (points outside it are cut off).
    low, high = Xt[:, :2].min(axis=0), Xt[:, :2].max(axis=0)
    centre, half = (low + high) / 2, 0.6 * (high - low).max()
    for i, (generator, report) in enumerate(zip(generators, reports)):
        ax = fig.add_subplot(1, cols, i + 1)
        ax.scatter(Xt[:, 0], Xt[:, 1], s=3, c="0.55", linewidths=0)
        X, y = generator.sample(n_points, seed)
        for k in range(task.n_classes):
            ax.scatter(X[y == k, 0], X[y == k, 1], s=2, color=colours(k), linewidths=0,
                       alpha=0.8)
        exact = report["exact"]
        tv = f", TV {exact['tv']:.2f}" if exact else ""
        if not exact and report.get("sampled"):
            tv = f", TV_b {report['sampled']['tv']:.2f}"
        title = "truth (another draw)" if generator.kind == "true" else generator.label()
        ax.set_title(f"{title}\nW1 {report['w1']['value']:.3f}{tv}", fontsize=9)
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{task.describe()}: generated (colour, by class) over true samples "
                 f"(grey), {n_points} each", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    atomic_savefig(fig, path, dpi=110)


@data.command("quality")
@click.argument("generators", nargs=-1)
@click.option("--true/--no-true", "with_true", default=True, show_default=True,
              help="Add the truth (the files' task) as the first rung.")
@click.option("--n", "n", type=int, default=4096, show_default=True,
              help="Points of each side of the FID analogue.")
@click.option("--w1-n", type=int, default=1536, show_default=True,
              help="Points of each side of the conditional Wasserstein-1.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the samples.")
@click.option("--resolution", type=int, default=1, show_default=True,
              help="Quadrature grid points per smallest length scale (2-D).")
@click.option("--exact", type=click.Choice(["auto", "require", "skip"]), default="auto",
              show_default=True, help="Exact TV and KL: where densities are known, "
                                      "required (an error without them), or skipped.")
@click.option("--steps", "steps_list", type=INT_LIST, default=None,
              help="Sample each diffusion file with each of these Heun step counts "
                   "(one rung per count; nothing refitted), e.g. 5,10,20,50.")
@click.option("--sampled", type=click.Choice(["auto", "all", "skip"]), default="auto",
              show_default=True,
              help="TV from samples after a common blur of half the noise (TV_b, with its "
                   "noise floor): for generators without a density (auto), every rung "
                   "(all), or none.")
@click.option("--sampled-n", type=int, default=20000, show_default=True,
              help="Samples per class of TV_b.")
@click.option("--accuracy", "with_accuracy", is_flag=True, default=False,
              help="Add the clean and robust accuracy on true test data of a fixed model "
                   "(width 128, two hidden layers, TRADES one pass) trained on each rung, "
                   "and each measure's rank correlation with it (costs a training per "
                   "rung).")
@click.option("--accuracy-examples", type=int, default=100_000, show_default=True,
              help="Examples of each rung the accuracy model is trained on (one pass).")
@click.option("--accuracy-eps", type=float, default=0.03, show_default=True,
              help="Radius of TRADES and of the pgd-cw evaluation.")
@click.option("--accuracy-test-n", type=int, default=4000, show_default=True,
              help="True test points of the accuracy columns.")
@click.option("--figure", default=None, help="Write a figure of every rung's samples (.png).")
@click.option("--json", "json_path", default=None, help="Write the full reports (JSON).")
def quality(generators, with_true, n, w1_n, seed, resolution, exact, steps_list, sampled,
            sampled_n, with_accuracy, accuracy_examples, accuracy_eps, accuracy_test_n, figure,
            json_path):
    """Quality of generator files three ways: FID analogue, exact TV and KL to the
    truth, conditional Wasserstein-1; a table per rung, the truth first."""
    from robnp._io import atomic_write_json, check_output_file
    from robnp.data.generators import load_generator, true_generator
    from robnp.data.quality import ladder_correlations, quality_report
    from robnp.errors import ConfigError

    if not generators:
        raise ConfigError("give at least one generator file (robnp data fit-generator "
                          "writes them)")
    for path, what in ((figure, "figure"), (json_path, "JSON file")):
        if path is not None:
            check_output_file(path, what)
    first = load_generator(generators[0])
    loaded = [first] + [load_generator(path, first.task) for path in generators[1:]]
    rungs = []
    for generator in loaded:
        if steps_list and generator.kind == "diffusion":
            rungs += [generator.with_steps(s) for s in steps_list]
        else:
            rungs.append(generator)
    if with_true:
        rungs.insert(0, true_generator(first.task))
    want = {"auto": None, "require": True, "skip": False}[exact]
    accuracy = None
    if with_accuracy:
        accuracy = {"examples": accuracy_examples, "eps": accuracy_eps,
                    "test_n": accuracy_test_n, "seed": seed}
    want_sampled = {"auto": None, "all": True, "skip": False}[sampled]
    reports = [quality_report(g, n, seed, w1_n=w1_n, exact=want, resolution=resolution,
                              sampled=want_sampled, sampled_n=sampled_n, accuracy=accuracy)
               for g in rungs]
    click.echo(f"{first.task.describe()}: FID analogue at n = {n} (FID_inf: intercept "
               f"against 1/n), exact TV and KL (p the truth, q the generator), "
               f"conditional W1 at {w1_n} points")
    click.echo(quality_table(reports))
    blurred = next((r["sampled"] for r in reports if r.get("sampled")), None)
    if blurred is not None:
        click.echo(f"TV_b: TV after blurring both sides by N(0, {blurred['bandwidth']:g}^2 I), "
                   f"from {blurred['n_per_class']} samples per class (a lower bound of TV; "
                   f"floor: its noise bias)")
    if with_accuracy:
        click.echo(f"accuracy: on {accuracy_test_n} true test points, of an MLP (128, 128) "
                   f"trained by TRADES at eps {accuracy_eps:g} one pass over "
                   f"{accuracy_examples} examples of the rung; robust: pgd-cw at eps "
                   f"{accuracy_eps:g}")
        for line in correlation_lines(ladder_correlations(reports)):
            click.echo(line)
    if figure is not None:
        _figure(rungs, reports, figure, 1500, seed)
        click.echo(f"figure: {figure}")
    if json_path is not None:
        atomic_write_json(json_path, reports)
        click.echo(f"reports: {json_path}")
