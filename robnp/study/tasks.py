"""One unit of work of a study: train one model, attack it at every radius.

A :class:`Task` carries everything its result depends on, and :func:`run_task` is a
pure function of it: the same task gives the same records in any process, in any
order. Its :attr:`Task.key` (a hash of that content) is how a store recognises a
finished task when a study is resumed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field

import numpy as np

from ..attacks import AttackOptions, accuracy, evaluate
from ..attacks._threat import default_threads
from ..data import get_dataset, make_dataset, train_test_split
from ..errors import TrainingDivergedError
from ..flops import forward_flops
from ..losses import mean_loss
from ..model import MLP
from ..report.records import EVALUATION_FIELDS, evaluation_problems, study_rows
from ..threads import single_blas_thread
from ..training.config import TrainConfig
from ..training.fit import epoch_flops, fit, objective

__all__ = ["Task", "content_key", "TaskResult", "TrainSource", "run_task", "task_data", "train_task",
           "train_record"]


@dataclass(frozen=True)
class TrainSource:
    """A generator file (``robnp data fit-generator``) as a task's training data.

    The task's training rows are ``generator.sample(n_train, seed)`` in place of its
    draw's training split; the test split stays the true distribution's. What the
    results depend on (:meth:`identity`) is the generator's identity and the SHA-256
    of its arrays (:func:`robnp.data.generators.generator_digest`), not the path, so a
    moved file keeps the task keys; a file whose content changed is refused when a
    task loads it.

    Attributes
    ----------
    path : str
    generator : str
        The generator's identity as sorted JSON (hashable).
    sha256 : str
    """

    path: str
    generator: str
    sha256: str

    @classmethod
    def from_file(cls, path) -> "TrainSource":
        """Read the file (a damaged one is a one-line ModelFileError)."""
        from ..data import diffusion  # noqa: F401  (registers the kind "diffusion")
        from ..data.generators import generator_digest, load_generator

        generator = load_generator(path)
        return cls(str(path), json.dumps(generator.identity(), sort_keys=True),
                   generator_digest(generator))

    @classmethod
    def from_dict(cls, data) -> "TrainSource":
        """Inverse of :meth:`to_dict` (the file is not read)."""
        return cls(str(data["path"]), json.dumps(data["generator"], sort_keys=True),
                   str(data["sha256"]))

    def identity(self) -> dict:
        return {"generator": json.loads(self.generator), "sha256": self.sha256}

    def to_dict(self) -> dict:
        return {"path": self.path, **self.identity()}

    @property
    def task(self) -> dict:
        """The generator's task (``dataset``, ``noise``, ``input_dim``, ``n_classes``,
        ``size``)."""
        return json.loads(self.generator)["task"]

    def load(self):
        """The generator, checked to be the one this source names."""
        from ..data import diffusion  # noqa: F401  (registers the kind "diffusion")
        from ..data.generators import generator_digest, load_generator
        from ..errors import DataError

        generator = load_generator(self.path)
        if generator_digest(generator) != self.sha256:
            raise DataError(f"train source {self.path} has changed since the study took it "
                            f"(SHA-256 {generator_digest(generator)[:12]}..., expected "
                            f"{self.sha256[:12]}...)")
        return generator

    def __str__(self) -> str:
        return self.path


def content_key(identity: dict) -> str:
    """The key a store files a task's result under: a hash of the task's identity (plain
    JSON values), the same in any process and on any machine."""
    text = json.dumps(identity, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Task:
    """Train a ``depth``-hidden-layer MLP of width ``width`` on one dataset draw and
    attack it with every attack of ``attacks`` at every radius in ``epsilons``.

    The seed drives the dataset draw (so, for a seed, every width sees the same
    data), the model's initialisation and the training shuffle (``train.seed``), as
    in the study. ``train`` and the attack options are the library's own
    configuration objects, passed to :func:`robnp.fit` and :func:`robnp.evaluate`
    as they are.
    """

    dataset: str
    n_classes: int
    noise: float
    n_samples: int
    test_fraction: float
    input_dim: int
    seed: int
    width: int
    depth: int
    train: TrainConfig
    epsilons: tuple[float, ...]
    attacks: tuple[tuple[str, AttackOptions], ...]
    analyses: tuple[str, ...] = ()
    train_source: TrainSource | None = None

    def identity(self) -> dict:
        """Everything the result depends on, as plain JSON values (``analyses`` and
        ``train_source`` only when there are some, so a study's task keys stay as they
        were)."""
        out = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        out["train"] = self.train.identity()
        out["attacks"] = [[name, options.to_dict()] for name, options in self.attacks]
        if not self.analyses:
            del out["analyses"]
        else:
            out["analyses"] = list(self.analyses)
        if self.train_source is None:
            del out["train_source"]
        else:
            out["train_source"] = self.train_source.identity()
        return out

    @property
    def key(self) -> str:
        """Content hash identifying this task's result."""
        return content_key(self.identity())

    @property
    def label(self) -> str:
        return f"{self.dataset} seed={self.seed} width={self.width}"

    @property
    def hidden(self) -> tuple[int, ...]:
        return (self.width,) * self.depth

    def run(self) -> "TaskResult":
        """:func:`run_task` of this task (what an executor calls)."""
        return run_task(self)

    def memory(self):
        """Peak memory of :func:`run_task` estimated from the sizes alone
        (:func:`robnp.limits.training_memory`), checked before the task runs."""
        from ..limits import training_memory

        return training_memory(n_features=self.input_dim, hidden=self.hidden,
                               n_classes=self.n_classes, n_samples=self.n_samples,
                               test_fraction=self.test_fraction,
                               batch_size=self.train.batch_size,
                               max_epochs=self.train.max_epochs, train=self.train)

    def cost(self) -> float:
        """Estimated floating-point operations of :func:`run_task`, an upper bound
        that assumes training runs all ``max_epochs``.

        Per epoch what training records (:func:`robnp.training.fit.epoch_flops`: the
        recipe's own count per row, the optimizer's update per minibatch); per test
        row, in forward passes (:func:`robnp.flops.forward_flops`), one forward and
        backward pass for the clean accuracy and gradient, at every radius what each
        attack's options say one run costs (:meth:`robnp.attacks.AttackOptions.passes`),
        and the analyses' work. Used to start expensive tasks first and to weight the
        progress estimate; only ratios between tasks matter.
        """
        sizes = (self.input_dim, *self.hidden, self.n_classes)
        n_test = int(self.n_samples * self.test_fraction)
        n_train = self.n_samples - n_test
        per_epoch = epoch_flops(sizes, self.train, n_train)
        passes = 3 + len(self.epsilons) * sum(options.passes(self.n_classes) for _, options in self.attacks)
        passes += len(self.epsilons) * sum(_ANALYSIS_PASSES.get(name, 0) for name in self.analyses)
        attacks = float(forward_flops(sizes)) * n_test * passes
        return float(self.train.max_epochs) * per_epoch + attacks


