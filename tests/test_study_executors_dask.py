"""The Dask executor on a local cluster of two worker processes: the same numbers as
the local pool, a worker killed mid-task, a task that kills every worker, the client
killed and resumed, a scheduler that does not answer, workers of another version,
and the extra missing."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest
from processes import descendants

from robnp.errors import ConfigError, WorkerError
from robnp.study import StudyConfig, run_study
from robnp.study.executors import DaskExecutor, LocalExecutor
from robnp.study.executors.dask import LOCAL_CLUSTER_CONFIG, check_workers

distributed = pytest.importorskip("distributed")

SMALL = dict(datasets=("moons",), widths=(4, 8, 16), seeds=(1,), epsilons=(0.1,),
             n_samples=300, max_epochs=30)
# Tasks long enough (a few seconds each) that a worker can be killed while it runs one.
LONG = dict(datasets=("moons",), widths=(4, 96, 128), seeds=(1,), epsilons=(0.1,),
            n_samples=400, max_epochs=1500, patience=None)


def deterministic(out_dir):
    """results.json without its wall times."""
    document = json.loads((out_dir / "results.json").read_text())
    return {key: value for key, value in document.items() if key != "tasks"}


def stored_count(out_dir):
    try:
        with sqlite3.connect(out_dir / "tasks.sqlite") as db:
            return db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.fixture(scope="module")
def local_small(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    run_study(StudyConfig(**SMALL), out, executor=LocalExecutor(1))
    return out


def test_a_study_on_dask_equals_the_local_pool_key_for_key(local_small, tmp_path):
    out = tmp_path / "dask"
    outcome = run_study(StudyConfig(**SMALL), out, executor=DaskExecutor(jobs=2))
    assert outcome.n_ran == 3
    assert deterministic(out) == deterministic(local_small)
    # Resumed under the other executor: nothing left to run, the same document.
    again = run_study(StudyConfig(**SMALL), out, executor=LocalExecutor(1), resume=True)
    assert again.n_ran == 0 and deterministic(out) == deterministic(local_small)


def test_a_worker_killed_mid_task_is_survived_with_the_same_numbers(tmp_path):
    """The worker process running a task is killed by its pid; the scheduler reruns
    the task on a worker the nanny restarts, and every number is the local pool's."""
    config = StudyConfig(**LONG)
    killed = []

    def kill_a_busy_worker(progress):
        if killed:
            return
        time.sleep(1.0)  # the two long tasks are running by now
        workers = [pid for pid in descendants(os.getpid())
                   if b"distributed" in open(f"/proc/{pid}/cmdline", "rb").read()
                   or b"spawn_main" in open(f"/proc/{pid}/cmdline", "rb").read()]
        # A worker process is a nanny's child; kill one of them, not a nanny.
        leaves = [pid for pid in workers if not descendants(pid)]
        assert leaves, workers
        os.kill(leaves[0], signal.SIGKILL)
        killed.append(leaves[0])

    out = tmp_path / "dask"
    run_study(config, out, executor=DaskExecutor(jobs=2), on_progress=kill_a_busy_worker)
    assert killed
    reference = tmp_path / "local"
    run_study(config, reference, executor=LocalExecutor(2))
    assert deterministic(out) == deterministic(reference)


KILLER = textwrap.dedent('''
    import os
    from robnp.data import register_dataset

    @register_dataset("killer")
    def killer(n_samples, noise, seed, input_dim=2):
        """Ends the process that draws it."""
        os._exit(3)
''')


def test_a_task_that_kills_every_worker_ends_the_study_naming_it(tmp_path):
    preload = tmp_path / "killer_dataset.py"
    preload.write_text(KILLER)
    sys.path.insert(0, str(tmp_path))
    try:
        import killer_dataset  # noqa: F401  (this process must know the name too)

        config = StudyConfig(**{**SMALL, "datasets": ("killer",), "widths": (4,)})
        executor = DaskExecutor(jobs=2, allowed_failures=1, preload=[str(preload)])
        with pytest.raises(WorkerError, match=r"killer seed=1 width=4"):
            run_study(config, tmp_path / "out", executor=executor)
    finally:
        sys.path.remove(str(tmp_path))
    assert stored_count(tmp_path / "out") == 0


CLIENT = textwrap.dedent('''
    import sys
    from robnp.study import StudyConfig, run_study
    from robnp.study.executors import DaskExecutor

    if __name__ == "__main__":
        config = StudyConfig(**{config!r})
        run_study(config, sys.argv[1], executor=DaskExecutor(jobs=2))
''')


def test_a_killed_client_loses_nothing_stored_and_resumes_to_the_same_numbers(tmp_path):
    config = dict(LONG, widths=(4, 5, 6, 96))
    script = tmp_path / "client.py"
    script.write_text(CLIENT.format(config=config))
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, str(script), str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None and stored_count(out) < 2:
        time.sleep(0.1)
    stored = stored_count(out)
    children = descendants(process.pid)
    process.send_signal(signal.SIGKILL)
    process.wait()
    for pid in children:  # the cluster it started (its workers end with it, or here)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert stored >= 2, "the client finished or stalled before it could be killed"
    assert not (out / "results.json").exists()
    resumed = run_study(StudyConfig(**config), out, executor=LocalExecutor(1), resume=True)
    assert resumed.n_reused >= 2
    reference = tmp_path / "local"
    run_study(StudyConfig(**config), reference, executor=LocalExecutor(2))
    assert deterministic(out) == deterministic(reference)


