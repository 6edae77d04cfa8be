"""``robnp verify``: the table, the JSON file, and one-line errors with exit 2."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

import robnp
from robnp.verify import verify_radii
from robnp_cli.main import cli


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    X, y = robnp.make_dataset("moons", 300, 0.15, seed=1)
    X_train, _, y_train, _ = robnp.train_test_split(X, y, 0.2)
    model = robnp.MLP(2, (8, 8), 2, seed=1)
    robnp.fit(model, X_train, y_train, max_epochs=100, seed=1)
    path = tmp_path_factory.mktemp("verify") / "moons8.npz"
    robnp.save_model(model, path)
    return path


def test_verify_is_listed_in_the_help():
    result = run("--help")
    assert result.exit_code == 0 and "verify" in result.output


def test_verify_prints_a_table_and_writes_counts_that_match_the_library(model_file, tmp_path):
    out = tmp_path / "verify.json"
    result = run("verify", model_file, "--dataset", "moons", "--seed", 1, "--n-samples", 300,
                 "--eps", "0.05,0.2", "--json", out)
    assert result.exit_code == 0, result.output
    assert "60 test points" in result.output
    # the same test split, regenerated here the study's way
    X, y = robnp.make_dataset("moons", 300, 0.15, seed=1)
    _, X_test, _, y_test = robnp.train_test_split(X, y, 0.2)
    expected = verify_radii(robnp.load_model(model_file), X_test, y_test, [0.05, 0.2], seed=1)
    document = json.loads(out.read_text())
    assert document["n_points"] == 60
    for row, verification in zip(document["results"], expected):
        assert row["robust"] == verification.count("robust")
        assert row["not_robust"] == verification.count("not_robust")
        assert row["undecided"] == 0
        assert row["exact"] == verification.bracket.exact
        line = (f"{row['eps']:>10g}{row['robust']:>8}{row['not_robust']:>6}{0:>7}   "
                f"{row['exact']:.4f} (exact)")
        assert line in result.output
    assert document["results"][0]["robust"] >= document["results"][1]["robust"]


def test_l2_balls_are_verified_too(model_file):
    result = run("verify", model_file, "--dataset", "moons", "--seed", 1, "--n-samples", 300,
                 "--eps", "0.05", "--norm", "l2")
    assert result.exit_code == 0, result.output
    assert ", l2," in result.output and "0.05" in result.output


def test_a_small_budget_prints_the_bracket(trained_model, tmp_path):
    """The conftest model and its split (circles, 600 points, noise 0.1, seed 3)."""
    path, out = tmp_path / "circles32.npz", tmp_path / "rough.json"
    robnp.save_model(trained_model, path)
    result = run("verify", path, "--dataset", "circles", "--seed", 3, "--n-samples", 600,
                 "--noise", 0.1, "--test-fraction", 0.25, "--eps", "0.2", "--budget", 1,
                 "--json", out)
    assert result.exit_code == 0, result.output
    row = json.loads(out.read_text())["results"][0]
    X, y = robnp.make_dataset("circles", 600, 0.1, seed=3)
    _, X_test, _, y_test = robnp.train_test_split(X, y, 0.25)
    expected = verify_radii(trained_model, X_test, y_test, [0.2], budget=1, seed=3)[0]
    assert row["undecided"] == expected.count("undecided") > 0
    assert row["exact"] is None
    assert f"[{row['certified_accuracy']:.4f}, {row['attack_accuracy']:.4f}]" in result.output


@pytest.mark.parametrize("extra,needle", [
    (["--eps", "-0.1"], "--eps"),
    (["--eps", "0.1,x"], "--eps"),
    (["--budget", "0"], "--budget"),
    (["--test-fraction", "1.5"], "test_fraction"),
    (["--dataset", "helix"], "unknown dataset"),
    (["--dataset", "spirals"], "has 2 outputs but dataset 'spirals' has 3 classes"),
    (["--eps", "0.1,1e308"], "eps must keep the ball around the data within the model's "
                             "float32 range"),
])
def test_bad_options_are_one_line_and_exit_2(model_file, extra, needle):
    args = ["verify", model_file, "--dataset", "moons", "--seed", 1, "--n-samples", 300, *extra]
    result = run(*args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and needle in lines[0]


def test_a_model_that_does_not_fit_the_dataset_is_refused(tmp_path):
    three_class = tmp_path / "three.npz"
    robnp.save_model(robnp.MLP(2, (4,), 3, seed=0), three_class)
    one_input = tmp_path / "one.npz"
    robnp.save_model(robnp.MLP(1, (4,), 2, seed=0), one_input)
    for path, needle in ((three_class, "3 outputs"), (one_input, "input_dim"),
                         (tmp_path / "missing.npz", "not found")):
        result = run("verify", path, "--dataset", "moons", "--seed", 0)
        assert result.exit_code == 2, result.output
        assert needle in result.output and len(result.output.strip().splitlines()) == 1


def test_radii_where_every_point_breaks_give_zero_not_an_error(model_file):
    """At 3 every point is broken, so at 6 the counterexamples of 3 decide them all
    before an attack runs: nothing is left to attack."""
    result = run("verify", model_file, "--dataset", "moons", "--seed", 1, "--n-samples", 300,
                 "--eps", "3,6")
    assert result.exit_code == 0, result.output
    assert result.output.count("0.0000 (exact)") == 2


def test_a_model_wrong_on_every_test_point_verifies_to_zero(tmp_path):
    """The output units of a model right on every test point rolled by one (class c's
    logit moves to c + 1): every point is a clean error, so not robust at every radius."""
    X, y = robnp.make_dataset("blobs", 200, 0.05, seed=4)
    X_train, X_test, y_train, y_test = robnp.train_test_split(X, y, 0.2)
    model = robnp.MLP(2, (16,), 3, seed=4)
    robnp.fit(model, X_train, y_train, max_epochs=200, seed=4)
    assert robnp.accuracy(model, X_test, y_test) == 1.0
    model.coefs_[-1][:] = np.roll(model.coefs_[-1], 1, axis=1)
    model.intercepts_[-1][:] = np.roll(model.intercepts_[-1], 1)
    assert robnp.accuracy(model, X_test, y_test) == 0.0
    path, out = tmp_path / "wrong.npz", tmp_path / "wrong.json"
    robnp.save_model(model, path)
    result = run("verify", path, "--dataset", "blobs", "--seed", 4, "--n-samples", 200,
                 "--noise", 0.05, "--eps", "0,0.1", "--json", out)
    assert result.exit_code == 0, result.output
    assert "clean accuracy 0.0000" in result.output
    for row in json.loads(out.read_text())["results"]:
        assert row["not_robust"] == 40 and row["robust"] == row["undecided"] == 0
        assert row["exact"] == 0.0 and row["decided_by"] == {"clean": 40}