#: Forward-pass equivalents per test row and radius of each analysis, rough: the
#: verifier's bounds and its few branch-and-bound boxes cost some tens of passes;
#: the Bayes analysis attacks a classifier whose cost does not grow with the width,
#: which this count (in passes of the task's network) can only approximate.
_ANALYSIS_PASSES = {"exact": 40.0, "ceiling": 1.0, "bayes": 100.0}


@dataclass(frozen=True)
class TaskResult:
    """What a task produced: the trained model's facts, one long-form evaluation
    record per (attack, eps), and training facts.

    ``model`` holds the study's per-model keys (:data:`robnp.report.records.MODEL_FIELDS`
    and ``TRAILING_FIELDS``); :attr:`records` derives the study's wide rows.
    """

    key: str
    model: dict
    evaluations: tuple[dict, ...]
    epochs: int
    final_loss: float
    clean_acc: float
    seconds: float
    #: What the task kept of its model beside the study's facts, None in a store
    #: written before models were kept: ``record`` (the JSON ``robnp train`` writes
    #: beside a model, :func:`train_record`) and ``adversarial_loss`` (attack ->
    #: mean cross-entropy on the test split at its points, per eps).
    trained: dict | None = None
    #: The trained model's flat parameter vector; handed to the parent, which writes
    #: the model file before it commits the task; never stored as JSON.
    weights: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def records(self) -> list[dict]:
        """The study's rows of this task, one per eps."""
        return study_rows(self.model, self.evaluations)

    def summary(self, task: Task) -> dict:
        """The per-task entry of results.json."""
        out = {"dataset": task.dataset, "seed": task.seed, "hidden_width": task.width,
               "param_count": self.model["param_count"], "epochs": self.epochs,
               "final_loss": self.final_loss, "clean_acc": self.clean_acc}
        if "train_flops" in self.model:
            out["train_flops"] = self.model["train_flops"]
        out["task_seconds"] = self.seconds
        return out

    def to_json(self) -> str:
        """Every field but ``weights``; ``trained`` only when there is one (a store's
        entries keep their earlier shape otherwise)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "weights"}
        if data["trained"] is None:
            del data["trained"]
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> "TaskResult":
        """Inverse of :meth:`to_json` (``weights`` None); a ValueError names what is
        malformed."""
        data = json.loads(text)
        fields = {f.name for f in dataclasses.fields(cls)} - {"weights", "trained"}
        if not isinstance(data, dict) or not fields <= set(data) <= fields | {"trained"}:
            raise ValueError(f"expected an object with keys {sorted(fields)} (and trained)")
        if not isinstance(data.get("trained"), (dict, type(None))):
            raise ValueError(f"trained must be an object, got {data['trained']!r}")
        evaluations = data["evaluations"]
        if (not isinstance(evaluations, list) or not evaluations
                or evaluation_problems(evaluations)):
            raise ValueError(f"evaluations must be a non-empty list of objects with keys "
                             f"{sorted(EVALUATION_FIELDS)}")
        if not isinstance(data["model"], dict):
            raise ValueError(f"model must be an object, got {data['model']!r}")
        if not isinstance(data["key"], str):
            raise ValueError(f"key must be a string, got {data['key']!r}")
        for name in ("epochs", "final_loss", "clean_acc", "seconds"):
            if isinstance(data[name], bool) or not isinstance(data[name], (int, float)):
                raise ValueError(f"{name} must be a number, got {data[name]!r}")
        data["evaluations"] = tuple(evaluations)
        return cls(**data)


def task_data(task: Task):
    """The task's dataset draw, split the study's way: ``X_train, X_test, y_train,
    y_test``. With a ``train_source`` the training rows are as many of the
    generator's samples (``sample(n_train, seed=task.seed)``, in the draw's dtype)
    and the test rows stay the draw's."""
    X, y = make_dataset(task.dataset, task.n_samples, task.noise, seed=task.seed,
                        input_dim=task.input_dim,
                        n_classes=task.n_classes if get_dataset(task.dataset).variable_classes
                        else None)
    X_train, X_test, y_train, y_test = train_test_split(X, y, task.test_fraction)
    if task.train_source is not None:
        X_gen, y_train = task.train_source.load().sample(len(y_train), task.seed)
        X_train = X_gen.astype(X_test.dtype)
    return X_train, X_test, y_train, y_test


