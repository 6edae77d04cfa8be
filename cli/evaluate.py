"""``robnp train`` and ``robnp attack``: one model the study's way, and a strong
evaluation of any saved model."""

from __future__ import annotations

import tomllib
from pathlib import Path

import click

from robnp.study.config import DEFAULT_ATTACKS, StudyConfig

from .options import FLOAT_LIST, NAME_LIST
from .progress import DelayedProgress

_DEFAULTS = StudyConfig()
_DATA_OPTIONS = [
    ("--dataset", "dataset", str, "Registered dataset name."),
    ("--seed", "seed", int, "Seed of the data draw (and, for train, of init and shuffle)."),
    ("--noise", "noise", float, "Gaussian noise of the generator."),
    ("--n-samples", "n_samples", int, "Points generated (train + test)."),
    ("--test-fraction", "test_fraction", float, "Fraction held out for testing (the last rows)."),
    ("--input-dim", "input_dim", int, "Input dimension."),
    ("--n-classes", "n_classes", int, "Classes of blobs and spirals."),
]
_STUDY_DEFAULT = {"dataset": _DEFAULTS.datasets[0], "seed": _DEFAULTS.seeds[0]}


def data_options(command):
    for flag, field, kind, help_text in reversed(_DATA_OPTIONS):
        shown = _STUDY_DEFAULT.get(field, getattr(_DEFAULTS, field, None))
        command = click.option(flag, field, type=kind, default=None,
                               help=f"{help_text}  [default: {shown}]")(command)
    return command


def threads_option(command):
    """``--threads N``: threads for the command's work (default: every core this
    process may run on); results are the same for any value."""
    return click.option(
        "--threads", "threads", type=int, default=None,
        help="Threads (results are the same for any count).  [default: every core this "
             "process may run on]")(command)


def thread_choice(threads) -> int:
    """``--threads`` checked (an integer >= 1), or every available core when not given."""
    from robnp._checks import integer
    from robnp.attacks._threat import available_cores

    return available_cores() if threads is None else integer("--threads", threads, 1)


def _study_config(values: dict, **training) -> StudyConfig:
    """A one-task study configuration from singular data options."""
    from robnp.data import get_dataset
    from robnp.errors import ConfigError

    name = values.get("dataset") or _STUDY_DEFAULT["dataset"]
    spec = get_dataset(name)
    if (values.get("n_classes") is not None and not spec.variable_classes
            and values["n_classes"] != spec.n_classes):
        raise ConfigError(f"--n-classes {values['n_classes']} does not apply: dataset "
                          f"{name!r} always has {spec.n_classes} classes")
    settings = {key: value for key, value in {**values, **training}.items()
                if value is not None and key not in ("dataset", "seed", "width")}
    return StudyConfig(datasets=(values.get("dataset") or _STUDY_DEFAULT["dataset"],),
                       seeds=(_STUDY_DEFAULT["seed"] if values.get("seed") is None
                              else values["seed"],),
                       widths=(64 if training.get("width") is None else training["width"],),
                       **settings)


def sidecar_path(model_path) -> Path:
    """``model.json`` beside ``model.npz``: the training config and history."""
    path = Path(model_path)
    return path.with_suffix(".json") if path.suffix == ".npz" else Path(f"{path}.json")


@click.command()
@data_options
@click.option("--width", type=int, default=64, show_default=True, help="Hidden width.")
@click.option("--depth", type=int, default=None,
              help=f"Hidden layers.  [default: {_DEFAULTS.depth}]")
@click.option("--lr", type=float, default=None, help=f"Adam learning rate.  [default: {_DEFAULTS.lr}]")
@click.option("--batch-size", type=int, default=None,
              help=f"Minibatch size.  [default: {_DEFAULTS.batch_size}]")
@click.option("--max-epochs", type=int, default=None,
              help=f"Epoch limit.  [default: {_DEFAULTS.max_epochs}]")
@click.option("--patience", type=int, default=None,
              help=f"Early-stopping patience; 0 turns early stopping off.  "
                   f"[default: {_DEFAULTS.patience}]")
