"""A training that ends without NaN but does not learn is flagged, not hidden."""

import json
from types import SimpleNamespace

import numpy as np
from click.testing import CliRunner

from robnp.study import StudyConfig
from robnp.study.tasks import training_problem
from robnp_cli.main import cli

TASK = StudyConfig(datasets=("moons",), widths=(4,), seeds=(0,)).tasks()[0]


def test_a_loss_that_grew_or_chance_accuracy_is_a_problem():
    y = np.array([0, 0, 0, 1])
    grew = training_problem(TASK, 0.7, SimpleNamespace(final_loss=9.0), 0.9, y)
    assert "final training loss 9 is above its initial loss 0.7" in grew
    chance = training_problem(TASK, 0.7, SimpleNamespace(final_loss=0.6), 0.75, y)
    assert "no better than the majority class's share 0.7500" in chance
    assert training_problem(TASK, 0.7, SimpleNamespace(final_loss=0.6), 0.76, y) is None


def test_a_sweep_with_an_absurd_learning_rate_completes_and_says_so(tmp_path, no_figures):
    args = ["sweep", "--datasets", "moons", "--widths", "4", "--seeds", "0", "--n-samples",
            "200", "--max-epochs", "20", "--epsilons", "0.1", "--jobs", "1", "-q"]
    bad = CliRunner().invoke(cli, args + ["--lr", "1e6", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 0, bad.output
    rows = json.loads((tmp_path / "bad" / "results.json").read_text())["results"]
    assert all("is above its initial loss" in row["training_failed"] for row in rows)
    assert "! training failed" in bad.output
    assert "Warning: 1 training(s) failed without diverging" in bad.output
    good = CliRunner().invoke(cli, args + ["--lr", "0.01", "--out", str(tmp_path / "good")])
    rows = json.loads((tmp_path / "good" / "results.json").read_text())["results"]
    assert good.exit_code == 0 and all("training_failed" not in row for row in rows)
    assert "Warning" not in good.output