@single_blas_thread
def train_task(task: Task, X_train, y_train, n_threads: int | None = 1):
    """The task's model, initialised from its seed and trained on ``(X_train,
    y_train)`` on ``n_threads`` threads (1: the study's workers already run in
    parallel; the result is the same for any value): ``(model, history)``. A
    divergence names the task."""
    model = MLP(task.input_dim, task.hidden, task.n_classes, seed=task.seed)
    try:
        history = fit(model, X_train, y_train, task.train, n_threads=n_threads)
    except TrainingDivergedError as exc:
        # fit knows the epoch and lr; only the study knows which of its tasks this was.
        raise TrainingDivergedError(f"task {task.label}: {exc}") from None
    return model, history


def training_problem(task: Task, initial_loss: float, history, clean_acc: float,
                     y_test) -> str | None:
    """Why a training that ended without NaN still failed, or None: a final loss above
    the loss at initialisation, or clean accuracy no better than always answering the
    test split's majority class."""
    majority = float(np.bincount(y_test).max() / len(y_test))
    if history.final_loss > initial_loss:
        return (f"task {task.label}: final training loss {history.final_loss:.4g} is above "
                f"its initial loss {initial_loss:.4g} (lr={task.train.lr:g})")
    if clean_acc <= majority:
        return (f"task {task.label}: clean accuracy {clean_acc:.4f} is no better than the "
                f"majority class's share {majority:.4f}")
    return None


