"""robnp sweep end to end: files, schema, validation, determinism, crash safety, bad input."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from robnp.study import StudyConfig
from robnp_cli.main import cli

# A small study that still passes every validation check: three widths (so trends
# are defined), two seeds, an easy dataset, a fast learning rate.
SMALL = ["--datasets", "moons", "--widths", "4,8,12", "--seeds", "1,2", "--epsilons", "0.05,0.3",
         "--n-samples", "300", "--max-epochs", "60", "--patience", "10", "--lr", "0.02",
         "--quiet"]
FIGURES = ("clean_vs_robust.png", "robustness_gap.png", "param_scaling.png")
DETERMINISTIC = ("results", "aggregated", "dataset_summaries", "summary", "config", "n_experiments")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def load(out):
    with open(out / "results.json") as handle:
        return json.load(handle)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "results"
    result = run("sweep", *SMALL, "--out", out, "--jobs", "1")
    assert result.exit_code == 0, result.output
    return out, result


def test_sweep_writes_results_figures_and_table(small_run):
    out, result = small_run
    for name in ("results.json", "tasks.sqlite", *FIGURES):
        assert (out / name).is_file(), name
    assert "[MOONS] Per-width summary" in result.output
    assert "Corr(log params, FGSM gap)" in result.output


def test_results_json_keeps_the_study_schema(small_run):
    doc = load(small_run[0])
    assert len(doc["results"]) == 1 * 2 * 3 * 2
    record_keys = {"dataset", "seed", "hidden_width", "param_count", "epochs", "final_loss",
                   "clean_acc", "epsilon", "fgsm_acc", "pgd_acc", "fgsm_gap", "pgd_gap"}
    for record in doc["results"]:
        assert record_keys <= set(record)
        assert record["param_count"] == record["hidden_width"] ** 2 + 6 * record["hidden_width"] + 2
        assert record["fgsm_gap"] == pytest.approx(record["clean_acc"] - record["fgsm_acc"])
    assert len(doc["aggregated"]) == 3 * 2
    assert all(a["n_seeds"] == 2 for a in doc["aggregated"])
    summary = doc["dataset_summaries"]["moons"]
    for trend in ("trend_fgsm_gap", "trend_pgd_gap"):
        assert set(summary[trend]) >= {"pearson_r", "pearson_p_value", "pearson_r_ci95",
                                       "spearman_rho", "spearman_p_value",
                                       "slope_per_log10_param"}
    assert summary["corr_logparams_pgd_gap"] == summary["trend_pgd_gap"]["pearson_r"]
    assert set(summary["per_width"]) == {"4", "8", "12"}
    assert doc["summary"] == summary
    assert doc["config"]["hidden_widths"] == [4, 8, 12]
    assert doc["config"]["datasets"] == [{"name": "moons", "noise": 0.15}]
    assert set(doc["environment"]) >= {"python", "numpy", "numba", "scipy", "platform", "robnp"}
    assert len(doc["tasks"]) == 6
    assert all(task["task_seconds"] > 0 and task["epochs"] >= 1 for task in doc["tasks"])


def test_validate_passes_on_a_fresh_run(small_run):
    result = run("validate", small_run[0])
    assert result.exit_code == 0, result.output
    assert "PASSED" in result.output


def test_validate_fails_on_a_broken_result(small_run, tmp_path):
    out = tmp_path / "broken"
    out.mkdir()
    doc = load(small_run[0])
    doc["results"][0]["pgd_acc"] = 1.5
    (out / "results.json").write_text(json.dumps(doc))
    for name in FIGURES:
        (out / name).write_bytes((small_run[0] / name).read_bytes())
    result = run("validate", out)
    assert result.exit_code == 1
    assert "FAILED" in result.output


def test_report_regenerates_without_training(small_run, tmp_path):
    out = tmp_path / "copy"
    out.mkdir()
    (out / "results.json").write_bytes((small_run[0] / "results.json").read_bytes())
    result = run("report", out)
    assert result.exit_code == 0, result.output
    assert "[MOONS]" in result.output
    for name in FIGURES:
        assert (out / name).stat().st_size > 5000
    assert {k: load(out)[k] for k in DETERMINISTIC} == {k: load(small_run[0])[k]
                                                         for k in DETERMINISTIC}


def test_jobs_do_not_change_the_numbers(small_run, tmp_path):
    out = tmp_path / "two"
    result = run("sweep", *SMALL, "--out", out, "--jobs", "2")
    assert result.exit_code == 0, result.output
    one, two = load(small_run[0]), load(out)
    for key in DETERMINISTIC:
        assert one[key] == two[key], key


def test_rerun_without_resume_refuses_and_keeps_results(small_run):
    out = small_run[0]
    before = (out / "results.json").read_bytes()
    result = run("sweep", *SMALL, "--out", out, "--jobs", "1")
    assert result.exit_code == 2
    assert "--resume" in result.output
    assert (out / "results.json").read_bytes() == before


def test_resume_refuses_a_different_config(small_run):
    result = run("sweep", *SMALL, "--seeds", "1,3", "--out", small_run[0], "--resume")
    assert result.exit_code == 2
    assert "different configuration" in result.output and "seeds" in result.output


def test_resume_of_a_finished_study_reruns_nothing(small_run):
    result = run("sweep", *SMALL, "--out", small_run[0], "--resume")
    assert result.exit_code == 0, result.output
    assert "Ran 0 task(s), reused 6" in result.output


def test_killed_sweep_resumes_to_the_same_numbers(small_run, tmp_path):
    """SIGKILL part-way (after at least one task is stored), resume, compare."""
    out = tmp_path / "killed"
    args = [sys.executable, "-m", "robnp_cli.main", "sweep", *SMALL, "--out", str(out),
            "--jobs", "1"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = out / "tasks.sqlite"
    deadline = time.time() + 120
    stored = 0
    while time.time() < deadline and process.poll() is None:
        if store.exists():
            try:
                with sqlite3.connect(store) as db:
                    stored = db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
            except sqlite3.Error:
                stored = 0
            if stored >= 2:
                break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert stored >= 2, "the sweep finished or stalled before it could be interrupted"
    assert not (out / "results.json").exists()
    result = run("sweep", *SMALL, "--out", out, "--resume", "--jobs", "1")
    assert result.exit_code == 0, result.output
    assert "reused" in result.output
    resumed, whole = load(out), load(small_run[0])
    for key in DETERMINISTIC:
        assert resumed[key] == whole[key], key


def test_config_file_and_overrides(tmp_path):
    config = tmp_path / "study.toml"
    config.write_text('datasets = ["moons"]\nwidths = [4, 8, 12]\nseeds = [1]\n'
                      'epsilons = [0.1]\nn-samples = 200\nmax_epochs = 5\n')
    out = tmp_path / "from_file"
    result = run("sweep", "--config", config, "--widths", "4,6,8", "--out", out, "--quiet",
                 "--jobs", "1")
    assert result.exit_code == 0, result.output
    doc = load(out)
    assert doc["config"]["hidden_widths"] == [4, 6, 8]  # the option wins
    assert doc["config"]["max_epochs"] == 5 and doc["config"]["n_samples"] == 200
    assert {r["epochs"] for r in doc["results"]} == {5}


def test_depth_and_input_dim_reach_the_models(tmp_path):
    out = tmp_path / "deep"
    result = run("sweep", "--datasets", "circles", "--widths", "3,5,7", "--seeds", "0",
                 "--epsilons", "0.1", "--depth", "3", "--input-dim", "4", "--n-samples", "100",
                 "--max-epochs", "2", "--out", out, "--quiet", "--jobs", "1")
    assert result.exit_code == 0, result.output
    record = load(out)["results"][0]
    # 4 inputs, three hidden layers of width 3, 2 classes
    assert record["param_count"] == 4 * 3 + 3 + 2 * (3 * 3 + 3) + 3 * 2 + 2
    assert record["depth"] == 3 and record["input_dim"] == 4


def test_default_config_is_the_study():
    config = StudyConfig()
    assert len(config.tasks()) == 36 and config.n_runs == 180
    assert config.widths == (16, 32, 64, 128, 256, 512) and config.seeds == (42, 123, 7)
    tasks = config.tasks()
    # for a seed, every width sees the same data draw
    assert len({(t.dataset, t.seed, t.noise, t.n_samples) for t in tasks}) == 6
    assert len({t.key for t in tasks}) == 36


BAD_INPUT = [
    (["--datasets", "spiral"], "unknown dataset 'spiral'"),
    (["--widths", ""], "--widths"),
    (["--widths", "8,-4"], "widths must hold integers >= 1"),
    (["--widths", "0"], "widths must hold integers >= 1"),
    (["--widths", "8,8"], "duplicate"),
    (["--seeds", "1,1"], "duplicate"),
    (["--seeds", "-3"], "seeds must hold integers >= 0"),
    (["--seeds", "1.5"], "--seeds"),
    (["--epsilons", "0.1,-0.2"], "epsilons must hold numbers >= 0"),
    (["--epsilons", "0.1,,0.2"], "empty item"),
    (["--jobs", "0"], "--jobs"),
    (["--test-fraction", "1.5"], "test_fraction"),
    (["--lr", "0"], "lr"),
    (["--pgd-steps", "-1"], "pgd_steps"),
    # Zero PGD steps is no attack: every "robust" accuracy would be the clean one.
    (["--pgd-steps", "0"], "pgd_steps must be an integer >= 1, got 0"),
    # Found before the store is opened or a model trained (not after 36 trainings).
    (["--attacks", "apgd-dlr"], "attack apgd-dlr on circles: loss 'dlr' needs at least 3"),
    (["--resume"], "nothing to resume: "),
    (["--config", "jobs.toml"], "jobs must be an integer >= 1, got 0"),
    (["--config", "quiet.toml"], "quiet must be true or false, got 'yes'"),
]


@pytest.mark.parametrize("args,needle", BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_sweep_input_is_one_line_and_exit_2(tmp_path, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "jobs.toml").write_text("jobs = 0\n")
    (tmp_path / "quiet.toml").write_text("quiet = 'yes'\n")
    out = tmp_path / "never"
    result = run("sweep", *args, "--out", out)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), lines
    assert needle in lines[0]
    assert not out.exists()


def test_resume_into_an_empty_directory_says_there_is_nothing_to_resume(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    result = run("sweep", *SMALL, "--out", out, "--resume")
    assert result.exit_code == 2
    assert result.output.strip() == (f"Error: nothing to resume: {out} holds no tasks.sqlite; "
                                      f"run without --resume to start the study there")
    assert list(out.iterdir()) == []


def test_a_config_file_sets_the_run_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.toml").write_text(
        'datasets = ["moons"]\nwidths = [4]\nseeds = [0]\nepsilons = [0.1]\n'
        'n-samples = 100\nmax-epochs = 3\njobs = 1\nout = "from_file"\nquiet = true\n')
    result = run("sweep", "--config", "run.toml")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "from_file" / "results.json").is_file()
    assert "in this process" in result.output  # jobs = 1
    assert "[  1/1]" not in result.output  # quiet
    (tmp_path / "run.toml").write_text(
        (tmp_path / "run.toml").read_text() + "resume = true\n")
    result = run("sweep", "--config", "run.toml", "--out", "elsewhere")
    assert result.exit_code == 2 and "nothing to resume: elsewhere" in result.output
    result = run("sweep", "--config", "run.toml")
    assert result.exit_code == 0 and "Ran 0 task(s), reused 1" in result.output


def test_bad_config_files(tmp_path):
    cases = {
        "missing.toml": (None, "not found"),
        "broken.toml": ("widths = [1, 2\n", "not valid TOML"),
        "unknown.toml": ("widths = [4]\ncolour = 'red'\n", "unknown key 'colour'"),
        "typed.toml": ("widths = 'wide'\n", "widths must be a list"),
    }
    for name, (text, needle) in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        result = run("sweep", "--config", path, "--out", tmp_path / "out")
        assert result.exit_code == 2, (name, result.output)
        assert needle in result.output and len(result.output.strip().splitlines()) == 1


def test_unwritable_output_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run("sweep", *SMALL, "--out", blocker / "results")
    assert result.exit_code == 2
    assert "Error:" in result.output and "Traceback" not in result.output
    result = run("sweep", *SMALL, "--out", blocker)
    assert result.exit_code == 2 and "is a file" in result.output


def test_validate_and_report_without_results(tmp_path):
    for command in ("validate", "report"):
        result = run(command, tmp_path)
        assert result.exit_code == 2, result.output
        assert result.output.startswith("Error:") and len(result.output.strip().splitlines()) == 1


def test_a_foreign_results_json_is_never_overwritten(tmp_path):
    out = tmp_path / "published"
    out.mkdir()
    (out / "results.json").write_text('{"precious": true}')
    result = run("sweep", *SMALL, "--out", out, "--jobs", "1")
    assert result.exit_code == 2 and "results.json" in result.output
    assert (out / "results.json").read_text() == '{"precious": true}'
    assert sorted(path.name for path in out.iterdir()) == ["results.json"]


def test_non_utf8_config_is_one_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_bytes(b"\xff\xfe")
    result = run("sweep", "--config", path, "--out", tmp_path / "o")
    assert result.exit_code == 2 and "not valid TOML" in result.output


def test_a_sweep_trains_on_a_generator_file(tmp_path):
    source = tmp_path / "kde.npz"
    result = run("data", "fit-generator", "--dataset", "moons", "--m", 40, "--h", 0.05,
                 "--out", source)
    assert result.exit_code == 0, result.output
    out = tmp_path / "gen"
    result = run("sweep", *SMALL, "--widths", "4,8", "--seeds", "1", "--train-source", source,
                 "--out", out, "--jobs", "1")
    assert result.exit_code == 0, result.output
    document = load(out)
    assert document["config"]["train_source"]["generator"]["kind"] == "kde"
    assert document["config"]["train_source"]["path"] == str(source)
    plain = tmp_path / "plain"
    assert run("sweep", *SMALL, "--widths", "4,8", "--seeds", "1", "--out", plain,
               "--jobs", "1").exit_code == 0
    assert "train_source" not in load(plain)["config"]
    assert [r["final_loss"] for r in document["results"]] != \
        [r["final_loss"] for r in load(plain)["results"]]
    result = run("sweep", "--out", out, "--resume", "--quiet")
    assert result.exit_code == 0 and "reused 2" in result.output, result.output
    result = run("sweep", *SMALL, "--datasets", "circles", "--train-source", source,
                 "--out", tmp_path / "bad")
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("Error: train_source") and "not of the study's circles" in lines[0]