@click.option("--recipe", default=None,
              help="Training recipe (standard, or an adversarial one).  [default: standard]")
@click.option("--train-eps", type=float, default=None,
              help="Training radius of an adversarial recipe (its eps option).")
@click.option("--optimizer", default=None, help="adam, adamw or sgd.  [default: adam]")
@click.option("--momentum", type=float, default=None, help="SGD momentum.  [default: 0]")
@click.option("--nesterov", is_flag=True, default=None, help="SGD with Nesterov momentum.")
@click.option("--weight-decay", type=float, default=None,
              help="L2 (adam, sgd) or decoupled (adamw) weight decay.  [default: 0]")
@click.option("--schedule", default=None,
              help="Step-size schedule: constant, step, cosine or one-cycle (the last two "
                   "need --patience 0).  [default: constant]")
@click.option("--ema", is_flag=True, default=None,
              help="Keep and save an exponential moving average of the weights.")
@click.option("--label-smoothing", type=float, default=None,
              help="The recipe's label smoothing, in [0, 1).")
@click.option("--beta", type=float, default=None, help="TRADES's beta (trades recipe only).")
@click.option("--select", default=None,
              help="Checkpoint: last, or robust (best PGD-10 validation accuracy).  "
                   "[default: last]")
@click.option("--val-fraction", type=float, default=None,
              help="Share of training rows held out for --select robust.")
@click.option("--train-source", default=None,
              help="A generator file (robnp data fit-generator) whose samples replace the "
                   "training rows (as many); the test rows stay the true distribution's.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Model file to write (.npz; the suffix is added when there is none); its "
                   "config and history go beside it (.json).")
@click.option("--force", is_flag=True,
              help="Replace an existing model file and its JSON.")
@threads_option
def train(out_path, force, threads, width, depth, lr, batch_size, max_epochs, patience, recipe, train_eps,
          optimizer, momentum, nesterov, weight_decay, schedule, ema, label_smoothing, beta,
          select, val_fraction, train_source, **data):
    """Train one model the study's way (Adam, early stopping, the study's data draw)
    and save it, with a JSON of its configuration and training history beside it.
    The training options (recipe, optimizer, schedule, ...) replace the study's."""
    import dataclasses

    from robnp._io import atomic_write_json
    from robnp.attacks import accuracy
    from robnp.model import save_model
    from robnp.study import task_data, train_task
    from robnp.study.tasks import train_record

    path = _model_output(out_path, force)
    threads = thread_choice(threads)
    recipe_options = {key: value for key, value in
                      (("smoothing", label_smoothing), ("beta", beta)) if value is not None}
    slots = {key: value for key, value in {
        "recipe": recipe, "train_eps": train_eps, "optimizer": optimizer,
        "momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay,
        "schedule": schedule, "ema": ema, "select": select, "val_fraction": val_fraction,
        "recipe_options": recipe_options or None}.items() if value is not None}
    if patience == 0:
        slots["patience"] = None
        patience = None
    config = _study_config(data, width=width, depth=depth, lr=lr, batch_size=batch_size,
                           max_epochs=max_epochs, patience=patience,
                           train_source=train_source)
    task = config.tasks()[0]
    if slots:
        task = dataclasses.replace(task, train=task.train.replace(**slots))
    X_train, X_test, y_train, y_test = task_data(task)
    model, history = train_task(task, X_train, y_train, n_threads=threads)
    clean_acc = accuracy(model, X_test, y_test)
    save_model(model, path)
    sidecar = atomic_write_json(sidecar_path(path), train_record(task, history, clean_acc))
    click.echo(f"{task.label}: {model.n_params} parameters, {history.epochs} epochs, "
               f"final loss {history.final_loss:.4f}, clean accuracy {clean_acc:.4f}")
    if task.train_source is not None:
        generator = task.train_source.identity()["generator"]
        click.echo(f"  trained on {len(y_train)} samples of {generator['kind']} m="
                   f"{generator['m']} {generator['options']} ({task.train_source.path}); "
                   f"tested on the true distribution")
    if slots:
        options = ", ".join(f"{k}={v}" for k, v in history.recipe_options.items()) or "none"
        line = (f"  recipe {history.recipe} ({options}), {history.train_flops:.4g} training "
                f"FLOPs")
        if history.monitor_flops:
            line += f", {history.monitor_flops:.4g} monitoring FLOPs"
        if history.best_epoch is not None:
            line += (f", kept epoch {history.best_epoch} (robust validation accuracy "
                     f"{history.best_val_robust_acc:.4f})")
        if history.overfit:
            line += f", catastrophic overfitting at epoch {history.overfit_epoch}"
        click.echo(line)
    click.echo(f"  wrote {path}\n  wrote {sidecar}")


