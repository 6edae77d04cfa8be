"""The local executor: tasks run in this process, or in a pool of worker processes
on this machine.

Workers are started with the ``spawn`` method (no inherited BLAS or Numba thread
state) and with every BLAS and Numba thread count set to 1 in their environment:
each worker occupies one core, and ``--jobs`` decides how many cores are used.
Results arrive as they finish; their order never affects their values, since each
task is a pure function of its content.

A worker never outlives the process that started it. It ignores SIGINT and
SIGTERM (a terminal or a batch scheduler sends those to the whole process group;
the parent decides what happens), asks Linux to kill it when its parent dies
(``prctl(PR_SET_PDEATHSIG)``), and on every platform watches the pipe that
connects it to its parent and exits when that closes. When the parent stops
early (an exception, Ctrl-C, SIGTERM, the caller closing the generator) it kills
the workers instead of waiting for their tasks to finish.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Sequence

from ...errors import ConfigError, WorkerError
from ..tasks import Task, TaskResult
from .base import Executor, execute, submission_order

__all__ = ["LocalExecutor", "run_tasks", "default_jobs", "worker_count", "THREAD_VARIABLES"]

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                     "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
# How long to wait for killed workers to be reaped before giving up on them.
_KILL_GRACE_SECONDS = 1.0


def default_jobs() -> int:
    """The number of cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def worker_count(jobs: int, n_tasks: int) -> int:
    """Worker processes :func:`run_tasks` starts for ``n_tasks`` tasks; 0 means the
    tasks run in the calling process (one job, or at most one task)."""
    if jobs <= 1 or n_tasks <= 1:
        return 0
    return min(jobs, n_tasks)


@contextmanager
def _single_threaded_children():
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update({name: "1" for name in THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _die_with_parent_on_linux() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # no prctl: the watcher thread below still ends the worker


def _watch_parent(sentinel) -> None:
    # The sentinel is the read end of a pipe whose write end only the parent holds:
    # it becomes readable when the parent is gone, however it ended.
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


def _worker_init(parent_pid: int) -> None:
    """Run in each worker before its first task (see the module docstring)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent_on_linux()
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_watch_parent, args=(parent.sentinel,), daemon=True,
                         name="robnp-parent-watch").start()


def _start_quiet_resource_tracker() -> None:
    """Start multiprocessing's resource tracker, if it is not running, with its
    standard error on /dev/null.

    The pool's queues hold five named POSIX semaphores (the call queue's two locks and
    its bound, the result queue's two locks). With the ``spawn`` start method each
    must keep its name until every worker has opened it, so the parent registers it
    with the resource tracker, a helper process that unlinks whatever is still
    registered when the parent is gone. A parent killed by SIGKILL cannot unlink them
    itself; the tracker does, and then warns, on its inherited standard error (the
    sweep's log), that it cleaned up "leaked semaphore objects". The clean-up is right
    and nothing leaks; the warning is noise about it, so the tracker writes it to
    /dev/null. (The ``fork`` start method would unlink the names at once, but forks
    BLAS and Numba threads' state into the workers.)"""
    from multiprocessing import resource_tracker

    if sys.platform == "win32" or getattr(resource_tracker._resource_tracker, "_fd",
                                          None) is not None:
        return
    try:
        sys.stderr.flush()
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError, AttributeError):
        return
    try:
        os.dup2(devnull, 2)
        resource_tracker.ensure_running()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """End every worker of ``pool`` now, without waiting for its task."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        try:
            process.kill()
        except (OSError, ValueError, AttributeError):
            pass  # already gone
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        try:
            process.join(_KILL_GRACE_SECONDS)
        except (OSError, ValueError, AssertionError):
            pass


def run_tasks(tasks: Iterable[Task], jobs: int = 1) -> Iterator[tuple[Task, TaskResult]]:
    """Run ``tasks`` and yield ``(task, result)`` as each finishes.

    With ``jobs == 1`` (or a single task) tasks run here, one after another;
    otherwise in ``worker_count(jobs, len(tasks))`` worker processes, the most
    expensive first so that the last task to finish is a cheap one. When a task
    fails, the tasks not yet started are cancelled, those already running are
    waited for and their results yielded, and only then is the first failure
    raised: a caller that stores each result as it arrives keeps every task that
    finished. Closing the generator early, or an exception such as
    KeyboardInterrupt reaching it, kills the workers at once.
    """
    tasks = submission_order(tasks)
    workers = worker_count(jobs, len(tasks))
    if workers == 0:
        for task in tasks:
            yield task, execute(task)
        return
    order = {task: position for position, task in enumerate(tasks)}
    _start_quiet_resource_tracker()
    pool = ProcessPoolExecutor(max_workers=workers,
                               mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init, initargs=(os.getpid(),))
    failure = None
    finished = False
    try:
        # Workers are spawned as tasks are submitted: they inherit this environment.
        with _single_threaded_children():
            pending = {pool.submit(execute, task): task for task in tasks}
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
        finished = True
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:
            _kill_workers(pool)
    if failure is not None:
        task, error = failure
        if isinstance(error, BrokenProcessPool):
            raise WorkerError(
                f"a worker process died while running {task.label} (out of memory, "
                f"killed, or unable to import the main script: a script read from "
                f"stdin cannot start workers); finished tasks are kept, rerun with "
                f"resume, or with jobs=1 to run in this process") from None
        raise error


class LocalExecutor(Executor):
    """Tasks on this machine: in this process with ``jobs=1`` (or a single task),
    otherwise in ``worker_count(jobs, n_tasks)`` worker processes (see the module
    docstring and :func:`run_tasks`).

    Parameters
    ----------
    jobs : int >= 1, optional
        Worker processes at most; default: every core this process may use.
    """

    def __init__(self, jobs: int | None = None):
        if jobs is None:
            jobs = default_jobs()
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise ConfigError(f"jobs must be an integer >= 1, got {jobs!r}")
        self.jobs = jobs

    def n_workers(self, n_tasks: int) -> int:
        return worker_count(self.jobs, n_tasks)

    def run(self, tasks: Sequence[Task],
            on_result: Callable[[Task, TaskResult], None]) -> None:
        # Closing the generator (on_result raising, Ctrl-C) kills the workers at once.
        finished = run_tasks(tasks, self.jobs)
        try:
            for task, result in finished:
                on_result(task, result)
        finally:
            finished.close()
