"""The runs table of a sweep (robnp report DIR --runs-table): one row per model with
N, D, the adversarial test loss, robust accuracy and FLOPs, read back by
robnp scaling fit."""

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

import robnp
from robnp.errors import DataError
from robnp.losses import mean_loss
from robnp.report.runs import RUNS_COLUMNS, format_runs_table
from robnp.scaling.table import read_table
from robnp.study import StudyConfig, run_study, task_data
from robnp.study.models import model_path
from robnp_cli.main import cli

CONFIG = dict(datasets=("circles", "moons"), widths=(2, 3, 4, 5, 6, 7), seeds=(0, 1),
              epsilons=(0.05, 0.1), n_samples=120, max_epochs=300, patience=3, lr=0.05)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    config = StudyConfig(**CONFIG)
    run_study(config, out, jobs=1)
    return config, out


def test_the_table_holds_each_models_size_data_loss_and_accuracy(study, tmp_path):
    config, out = study
    path = tmp_path / "runs.csv"
    result = run("report", out, "--runs-table", path, "--eps", 0.1, "--dataset", "moons")
    assert result.exit_code == 0, result.output
    assert f"wrote {path} (12 runs)" in result.output
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == RUNS_COLUMNS and len(rows) == 12
    results = json.loads((out / "results.json").read_text())["results"]
    for row in rows:
        task = next(t for t in config.tasks() if (t.dataset, t.seed, t.width) ==
                    ("moons", int(row["seed"]), int(row["width"])))
        study_row = next(r for r in results if (r["dataset"], r["seed"], r["hidden_width"],
                                                r["epsilon"]) == ("moons", task.seed,
                                                                  task.width, 0.1))
        model = robnp.load_model(model_path(out, task))
        assert int(row["N"]) == model.n_params == study_row["param_count"]
        assert int(row["D"]) == study_row["epochs"] * 96  # epochs x training rows
        assert float(row["accuracy"]) == study_row["pgd_acc"]
        # The adversarial test loss: cross-entropy at PGD's points of the evaluation.
        _, X_test, _, y_test = task_data(task)
        evaluation = robnp.evaluate(model, X_test, y_test, config.epsilons,
                                    list(task.attacks), seed=task.seed)
        assert float(row["loss"]) == mean_loss(model, evaluation.attacks["pgd"].adversarial[1],
                                               y_test)
        assert float(row["loss"]) > mean_loss(model, X_test, y_test)
        assert float(row["flops"]) > 0


def test_scaling_fit_reads_the_table_back(study, tmp_path):
    _, out = study
    path = tmp_path / "runs.csv"
    assert run("report", out, "--runs-table", path, "--eps", 0.05,
               "--dataset", "circles").exit_code == 0
    table = read_table(path)
    assert table.n_rows == 12 and table.has_flops and table.accuracy is not None
    # Approach 2 (the parametric loss) needs no envelope, which a toy study lacks.
    result = run("scaling", "fit", path, "--approach", "2", "--grid", "small", "--n-boot", 0,
                 "--no-crosscheck", "--no-plots", "--out", tmp_path / "fit")
    assert result.exit_code == 0, result.output
    assert f"Table: {path}: 12 rows" in result.output and "Approach 2" in result.output


@pytest.mark.parametrize("args,needle", [
    ([], "--eps needed: the study in"),
    (["--eps", 0.1], "--dataset needed"),
    (["--eps", 0.3, "--dataset", "moons"], "--eps must be one of the study's radii (0.05, 0.1)"),
    (["--eps", 0.1, "--dataset", "moons", "--attack", "apgd-ce"],
     "--attack must be one of the study's attacks (fgsm, pgd)"),
])
def test_a_choice_the_study_does_not_have_is_one_line(study, tmp_path, args, needle):
    _, out = study
    result = run("report", out, "--runs-table", tmp_path / "r.csv", *args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], result.output
    assert not (tmp_path / "r.csv").exists()


def test_a_directory_without_a_store_is_one_line(tmp_path):
    result = run("report", tmp_path, "--runs-table", tmp_path / "r.csv")
    assert result.exit_code == 2
    assert "no tasks.sqlite with finished tasks" in result.output


def test_the_table_text_is_exact_and_refuses_nothing_to_write():
    row = {"N": 10, "D": 96, "loss": 0.1 + 0.2, "accuracy": 0.5, "flops": 1.5e9,
           "dataset": "moons", "seed": 0, "width": 2, "epsilon": 0.1, "attack": "pgd"}
    text = format_runs_table([row])
    assert text.splitlines()[1].split(",")[2] == repr(0.1 + 0.2)
    with pytest.raises(DataError, match="no rows"):
        format_runs_table([])
