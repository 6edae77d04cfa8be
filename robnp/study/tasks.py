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
from dataclasses import dataclass

from ..attacks import fgsm_from_gradient, pgd
from ..data import get_dataset, make_dataset, train_test_split
from ..errors import TrainingDivergedError
from ..evaluate import accuracy
from ..gradients import input_gradient
from ..model import MLP
from ..threads import single_blas_thread
from ..train import TrainConfig, fit

__all__ = ["Task", "TaskResult", "run_task", "RECORD_KEYS"]

# Every record of a task carries these (the study's schema); run_task adds a few more.
RECORD_KEYS = frozenset({"dataset", "seed", "hidden_width", "param_count", "epochs",
                         "final_loss", "clean_acc", "epsilon", "fgsm_acc", "pgd_acc",
                         "fgsm_gap", "pgd_gap"})


@dataclass(frozen=True)
class Task:
    """Train a ``depth``-hidden-layer MLP of width ``width`` on one dataset draw and
    attack it with FGSM and PGD at every radius in ``epsilons``.

    The seed drives the dataset draw (so, for a seed, every width sees the same
    data), the model's initialisation and the training shuffle, as in the study.
    """

    dataset: str
    noise: float
    n_samples: int
    test_fraction: float
    input_dim: int
    seed: int
    width: int
    depth: int
    lr: float
    batch_size: int
    max_epochs: int
    patience: int
    min_delta: float
    epsilons: tuple[float, ...]
    pgd_steps: int
    pgd_step_fraction: float

    @property
    def key(self) -> str:
        """Content hash identifying this task's result."""
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    @property
    def label(self) -> str:
        return f"{self.dataset} seed={self.seed} width={self.width}"

    @property
    def hidden(self) -> tuple[int, ...]:
        return (self.width,) * self.depth

    def cost(self) -> float:
        """Estimated floating-point operations of :func:`run_task`, an upper bound
        that assumes training runs all ``max_epochs``.

        Per training row and epoch: the forward and the two backward products
        (3 x 2 multiply-add flops per weight); per minibatch, Adam's update (about 10
        flops per parameter); per test row, one forward and backward pass for the
        clean accuracy and gradient, and at every radius FGSM's evaluation and PGD's
        steps plus its evaluation. Used to start expensive tasks first and to weight
        the progress estimate; only ratios between tasks matter.
        """
        sizes = (self.input_dim, *self.hidden, get_dataset(self.dataset).n_classes)
        weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
        n_params = weights + sum(sizes[1:])
        n_test = int(self.n_samples * self.test_fraction)
        n_train = self.n_samples - n_test
        n_batches = -(-n_train // self.batch_size)
        per_epoch = 6.0 * weights * n_train + 10.0 * n_params * n_batches
        passes = 3 + len(self.epsilons) * (1 + 3 * self.pgd_steps + 1)
        attacks = 2.0 * weights * n_test * passes
        return float(self.max_epochs) * per_epoch + attacks


@dataclass(frozen=True)
class TaskResult:
    """What a task produced: one record per radius, plus training facts."""

    key: str
    records: tuple[dict, ...]
    epochs: int
    final_loss: float
    clean_acc: float
    seconds: float

    def summary(self, task: Task) -> dict:
        """The per-task entry of results.json."""
        return {"dataset": task.dataset, "seed": task.seed, "hidden_width": task.width,
                "param_count": self.records[0]["param_count"], "epochs": self.epochs,
                "final_loss": self.final_loss, "clean_acc": self.clean_acc,
                "task_seconds": self.seconds}

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "TaskResult":
        """Inverse of :meth:`to_json`; a ValueError names what is malformed."""
        data = json.loads(text)
        fields = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, dict) or set(data) != fields:
            raise ValueError(f"expected an object with keys {sorted(fields)}")
        records = data["records"]
        if (not isinstance(records, list) or not records
                or not all(isinstance(r, dict) and RECORD_KEYS <= set(r) for r in records)):
            raise ValueError(f"records must be a non-empty list of objects with keys "
                             f"{sorted(RECORD_KEYS)}")
        if not isinstance(data["key"], str):
            raise ValueError(f"key must be a string, got {data['key']!r}")
        for name in ("epochs", "final_loss", "clean_acc", "seconds"):
            if isinstance(data[name], bool) or not isinstance(data[name], (int, float)):
                raise ValueError(f"{name} must be a number, got {data[name]!r}")
        data["records"] = tuple(records)
        return cls(**data)


@single_blas_thread
def run_task(task: Task) -> TaskResult:
    """Generate data, train, measure clean accuracy, attack at every radius.

    Returns records in the study's schema (``dataset, seed, hidden_width,
    param_count, epochs, final_loss, clean_acc, epsilon, fgsm_acc, pgd_acc,
    fgsm_gap, pgd_gap``) plus ``noise``, ``depth`` and ``input_dim``.
    """
    start = time.perf_counter()
    X, y = make_dataset(task.dataset, task.n_samples, task.noise, seed=task.seed,
                        input_dim=task.input_dim)
    X_train, X_test, y_train, y_test = train_test_split(X, y, task.test_fraction)
    n_classes = get_dataset(task.dataset).n_classes
    model = MLP(task.input_dim, task.hidden, n_classes, seed=task.seed)
    try:
        history = fit(model, X_train, y_train, TrainConfig(
            lr=task.lr, batch_size=task.batch_size, max_epochs=task.max_epochs,
            patience=task.patience, min_delta=task.min_delta, seed=task.seed))
    except TrainingDivergedError as exc:
        # fit knows the epoch and lr; only the study knows which of its tasks this was.
        raise TrainingDivergedError(f"task {task.label}: {exc}") from None
    clean_acc = accuracy(model, X_test, y_test)
    # The gradient at the clean points is the same for every radius: FGSM's step,
    # and PGD's first (PGD starts at the clean points).
    dL_dX = input_gradient(model, X_test, y_test)
    records = []
    for eps in task.epsilons:
        fgsm_acc = accuracy(model, fgsm_from_gradient(X_test, dL_dX, eps), y_test)
        pgd_acc = accuracy(model, pgd(model, X_test, y_test, eps, steps=task.pgd_steps,
                                      step_size=task.pgd_step_fraction * eps,
                                      start_gradient=dL_dX), y_test)
        records.append({
            "dataset": task.dataset,
            "seed": task.seed,
            "hidden_width": task.width,
            "param_count": model.n_params,
            "epochs": history.epochs,
            "final_loss": history.final_loss,
            "clean_acc": clean_acc,
            "epsilon": eps,
            "fgsm_acc": fgsm_acc,
            "pgd_acc": pgd_acc,
            "fgsm_gap": clean_acc - fgsm_acc,
            "pgd_gap": clean_acc - pgd_acc,
            "noise": task.noise,
            "depth": task.depth,
            "input_dim": task.input_dim,
        })
    return TaskResult(key=task.key, records=tuple(records), epochs=history.epochs,
                      final_loss=history.final_loss, clean_acc=clean_acc,
                      seconds=time.perf_counter() - start)
