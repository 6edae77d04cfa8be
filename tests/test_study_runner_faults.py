"""The sweep under faults: a killed parent takes its workers with it, SIGTERM and
Ctrl-C stop promptly with the finished tasks stored, a failing write is one line
that names the path and the cause, and progress says what really runs."""

import errno
import os
import pty
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from processes import alive, descendants
from click.testing import CliRunner

import robnp.study
from robnp.study import STORE_NAME, StudyConfig, TaskStore
from robnp.study.executors import submission_order
from robnp.study.runner import EtaEstimator
from robnp_cli.main import cli

TINY = ["--datasets", "moons", "--widths", "4,5,6", "--seeds", "0", "--epsilons", "0.1",
        "--n-samples", "100", "--max-epochs", "5"]
# Two quick tasks and one that trains for about a minute: with two workers the quick
# ones finish (and are stored) while the long one is still running.
LONG = ["--datasets", "moons", "--widths", "4,8,512", "--seeds", "0", "--epsilons", "0.1",
        "--n-samples", "400", "--max-epochs", "5000", "--patience", "5000"]
# A stop that kills the workers takes well under a second on a quiet machine (README);
# waiting for the running width-512 task instead would take about a minute. The limit
# separates the two with room for a loaded machine (one core, other work beside it).
STOP_LIMIT = 15.0
needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def count_tasks(out):
    try:
        with sqlite3.connect(out / STORE_NAME) as db:
            return db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
    except sqlite3.Error:
        return 0


def start_long_sweep(out, **popen):
    args = [sys.executable, "-m", "robnp_cli.main", "sweep", *LONG, "--out", str(out),
            "--jobs", "2"]
    # Ctrl-C's default action in the sweep, whatever this process inherited (a shell
    # starts background jobs with SIGINT ignored, and children keep that).
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            **popen)


def wait_until_busy(process, out, timeout=90):
    """Wait until a task is stored and both workers are running; their pids."""
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        workers = [pid for pid in descendants(process.pid)
                   if b"spawn_main" in open(f"/proc/{pid}/cmdline", "rb").read()]
        if len(workers) >= 2 and count_tasks(out) >= 1:
            return descendants(process.pid)
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"the sweep did not get busy: {process.communicate()}")


def wait_gone(pids, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


def reap(pids):
    for pid in pids:  # only processes this test started
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@needs_proc
def test_killing_the_parent_ends_every_worker_and_the_resource_tracker(tmp_path):
    process = start_long_sweep(tmp_path / "out")
    children = wait_until_busy(process, tmp_path / "out")
    assert len(children) >= 2
    try:
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert wait_gone(children, 5) == []
        _, err = process.communicate(timeout=30)
    finally:
        reap(children)
    assert count_tasks(tmp_path / "out") >= 1
    # The resource tracker removes the pool's semaphores without a word in the log.
    assert b"leaked" not in err and b"resource_tracker" not in err, err


@needs_proc
@pytest.mark.parametrize("sig,to_group,code,word", [
    (signal.SIGINT, True, 130, "Interrupted"),   # Ctrl-C: the terminal signals the group
    (signal.SIGTERM, False, 143, "Terminated"),  # kill PID, or a scheduler's notice
], ids=["ctrl-c", "sigterm"])
def test_a_signal_stops_promptly_keeps_finished_tasks_and_says_how_to_resume(
        tmp_path, sig, to_group, code, word):
    out = tmp_path / "out"
    process = start_long_sweep(out, start_new_session=True)
    children = wait_until_busy(process, out)
    stored = count_tasks(out)
    try:
        start = time.time()
        if to_group:
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)
        try:
            _, stderr = process.communicate(timeout=STOP_LIMIT * 8)
        finally:
            process.kill()  # no-op once it has exited
        took = time.time() - start
        left = wait_gone(children, 2)
    finally:
        reap(children)
    assert process.returncode == code, stderr
    assert took < STOP_LIMIT, f"took {took:.1f} s to stop"
    assert left == []
    lines = stderr.decode().strip().splitlines()
    assert lines[-1].startswith(f"{word}. Finished tasks are stored in {out}")
    assert f"robnp sweep --out {out} --resume" in lines[-1]
    assert "Traceback" not in stderr.decode()
    assert count_tasks(out) >= stored >= 1


# -- I/O failures ---------------------------------------------------------------------