def _model_output(out_path, force: bool) -> Path:
    """The model file ``--out`` names, checked before training: ``.npz`` (added when
    the name has no suffix), writable, and, without ``--force``, neither it nor its
    JSON already there."""
    from robnp._io import check_output_file

    if not str(out_path).strip():
        raise click.BadParameter("must not be empty", param_hint="--out")
    path = Path(out_path)
    if path.suffix == "":
        path = path.with_name(path.name + ".npz")
    elif path.suffix != ".npz":
        raise click.BadParameter(f"a model file ends in .npz, got {str(out_path)!r}",
                                 param_hint="--out")
    check_output_file(path, "model file")
    existing = [str(p) for p in (path, sidecar_path(path)) if p.exists()]
    if existing and not force:
        raise click.BadParameter(f"{' and '.join(existing)} already exist(s); pass --force to "
                                 f"replace, or choose another path", param_hint="--out")
    return path


def model_task(model_path, data: dict):
    """A saved model and the one-task study that regenerates its test split.

    Each data setting is the one given, else the one stored beside the model by
    ``robnp train`` (:func:`read_sidecar`), else the study's; the input dimension
    defaults to the model's own. A model whose inputs or outputs do not fit the
    dataset is an error naming both."""
    from robnp.data import get_dataset
    from robnp.errors import DataError
    from robnp.model import load_model

    model = load_model(model_path)
    stored = read_sidecar(model_path)
    values = {key: stored.get(key) if data.get(key) is None else data[key] for key in data}
    if values.get("input_dim") is None:
        values["input_dim"] = model.n_features
    dataset = get_dataset(values.get("dataset") or _STUDY_DEFAULT["dataset"])
    task = _study_config(values).tasks()[0]
    if model.n_features != task.input_dim:
        raise DataError(f"{model_path} takes {model.n_features} input features but dataset "
                        f"{task.dataset!r} with input_dim={task.input_dim} has "
                        f"{task.input_dim}; pass --input-dim {model.n_features}")
    if model.n_classes != task.n_classes:
        raise DataError(f"{model_path} has {model.n_classes} outputs but dataset "
                        f"{task.dataset!r} has {task.n_classes} classes"
                        + (f"; pass --n-classes {model.n_classes}"
                           if dataset.variable_classes else ""))
    return model, task


def require_data_record(model_path, data: dict) -> None:
    """Refuse to guess which data a model was trained on: without a robnp train
    record beside it, ``--dataset`` and ``--seed`` must be given."""
    from robnp.errors import ConfigError

    if read_sidecar(model_path):
        return
    missing = [flag for flag, key in (("--dataset", "dataset"), ("--seed", "seed"))
               if data.get(key) is None]
    if missing:
        raise ConfigError(f"{' and '.join(missing)} needed: no robnp train record beside "
                          f"{model_path} says which data the model was trained on")


def _attack_options(pairs) -> dict:
    """``--option NAME.KEY=VALUE`` pairs as {attack: {key: value}} (values in TOML
    syntax: 100, 0.5, true, "dlr")."""
    from robnp.errors import ConfigError

    tables: dict = {}
    for pair in pairs:
        target, sep, text = pair.partition("=")
        attack, dot, key = target.partition(".")
        if not sep or not dot or not attack or not key:
            raise ConfigError(f"--option takes ATTACK.OPTION=VALUE, got {pair!r}")
        try:
            value = tomllib.loads(f"value = {text}")["value"]
        except tomllib.TOMLDecodeError:
            value = text  # a bare word: a string option such as a loss name
        tables.setdefault(attack, {})[key] = value
    return tables