#: Branch-and-bound budget (sub-boxes per point) of the ``exact`` analysis.
EXACT_BUDGET = 4096
#: The attack on the Bayes classifier of a mixture in the ``bayes`` analysis: PGD,
#: stronger than the study's (more steps, restarts), the worst case of both.
BAYES_ATTACKS = (("pgd", {"steps": 50, "n_restarts": 2}),)


def analysis_records(task: Task, model, X_test, y_test, evaluation) -> list[dict]:
    """Long-form analysis records (``{"analysis", "epsilon", "value"}``) of the
    task's ``analyses``, one per (quantity, eps); ``value`` is None where the
    quantity is undefined (an undecided exact accuracy, an invalid share of no
    successful attack)."""
    from ..report.records import attack_key
    from ..verify import DataSource, robustness_ceiling
    from ..verify.truth import (bayes_robust_accuracy, error_region_robust_accuracy,
                                invalid_share, robustness_bracket)

    norm = next(iter(evaluation.attacks.values())).options.norm
    columns: dict[str, list] = {}
    if "exact" in task.analyses:
        bracket = robustness_bracket(model, X_test, y_test, evaluation, budget=EXACT_BUDGET,
                                     seed=task.seed)
        columns["exact_acc"] = list(bracket.exact)
        columns["certified_acc"] = list(bracket.certified)
        columns["undecided"] = [int(v) for v in bracket.undecided]
    if "ceiling" in task.analyses:
        columns["ceiling_acc"] = list(robustness_ceiling(X_test, y_test, list(task.epsilons),
                                                         norm))
    if "bayes" in task.analyses:
        source = DataSource(task.dataset, task.n_samples, task.noise, task.input_dim,
                            task.n_classes if get_dataset(task.dataset).variable_classes
                            else None)
        columns["bayes_robust_acc"] = list(bayes_robust_accuracy(
            source, X_test, y_test, task.epsilons, norm=norm, attacks=BAYES_ATTACKS,
            seed=task.seed)[0])
        for name, share in invalid_share(evaluation, y_test, source).items():
            columns[f"invalid_share_{attack_key(name)}"] = list(share)
        for name, acc in error_region_robust_accuracy(model, evaluation, source).items():
            columns[f"error_region_acc_{attack_key(name)}"] = list(acc)
    records = []
    for key, values in columns.items():
        for eps, value in zip(task.epsilons, values):
            value = None if value is None or (isinstance(value, float) and np.isnan(value)) \
                else (int(value) if isinstance(value, (int, np.integer)) else float(value))
            records.append({"analysis": key, "epsilon": float(eps), "value": value})
    return records