class _FailingCommits:
    """A connection whose commits fail, as on a full or failing disk, after ``allowed``
    stored tasks."""

    def __init__(self, real, allowed, error):
        self._real, self._allowed, self._error = real, allowed, error
        self._storing = False

    def execute(self, sql, *args):
        self._storing = self._storing or sql.startswith("INSERT OR REPLACE INTO tasks")
        return self._real.execute(sql, *args)

    def __enter__(self):
        return self._real.__enter__()

    def __exit__(self, kind, value, traceback):
        if kind is None and self._storing:
            self._storing = False
            if self._allowed == 0:
                self._real.rollback()
                raise self._error
            self._allowed -= 1
        return self._real.__exit__(kind, value, traceback)

    def __getattr__(self, name):
        return getattr(self._real, name)


def error_line(result):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    assert errors == lines[-1:], lines
    return lines[-1]


@pytest.mark.parametrize("error,cause", [
    (sqlite3.OperationalError("disk I/O error"), "disk I/O error"),
    (sqlite3.OperationalError("database or disk is full"), "database or disk is full"),
], ids=["disk I/O error", "disk full"])
def test_a_store_that_fails_mid_run_is_one_line_and_resumable(tmp_path, monkeypatch, error,
                                                              cause, no_figures):
    out = tmp_path / "out"
    connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect",
                        lambda *a, **k: _FailingCommits(connect(*a, **k), 1, error))
    line = error_line(run("sweep", *TINY, "--jobs", "1", "--quiet", "--out", out))
    monkeypatch.setattr(sqlite3, "connect", connect)
    assert f"cannot write results store {out / STORE_NAME}: {cause}" in line
    assert "--resume" in line
    assert count_tasks(out) == 1 and not (out / "results.json").exists()
    result = run("sweep", *TINY, "--jobs", "1", "--quiet", "--out", out, "--resume")
    assert result.exit_code == 0, result.output
    assert "Ran 2 task(s), reused 1" in result.output


def test_an_output_directory_removed_mid_run_is_one_line(tmp_path, monkeypatch, no_figures):
    out = tmp_path / "out"
    put = TaskStore.put

    def remove_then_put(store, result):
        shutil.rmtree(out)  # the real thing: the directory vanishes under the store
        return put(store, result)

    monkeypatch.setattr(TaskStore, "put", remove_then_put)
    line = error_line(run("sweep", *TINY, "--jobs", "1", "--quiet", "--out", out))
    assert str(out / STORE_NAME) in line and "cannot write results store" in line


@pytest.mark.parametrize("target,errno_", [
    ("results.json", errno.ENOSPC), ("clean_vs_robust.png", errno.EROFS),
    ("param_scaling.png", errno.EACCES),
])
def test_a_report_file_that_cannot_be_written_is_one_line_and_resumable(tmp_path, monkeypatch,
                                                                        target, errno_):
    import robnp._io

    out = tmp_path / "out"
    replace = os.replace

    def failing_replace(source, destination):
        if os.path.basename(destination) == target:
            raise OSError(errno_, os.strerror(errno_))
        return replace(source, destination)

    monkeypatch.setattr(robnp._io.os, "replace", failing_replace)
    line = error_line(run("sweep", *TINY, "--jobs", "1", "--quiet", "--out", out))
    monkeypatch.undo()
    assert str(out / target) in line and os.strerror(errno_) in line
    assert count_tasks(out) == 3
    assert not any(path.name.startswith(".") and path.suffix in (".tmp", ".png", ".json")
                   for path in out.iterdir())  # no temporary file left behind
    result = run("sweep", *TINY, "--jobs", "1", "--quiet", "--out", out, "--resume")
    assert result.exit_code == 0, result.output
    assert "Ran 0 task(s), reused 3" in result.output and (out / target).is_file()


def test_a_model_that_cannot_be_written_names_path_and_cause(tmp_path, monkeypatch):
    import robnp._io
    from robnp.errors import ModelFileError
    from robnp.model import MLP, save_model

    path = tmp_path / "m.npz"
    save_model(MLP(2, (3,), 2, seed=0), path)
    before = path.read_bytes()
    monkeypatch.setattr(robnp._io.os, "fsync",
                        lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left "
                                                                              "on device")))
    with pytest.raises(ModelFileError, match=f"cannot write {path}.*No space left on device"):
        save_model(MLP(2, (4,), 2, seed=1), path)
    assert path.read_bytes() == before


# -- progress ---------------------------------------------------------------------------

def _list_schedule(tasks, workers, seconds_of):
    """(task, start, end) as workers taking tasks in order, each when free, run them."""
    slots, out = [0.0] * workers, []
    for task in tasks:
        slots.sort()
        begin = slots.pop(0)
        out.append((task, begin, begin + seconds_of(task)))
        slots.append(begin + seconds_of(task))
    return out


