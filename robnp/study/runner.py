"""The study runner: a configuration in, results.json and figures out.

``run_study`` is what ``robnp sweep`` calls:

1. refuse a task whose memory estimate exceeds the machine's (:mod:`robnp.limits`),
   then check the output directory and open its task store (``tasks.sqlite``);
2. expand the configuration into tasks and drop those already stored
   (``resume``);
3. hand the rest to an executor (:mod:`robnp.study.executors`; by default the
   local one, worker processes on this machine), committing each result to the
   store the moment the executor hands it back;
4. from the stored results of every task, build the results document
   (:func:`robnp.report.build_results`) and write results.json and the figures
   atomically (:func:`robnp.report.write_report`).

An interruption at any point loses at most the tasks still running (their
workers are killed); rerunning with ``resume=True`` finishes the study with the
same numbers an uninterrupted run gives. A store that cannot be written is a
:class:`~robnp.errors.StoreError` with every earlier task intact.
:func:`rebuild_report` writes the report of a finished study from its store alone.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .._version import __version__
from ..errors import ConfigError, StoreError
from ..limits import check_fits
from .config import StudyConfig
from .executors import Executor, LocalExecutor, submission_order
from .models import has_model, write_model
from .store import STORE_NAME, TaskStore, check_writable, read_store
from .tasks import Task, TaskResult

__all__ = ["run_study", "run_into_store", "choose_executor", "output_dir", "rebuild_report", "runs_rows", "check_memory", "check_attack_classes", "StudyOutcome", "Progress",
           "EtaEstimator", "environment"]


@dataclass(frozen=True)
class Progress:
    """Passed to the progress callback after every finished task.

    ``eta`` is the estimated seconds left (see :class:`EtaEstimator`).
    """

    task: Task
    result: TaskResult
    n_done: int
    n_total: int
    elapsed: float
    eta: float


class EtaEstimator:
    """Seconds left in a run, from the tasks' costs and the speed observed so far.

    Tasks differ in cost by orders of magnitude and the most expensive start first,
    so counting tasks (elapsed / done x left) overestimates the rest of a run many
    times. Instead each unfinished task is predicted to take its :meth:`Task.cost`
    times the seconds per unit of cost observed in the finished ones (measured in
    the worker, so contention between workers is included), and the run is replayed
    as the executor schedules it: tasks in submission order, each on the first of
    ``workers`` slots to fall free, finished tasks at their observed start and end.
    The ETA is when the last slot falls free, counted from now.

    Parameters
    ----------
    tasks : sequence of Task
        In the order they are submitted
        (:func:`~robnp.study.executors.submission_order`).
    workers : int
        Tasks running at once (the executor's :meth:`~robnp.study.executors.Executor.
        n_workers`; 0 or 1 in-process).
    start : float
        ``time.perf_counter()`` when the run began.
    """

    def __init__(self, tasks, workers: int, start: float):
        self._tasks = list(tasks)
        self._workers = max(1, workers)
        self._start = start
        self._finished: dict[Task, tuple[float, float]] = {}  # task -> (start, end)
        self._seconds = 0.0
        self._cost = 0.0

    def finished(self, task: Task, seconds: float, now: float) -> None:
        """Record that ``task`` ended at ``now`` after running ``seconds``."""
        self._finished[task] = (max(self._start, now - seconds), now)
        self._seconds += seconds
        self._cost += task.cost()

    def eta(self, now: float) -> float:
        """Estimated seconds from ``now`` until every task has finished."""
        if len(self._finished) == len(self._tasks):
            return 0.0
        seconds, cost = self._seconds, self._cost
        slots = [self._start] * self._workers
        last = now
        for task in self._tasks:
            slots.sort()
            free = slots.pop(0)
            if task in self._finished:
                end = self._finished[task][1]
            else:
                # A task whose slot fell free before now is running; it cannot end
                # before now, however fast its prediction.
                # seconds * cost / total cost: a task as costly as those done is
                # predicted to take exactly their seconds.
                end = max(free + (seconds * task.cost() / cost if cost > 0 else 0.0), now)
            slots.append(end)
            last = max(last, end)
        return last - now


@dataclass(frozen=True)
class StudyOutcome:
    """What :func:`run_study` did and wrote."""

    document: dict
    paths: dict
    n_tasks: int
    n_ran: int
    n_reused: int
    seconds: float


def environment() -> dict:
    """Versions and platform, for the ``environment`` block of results.json."""
    import numba
    import numpy
    import scipy

    return {"python": platform.python_version(), "numpy": numpy.__version__,
            "numba": numba.__version__, "scipy": scipy.__version__,
            "platform": platform.platform(), "robnp": __version__}


def run_study(config: StudyConfig, out_dir, *, jobs: int | None = None,
              executor: Executor | None = None, resume: bool = False,
              on_progress: Callable[[Progress], None] | None = None,
              on_start: Callable[[int, int], None] | None = None) -> StudyOutcome:
    """Run every task of ``config`` not yet stored in ``out_dir``, then write the report.

    Parameters
    ----------
    config : StudyConfig
    out_dir : path
        Receives ``tasks.sqlite``, ``results.json`` and the figures.
    jobs : int, optional
        Worker processes of the default executor
        (:class:`~robnp.study.executors.LocalExecutor`); default: every available
        core. Not with ``executor``.
    executor : Executor, optional
        Where the tasks run (:mod:`robnp.study.executors`); default: this machine,
        ``jobs`` worker processes.
    resume : bool
        Continue a study already stored in ``out_dir`` (same configuration only).
    on_progress : callable, optional
        Called with a :class:`Progress` after each finished task.
    on_start : callable, optional
        Called with ``(tasks to run, tasks already stored)`` before running.

    Returns
    -------
    StudyOutcome
    """
    executor = choose_executor(jobs, executor)
    out_dir = output_dir(out_dir)
    tasks = config.tasks()
    # Here, before any file is written or worker started: the same refusal for any jobs.
    check_memory(tasks)
    check_attack_classes(tasks)
    check_writable(out_dir)
    start = time.perf_counter()
    with TaskStore.open(out_dir, config, resume=resume) as store:
        # A stored task counts as done only with its model beside the store (see
        # robnp.study.models): a store written before models were kept, or a model
        # deleted since, reruns the task, which gives the same numbers.
        stored_keys = store.done_keys()
        done = {task.key for task in tasks
                if task.key in stored_keys and has_model(out_dir, task)}
        n_ran = run_into_store(store, tasks, executor, done=done, start=start,
                               before_commit=lambda task, result: write_model(out_dir, task,
                                                                              result),
                               on_progress=on_progress, on_start=on_start)
        results = store.results()
    document, paths = _write_study(config, results, out_dir)
    return StudyOutcome(document, paths, len(tasks), n_ran, len(tasks) - n_ran,
                        time.perf_counter() - start)


def choose_executor(jobs: int | None, executor: Executor | None) -> Executor:
    """``executor``, or the local one with ``jobs`` workers; both given is a
    ConfigError."""
    if executor is None:
        return LocalExecutor(jobs)
    if jobs is not None:
        raise ConfigError(f"give jobs or an executor, not both; got jobs={jobs!r} and "
                          f"{type(executor).__name__}")
    return executor


def output_dir(out_dir) -> Path:
    """``out_dir`` as a Path; an empty one is a ConfigError."""
    if str(out_dir) == "":
        raise ConfigError("out_dir must name a directory, got an empty path")
    return Path(out_dir)


def run_into_store(store: TaskStore, tasks, executor: Executor, *, done=frozenset(),
                   start: float | None = None, before_commit=None,
                   on_progress: Callable[[Progress], None] | None = None,
                   on_start: Callable[[int, int], None] | None = None) -> int:
    """Run the ``tasks`` whose keys are not in ``done`` on ``executor``, committing
    each result to ``store`` as it is handed back: the part of a study every kind of
    study shares (the sweep, :func:`run_study`; the scaling study,
    :func:`robnp.scaling.study.run_scaling_study`). ``before_commit(task, result)``
    runs before each commit (the sweep writes the model there, so that a stored task
    has its model). Returns the number of tasks run."""
    todo = [task for task in tasks if task.key not in done]
    if on_start is not None:
        on_start(len(todo), len(tasks) - len(todo))
    start = time.perf_counter() if start is None else start
    estimator = EtaEstimator(submission_order(todo), executor.n_workers(len(todo)),
                             time.perf_counter())
    n_done = 0

    def stored(task, result) -> None:
        nonlocal n_done
        if before_commit is not None:
            before_commit(task, result)
        store.put(result)
        n_done += 1
        now = time.perf_counter()
        estimator.finished(task, result.seconds, now)
        if on_progress is not None:
            on_progress(Progress(task, result, n_done, len(todo), now - start,
                                 estimator.eta(now)))

    executor.run(todo, stored)
    return len(todo)


def check_attack_classes(tasks) -> None:
    """Refuse (:class:`~robnp.errors.ConfigError`, naming the task) an attack that
    cannot attack a task's model (DLR needs 3 classes or more), before the store is
    opened or a model trained; the worker would find it only after training."""
    for task in tasks:
        for name, options in task.attacks:
            try:
                options.check_classes(task.n_classes)
            except ConfigError as exc:
                raise ConfigError(f"attack {name} on {task.dataset}: {exc}") from None


def check_memory(tasks, kind: str = "task") -> None:
    """Refuse (:class:`~robnp.errors.ConfigError`, naming the ``kind`` and label of the
    task) a study whose largest task cannot fit in the memory this machine has
    available (see :mod:`robnp.limits`)."""
    for task in tasks:
        check_fits(task.memory(), f"{kind} {task.label}")


def _write_study(config: StudyConfig, stored: dict[str, TaskResult], out_dir: Path):
    """Build the results document from every task's stored result and write it."""
    from ..report import build_results, write_report

    tasks = config.tasks()
    results = [stored[task.key] for task in tasks]
    records = [record for result in results for record in result.records]
    document = build_results(records, config.to_dict(), environment(),
                             tasks=[result.summary(task) for task, result in zip(tasks, results)])
    return document, write_report(document, out_dir)


def rebuild_report(out_dir) -> tuple[dict, dict]:
    """Write results.json and the figures of ``out_dir`` from its task store alone
    (the store knows its configuration), without training.

    Returns
    -------
    (document, paths)
        As :func:`run_study` writes them.

    Raises
    ------
    StoreError
        If ``out_dir`` holds no store, a damaged one, or one missing some tasks of
        its configuration (then ``robnp sweep --resume`` finishes it).
    """
    out_dir = Path(out_dir)
    found = read_store(out_dir)
    if found is None:
        raise StoreError(f"no {STORE_NAME} with finished tasks in {out_dir}: nothing to "
                         f"report yet")
    config, stored = found
    missing = [task for task in config.tasks() if task.key not in stored]
    if missing:
        raise StoreError(
            f"{out_dir / STORE_NAME} holds {len(stored)} of the study's "
            f"{len(config.tasks())} tasks (missing {missing[0].label}"
            f"{' and others' if len(missing) > 1 else ''}); finish it with "
            f"robnp sweep --out {out_dir} --resume")
    return _write_study(config, stored, out_dir)


def runs_rows(out_dir, *, eps: float | None = None, dataset: str | None = None,
              attack: str = "pgd") -> list[dict]:
    """The rows of the runs table (:mod:`robnp.report.runs`) of the study stored in
    ``out_dir``: one per trained model of ``dataset`` (required when the study has
    several), its adversarial test loss and robust accuracy under ``attack`` at
    ``eps`` (required when the study has several radii).

    Raises
    ------
    StoreError
        When ``out_dir`` holds no finished task, or tasks stored by a robnp that did
        not keep the adversarial loss.
    ConfigError
        For an eps, dataset or attack the study does not have.
    """
    found = read_store(out_dir)
    if found is None:
        raise StoreError(f"no {STORE_NAME} with finished tasks in {out_dir}: the runs table "
                         f"is read from a sweep's store")
    config, stored = found

    def choose(name, value, choices, flag):
        shown = ", ".join(format(c, "g") if isinstance(c, float) else str(c) for c in choices)
        if value is None:
            if len(choices) == 1:
                return choices[0]
            raise ConfigError(f"{flag} needed: the study in {out_dir} has several {name} "
                              f"({shown}); the runs table takes one")
        if value not in choices:
            raise ConfigError(f"{flag} must be one of the study's {name} ({shown}), "
                              f"got {value!r}")
        return value

    eps = choose("radii", None if eps is None else float(eps), list(config.epsilons), "--eps")
    dataset = choose("datasets", dataset, list(config.datasets), "--dataset")
    attack = choose("attacks", attack, list(config.attack_names), "--attack")
    k = list(config.epsilons).index(eps)
    rows = []
    for task in config.tasks():
        if task.dataset != dataset:
            continue
        if task.key not in stored:
            raise StoreError(f"{out_dir / STORE_NAME} lacks task {task.label}; finish the "
                             f"study with robnp sweep --out {out_dir} --resume")
        result = stored[task.key]
        if result.trained is None:
            raise StoreError(f"{out_dir / STORE_NAME} was written by a robnp that did not "
                             f"keep the adversarial test loss (task {task.label}); rerun "
                             f"the study into another --out directory")
        history = result.trained["record"]["history"]
        accuracy = next(r["robust_acc"] for r in result.evaluations
                        if r.get("attack") == attack and r.get("epsilon") == eps)
        rows.append({"N": result.model["param_count"], "D": history["examples"],
                     "loss": result.trained["adversarial_loss"][attack][k],
                     "accuracy": accuracy, "flops": history["train_flops"],
                     "dataset": task.dataset, "seed": task.seed, "width": task.width,
                     "epsilon": eps, "attack": attack})
    return rows
