"""The study runner: a configuration in, results.json and figures out.

``run_study`` is what ``robnp sweep`` calls:

1. check the output directory and open its task store (``tasks.sqlite``);
2. expand the configuration into tasks and drop those already stored
   (``resume``);
3. run the rest (:mod:`robnp.study.executor`), committing each result to the
   store the moment it arrives;
4. from the stored results of every task, build the results document
   (:func:`robnp.report.build_results`) and write results.json and the figures
   atomically (:func:`robnp.report.write_report`).

An interruption at any point loses at most the tasks still running; rerunning
with ``resume=True`` finishes the study with the same numbers an uninterrupted
run gives.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .._version import __version__
from ..errors import ConfigError
from .config import StudyConfig
from .executor import default_jobs, run_tasks
from .store import TaskStore, check_writable
from .tasks import Task, TaskResult

__all__ = ["run_study", "StudyOutcome", "Progress", "environment"]


@dataclass(frozen=True)
class Progress:
    """Passed to the progress callback after every finished task."""

    task: Task
    result: TaskResult
    n_done: int
    n_total: int
    elapsed: float

    @property
    def eta(self) -> float:
        """Seconds left, extrapolated from the tasks finished in this run."""
        return self.elapsed / self.n_done * (self.n_total - self.n_done) if self.n_done else 0.0


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


def run_study(config: StudyConfig, out_dir, *, jobs: int | None = None, resume: bool = False,
              on_progress: Callable[[Progress], None] | None = None,
              on_start: Callable[[int, int], None] | None = None) -> StudyOutcome:
    """Run every task of ``config`` not yet stored in ``out_dir``, then write the report.

    Parameters
    ----------
    config : StudyConfig
    out_dir : path
        Receives ``tasks.sqlite``, ``results.json`` and the figures.
    jobs : int, optional
        Worker processes; default: every available core.
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
    from ..report import build_results, write_report

    if jobs is None:
        jobs = default_jobs()
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"jobs must be an integer >= 1, got {jobs!r}")
    out_dir = Path(out_dir)
    check_writable(out_dir)
    start = time.perf_counter()
    with TaskStore.open(out_dir, config, resume=resume) as store:
        tasks = config.tasks()
        done = store.done_keys()
        todo = [task for task in tasks if task.key not in done]
        if on_start is not None:
            on_start(len(todo), len(tasks) - len(todo))
        for n_done, (task, result) in enumerate(run_tasks(todo, jobs), start=1):
            store.put(result)
            if on_progress is not None:
                on_progress(Progress(task, result, n_done, len(todo),
                                     time.perf_counter() - start))
        stored = store.results()
    results = [stored[task.key] for task in tasks]
    records = [record for result in results for record in result.records]
    document = build_results(records, config.to_dict(), environment(),
                             tasks=[result.summary(task) for task, result in zip(tasks, results)])
    paths = write_report(document, out_dir)
    return StudyOutcome(document, paths, len(tasks), len(todo), len(tasks) - len(todo),
                        time.perf_counter() - start)