def test_a_scheduler_that_does_not_answer_is_one_error_within_the_timeout(tmp_path):
    start = time.time()
    with pytest.raises(ConfigError, match=r"no Dask scheduler answered at tcp://127.0.0.1:9 "
                                          r"within 2 s"):
        run_study(StudyConfig(**SMALL), tmp_path / "out",
                  executor=DaskExecutor(scheduler="tcp://127.0.0.1:9", timeout=2))
    assert time.time() - start < 30


class _Client:
    def __init__(self, versions):
        self.versions = versions

    def run(self, function):
        return self.versions


def test_workers_of_another_robnp_or_numpy_are_refused():
    import numpy

    import robnp

    mine = {"robnp": robnp.__version__, "numpy": numpy.__version__}
    assert check_workers(_Client({"tcp://a": mine, "tcp://b": mine})) == 2
    with pytest.raises(ConfigError, match=r"tcp://b has numpy 1\.0.*same robnp and NumPy"):
        check_workers(_Client({"tcp://a": mine, "tcp://b": {**mine, "numpy": "1.0"}}))
    with pytest.raises(ConfigError, match="no workers"):
        check_workers(_Client({}))


def test_options_are_checked_and_the_extra_is_named_when_missing(monkeypatch):
    with pytest.raises(ConfigError, match="jobs is for a local cluster"):
        DaskExecutor(scheduler="tcp://127.0.0.1:8786", jobs=2)
    with pytest.raises(ConfigError, match="allowed_failures"):
        DaskExecutor(allowed_failures=-1)
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'robnp\[dask\]'"):
        DaskExecutor()


def test_the_sweep_runs_on_dask_from_the_command_line(local_small, tmp_path):
    from click.testing import CliRunner

    from robnp_cli.main import cli

    args = ["sweep", "--datasets", "moons", "--widths", "4,8,16", "--seeds", "1",
            "--epsilons", "0.1", "--n-samples", "300", "--max-epochs", "30", "-q"]
    out = tmp_path / "cli"
    result = CliRunner().invoke(cli, [*args, "--executor", "dask", "--jobs", "2",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "on a local Dask cluster of 2 worker(s)" in result.output
    assert deterministic(out) == deterministic(local_small)
    for extra, needle in ((["--scheduler", "tcp://127.0.0.1:9"], "is for --executor dask"),
                          (["--executor", "dask", "--scheduler", "tcp://127.0.0.1:9",
                            "--jobs", "2"], "jobs is for a local cluster")):
        refused = CliRunner().invoke(cli, [*args, *extra, "--out", str(tmp_path / "x")])
        assert refused.exit_code == 2 and needle in refused.output, refused.output
        assert len(refused.output.strip().splitlines()) == 1


def test_a_scheduler_and_workers_started_by_hand_run_the_study(local_small, tmp_path):
    """`dask scheduler` and `dask worker` as separate processes on this machine, as
    docs/cluster.md starts them on a set of machines."""
    scheduler_file = tmp_path / "scheduler.json"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", "0", "--scheduler-file", str(scheduler_file), "--no-dashboard"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    workers = None
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not scheduler_file.exists():
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        workers = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "2",
             "--nthreads", "1", "--no-dashboard"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        out = tmp_path / "out"
        executor = DaskExecutor(scheduler=address)
        deadline = time.time() + 60
        while time.time() < deadline:  # the workers register with the scheduler
            client = distributed.Client(address, timeout=10, set_as_default=False)
            try:
                ready = len(client.scheduler_info()["workers"]) == 2
            finally:
                client.close()
            if ready:
                break
            time.sleep(0.5)
        run_study(StudyConfig(**SMALL), out, executor=executor)
        assert executor.n_workers(3) == 2
        assert deterministic(out) == deterministic(local_small)
    finally:
        for process in (workers, scheduler):
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _cluster_settings():
    import dask

    return {name: dask.config.get(name) for name in LOCAL_CLUSTER_CONFIG}


def test_the_local_cluster_runs_its_processes_quiet():
    """What serves only a dashboard (the workers' profiler, the resource monitors) or a
    placement the queue already makes (work stealing) is off in the scheduler and in
    every worker process of the local cluster, and the settings do not leak out."""
    before = _cluster_settings()
    client, cluster = DaskExecutor(jobs=2).connect()
    try:
        for found in client.run(_cluster_settings).values():
            for name, value in LOCAL_CLUSTER_CONFIG.items():
                assert found[name] == value, name
        assert client.run_on_scheduler(lambda dask_scheduler: "stealing"
                                       not in dask_scheduler.extensions)
        assert client.run(lambda dask_worker: "profile"
                          not in dask_worker.periodic_callbacks) == {
            address: True for address in client.scheduler_info()["workers"]}
    finally:
        client.close()
        cluster.close()
    assert _cluster_settings() == before
