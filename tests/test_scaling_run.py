"""``robnp scaling run`` end to end on a tiny grid: the runs table and its round trip
into the fitter, the same numbers for any number of workers and after a kill and a
resume, the dry run, and bad input as one line with exit code 2."""

import csv
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from robnp.scaling.run import RUNS_COLUMNS
from robnp.scaling.table import read_table
from robnp_cli.main import cli

TINY_TOML = """
widths = [2, 4, 8]
data_sizes = [256, 512]
sources = ["true", "kde:m=16,h=0.2"]
extra_seeds = []
checkpoints = [0.5, 1.0]
n_test = 60
eval_steps = 3
fid_n = 100
w1_n = 40
"""
N_RUNS = 3 * 2 * 2


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def error_line(result):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error"), result.output
    return lines[0]


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "tiny.toml"
    path.write_text(TINY_TOML)
    return path


@pytest.fixture(scope="module")
def study(config_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "one"
    result = run("scaling", "run", "--config", config_file, "--out", out, "--jobs", "1",
                 "--n-boot", "3", "-q")
    assert result.exit_code == 0, result.output
    return out, result.output


def test_the_runs_table_has_every_checkpoint_and_round_trips_into_the_fitter(study):
    out, output = study
    rows = read_rows(out / "runs.csv")
    assert list(rows[0]) == list(RUNS_COLUMNS)
    assert len(rows) == N_RUNS * 2
    assert {r["train_fraction"] for r in rows} == {"0.5", "1.0"}
    for r in rows:  # a checkpoint at half the run has seen half its examples
        assert int(r["D"]) == int(float(r["train_fraction"]) * int(r["examples"]))
    assert {r["quality"] for r in rows if r["source"] == "true"} == {"inf"}
    table = read_table(out / "runs.csv")
    assert table.n_rows == len(rows) and table.n_runs == N_RUNS
    np.testing.assert_array_equal(table.loss, [float(r["loss"]) for r in rows])
    assert table.final().n_rows == N_RUNS
    fitted = run("scaling", "fit", out / "runs.csv", "--approach", "2", "--n-boot", "0",
                 "--no-plots", "--out", out / "refit")
    assert fitted.exit_code == 0, fitted.output
    for name in ("scaling.json", "study_plateau.png", "study_invalid.png",
                 "study_loss_curves.png", "fit/scaling_fit.json"):
        assert (out / name).is_file(), name
    assert "What the data allows" in output and "Runs left out" in output


def test_any_number_of_workers_or_threads_gives_the_same_table(study, config_file, tmp_path):
    out, _ = study
    result = run("scaling", "run", "--config", config_file, "--out", tmp_path / "two",
                 "--jobs", "2", "--threads-per-run", "2", "--n-boot", "3", "--no-plots", "-q")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "two" / "runs.csv").read_text() == (out / "runs.csv").read_text()


def test_a_killed_study_resumes_to_the_same_table(study, config_file, tmp_path):
    out, _ = study
    target = tmp_path / "killed"
    command = [sys.executable, "-m", "robnp_cli.main", "scaling", "run", "--config",
               str(config_file), "--out", str(target), "--jobs", "1", "--n-boot", "3",
               "--no-plots", "-q"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=env, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    stored = 0
    while time.monotonic() < deadline and process.poll() is None:
        store = target / "tasks.sqlite"
        if store.is_file():
            try:
                with sqlite3.connect(store, timeout=1) as connection:
                    stored = connection.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
            except sqlite3.Error:
                stored = 0
        if stored >= 2:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert stored >= 2, "the study ended before two runs were stored"
    result = run("scaling", "run", "--out", target, "--resume", "--n-boot", "3",
                 "--no-plots", "-q")
    assert result.exit_code == 0, result.output
    assert (target / "runs.csv").read_text() == (out / "runs.csv").read_text()


def test_dry_run_prints_the_grid_and_writes_nothing(config_file, tmp_path):
    result = run("scaling", "run", "--config", config_file, "--out", tmp_path / "d",
                 "--dry-run")
    assert result.exit_code == 0, result.output
    assert f"{N_RUNS} runs" in result.output and "projected wall time on 64 workers of one core" in \
        result.output
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("toml, words", [
    ("widths = []", "at least one"), ("widths = [8, 4]", "strictly increasing"),
    ("data_sizes = [1024, 512]", "strictly increasing"), ("eps = 50.0", "scale"),
    ('sources = ["gan:m=4"]', "gan"), ("widht = [4]", "unknown setting"),
])
def test_bad_input_is_one_line(tmp_path, toml, words):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    line = error_line(run("scaling", "run", "--config", path, "--out", tmp_path / "o",
                          "--dry-run"))
    assert words in line


def test_unknown_preset_and_nothing_to_resume_exit_2(tmp_path):
    assert run("scaling", "run", "--preset", "huge", "--out", tmp_path / "o").exit_code == 2
    line = error_line(run("scaling", "run", "--out", tmp_path / "none", "--resume"))
    assert "nothing to resume" in line


def test_the_study_on_a_dask_cluster_gives_the_same_table(study, config_file, tmp_path):
    pytest.importorskip("distributed")
    import tomllib

    from robnp.scaling.run import run_scaling_study
    from robnp.scaling.study import preset
    from robnp.study.executors import DaskExecutor

    out, _ = study
    config = preset("small", **tomllib.loads(config_file.read_text()))
    outcome = run_scaling_study(config, tmp_path / "dask", executor=DaskExecutor(jobs=2),
                                n_boot=3, figures=False)
    assert outcome.n_ran == outcome.n_tasks
    assert (tmp_path / "dask" / "runs.csv").read_text() == (out / "runs.csv").read_text()
