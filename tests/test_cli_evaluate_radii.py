"""``robnp attack --radii``: the minimal perturbations and exact radii, printed and
written to --json and --save-points."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from robnp_cli.main import cli

TINY = ["--n-samples", "300", "--max-epochs", "40", "--width", "8"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "m.npz"
    result = run("train", "--dataset", "moons", "--seed", 4, *TINY, "--out", path)
    assert result.exit_code == 0, result.output
    return path


def test_radii_are_printed_and_written(model_file, tmp_path):
    out, points = tmp_path / "e.json", tmp_path / "p.npz"
    result = run("attack", model_file, "--attacks", "pgd,fab", "--eps", "0.05,0.1",
                 "--no-convergence-check", "--radii", "--json", out, "--save-points", points)
    assert result.exit_code == 0, result.output
    assert "smallest perturbation found per point" in result.output
    assert "exact" in result.output and "verifier calls" in result.output
    document = json.loads(out.read_text())
    radii = document["radii"]
    lower = np.array(radii["exact"]["lower"])
    upper = np.array([np.inf if v is None else v for v in radii["exact"]["upper"]])
    fab = np.array([np.inf if v is None else v for v in radii["attacks"]["fab"]["minimal"]])
    pgd = np.array([np.inf if v is None else v for v in radii["attacks"]["pgd"]["minimal"]])
    assert lower.size == document["n_points"] == fab.size
    assert np.all(lower <= upper) and np.all(fab >= lower) and np.all(pgd >= lower)
    # a point PGD broke at 0.05 has a minimal perturbation of at most 0.05
    assert np.sum(pgd <= 0.05) == document["attacks"]["pgd"]["n_success"][0]
    # the existing numbers are untouched by the option
    plain = run("attack", model_file, "--attacks", "pgd,fab", "--eps", "0.05,0.1",
                "--no-convergence-check", "--json", tmp_path / "plain.json")
    assert plain.exit_code == 0
    assert json.loads((tmp_path / "plain.json").read_text())["attacks"] == document["attacks"]
    saved = np.load(points)
    np.testing.assert_array_equal(saved["radius_lower"], lower)
    np.testing.assert_array_equal(saved["minimal_fab"], fab)
