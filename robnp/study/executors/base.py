"""What the study runner asks of an executor, and the order every executor starts
tasks in.

An executor runs a study's tasks somewhere (this process, a pool of worker
processes, a cluster) and hands each result back to the runner as it finishes. The
runner (:func:`robnp.study.run_study`) knows nothing else about it: it stores each
result through the callback, and its ETA asks the executor how many tasks run at
once. A new executor is one module here holding a subclass of :class:`Executor`;
``docs/architecture.md`` ("The executor seam") lists what it must do.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, Iterable, Sequence

from ..tasks import Task, TaskResult

__all__ = ["Executor", "submission_order", "execute"]


def execute(task):
    """Run one task where an executor placed it: ``task.run()``. A study's
    :class:`~robnp.study.tasks.Task` runs :func:`~robnp.study.tasks.run_task`; the
    scaling study's tasks (:mod:`robnp.scaling.study`) train and evaluate one run.
    Every task an executor takes has ``key``, ``label``, ``cost()``, ``memory()`` and
    ``run()``, and is a pure function of its content."""
    return task.run()


def submission_order(tasks: Iterable[Task]) -> list[Task]:
    """The order an executor starts tasks in: most expensive first (ties in the given
    order), so that the last task to finish is a cheap one."""
    return sorted(tasks, key=lambda task: -task.cost())


class Executor(ABC):
    """Runs tasks and hands back each result as it finishes.

    The contract, which the runner relies on (a result stored is never lost, and an
    interrupted study resumes to the same numbers):

    * :meth:`run` starts the tasks in :func:`submission_order` and calls
      ``on_result(task, result)`` once per finished task, in the calling thread (so
      the callback may write to the store without locks), as soon as it can after
      the task finishes. The order of results never changes their values: each task
      is a pure function of its content (:func:`robnp.study.tasks.run_task`).
    * When a task raises, the tasks not yet started are cancelled, those already
      running are waited for and their results handed to ``on_result``, and then the
      first error is raised (as the task raised it; a worker that died without an
      error becomes a :class:`~robnp.errors.WorkerError` naming the task).
    * When ``on_result`` raises, or an exception such as ``KeyboardInterrupt``
      reaches :meth:`run`, the running tasks are stopped at once (worker processes
      killed, not waited for), nothing more is handed back, and the exception
      propagates.
    * Nothing outlives :meth:`run`: when it returns or raises, no worker of it is
      left running.
    """

    @abstractmethod
    def n_workers(self, n_tasks: int) -> int:
        """Tasks that run at once when :meth:`run` is given ``n_tasks`` tasks; 0 when
        they run one after another in the calling process."""

    @abstractmethod
    def run(self, tasks: Sequence[Task],
            on_result: Callable[[Task, TaskResult], None]) -> None:
        """Run ``tasks``, calling ``on_result(task, result)`` as each finishes (see the
        class docstring for failures and interruptions)."""
