"""robnp report never launders invalid results, rebuilds from the task store when
results.json is gone, and a bare --resume continues the stored configuration."""

import json
import shutil
import sqlite3

import pytest
from click.testing import CliRunner

from robnp.study import STORE_NAME
from robnp_cli.main import cli

# Three cheap tasks (two widths would leave trends undefined; validate needs three).
TINY = ["--datasets", "moons", "--widths", "4,6,8", "--seeds", "0", "--epsilons", "0.05,0.2",
        "--n-samples", "100", "--max-epochs", "5"]
FIGURES = ("clean_vs_robust.png", "robustness_gap.png", "param_scaling.png")
DETERMINISTIC = ("results", "aggregated", "dataset_summaries", "summary", "config",
                 "n_experiments")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def snapshot(out):
    # Every file, those of the models directory too.
    return {str(path.relative_to(out)): path.read_bytes() for path in sorted(out.rglob("*"))
            if path.is_file()}


def one_error_line(result):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), lines
    return lines[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "out"
    result = run("sweep", *TINY, "--quiet", "--jobs", "1", "--out", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def copy(finished, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    return out


def edit_results(out, change):
    path = out / "results.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc, indent=2))


def _duplicate_record(doc):
    doc["results"].append(dict(doc["results"][0]))


def _impossible_accuracy(doc):
    doc["results"][1]["pgd_acc"] = 1.5


def _config_without_epsilons(doc):
    del doc["config"]["epsilons"]


@pytest.mark.parametrize("spoil,needle", [
    (_duplicate_record, "present once"),
    (_impossible_accuracy, "accuracies in [0, 1]"),
    (_config_without_epsilons, "epsilons"),
], ids=["duplicated record", "accuracy 1.5", "config without epsilons"])
def test_report_refuses_what_validate_rejects_and_rewrites_nothing(copy, spoil, needle):
    edit_results(copy, spoil)
    assert run("validate", copy).exit_code == 1  # the premise: validate rejects it
    before = snapshot(copy)
    line = one_error_line(run("report", copy))
    assert "results.json is invalid" in line and needle in line
    assert snapshot(copy) == before


def test_report_still_redraws_missing_figures_of_valid_results(copy, finished):
    for name in FIGURES:
        (copy / name).unlink()
    result = run("report", copy)
    assert result.exit_code == 0, result.output
    assert all((copy / name).stat().st_size > 5000 for name in FIGURES)


def load(out):
    return json.loads((out / "results.json").read_text())


def test_report_rebuilds_results_from_a_complete_store(copy, finished):
    (copy / "results.json").unlink()
    for name in FIGURES:
        (copy / name).unlink()
    result = run("report", copy)
    assert result.exit_code == 0, result.output
    assert "from tasks.sqlite" in result.output
    rebuilt, original = load(copy), load(finished)
    for key in DETERMINISTIC:
        assert rebuilt[key] == original[key], key
    assert all((copy / name).stat().st_size > 5000 for name in FIGURES)
    # Validation sees the same study (five epochs fail its plausibility checks alike).
    assert run("validate", copy).output == run("validate", finished).output


def drop_one_task(out):
    with sqlite3.connect(out / STORE_NAME) as db:
        db.execute("DELETE FROM tasks WHERE rowid = (SELECT MIN(rowid) FROM tasks)")
    (out / "results.json").unlink()


def test_report_from_an_incomplete_store_says_how_to_finish(copy):
    drop_one_task(copy)
    before = snapshot(copy)
    line = one_error_line(run("report", copy))
    assert "holds 2 of the study's 3 tasks" in line and "--resume" in line
    assert snapshot(copy) == before


def test_bare_resume_continues_the_stored_configuration(copy, finished, no_figures):
    drop_one_task(copy)
    result = run("sweep", "--out", copy, "--resume", "--quiet", "--jobs", "1")
    assert result.exit_code == 0, result.output
    assert "Ran 1 task(s), reused 2" in result.output
    for key in DETERMINISTIC:
        assert load(copy)[key] == load(finished)[key], key


def test_resume_with_agreeing_options_continues(copy, no_figures):
    drop_one_task(copy)
    result = run("sweep", "--out", copy, "--resume", "--quiet", "--jobs", "1",
                 "--widths", "4,6,8", "--n-samples", "100")
    assert result.exit_code == 0, result.output
    assert "Ran 1 task(s), reused 2" in result.output


def test_resume_with_disagreeing_options_names_each_stored_value(copy):
    drop_one_task(copy)
    before = snapshot(copy)
    line = one_error_line(run("sweep", "--out", copy, "--resume", "--widths", "4,6",
                              "--seeds", "3", "--n-samples", "100"))
    assert "different configuration" in line
    assert "--widths 4,6 differs from the stored widths 4,6,8" in line
    assert "--seeds 3 differs from the stored seeds 0" in line
    assert "n-samples" not in line  # agrees with the store
    assert snapshot(copy) == before
