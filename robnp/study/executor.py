"""Running tasks: in this process, or in a pool of worker processes.

Workers are started with the ``spawn`` method (no inherited BLAS or Numba thread
state) and with every BLAS and Numba thread count set to 1 in their environment:
each worker occupies one core, and ``--jobs`` decides how many cores are used.
Results arrive as they finish; their order never affects their values, since each
task is a pure function of its content.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Iterable, Iterator

from ..errors import WorkerError
from .tasks import Task, TaskResult, run_task

__all__ = ["run_tasks", "default_jobs"]

_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                     "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def default_jobs() -> int:
    """The number of cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


@contextmanager
def _single_threaded_children():
    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update({name: "1" for name in _THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_tasks(tasks: Iterable[Task], jobs: int = 1) -> Iterator[tuple[Task, TaskResult]]:
    """Run ``tasks`` and yield ``(task, result)`` as each finishes.

    With ``jobs == 1`` tasks run here, one after another; otherwise in ``jobs``
    worker processes, the most expensive first so that the last task to finish
    is a cheap one. When a task fails, the tasks not yet started are cancelled,
    those already running are waited for and their results yielded, and only then
    is the first failure raised: a caller that stores each result as it arrives
    keeps every task that finished. Closing the generator early (or an exception
    such as KeyboardInterrupt) cancels the tasks not yet started.
    """
    tasks = sorted(tasks, key=lambda task: -task.cost())
    if jobs <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield task, run_task(task)
        return
    order = {task: position for position, task in enumerate(tasks)}
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(tasks)),
                               mp_context=multiprocessing.get_context("spawn"))
    failure = None
    try:
        # Workers are spawned as tasks are submitted: they inherit this environment.
        with _single_threaded_children():
            pending = {pool.submit(run_task, task): task for task in tasks}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            # Hand back finished tasks in submission order within one wake-up.
            for future in sorted(done, key=lambda f: order[pending[f]]):
                task = pending.pop(future)
                if future.cancelled():
                    continue
                error = future.exception()
                if error is None:
                    yield task, future.result()
                elif failure is None:
                    failure = (task, error)
                    for other in pending:
                        other.cancel()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if failure is not None:
        task, error = failure
        if isinstance(error, BrokenProcessPool):
            raise WorkerError(
                f"a worker process died while running {task.label} (out of memory, "
                f"killed, or unable to import the main script: a script read from "
                f"stdin cannot start workers); finished tasks are kept, rerun with "
                f"resume, or with jobs=1 to run in this process") from None
        raise error
