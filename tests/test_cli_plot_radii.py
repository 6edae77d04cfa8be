"""``robnp plot radii``: writes a non-blank PNG, says how close each attack came, and
refuses bad input in one line."""

import pytest
from click.testing import CliRunner

from robnp_cli.main import cli
from test_cli_plot import _non_blank_png, _one_line_error


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "m.npz"
    result = run("train", "--dataset", "moons", "--seed", 4, "--n-samples", "300",
                 "--max-epochs", "40", "--width", "8", "--out", path)
    assert result.exit_code == 0, result.output
    return path


def test_radii_writes_a_figure(model_file, tmp_path):
    out = tmp_path / "radii.png"
    result = run("plot", "radii", model_file, "--n-points", 30, "--n-eps", 6, "--out", out)
    assert result.exit_code == 0, result.output
    assert "median attack/exact radius" in result.output
    _non_blank_png(out)


@pytest.mark.parametrize("args, needle", [
    (["--out", "x.pdf"], "--out must name a .png"),
    (["--n-eps", "0", "--out", "x.png"], "--n-eps"),
    (["--n-points", "0", "--out", "x.png"], "--n-points"),
    (["--rtol", "2", "--out", "x.png"], "rtol"),
    (["--attacks", "nope", "--out", "x.png"], "nope"),
])
def test_radii_refuses_bad_input_in_one_line(model_file, tmp_path, args, needle):
    _one_line_error(run("plot", "radii", model_file, *args), needle)
