"""robnp plot: each command writes a non-blank PNG and refuses bad input in one line."""

import numpy as np
import pytest
from click.testing import CliRunner

import robnp
from robnp_cli.main import cli


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _one_line_error(result, needle):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line]
    assert len(lines) == 1 and needle in lines[0], result.output


def _non_blank_png(path):
    from matplotlib.image import imread

    image = imread(str(path))
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200
    rgb = image[..., :3]
    # Not one flat colour: a real figure has many distinct pixel values, white
    # background included.
    assert rgb.std() > 0.05
    assert len(np.unique(rgb.reshape(-1, 3).round(2), axis=0)) > 20


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    X, y = robnp.make_dataset("moons", 200, 0.15, seed=5)
    X_train, _, y_train, _ = robnp.train_test_split(X, y, 0.2)
    model = robnp.MLP(2, (16, 16), 2, seed=5)
    robnp.fit(model, X_train, y_train, max_epochs=60, seed=5)
    path = tmp_path_factory.mktemp("model") / "moons.npz"
    robnp.save_model(model, str(path))
    return path


def test_boundary_writes_a_figure(model_file, tmp_path):
    out = tmp_path / "boundary.png"
    result = run("plot", "boundary", model_file, "--dataset", "moons", "--seed", 5,
                 "--n-samples", 200, "--eps", 0.2, "--out", out)
    assert result.exit_code == 0, result.output
    _non_blank_png(out)


@pytest.mark.parametrize("args,needle", [
    (["--eps", "0.2", "--out", "figure.jpg"], "--out must name a .png file"),
    (["--eps", "-1", "--out", "f.png"], "--eps must be >= 0"),
    (["--eps", "0.2", "--out", "f.png", "--noise", "0"], "noise must be a finite number > 0"),
])
def test_boundary_refuses_bad_input_in_one_line(model_file, tmp_path, args, needle):
    _one_line_error(run("plot", "boundary", model_file, "--dataset", "moons", "--seed", 5,
                        "--n-samples", 200, *args), needle)


def test_boundary_refuses_a_model_of_more_inputs(tmp_path):
    path = tmp_path / "wide.npz"
    robnp.save_model(robnp.MLP(3, (4,), 2, seed=0), str(path))
    _one_line_error(run("plot", "boundary", path, "--dataset", "moons", "--seed", 1,
                        "--eps", 0.1, "--out", tmp_path / "b.png"), "needs a 2-D model")


def test_robustness_writes_a_figure_from_a_sweep_with_analyses(tmp_path):
    out_dir = tmp_path / "study"
    result = run("sweep", "--datasets", "circles,moons", "--widths", "4,8", "--seeds", "1",
                 "--epsilons", "0.05,0.3", "--n-samples", 200, "--max-epochs", 20,
                 "--lr", 0.02, "--analyses", "exact,ceiling,bayes", "--jobs", 1, "--quiet",
                 "--out", out_dir)
    assert result.exit_code == 0, result.output
    assert "What the data allows" in result.output and "Invalid PGD" in result.output
    out = tmp_path / "robustness.png"
    result = run("plot", "robustness", out_dir, "--population-size", 200, "--out", out)
    assert result.exit_code == 0, result.output
    _non_blank_png(out)


def test_robustness_refuses_bad_input_in_one_line(tmp_path):
    _one_line_error(run("plot", "robustness", tmp_path / "none", "--out", tmp_path / "r.png"),
                    "does not exist")
    _one_line_error(run("plot", "robustness", tmp_path, "--population-size", 1,
                        "--out", tmp_path / "r.png"), "--population-size must be")


def test_attack_truth_prints_the_bracket_and_the_bayes_rows(model_file):
    result = run("attack", model_file, "--dataset", "moons", "--seed", 5, "--n-samples", 200,
                 "--noise", 0.15, "--eps", "0.1,0.3", "--no-convergence-check", "--truth")
    assert result.exit_code == 0, result.output
    rows = {line[:16].strip(): line[16:].split() for line in result.output.splitlines()
            if line.startswith("  ") and not line.startswith("  (")}
    pgd = [float(v) for v in rows["PGD"][:2]]
    certified = [float(v) for v in rows["certified"][:2]]
    assert all(c <= p for c, p in zip(certified, pgd))
    for key in ("exact", "Bayes clf", "invalid PGD"):
        assert key in rows
    # Without the flag the table is as it was.
    plain = run("attack", model_file, "--dataset", "moons", "--seed", 5, "--n-samples", 200,
                "--noise", 0.15, "--eps", "0.1,0.3", "--no-convergence-check")
    assert "certified" not in plain.output and "Bayes" not in plain.output
