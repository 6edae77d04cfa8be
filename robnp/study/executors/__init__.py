"""Executors: where a study's tasks run.

:class:`~robnp.study.executors.base.Executor` is the interface the study runner
calls; :class:`~robnp.study.executors.local.LocalExecutor` runs tasks in this
process or in a pool of worker processes on this machine (the default);
:class:`~robnp.study.executors.dask.DaskExecutor` on a Dask cluster (the ``dask``
extra).
"""

from .base import Executor, submission_order
from .dask import DaskExecutor
from .local import LocalExecutor, default_jobs, run_tasks, worker_count

__all__ = ["Executor", "LocalExecutor", "DaskExecutor", "submission_order", "default_jobs", "run_tasks",
           "worker_count"]
