"""End-to-end specification of ``robnp train``, ``robnp attack``, ``robnp sweep
--attacks`` and the help that needs no compiler."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from robnp_cli.main import cli

TINY = ["--n-samples", "300", "--max-epochs", "40", "--width", "8"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def one_error_line(result):
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("Error:"), lines
    return lines[0]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "m.npz"
    result = run("train", "--dataset", "moons", "--seed", 4, *TINY, "--out", path)
    assert result.exit_code == 0, result.output
    return path


def test_train_writes_the_model_and_its_history(model_file):
    import robnp

    model = robnp.load_model(model_file)
    assert model.layer_sizes == (2, 8, 8, 2)
    meta = json.loads(model_file.with_suffix(".json").read_text())
    assert meta["task"]["dataset"] == "moons" and meta["task"]["seed"] == 4
    assert meta["task"]["train"]["max_epochs"] == 40
    assert len(meta["history"]["loss"]) == meta["history"]["epochs"] <= 40


def test_attack_prints_a_table_and_writes_json(model_file, tmp_path):
    import robnp
    from robnp.study import StudyConfig, task_data

    out = tmp_path / "e.json"
    result = run("attack", model_file, "--attacks", "fgsm,pgd", "--eps", "0,0.1",
                 "--option", "pgd.steps=20", "--json", out)
    assert result.exit_code == 0, result.output
    assert "worst case" in result.output and "PGD" in result.output
    saved = json.loads(out.read_text())
    assert saved["data"]["dataset"] == "moons" and saved["data"]["n_samples"] == 300
    assert saved["attacks"]["pgd"]["options"]["steps"] == 20
    # The numbers are those of the library on the same test split.
    config = StudyConfig(datasets=("moons",), seeds=(4,), widths=(8,), n_samples=300)
    _, X_test, _, y_test = task_data(config.tasks()[0])
    model = robnp.load_model(model_file)
    expected = robnp.robust_accuracy(model, X_test, y_test, "pgd", eps=[0, 0.1], steps=20)
    assert saved["attacks"]["pgd"]["robust_acc"] == list(expected.values())


@pytest.mark.parametrize("args,needle", [
    (["--attacks", "fgsm,bogus"], "unknown attack 'bogus'"),
    (["--option", "pgd.bogus=1"], "unknown option 'bogus' for attack 'pgd'"),
    (["--option", "nonsense"], "ATTACK.OPTION=VALUE"),
    (["--eps", "0.1,nan"], "eps must be a finite number >= 0"),
    (["--eps", "-0.1"], "eps must be a finite number >= 0"),
    (["--input-dim", "3"], "takes 2 input features"),
    (["--dataset", "nowhere"], "unknown dataset 'nowhere'"),
    (["--attacks", "fgsm,apgd-dlr"], "loss 'dlr' needs at least 3 classes, the model has 2"),
    (["--eps", "1e308"], "eps must keep the ball around the data within the model's float32 "
                         "range (max|X| + 2 eps <= 3.403e+38"),
    (["--attacks", "square", "--option", "square.n_queries=0"],
     "n_queries must be an integer >= 1, got 0"),
    (["--attacks", "apgd-ce", "--option", "apgd-ce.n_iter=0"], "n_iter must be an integer >= 1"),
    (["--attacks", "fab", "--option", "fab.n_iter=0"], "n_iter must be an integer >= 1"),
])
def test_bad_attack_input_is_one_line_and_exit_2(model_file, args, needle):
    assert needle in one_error_line(run("attack", model_file, *args))


def test_attack_on_a_missing_model_is_one_line(tmp_path):
    assert "model file not found" in one_error_line(run("attack", tmp_path / "none.npz"))


def test_sweep_runs_the_attacks_it_is_given_with_options_from_the_config(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[attacks.fgsm]\n[attacks.pgd]\nrandom-start = true\n')
    out = tmp_path / "out"
    result = run("sweep", "--config", config, "--datasets", "moons", "--widths", "4",
                 "--seeds", "0", "--n-samples", "200", "--max-epochs", "5",
                 "--epsilons", "0.1", "--jobs", "1", "--out", out, "-q")
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "results.json").read_text())
    assert doc["config"]["attacks"] == {"fgsm": {}, "pgd": {"random_start": True}}
    assert {"fgsm_acc", "pgd_acc"} <= set(doc["results"][0])
    only = run("sweep", "--attacks", "fgsm", "--datasets", "moons", "--widths", "4",
               "--seeds", "0", "--n-samples", "200", "--max-epochs", "5", "--epsilons", "0.1",
               "--jobs", "1", "--out", tmp_path / "only", "-q")
    assert only.exit_code == 0, only.output
    row = json.loads((tmp_path / "only" / "results.json").read_text())["results"][0]
    assert "fgsm_acc" in row and "pgd_acc" not in row


@pytest.mark.parametrize("toml,args,needle", [
    ("", ["--attacks", "fgsm,zap"], "unknown attack 'zap'"),
    ("[attacks.pgd]\nsteps = 20\n", [], "set PGD's steps with pgd-steps"),
    ("[attacks.pgd]\nwhat = 1\n", [], "unknown option 'what' for attack 'pgd'"),
    ("[attacks.pgd]\nloss = 'cw_margin'\n", ["--attacks", "fgsm"], "that --attacks does not run"),
    ("", ["--attacks", "fgsm,fgsm"], "duplicate"),
])
def test_bad_attack_settings_in_a_sweep(tmp_path, toml, args, needle):
    config = tmp_path / "c.toml"
    config.write_text(toml)
    result = run("sweep", "--config", config, *args, "--out", tmp_path / "never")
    assert needle in one_error_line(result)
    assert not (tmp_path / "never" / "tasks.sqlite").exists()


def test_help_lists_every_command_without_importing_numba():
    code = ("import sys\nfrom robnp_cli.main import cli\n"
            "try:\n    cli.main(['--help'], prog_name='robnp')\nexcept SystemExit:\n    pass\n"
            "print('numba' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("False"), out.stdout
    for command in ("sweep", "report", "validate", "train", "attack", "verify", "gradcheck",
                    "scaling"):
        assert f"  {command} " in out.stdout


# -- what a value given, a damaged side file or an existing output must never do --------

def test_a_width_given_is_used_or_refused_never_replaced(tmp_path):
    message = one_error_line(run("train", "--width", 0, "--n-samples", 200, "--max-epochs", 2,
                                 "--out", tmp_path / "w.npz"))
    assert "width" in message and "0" in message
    assert not (tmp_path / "w.npz").exists()


def test_a_damaged_side_file_is_an_error_naming_it(model_file, tmp_path):
    import shutil

    for text in ("{not json", "{}", '{"format": "robnp.train"}', "[1, 2]"):
        copy = tmp_path / "copy.npz"
        shutil.copy(model_file, copy)
        (tmp_path / "copy.json").write_text(text)
        for command in ("attack", "verify"):
            message = one_error_line(run(command, copy, "--eps", "0.1"))
            assert "copy.json" in message, (command, text, message)


def test_the_side_file_settings_are_used_by_attack_and_verify(model_file):
    import robnp
    from robnp.study import StudyConfig, task_data

    config = StudyConfig(datasets=("moons",), seeds=(4,), widths=(8,), n_samples=300)
    _, X_test, _, y_test = task_data(config.tasks()[0])
    clean = robnp.accuracy(robnp.load_model(model_file), X_test, y_test)
    for command in ("attack", "verify"):
        result = run(command, model_file, "--eps", "0.05")
        assert result.exit_code == 0, result.output
        assert f"clean accuracy {clean:.4f}" in result.output, (command, result.output)


def test_verify_without_a_side_file_needs_the_dataset_and_seed(model_file, tmp_path):
    import shutil

    bare = tmp_path / "bare.npz"
    shutil.copy(model_file, bare)
    message = one_error_line(run("verify", bare))
    assert "--dataset and --seed" in message
    assert one_error_line(run("verify", bare, "--dataset", "moons")).count("--seed") == 1


def test_train_refuses_to_overwrite_without_force_and_a_wrong_suffix(tmp_path):
    out = tmp_path / "m.npz"
    args = ["train", "--n-samples", 200, "--max-epochs", 2, "--width", 4, "--out", out]
    assert run(*args).exit_code == 0
    before = out.read_bytes()
    message = one_error_line(run(*args[:-2], "--seed", 9, "--out", out))
    assert "already exist" in message and "--force" in message
    assert out.read_bytes() == before
    forced = run(*args[:-2], "--seed", 9, "--out", out, "--force")
    assert forced.exit_code == 0, forced.output
    assert out.read_bytes() != before
    assert ".npz" in one_error_line(run(*args[:-2], "--out", tmp_path / "t3.txt"))
    assert not list(tmp_path.glob("t3*"))
    assert run(*args[:-2], "--out", tmp_path / "plain").exit_code == 0
    assert (tmp_path / "plain.npz").exists() and (tmp_path / "plain.json").exists()


@pytest.mark.parametrize("command", ["attack", "verify"])
def test_an_unwritable_json_path_is_refused_before_any_work(model_file, command):
    message = one_error_line(run(command, model_file, "--json", "/nonexistent/x.json"))
    assert "/nonexistent" in message and "does not exist" in message


def test_a_class_count_that_does_not_apply_is_refused(model_file, tmp_path):
    assert "always has 2 classes" in one_error_line(run("attack", model_file, "--n-classes", 5))
    assert "always has 2 classes" in one_error_line(
        run("train", "--n-classes", 5, "--out", tmp_path / "c.npz"))


def _default_sigint():
    """Ctrl-C's default action in the child, whatever this process inherited (a shell
    starts background jobs with SIGINT ignored, and children keep that)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_says_interrupted_and_exits_130(tmp_path):
    """A real SIGINT to a running ``robnp train``: no click "Aborted.", exit 130."""
    import signal
    import time

    out = tmp_path / "long.npz"
    process = subprocess.Popen(
        [sys.executable, "-m", "robnp_cli.main", "train", "--width", "256",
         "--max-epochs", "100000", "--patience", "0", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_default_sigint)
    time.sleep(4.0)  # imports and the first compiled epochs: the signal lands in training
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert stderr.decode().strip().splitlines()[-1] == "Interrupted."
    assert not out.exists()


def test_save_points_writes_every_attack_point_with_its_truth(model_file, tmp_path):
    import numpy as np

    import robnp
    from robnp.data import bayes

    out = tmp_path / "points.npz"
    result = run("attack", model_file, "--attacks", "fgsm,pgd", "--eps", "0.05,0.2",
                 "--save-points", out)
    assert result.exit_code == 0, result.output
    with np.load(out, allow_pickle=False) as saved:
        data = {key: saved[key] for key in saved.files}
    assert list(data["attacks"]) == ["fgsm", "pgd"] and list(data["eps"]) == [0.05, 0.2]
    n, d = data["X"].shape
    assert data["points"].shape == (2, 2, n, d) and data["success"].shape == (2, 2, n)
    model = robnp.load_model(model_file)
    for a in range(2):
        for k, eps in enumerate(data["eps"]):
            points = data["points"][a, k]
            assert np.abs(points - data["X"]).max() <= eps + 1e-6
            np.testing.assert_array_equal(model.predict(points) != data["y"],
                                          data["success"][a, k])
            np.testing.assert_array_equal(
                data["bayes_label"][a, k],
                bayes.bayes_label("moons", points, n_samples=300, noise=0.15))
    # The robust accuracies printed are those of the saved successes.
    for name, row in zip(("FGSM", "PGD"), 1 - data["success"].mean(axis=2)):
        line = next(line for line in result.output.splitlines() if line.strip().startswith(name))
        assert [float(v) for v in line.split()[1:]] == pytest.approx(list(row), abs=5e-5)
    assert "ends in .npz" in one_error_line(run("attack", model_file, "--save-points",
                                                tmp_path / "p.txt"))


def test_train_on_a_generator_file_records_it(tmp_path):
    source = tmp_path / "kde.npz"
    assert run("data", "fit-generator", "--dataset", "moons", "--m", 40, "--h", 0.05,
               "--out", source).exit_code == 0
    path = tmp_path / "m.npz"
    result = run("train", "--dataset", "moons", *TINY, "--train-source", source, "--out", path)
    assert result.exit_code == 0, result.output
    assert "tested on the true distribution" in result.output
    record = json.loads(path.with_suffix(".json").read_text())
    source_record = record["task"]["train_source"]
    assert source_record["path"] == str(source) and len(source_record["sha256"]) == 64
    assert source_record["generator"]["options"] == {"h": 0.05}
    line = one_error_line(run("train", "--dataset", "circles", *TINY, "--train-source", source,
                              "--out", tmp_path / "c.npz"))
    assert "holds a generator of moons" in line
