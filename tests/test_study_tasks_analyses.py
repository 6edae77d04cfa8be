"""Study analyses: opt-in keys of what the data allows; the default study is untouched."""

import hashlib
import json

import numpy as np
import pytest
from click.testing import CliRunner

from robnp.errors import ConfigError
from robnp.report.records import (MODEL_FIELDS, evaluation_problems, record_attacks,
                                  record_fields, study_rows)
from robnp.study import StudyConfig, run_task, task_data
from robnp.verify import DataSource, bayes_robust_accuracy, robustness_ceiling
from robnp_cli.main import cli

TINY = dict(datasets=("moons",), widths=(8,), seeds=(3,), n_samples=240, max_epochs=40,
            epsilons=(0.05, 0.2, 0.5), lr=0.02)


def test_the_default_config_block_and_task_keys_do_not_mention_analyses():
    config = StudyConfig()
    assert "analyses" not in config.to_dict()
    task = config.tasks()[0]
    identity = task.identity()
    assert "analyses" not in identity
    # The key is the hash of exactly the identity the study had.
    text = json.dumps(identity, sort_keys=True)
    assert task.key == hashlib.sha256(text.encode()).hexdigest()[:20]
    assert StudyConfig(analyses=()).fingerprint() == config.fingerprint()


def test_analyses_enter_the_config_block_and_round_trip():
    config = StudyConfig(analyses=("bayes", "exact"))
    assert config.analyses == ("exact", "bayes")  # one spelling of one study
    assert config.to_dict()["analyses"] == ["exact", "bayes"]
    assert StudyConfig.from_dict(config.to_dict()) == config
    assert StudyConfig(analyses="ceiling, exact").analyses == ("exact", "ceiling")
    assert config.tasks()[0].key != StudyConfig().tasks()[0].key


@pytest.mark.parametrize("changes,needle", [
    (dict(analyses=("exact", "truth")), "analyses must be among exact, ceiling, bayes"),
    (dict(analyses=("exact", "exact")), "analyses"),
    (dict(analyses=("bayes",), noise=0.0), "needs noise > 0"),
])
def test_bad_analyses_are_one_config_error(changes, needle):
    with pytest.raises(ConfigError, match=needle):
        StudyConfig(**changes)


def test_analysis_records_are_checked():
    good = {"analysis": "exact_acc", "epsilon": 0.1, "value": 0.5}
    assert evaluation_problems([good, {**good, "value": None}]) == []
    assert evaluation_problems([{**good, "value": float("nan")}])
    assert evaluation_problems([{**good, "value": "high"}])
    assert evaluation_problems([{"analysis": "exact_acc", "value": 0.5}])


@pytest.fixture(scope="module")
def analysed():
    config = StudyConfig(**TINY, analyses=("exact", "ceiling", "bayes"))
    task = config.tasks()[0]
    return task, run_task(task), run_task(StudyConfig(**TINY).tasks()[0])


def test_rows_keep_the_study_keys_in_order_then_the_analyses(analysed):
    task, result, plain = analysed
    rows, plain_rows = result.records, plain.records
    for row, base in zip(rows, plain_rows):
        assert list(row)[:len(base)] == list(base)
        assert {k: row[k] for k in base} == base  # same training, same attacks
        extra = list(row)[len(base):]
        assert extra == ["exact_acc", "certified_acc", "undecided", "ceiling_acc",
                         "bayes_robust_acc", "invalid_share_fgsm", "invalid_share_pgd",
                         "error_region_acc_fgsm", "error_region_acc_pgd"]
    assert record_attacks(rows) == ("fgsm", "pgd")
    assert list(record_fields(record_attacks(rows)))[:len(MODEL_FIELDS)] == list(MODEL_FIELDS)


def test_analysis_values_are_the_library_functions_and_obey_the_bracket(analysed):
    task, result, _ = analysed
    _, X_test, _, y_test = task_data(task)
    rows = result.records
    ceiling = robustness_ceiling(X_test, y_test, list(task.epsilons))
    source = DataSource("moons", task.n_samples, task.noise)
    for row, c in zip(rows, ceiling):
        assert row["ceiling_acc"] == c
        assert row["certified_acc"] <= row["pgd_acc"] <= row["clean_acc"]
        if row["undecided"] == 0:
            assert row["exact_acc"] == row["certified_acc"]
        else:
            assert row["exact_acc"] is None
        share = row["invalid_share_pgd"]
        assert share is None or 0 <= share <= 1
    bayes = bayes_robust_accuracy(source, X_test, y_test, task.epsilons,
                                  attacks=(("pgd", {"steps": 50, "n_restarts": 2}),),
                                  seed=task.seed)[0]
    np.testing.assert_array_equal([row["bayes_robust_acc"] for row in rows], bayes)
    # The records study_rows derives from are the stored long form.
    assert study_rows(result.model, result.evaluations) == rows


def test_sweep_refuses_an_unknown_analysis_in_one_line(tmp_path):
    out = CliRunner().invoke(cli, ["sweep", "--analyses", "exact,oracle", "--out",
                                   str(tmp_path / "r")])
    assert out.exit_code == 2
    lines = [line for line in out.output.strip().splitlines() if line]
    assert len(lines) == 1 and "analyses must be among" in lines[0] and "'oracle'" in lines[0]


def test_bayes_needs_a_dataset_with_a_known_density(tmp_path):
    from robnp.data import DATASETS, register_dataset

    @register_dataset("stripes")
    def _stripes(n_samples, noise, seed, input_dim=2):
        """Stripes."""
        X = np.zeros((n_samples, input_dim), np.float32)
        return X, np.arange(n_samples) % 2

    try:
        with pytest.raises(ConfigError, match="known density.*'stripes'"):
            StudyConfig(datasets=("moons", "stripes"), analyses=("bayes",))
        StudyConfig(datasets=("stripes",), analyses=("exact", "ceiling"))  # no density needed
        out = CliRunner().invoke(cli, ["sweep", "--datasets", "stripes", "--analyses", "bayes",
                                       "--out", str(tmp_path / "r")])
        assert out.exit_code == 2
        lines = [line for line in out.output.strip().splitlines() if line]
        assert len(lines) == 1 and "known density" in lines[0]
    finally:
        DATASETS.pop("stripes")