def read_sidecar(model_path) -> dict:
    """The training settings ``robnp train`` wrote beside ``model_path`` (its ``task``
    record), or ``{}`` when there is no such file. A file that is there but cannot be
    read, or is not a ``robnp train`` record, is an error naming it: its settings
    would otherwise be replaced by the study's without a word."""
    import json

    from robnp.errors import DataError

    path = sidecar_path(model_path)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc).split(":")[0]
        raise DataError(f"{path} beside the model cannot be read ({reason}); fix or remove "
                        f"it, or pass the data options") from None
    task = data.get("task") if isinstance(data, dict) else None
    if (not isinstance(data, dict) or data.get("format") != "robnp.train"
            or not isinstance(task, dict)):
        raise DataError(f"{path} beside the model is not a robnp train record (no format "
                        f"'robnp.train' with a task); fix or remove it")
    return task


@click.command()
@click.argument("model_path", type=click.Path(dir_okay=False))
@data_options
@click.option("--attacks", type=NAME_LIST, default=",".join(DEFAULT_ATTACKS), show_default=True,
              help="Registered attacks, run in this order.")
@click.option("--eps", "epsilons", type=FLOAT_LIST, default="0.05,0.1,0.2", show_default=True,
              help="Radii.")
@click.option("--option", "options", multiple=True, metavar="ATTACK.KEY=VALUE",
              help="An attack option, e.g. apgd-ce.steps=100 (repeatable).")
@click.option("--cascade", is_flag=True,
              help="Attack only the points still robust (AutoAttack's scoring; cheaper).")
@click.option("--no-convergence-check", is_flag=True,
              help="Skip rerunning attacks with twice the steps and twice the restarts.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Also write the evaluation as JSON.")
@click.option("--save-points", "points_path", type=click.Path(dir_okay=False),
              help="Also write every attack's points (per eps: the point, the clean point, "
                   "the label, success, and the Bayes label where the density is known) "
                   "to this .npz file.")
@click.option("--truth", is_flag=True,
              help="Also what the data allows: the verified bracket (certified <= exact <= "
                   "attacks), the Bayes classifier's robust accuracy and each attack's "
                   "share of adversarial points whose Bayes label changed.")
@threads_option
@click.option("--radii", is_flag=True,
              help="Also per point the smallest perturbation each attack found (quantiles) "
                   "and the exact robustness radius (bisection on the verifier to 0.1%; "
                   "undecided points as [certified, attack] brackets); in --json and "
                   "--save-points too.")
