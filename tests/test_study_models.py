"""A sweep keeps its models: each task's model and the robnp train JSON beside it,
written before the task is committed, so that a stored task always has its model;
attack, verify and plot boundary read the data settings from that JSON."""

import json
import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner

import robnp
from robnp.errors import StoreError
from robnp.study import STORE_NAME, StudyConfig, TaskStore, run_study, task_data
from robnp.study.models import MODELS_DIR, has_model, model_path
from robnp_cli.main import cli

TINY = dict(datasets=("moons",), widths=(4, 6), seeds=(3,), epsilons=(0.05, 0.2),
            n_samples=120, max_epochs=8)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def stored_count(out):
    with sqlite3.connect(out / STORE_NAME) as db:
        return db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    config = StudyConfig(**TINY)
    outcome = run_study(config, out, jobs=1)
    return config, out, outcome


def test_every_task_keeps_its_model_and_the_json_train_writes(study):
    config, out, outcome = study
    rows = {(r["hidden_width"], r["epsilon"]): r for r in outcome.document["results"]}
    for task in config.tasks():
        path = model_path(out, task)
        assert path.parent == out / MODELS_DIR
        assert path.name == f"moons-seed3-w{task.width}.npz"
        model = robnp.load_model(path)
        assert model.layer_sizes == (2, task.width, task.width, 2)
        record = json.loads(path.with_suffix(".json").read_text())
        assert record["format"] == "robnp.train" and record["study_key"] == task.key
        assert {k: record["task"][k] for k in ("dataset", "seed", "noise", "n_samples",
                                               "width")} == \
            {"dataset": "moons", "seed": 3, "noise": task.noise, "n_samples": 120,
             "width": task.width}
        # The kept model is the evaluated one: its clean accuracy on the task's test
        # split is the study's.
        _, X_test, _, y_test = task_data(task)
        assert robnp.accuracy(model, X_test, y_test) == rows[(task.width, 0.05)]["clean_acc"]
        assert record["clean_acc"] == rows[(task.width, 0.05)]["clean_acc"]
        assert record["history"]["epochs"] == rows[(task.width, 0.05)]["epochs"]


def test_attack_and_verify_and_plot_read_the_json_without_data_options(study, tmp_path):
    config, out, outcome = study
    task = config.tasks()[1]
    path = model_path(out, task)
    pgd = {r["epsilon"]: r["pgd_acc"] for r in outcome.document["results"]
           if r["hidden_width"] == task.width}
    result = run("attack", path, "--attacks", "pgd", "--eps", "0.05,0.2",
                 "--no-convergence-check", "--json", tmp_path / "a.json")
    assert result.exit_code == 0, result.output
    assert "moons seed=3" in result.output
    # The sweep's numbers again, on the data the JSON names.
    document = json.loads((tmp_path / "a.json").read_text())
    assert document["attacks"]["pgd"]["robust_acc"] == [pgd[0.05], pgd[0.2]]
    result = run("verify", path, "--eps", "0.05")
    assert result.exit_code == 0, result.output
    assert "moons seed 3" in result.output and "24 test points" in result.output
    result = run("plot", "boundary", path, "--eps", "0.1", "--out", tmp_path / "b.png")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b.png").is_file()


def test_plot_boundary_without_json_still_needs_dataset_and_seed(tmp_path):
    path = tmp_path / "bare.npz"
    robnp.save_model(robnp.MLP(2, (4,), 2, seed=0), path)
    result = run("plot", "boundary", path, "--eps", "0.1", "--out", tmp_path / "b.png")
    assert result.exit_code == 2
    assert "--dataset and --seed needed" in result.output


def test_a_model_written_but_not_committed_is_rewritten_identically_on_resume(tmp_path,
                                                                              monkeypatch):
    out = tmp_path / "out"
    config = StudyConfig(**TINY)
    put = TaskStore.put
    calls = []

    def die_on_second(store, result):
        calls.append(result.key)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed between the model's write and the commit
        return put(store, result)

    monkeypatch.setattr(TaskStore, "put", die_on_second)
    with pytest.raises(KeyboardInterrupt):
        run_study(config, out, jobs=1)
    monkeypatch.undo()
    assert stored_count(out) == 1
    written = {p.name: p.read_bytes() for p in (out / MODELS_DIR).glob("*.npz")}
    assert len(written) == 2  # the second model is there, its task is not stored
    outcome = run_study(config, out, jobs=1, resume=True)
    assert (outcome.n_ran, outcome.n_reused) == (1, 1)
    for name, data in written.items():
        again = robnp.load_model(out / MODELS_DIR / name)
        before = np.load(__import__("io").BytesIO(data))
        assert all(np.array_equal(before[f"coef_{i}"], c) for i, c in enumerate(again.coefs_))


def test_a_stored_task_without_its_model_is_rerun_on_resume(tmp_path):
    out = tmp_path / "out"
    config = StudyConfig(**TINY)
    first = run_study(config, out, jobs=1)
    task = config.tasks()[0]
    model_path(out, task).unlink()
    outcome = run_study(config, out, jobs=1, resume=True)
    assert (outcome.n_ran, outcome.n_reused) == (1, 1)
    assert has_model(out, task)
    assert outcome.document["results"] == first.document["results"]


def test_a_model_of_another_task_does_not_count(tmp_path):
    out = tmp_path / "out"
    config = StudyConfig(**TINY)
    run_study(config, out, jobs=1)
    one, other = config.tasks()
    sidecar = model_path(out, one).with_suffix(".json")
    record = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**record, "study_key": other.key}))
    assert not has_model(out, one) and has_model(out, other)


def test_a_model_that_cannot_be_written_stops_before_its_commit(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / MODELS_DIR).write_text("a file where the models directory goes")
    with pytest.raises(StoreError, match="cannot write the model of task moons seed=3"):
        run_study(StudyConfig(**TINY), out, jobs=1)
    with sqlite3.connect(out / STORE_NAME) as db:
        assert db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] == 0


def test_results_without_a_kept_model_read_back_from_an_earlier_store():
    from robnp.study import TaskResult

    record = {"attack": "pgd", "norm": "linf", "epsilon": 0.1, "robust_acc": 0.5,
              "n_success": 1, "n_points": 2}
    text = json.dumps({"key": "k", "model": {}, "evaluations": [record], "epochs": 1,
                       "final_loss": 0.5, "clean_acc": 1.0, "seconds": 0.1})
    result = TaskResult.from_json(text)
    assert result.trained is None and result.weights is None
    assert json.loads(result.to_json()) == json.loads(text)