def train_record(task: Task, history, clean_acc: float) -> dict:
    """The JSON written beside a trained model (by ``robnp train`` and for every model
    a sweep keeps): ``format`` ``"robnp.train"``, the ``task`` it was trained as (its
    identity without the evaluation's settings), its clean test accuracy and its
    training ``history``. ``robnp attack``, ``verify`` and ``plot boundary`` read the
    data settings back from ``task``."""
    identity = task.identity()
    for key in ("attacks", "epsilons", "analyses"):
        identity.pop(key, None)
    if task.train_source is not None:
        identity["train_source"] = task.train_source.to_dict()
    facts = {"epochs": history.epochs, "final_loss": history.final_loss,
             "best_loss": history.best_loss, "stopped_early": history.stopped_early,
             "loss": [float(v) for v in history.loss]}
    summary = history.summary()
    for key in ("seconds", "epochs", "final_loss", "best_loss", "stopped_early", "loss"):
        del summary[key]
    return {"format": "robnp.train", "task": identity, "clean_acc": clean_acc,
            "history": {**facts, **summary}}


def adversarial_loss(model, X_test, y_test, evaluation) -> dict[str, list[float]]:
    """Attack name -> the mean cross-entropy of ``model`` on the test split at that
    attack's points, one value per eps (the adversarial test loss of
    ``docs/scaling.md``)."""
    return {name: [mean_loss(model, points, y_test) for points in result.adversarial]
            for name, result in evaluation.attacks.items()}


@single_blas_thread
def run_task(task: Task) -> TaskResult:
    """Generate data, train, measure clean accuracy, run every attack at every radius.

    The model's facts are the study's (``dataset, seed, hidden_width, param_count,
    epochs, final_loss, clean_acc``, then ``noise``, ``depth`` and ``input_dim``);
    the evaluation records come from :func:`robnp.evaluate` (every attack on every
    test point, each attack's randomness derived from the task's seed).
    """
    start = time.perf_counter()
    with default_threads(1):  # a train source's sampler: the workers run in parallel
        X_train, X_test, y_train, y_test = task_data(task)
    initial = MLP(task.input_dim, task.hidden, task.n_classes, seed=task.seed)
    # The loss the training minimises, at initialisation: plain cross-entropy for the
    # study's training, the recipe's objective otherwise.
    initial_loss = (mean_loss(initial, X_train, y_train) if task.train.fused
                    else objective(initial, X_train, y_train, task.train, seed=task.seed))
    model, history = train_task(task, X_train, y_train)
    clean_acc = accuracy(model, X_test, y_test)
    with default_threads(1):  # the workers run in parallel already
        evaluation = evaluate(model, X_test, y_test, task.epsilons, list(task.attacks),
                              seed=task.seed)
    facts = {"dataset": task.dataset, "seed": task.seed, "hidden_width": task.width,
             "param_count": model.n_params, "epochs": history.epochs,
             "final_loss": history.final_loss, "clean_acc": clean_acc,
             "noise": task.noise, "depth": task.depth, "input_dim": task.input_dim}
    if task.train.recipe != "standard" or task.train.recipe_options.to_dict() != \
            type(task.train.recipe_options)().to_dict():
        # Cost as a first-class output of every training that is not the study's.
        facts["train_flops"] = float(history.train_flops)
    problem = training_problem(task, initial_loss, history, clean_acc, y_test)
    if problem is not None:  # only then: a healthy study keeps the study's keys
        facts["training_failed"] = problem
    records = evaluation.records()
    if task.analyses:
        with default_threads(1):
            records += analysis_records(task, model, X_test, y_test, evaluation)
    trained = {"record": train_record(task, history, clean_acc),
               "adversarial_loss": adversarial_loss(model, X_test, y_test, evaluation)}
    return TaskResult(key=task.key, model=facts, evaluations=tuple(records),
                      epochs=history.epochs, final_loss=history.final_loss,
                      clean_acc=clean_acc, seconds=time.perf_counter() - start,
                      trained=trained, weights=model.params.copy())
