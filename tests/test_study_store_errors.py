"""A study that meets a damaged store or a failing task: one clear error, nothing lost."""

import dataclasses
import json
import shutil
import sqlite3

import pytest
from click.testing import CliRunner

from robnp.errors import StoreError, TrainingDivergedError
from robnp.study import STORE_NAME, StudyConfig, TaskStore, run_task, run_tasks
from robnp_cli.main import cli

# Three cheap tasks: a couple of seconds for the whole study.
TINY = ["--datasets", "moons", "--widths", "2,3,4", "--seeds", "1", "--epsilons", "0.1",
        "--n-samples", "100", "--max-epochs", "2", "--quiet", "--jobs", "1"]
TINY_CONFIG = StudyConfig(datasets=("moons",), widths=(2, 3, 4), seeds=(1,), epsilons=(0.1,),
                          n_samples=100, max_epochs=2)
DIVERGING = ["--lr", "1e30"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def error_line(result, started=False):
    """The one ``Error:`` line of a failed command. Before any task starts it is the
    whole output; a failure during the run follows the lines announcing the run."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    # On a machine (or a CPU affinity) with fewer cores than --jobs, a warning says so
    # first; it is about the machine, not the failure.
    lines = [line for line in result.output.splitlines()
             if line.strip() and not line.startswith("Warning: --jobs")]
    errors = [line for line in lines if "Error" in line]
    assert errors == lines[-1:] and lines[-1].startswith("Error:"), lines
    if not started:
        assert len(lines) == 1, lines
    else:
        assert lines[0].startswith("Running "), lines
    return lines[-1]


def count_tasks(out):
    with sqlite3.connect(out / STORE_NAME) as db:
        return db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "out"
    result = run("sweep", *TINY, "--out", out)
    assert result.exit_code == 0, result.output
    return out


def _execute(path, *statements):
    db = sqlite3.connect(path)
    for statement in statements:
        db.execute(statement)
    db.commit()
    db.close()


def _drop_config(out):
    _execute(out / STORE_NAME, "DELETE FROM meta WHERE key = 'config'")


def _corrupt_json(out):
    _execute(out / STORE_NAME, "UPDATE tasks SET result = '{\"records\": [' WHERE rowid = 1")


def _wrong_fields(out):
    _execute(out / STORE_NAME, "UPDATE tasks SET result = '{\"records\": []}' WHERE rowid = 1")


def _foreign_database(out):
    (out / STORE_NAME).unlink()
    _execute(out / STORE_NAME, "CREATE TABLE users (name TEXT)",
             "INSERT INTO users VALUES ('ada')")


def _not_sqlite(out):
    (out / STORE_NAME).write_text("name,score\nada,3\n")


# damage -> (how, what the error says when resuming the same config, and another one);
# stored tasks of another configuration are never read, so their damage goes unnoticed.
DAMAGE = {
    "config row missing": (_drop_config, "tasks.sqlite is damaged: its config record is missing",
                           "tasks.sqlite is damaged: its config record is missing"),
    "task row not JSON": (_corrupt_json, "tasks.sqlite is damaged: stored task",
                          "different configuration"),
    "task row with wrong fields": (_wrong_fields, "tasks.sqlite is damaged: stored task",
                                   "different configuration"),
    "foreign sqlite database": (_foreign_database, "tasks.sqlite is not a robnp task store",
                                "tasks.sqlite is not a robnp task store"),
    "not an sqlite file": (_not_sqlite, "tasks.sqlite is not a robnp task store",
                           "tasks.sqlite is not a robnp task store"),
}


@pytest.mark.parametrize("other_config", [False, True], ids=["same config", "other config"])
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_resume_on_a_damaged_store_is_one_line_and_touches_nothing(finished, tmp_path, damage,
                                                                   other_config):
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    spoil, same, other = DAMAGE[damage]
    spoil(out)
    before = {str(path.relative_to(out)): path.read_bytes() for path in out.rglob("*")
              if path.is_file()}
    extra = ["--seeds", "2"] if other_config else []
    line = error_line(run("sweep", *TINY, *extra, "--out", out, "--resume"))
    assert (other if other_config else same) in line
    assert {str(path.relative_to(out)): path.read_bytes() for path in out.rglob("*")
            if path.is_file()} == before


def test_a_damaged_store_is_a_store_error_in_the_library(finished, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    _corrupt_json(out)
    with pytest.raises(StoreError, match="stored task '[0-9a-f]+' is unreadable"):
        TaskStore.open(out, TINY_CONFIG, resume=True)


def test_a_failed_first_run_does_not_lock_the_directory(tmp_path):
    out = tmp_path / "out"
    error_line(run("sweep", *TINY, *DIVERGING, "--out", out), started=True)
    assert count_tasks(out) == 0 and not (out / "results.json").exists()
    result = run("sweep", *TINY, "--out", out)
    assert result.exit_code == 0, result.output
    assert "Ran 3 task(s), reused 0" in result.output
    assert json.loads((out / "results.json").read_text())["config"]["lr"] == 1e-3


def test_a_store_in_use_cannot_be_taken_over(tmp_path):
    """While one run holds its store (before it has finished any task), a second
    run into the same folder, of any configuration, is refused; once the first
    closes its store, the folder is free again."""
    out = tmp_path / "out"
    other = dataclasses.replace(TINY_CONFIG, widths=(2,))
    with TaskStore.open(out, TINY_CONFIG, resume=False) as first:
        for config in (TINY_CONFIG, other):
            with pytest.raises(StoreError, match="in use by another robnp sweep"):
                TaskStore.open(out, config, resume=True)
        line = error_line(run("sweep", *TINY, "--widths", "2", "--out", out))
        assert "in use" in line
        assert first.done_keys() == set()
        first.put(run_task(TINY_CONFIG.tasks()[0]))
    with sqlite3.connect(out / STORE_NAME) as db:
        stored = dict(db.execute("SELECT key, value FROM meta"))
    assert stored["fingerprint"] == TINY_CONFIG.fingerprint()
    with TaskStore.open(out, TINY_CONFIG, resume=True) as again:
        assert len(again.done_keys()) == 1


def test_finished_tasks_still_lock_the_directory(finished):
    before = (finished / STORE_NAME).read_bytes()
    for resume in ([], ["--resume"]):
        line = error_line(run("sweep", *TINY, "--widths", "2,3", "--out", finished, *resume))
        assert "--resume" in line or "different configuration" in line
    assert (finished / STORE_NAME).read_bytes() == before
    assert count_tasks(finished) == 3


def test_divergence_names_the_task(tmp_path):
    line = error_line(run("sweep", *TINY, *DIVERGING, "--out", tmp_path / "out"), started=True)
    assert "diverged" in line and "task moons seed=1 width=" in line
    task = TINY_CONFIG.replace(lr=1e30).tasks()[0]
    with pytest.raises(TrainingDivergedError, match=f"task {task.label}: training diverged"):
        run_task(task)


def test_divergence_in_a_worker_names_the_task(tmp_path):
    line = error_line(run("sweep", *TINY, *DIVERGING, "--jobs", "2", "--out", tmp_path / "out"),
                      started=True)
    assert "diverged" in line and "task moons seed=1 width=" in line


def test_a_failing_task_keeps_the_results_of_its_running_siblings():
    """With a pool, a task that fails at once must not discard the result of a
    slower task already running beside it: that result is handed back (to be
    stored) before the error is raised."""
    base = StudyConfig(datasets=("moons",), widths=(4,), seeds=(1,), epsilons=(0.1,),
                       n_samples=2000, max_epochs=3000, patience=3000, lr=0.01).tasks()[0]
    slow = base
    failing = dataclasses.replace(
        base, width=8, train=dataclasses.replace(base.train, lr=1e30, max_epochs=5))
    finished = []
    with pytest.raises(TrainingDivergedError, match=f"task {failing.label}"):
        for task, result in run_tasks([failing, slow], jobs=2):
            finished.append((task, result))
    assert [(task, result.key, result.epochs) for task, result in finished] == \
        [(slow, slow.key, 3000)]


def test_a_store_from_before_long_form_records_says_so(finished, tmp_path):
    """A task stored as the study's wide rows (an earlier robnp) is named as such, not
    as damage, and the file is left as it was."""
    out = tmp_path / "old"
    shutil.copytree(finished, out)
    with sqlite3.connect(out / STORE_NAME) as db:
        key, text = db.execute("SELECT key, result FROM tasks").fetchone()
        data = json.loads(text)
        old = {"key": data["key"], "records": [{"dataset": "moons"}], "epochs": data["epochs"],
               "final_loss": data["final_loss"], "clean_acc": data["clean_acc"],
               "seconds": data["seconds"]}
        db.execute("UPDATE tasks SET result = ? WHERE key = ?", (json.dumps(old), key))
    before = (out / STORE_NAME).read_bytes()
    line = error_line(run("sweep", *TINY, "--out", out, "--resume"))
    assert "was written by an earlier robnp" in line and "another --out directory" in line
    assert (out / STORE_NAME).read_bytes() == before