def attack(model_path, attacks, epsilons, options, cascade, no_convergence_check, json_path,
           points_path, truth, threads, radii, **data):
    """Attack a saved model on its dataset's test split: robust accuracy per attack and
    eps, the per-sample worst case, and the sanity checks that failed.

    The data settings default to those in the JSON written beside the model by
    ``robnp train``, else to the study's.
    """
    from robnp._io import atomic_write_json, check_output_file
    from robnp.attacks import evaluate
    from robnp.attacks._threat import default_threads
    from robnp.report.records import attack_label
    from robnp.study import task_data

    threads = thread_choice(threads)
    if json_path:
        check_output_file(json_path, "--json file")
    if points_path:
        if not str(points_path).endswith(".npz"):
            raise click.BadParameter(f"the points file ends in .npz, got {points_path!r}",
                                     param_hint="--save-points")
        check_output_file(points_path, "--save-points file")
    model, task = model_task(model_path, data)
    _, X_test, _, y_test = task_data(task)
    chosen = StudyConfig.merge_attacks(_attack_options(options) or None, attacks)
    if isinstance(chosen, tuple):
        chosen = {name: {} for name in chosen}
    progress = DelayedProgress("attack")
    try:
        with default_threads(threads):
            evaluation = evaluate(model, X_test, y_test, epsilons, chosen, seed=task.seed,
                                  cascade=cascade, check_convergence=not no_convergence_check,
                                  progress=progress)
    finally:
        progress.close()
    click.echo(f"{model_path} on {task.label.rsplit(' width=', 1)[0]} test split: "
               f"{X_test.shape[0]} points, clean accuracy {evaluation.clean_acc:.4f}")
    head = f"  {'attack':<14}" + "".join(f"{f'eps={e:g}':>12}" for e in evaluation.eps)
    click.echo(head)
    click.echo("  " + "-" * (len(head) - 2))
    for name, result in evaluation.attacks.items():
        click.echo(f"  {attack_label(name):<14}" + "".join(f"{v:>12.4f}" for v in result.robust_acc))
    click.echo(f"  {'worst case':<14}" + "".join(f"{v:>12.4f}" for v in evaluation.worst_robust_acc))
    if cascade:
        click.echo("  (cascade: each row is the robust accuracy after that attack and those above)")
    _print_suites(evaluation, model.n_classes)
    if truth:
        with default_threads(threads):
            _print_truth(model, task, X_test, y_test, evaluation)
    radius_report = None
    if radii:
        with default_threads(threads):
            radius_report = _print_radii(model, task, X_test, y_test, evaluation)
    for warning in evaluation.warnings:
        click.echo(f"warning: {warning}")
    if json_path:
        document = evaluation.to_dict()
        document["model"] = str(model_path)
        document["data"] = {key: getattr(task, key) for key in
                            ("dataset", "seed", "noise", "n_samples", "test_fraction", "input_dim",
                             "n_classes")}
        if radius_report:
            document["radii"] = radius_report[0]
        click.echo(f"  wrote {atomic_write_json(json_path, document)}")
    if points_path:
        extra = radius_report[1] if radius_report else None
        click.echo(f"  wrote {_save_points(points_path, task, X_test, y_test, evaluation, extra)}")


def _print_suites(evaluation, n_classes: int) -> None:
    """Below the attack table: which rows are a suite's stages, and, once, what the
    suite replaced or skipped on this model."""
    from robnp.attacks import SuiteOptions
    from robnp.report.records import attack_label

    for name, result in evaluation.attacks.items():
        if isinstance(result.options, SuiteOptions):
            stages = [attack_label(stage.name) for stage in result.options.stages(n_classes)]
            click.echo(f"  ({', '.join(stages)}: {attack_label(name)}'s stages, each on the "
                       f"points still robust;\n   a row is the robust accuracy after that "
                       f"stage and those above it, {attack_label(name)} after all of them)")
    for notice in evaluation.notices:
        click.echo(f"note: {notice}")


def _save_points(path, task, X_test, y_test, evaluation, extra=None):
    """The ``--save-points`` file: :func:`robnp.verify.adversarial_points`, with the
    Bayes labels when the task's density is known, written atomically."""
    import io

    import numpy as np

    from robnp._io import atomic_write_bytes
    from robnp.data import bayes, get_dataset
    from robnp.verify import DataSource, adversarial_points

    source = None
    if task.dataset in bayes.density_datasets() and task.noise > 0:
        source = DataSource(task.dataset, task.n_samples, task.noise, task.input_dim,
                            task.n_classes if get_dataset(task.dataset).variable_classes
                            else None)
    arrays = adversarial_points(evaluation, X_test, y_test, source)
    arrays.update(extra or {})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return atomic_write_bytes(path, buffer.getvalue())


