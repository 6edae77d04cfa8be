"""The robustness-scaling study: configuration, tasks, execution, storage.

Data flow of one sweep: :class:`StudyConfig` -> :meth:`StudyConfig.tasks` -> an
:class:`Executor` (:mod:`robnp.study.executors`; each task :func:`run_task` in a
worker) -> :class:`TaskStore` (committed as each finishes) ->
:func:`robnp.report.build_results` -> :func:`robnp.report.write_report`
(results.json, figures). :func:`run_study` does all of it.
"""

from .config import StudyConfig, load_config_file
from .executors import Executor, LocalExecutor, default_jobs, run_tasks
from .runner import Progress, StudyOutcome, environment, rebuild_report, run_study
from .store import STORE_NAME, TaskStore
from .tasks import Task, TaskResult, run_task, task_data, train_task

__all__ = ["StudyConfig", "load_config_file", "Task", "TaskResult", "run_task", "task_data",
           "train_task", "Executor", "LocalExecutor", "run_tasks", "default_jobs",
           "TaskStore", "STORE_NAME", "run_study", "rebuild_report", "StudyOutcome",
           "Progress", "environment"]
