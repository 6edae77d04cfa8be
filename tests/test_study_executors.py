"""The executor seam: the study runner runs tasks through any Executor, and the
local one is the default."""

import pytest

from robnp.errors import ConfigError
from robnp.study import Executor, LocalExecutor, StudyConfig, run_study, run_task
from robnp.study.executors import submission_order

CONFIG = StudyConfig(datasets=("moons",), widths=(2, 3, 4), seeds=(1,), epsilons=(0.1,),
                     n_samples=100, max_epochs=2)


class BackwardsInProcess(Executor):
    """An executor of its own: runs the tasks here, hands them back last first."""

    def __init__(self):
        self.given = []

    def n_workers(self, n_tasks):
        return 2

    def run(self, tasks, on_result):
        self.given.append(list(tasks))
        for task in reversed(submission_order(tasks)):
            on_result(task, run_task(task))


def without_times(value):
    if isinstance(value, dict):
        return {k: without_times(v) for k, v in value.items() if "seconds" not in k}
    if isinstance(value, list):
        return [without_times(v) for v in value]
    return value


def test_a_study_runs_through_any_executor_to_the_same_results(tmp_path, monkeypatch):
    monkeypatch.setattr("robnp.report.write_report", lambda document, out_dir: {})
    executor = BackwardsInProcess()
    progress = []
    outcome = run_study(CONFIG, tmp_path / "own", executor=executor,
                        on_progress=progress.append)
    local = run_study(CONFIG, tmp_path / "local", jobs=1)
    assert without_times(outcome.document) == without_times(local.document)
    assert len(executor.given) == 1 and len(executor.given[0]) == 3
    assert [p.n_done for p in progress] == [1, 2, 3] and progress[-1].eta == 0.0


def test_jobs_belong_to_the_default_executor():
    with pytest.raises(ConfigError, match="give jobs or an executor, not both"):
        run_study(CONFIG, "never", jobs=2, executor=BackwardsInProcess())
    with pytest.raises(ConfigError, match="jobs must be an integer >= 1, got 0"):
        LocalExecutor(0)


def test_the_local_executor_says_how_many_tasks_run_at_once():
    assert LocalExecutor(1).n_workers(5) == 0  # in this process
    assert LocalExecutor(4).n_workers(1) == 0
    assert LocalExecutor(4).n_workers(2) == 2
    assert LocalExecutor(2).n_workers(9) == 2