def _print_truth(model, task, X_test, y_test, evaluation) -> None:
    """The rows ``--truth`` adds below the attack table."""
    from robnp.data import get_dataset
    from robnp.report.records import attack_label
    from robnp.verify import (DataSource, bayes_robust_accuracy, invalid_share,
                              robustness_bracket)

    def cells(values, digits=4):
        return "".join(f"{'n/a':>12}" if v != v else f"{v:>12.{digits}f}" for v in values)

    bracket = robustness_bracket(model, X_test, y_test, evaluation, seed=task.seed)
    click.echo(f"  {'certified':<14}" + cells(bracket.certified))
    click.echo(f"  {'exact':<14}" + cells(bracket.exact)
               + ("" if not bracket.undecided.any() else
                  f"   (undecided points: {', '.join(str(int(u)) for u in bracket.undecided)})"))
    source = DataSource(task.dataset, task.n_samples, task.noise, task.input_dim,
                        task.n_classes if get_dataset(task.dataset).variable_classes else None)
    norm = next(iter(evaluation.attacks.values())).options.norm
    bayes, exact = bayes_robust_accuracy(source, X_test, y_test, evaluation.eps, norm=norm,
                                         attacks=(("pgd", {"steps": 50, "n_restarts": 2}),),
                                         seed=task.seed)
    click.echo(f"  {'Bayes clf':<14}" + cells(bayes)
               + ("   (exact)" if exact else "   (PGD on the Bayes classifier: an upper bound)"))
    for name, share in invalid_share(evaluation, y_test, source).items():
        click.echo(f"  {('invalid ' + attack_label(name))[:14]:<14}" + cells(share))
    click.echo("  (invalid: share of the broken points whose Bayes label is not the clean label)")


def _print_radii(model, task, X_test, y_test, evaluation):
    """The rows ``--radii`` adds: quantiles of each attack's minimal perturbation and of
    the exact robustness radius; returns ``(json section, arrays for --save-points)``."""
    import numpy as np

    from robnp.report.radii import QUANTILES, radius_quantiles
    from robnp.report.records import attack_label
    from robnp.verify import robustness_radius

    def cells(values):
        return "".join(f"{'inf':>9}" if v == np.inf else f"{v:>9.4f}" for v in values)

    def listed(values):
        return [float(v) if np.isfinite(v) else None for v in values]

    norms = sorted({result.options.norm for result in evaluation.attacks.values()})
    click.echo(f"  smallest perturbation found per point ({', '.join(norms)}; inf: none; "
               f"clean errors 0)")
    click.echo(f"  {'':<14}{'broken':>9}" + "".join(f"{f'{q:.0%}':>9}" for q in QUANTILES))
    section, arrays = {"quantiles": list(QUANTILES), "attacks": {}}, {}
    for name in evaluation.attacks:
        found = evaluation.minimal_radius(X_test, name)
        click.echo(f"  {attack_label(name):<14}{np.mean(np.isfinite(found)):>9.4f}"
                   + cells(radius_quantiles(found)))
        section["attacks"][name] = {"norm": evaluation.attacks[name].options.norm,
                                    "minimal": listed(found),
                                    "quantiles": listed(radius_quantiles(found))}
        arrays[f"minimal_{name}"] = found
    if len(norms) > 1 or norms[0] not in ("linf", "l2"):
        click.echo("  (exact radii: the attacks must share one norm, linf or l2)")
        return section, arrays
    start = evaluation.minimal_perturbation(X_test)
    bounds = {getattr(r.options, "bounds", None) for r in evaluation.attacks.values()}
    exact = robustness_radius(model, X_test, y_test, norms[0], start=start,
                              bounds=bounds.pop() if len(bounds) == 1 else None,
                              seed=task.seed)
    undecided = int(np.sum(exact.status == "undecided"))
    click.echo(f"  {'exact':<14}{'':>9}" + cells(radius_quantiles(exact.lower)))
    if undecided:
        click.echo(f"  {'exact (attack)':<14}{'':>9}" + cells(radius_quantiles(exact.upper)))
    click.echo(f"  (exact: bisection on the verifier to rtol {exact.rtol:g}, atol "
               f"{exact.atol:g}; {undecided} undecided point(s) keep their bracket "
               f"[certified, attack]; {exact.verify_calls} verifier calls)")
    section["exact"] = {**exact.to_dict(), "quantiles": listed(radius_quantiles(exact.lower))}
    arrays.update(radius_lower=exact.lower, radius_upper=exact.upper,
                  radius_status=exact.status)
    return section, arrays