@pytest.mark.parametrize("workers", [1, 2, 5])
def test_eta_is_the_true_time_left_when_seconds_follow_cost(workers):
    """Seconds proportional to cost: after every finished task the ETA is the true
    time left, where counting tasks overestimates it several times at the start."""
    tasks = submission_order(StudyConfig().tasks())
    schedule = _list_schedule(tasks, workers, lambda task: 1e-10 * task.cost())
    makespan = max(end for _, _, end in schedule)
    estimator = EtaEstimator(tasks, workers, start=0.0)
    for n_done, (task, begin, end) in enumerate(sorted(schedule, key=lambda s: s[2]),
                                                start=1):
        estimator.finished(task, end - begin, now=end)
        assert estimator.eta(end) == pytest.approx(makespan - end, rel=1e-9, abs=1e-9)
        if n_done == 1:
            naive = end / n_done * (len(tasks) - n_done)
            assert naive > 3 * estimator.eta(end)
    assert estimator.eta(makespan) == 0.0


def test_eta_counts_a_running_task_as_unfinished():
    tasks = submission_order(StudyConfig(datasets=("moons",), seeds=(0,)).tasks())
    estimator = EtaEstimator(tasks, 2, start=0.0)
    # The cheapest task has finished while the others wait or run: the ETA is at
    # least the predicted time of the most expensive one, started at 0.
    cheap, costly = tasks[-1], tasks[0]
    estimator.finished(cheap, 1.0, now=1.0)
    assert estimator.eta(1.0) >= costly.cost() / cheap.cost() * 1.0 - 1.0


def test_task_cost_grows_with_every_size():
    config = StudyConfig(widths=(32,), seeds=(0,), datasets=("moons",))
    base = config.tasks()[0]
    for name, larger in (("widths", (64,)), ("depth", 3), ("n_samples", 4000),
                         ("max_epochs", 4000), ("pgd_steps", 20)):
        assert config.replace(**{name: larger}).tasks()[0].cost() > base.cost(), name
    # Training dominates: twice the epochs is nearly twice the cost.
    assert config.replace(max_epochs=4000).tasks()[0].cost() / base.cost() == \
        pytest.approx(2, rel=0.01)


def test_without_a_terminal_progress_is_log_lines_only(tmp_path, no_figures):
    result = run("sweep", *TINY, "--jobs", "1", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "\r" not in result.output and "\033" not in result.output
    assert not [line for line in lines if line.startswith("tasks")]
    logged = [line for line in lines if re.match(r"\[\s*\d+/3\]", line)]
    assert len(logged) == 3 and all(line.count("ETA") == 1 for line in logged)


def test_on_a_terminal_one_eta_is_shown(tmp_path):
    """A real pseudo-terminal as stderr: each screen state holds at most one ETA."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "robnp_cli.main", "sweep", *TINY, "--jobs", "1",
         "--out", str(tmp_path / "out")], stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert process.wait() == 0
    text = b"".join(chunks).decode()
    # Each redraw begins with a carriage return; what is on screen at any moment is
    # the finished lines plus the latest redraw.
    for frame in re.split(r"\r", text):
        assert frame.count("ETA") <= 1, repr(frame)
    logged = [line for line in re.split(r"[\r\n]", text) if re.search(r"\[\s*\d+/3\]", line)]
    assert len(logged) == 3 and not any("ETA" in line for line in logged)
    assert "ETA" in text  # the bar shows it


def test_the_run_line_says_what_actually_runs(tmp_path, monkeypatch, no_figures):
    monkeypatch.setattr(robnp.study, "default_jobs", lambda: 2)
    one = run("sweep", *TINY[:3], "4", *TINY[4:], "--jobs", "2", "--quiet",
              "--out", tmp_path / "one")
    assert one.exit_code == 0, one.output
    assert "Running 1 training task(s) (1 runs in all) in this process." in one.output
    assert "Warning: --jobs" not in one.output
    many = run("sweep", *TINY[:3], "4,5", *TINY[4:], "--jobs", "64", "--quiet",
               "--out", tmp_path / "many")
    assert many.exit_code == 0, many.output
    assert "Running 2 training task(s) (2 runs in all) in 2 worker processes." in many.output
    warnings = [line for line in many.output.splitlines() if line.startswith("Warning: --jobs")]
    assert warnings == ["Warning: --jobs 64 exceeds the 2 core(s) available; "
                        "workers will share cores."]
