"""The Dask executor: a study's tasks on a ``dask.distributed`` cluster.

Without a scheduler address it starts a ``LocalCluster`` on this machine (worker
processes with one thread each, as many as ``jobs``); with one it connects to a
running scheduler (``dask scheduler`` and ``dask worker`` by hand, dask-jobqueue's
``SLURMCluster``, Kubernetes; see ``docs/cluster.md``). The store stays with the
client: the runner commits each result as its future completes, so a killed client
loses nothing already stored and ``--resume`` continues, under this executor or
another, to the same numbers.

What it adds to the executor contract (:class:`~robnp.study.executors.Executor`):

* Tasks are submitted under their content key (``robnp-<Task.key>``, ``pure``): a task
  already computed or running on the cluster is never computed twice.
* A worker killed mid-task is survived: the scheduler reruns its task elsewhere, up
  to ``allowed_failures`` times (the scheduler's ``allowed-failures``, set for a
  local cluster; a running scheduler keeps its own). A task that kills every worker
  it lands on ends the study with a :class:`~robnp.errors.WorkerError` naming it.
  An error raised inside a task is never retried: it is the task's result.
* Before anything is submitted, every worker must import the same robnp and NumPy
  versions as the client (:func:`check_workers`); otherwise one line says which.
* Numba's cache: kernels compiled at once by several processes into one cache
  directory can crash (numba issue 4807). The cheapest task runs first, alone, so
  that it fills the cache the workers of this machine share; the others follow at
  once. Workers on other machines compile their own; give each a cache directory of
  its own there (``NUMBA_CACHE_DIR``, see ``docs/cluster.md``).
* Every BLAS and Numba thread count is 1 in the local cluster's workers, as in the
  local pool, and :func:`robnp.threads.blas_threads` is safe when a worker runs
  several tasks in threads.
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

from ...errors import ConfigError, WorkerError
from ..tasks import Task, TaskResult
from .base import Executor, execute, submission_order
from .local import THREAD_VARIABLES, default_jobs

__all__ = ["DaskExecutor", "check_workers", "worker_versions"]

#: Seconds to wait for a scheduler to answer before giving up on its address.
CONNECT_TIMEOUT = 10.0

#: Dask settings of the local cluster (its scheduler, nannies and workers take them
#: when it starts). On a machine whose every core runs a task, whatever else the
#: cluster's processes do is taken from the tasks; these switch off what serves only
#: a dashboard the local cluster does not have, or a placement the queue already makes
#: (``benchmarks/bench_dask.py``: on the default sweep with 2 workers they took the
#: overhead over the local pool from +8 to +10% down to about +3%).
LOCAL_CLUSTER_CONFIG = {
    # a task leaves the scheduler only for a free worker thread, so tasks start in
    # submission order (most expensive first), as in the local pool, instead of a
    # second one queueing on each worker
    "distributed.scheduler.worker-saturation": 1.0,
    # then no worker holds work another could steal: no stealing rounds
    "distributed.scheduler.work-stealing": False,
    # each worker's statistical profiler takes the GIL every 10 ms to sample the
    # running task's stack, for the dashboard
    "distributed.worker.profile.enabled": False,
    # every process's resource monitor (500 ms) and event-loop tick (20 ms), also for
    # the dashboard and its warnings
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.admin.system-monitor.gil.enabled": False,
    "distributed.admin.tick.interval": "500ms",
}


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ConfigError("the Dask executor needs the 'dask' extra: "
                          "pip install 'robnp[dask]'") from None
    return distributed


def worker_versions() -> dict:
    """The versions a task depends on, as this process imports them (run on each
    worker by :func:`check_workers`)."""
    import numpy

    from ..._version import __version__

    return {"robnp": __version__, "numpy": numpy.__version__}


def check_workers(client) -> int:
    """Refuse workers that cannot give this client's numbers: without robnp, or
    with another robnp or NumPy version. Returns the number of workers."""
    mine = worker_versions()
    try:
        found = client.run(worker_versions)
    except Exception as exc:  # a worker without robnp fails to unpickle the call
        raise ConfigError(f"a Dask worker cannot run robnp ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else 'no message'}); "
                          f"install robnp {mine['robnp']} on every worker") from None
    if not found:
        raise ConfigError("the Dask cluster has no workers")
    for address, versions in sorted(found.items()):
        for name, version in mine.items():
            if versions.get(name) != version:
                raise ConfigError(f"Dask worker {address} has {name} {versions.get(name)}, "
                                  f"this client {version}: every worker needs the same "
                                  f"robnp and NumPy")
    return len(found)


class DaskExecutor(Executor):
    """Tasks on a Dask cluster (see the module docstring).

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``). None: a ``LocalCluster``
        of ``jobs`` worker processes on this machine, started by :meth:`run` and
        closed when it returns.
    jobs : int >= 1, optional
        Workers of the local cluster; default every core this process may use. Not
        with ``scheduler`` (the cluster has the workers it has).
    allowed_failures : int >= 0
        How many times a task may lose its worker before the study ends (the local
        cluster's scheduler setting).
    timeout : float > 0
        Seconds to wait for the scheduler to answer.
    preload : sequence of str
        Modules (names or ``.py`` paths) every worker of the local cluster imports when
        it starts: where a dataset of your own is registered, say. Workers of a
        running scheduler take theirs from ``dask worker --preload``.
    """

    def __init__(self, scheduler: str | None = None, jobs: int | None = None,
                 allowed_failures: int = 3, timeout: float = CONNECT_TIMEOUT,
                 preload: Sequence[str] = ()):
        from ... import _checks

        _distributed()  # the extra is there, or one line saying so
        if scheduler is not None:
            if not isinstance(scheduler, str) or not scheduler.strip():
                raise ConfigError(f"scheduler must be an address such as "
                                  f"tcp://host:8786, got {scheduler!r}")
            if jobs is not None:
                raise ConfigError("jobs is for a local cluster; a scheduler's cluster has "
                                  "the workers it has")
        self.scheduler = scheduler
        self.jobs = default_jobs() if jobs is None else _checks.integer("jobs", jobs, 1)
        self.allowed_failures = _checks.integer("allowed_failures", allowed_failures, 0)
        self.timeout = _checks.real("timeout", timeout, 0, low_open=True)
        self.preload = tuple(str(module) for module in preload)
        if self.preload and scheduler is not None:
            raise ConfigError("preload is for a local cluster; start a scheduler's workers "
                              "with dask worker --preload")
        self._workers = None if scheduler is not None else self.jobs
        self._memory = None

    # -- connection ---------------------------------------------------------------------
    def _connect(self):
        """A client, and the local cluster it owns (None with a scheduler)."""
        distributed = _distributed()
        import dask

        if self.scheduler is None:
            env = {name: "1" for name in THREAD_VARIABLES}
            with dask.config.set({"distributed.scheduler.allowed-failures":
                                  self.allowed_failures, **LOCAL_CLUSTER_CONFIG}):
                cluster = distributed.LocalCluster(
                    n_workers=self.jobs, threads_per_worker=1, processes=True,
                    dashboard_address=None, silence_logs=logging.ERROR, env=env,
                    preload=list(self.preload))
            return distributed.Client(cluster, set_as_default=False), cluster
        try:
            client = distributed.Client(self.scheduler, timeout=self.timeout,
                                        set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError(f"no Dask scheduler answered at {self.scheduler} within "
                              f"{self.timeout:g} s ({type(exc).__name__})") from None
        return client, None

    def connect(self):
        """Connect, check the workers (:func:`check_workers`) and learn their count and
        memory limit; returns ``(client, cluster)``, the cluster None unless local."""
        client, cluster = self._connect()
        try:
            self._workers = check_workers(client)
            limits = [info.get("memory_limit") or 0 for info in
                      client.scheduler_info()["workers"].values()]
            self._memory = min(limits) if limits and min(limits) > 0 else None
        except BaseException:
            client.close()
            if cluster is not None:
                cluster.close()
            raise
        return client, cluster

    def n_workers(self, n_tasks: int) -> int:
        """Tasks that run at once: the workers (``jobs`` for a local cluster; a
        scheduler's count once connected, else ``jobs`` as a guess)."""
        workers = self._workers if self._workers is not None else self.jobs
        return max(1, min(workers, n_tasks)) if n_tasks else 0

    def memory_limit(self) -> int | None:
        """Bytes one worker may use (the smallest limit of the cluster's workers), once
        :meth:`connect` has run; None when unknown or unlimited."""
        return self._memory

    # -- running ------------------------------------------------------------------------
    def run(self, tasks: Sequence[Task],
            on_result: Callable[[Task, TaskResult], None]) -> None:
        if not tasks:
            return
        from ...limits import check_fits

        distributed = _distributed()
        client, cluster = self.connect()
        try:
            # Before anything is submitted: each task against one worker's memory.
            if self._memory is not None:
                for task in tasks:
                    check_fits(task.memory(), f"task {task.label}", self._memory,
                               where="a Dask worker")
            self._run(distributed, client, list(tasks), on_result)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()

    def _run(self, distributed, client, tasks, on_result) -> None:
        ordered = submission_order(tasks)
        # The cheapest task first and alone: it fills the shared Numba cache.
        first, rest = ordered[-1], ordered[:-1]
        futures = {}

        def submit(task):
            future = client.submit(execute, task, key=f"robnp-{task.key}", pure=True,
                                   retries=0)
            futures[future] = task
            return future

        warm = submit(first)
        self._hand_back(distributed, client, futures, [warm], on_result)
        pending = [submit(task) for task in rest]
        self._hand_back(distributed, client, futures, pending, on_result)

    def _hand_back(self, distributed, client, futures, pending, on_result) -> None:
        """Call ``on_result`` as each of ``pending`` completes; on the first failure
        cancel what has not started, hand back what was running, then raise it."""
        failure = None
        stream = distributed.as_completed(pending, loop=client.loop)
        try:
            for future in stream:
                task = futures[future]
                if future.status == "cancelled":
                    continue
                if future.status == "error":
                    if failure is None:
                        failure = (task, future.exception())
                        running = _running_keys(client)
                        for other in pending:
                            if other.key not in running and not other.done():
                                other.cancel()
                    continue
                on_result(task, future.result())
        except BaseException:
            client.cancel(list(pending), force=True)
            raise
        if failure is not None:
            task, error = failure
            if isinstance(error, distributed.KilledWorker):
                raise WorkerError(
                    f"task {task.label} ended {self.allowed_failures + 1} Dask worker(s) "
                    f"it ran on (out of memory, or killed); finished tasks are stored, "
                    f"rerun with resume") from None
            raise error


def _running_keys(client) -> set:
    """Keys of the tasks the cluster's workers are running now."""
    try:
        return {key for keys in client.processing().values() for key in keys}
    except Exception:  # a scheduler that cannot say: let everything finish
        return set()

