"""``robnp scaling fit`` end to end, with click's CliRunner."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from robnp.scaling import Approach2Law
from robnp_cli.main import cli

LAW = Approach2Law(A=8.0, B=20.0, E=0.3, alpha=0.35, beta=0.30, eps_q=0.15, zeta=-0.2)
FAST = ["--grid", "small", "--n-boot", "8"]


def write_runs(path, qualities=(0.2, 1.0, np.inf), accuracy=True, seed=0):
    """Runs with checkpoints from the start of training, as a CSV."""
    rng = np.random.default_rng(seed)
    lines = ["N,D,loss,quality,run" + (",accuracy" if accuracy else "")]
    for q in qualities:
        for n in np.geomspace(1e2, 1e5, 8):
            for m in (8, 64):
                for d in np.geomspace(n, 20 * m * n, 8):
                    loss = LAW.loss(n, d, q) * np.exp(0.01 * rng.standard_normal())
                    acc = f",{1.25 - 0.75 * loss:.6f}" if accuracy else ""
                    lines.append(f"{n:.6g},{d:.6g},{loss:.8g},{q},{n:.0f}-{m}-{q}{acc}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def table_csv(tmp_path_factory):
    return write_runs(tmp_path_factory.mktemp("data") / "runs.csv")


def invoke(*args):
    return CliRunner().invoke(cli, ["scaling", "fit", *map(str, args)])


def test_fit_all_writes_json_and_figures(table_csv, tmp_path):
    out = tmp_path / "out"
    result = invoke(table_csv, *FAST, "--budget", "1e12", "--budget", "1e14", "--out", out)
    assert result.exit_code == 0, result.output
    text = result.output
    for heading in ("Approach 1 (envelope", "Approach 2 (parametric", "Approach 3 (data-quality",
                    "Comparison (as the paper's Table 3) at 1e+12 FLOPs", "cross-check (variable projection)",
                    "Loss to accuracy"):
        assert heading in text
    assert "converged" in text and "[" in text            # intervals printed
    doc = json.loads((out / "scaling_fit.json").read_text())
    assert set(doc["approach2"]["params"]) == {"A", "B", "E", "alpha", "beta", "eps_q", "zeta"}
    assert set(doc["approach3"]["params"]) == {"A", "B", "E", "Q0", "alpha", "beta", "kappa", "eps_q"}
    assert doc["budgets"] == [1e12, 1e14]
    assert [row["approach"] for row in doc["comparison"]] == [1, 2, 3]
    assert doc["approach2"]["optimal"][0]["intervals"]["N_star"] is not None
    assert doc["quality"] == 1.0 and doc["table"]["quality_levels"][-1] == "inf"
    for name in ("fig1_best_loss_vs_flops.png", "fig3_envelope.png", "fig4_isoloss.png",
                 "fig5_fit_vs_data_approach2.png", "fig5_fit_vs_data_approach3.png", "fig7_overhead.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert not [p for p in out.iterdir() if p.name.startswith(".")]   # no temporaries left


def test_json_on_stdout(table_csv, tmp_path):
    result = CliRunner().invoke(cli, ["scaling", "fit", str(table_csv), "--approach", "2", *FAST,
                                      "--json", "--no-plots", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    p = doc["approach2"]["params"]
    assert p["alpha"] == pytest.approx(LAW.alpha, rel=0.05) and p["beta"] == pytest.approx(LAW.beta, rel=0.05)
    assert doc["approach2"]["a"] == pytest.approx(p["beta"] / (p["alpha"] + p["beta"]))
    assert doc["approach2"]["converged"] is True
    assert doc["approach1"] is None and doc["approach3"] is None
    assert doc["crosscheck"]["agreement"] and doc["approach2"]["bootstrap"]["n_boot"] == 8
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["scaling_fit.json"]


def test_same_seed_same_numbers(table_csv, tmp_path):
    args = ["--approach", "2", "--grid", "small", "--n-boot", "4", "--no-crosscheck", "--json", "--no-plots",
            "--seed", "3"]
    one = invoke(table_csv, *args, "--out", tmp_path / "a")
    two = invoke(table_csv, *args, "--out", tmp_path / "b")
    assert one.exit_code == two.exit_code == 0
    assert json.loads(one.stdout)["approach2"] == json.loads(two.stdout)["approach2"]


def test_two_stage_option(table_csv, tmp_path):
    result = invoke(table_csv, "--approach", "2", *FAST, "--quality-fit", "two-stage", "--base-quality", "inf",
                    "--json", "--no-plots", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["approach2"]["quality_fit"] == "two-stage" and doc["approach2"]["base_quality"] == "inf"
    assert [c["stage"] for c in doc["approach2"]["convergence"]] == ["base", "quality"]


def assert_one_line_error(result, message):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and message in lines[0], result.output


def test_errors_are_one_line_with_exit_code_2(table_csv, tmp_path):
    (tmp_path / "nocol.csv").write_text("N,D\n1,2\n")
    (tmp_path / "neg.csv").write_text("N,D,loss\n1,2,3\n-1,2,3\n")
    (tmp_path / "nan.csv").write_text("N,D,loss,flops\n1,2,3,12\n1,3,nan,18\n")
    (tmp_path / "zeroflops.csv").write_text("N,D,loss,flops\n1,2,3,12\n1,3,2,0\n")
    (tmp_path / "tiny.csv").write_text("N,D,loss\n10,100,2\n20,100,1.8\n10,200,1.7\n")
    (tmp_path / "afile").write_text("")
    cases = [
        ([tmp_path / "missing.csv"], "no such file"),
        ([tmp_path / "nocol.csv"], "missing required column(s) 'loss'"),
        ([tmp_path / "neg.csv"], "column 'N': row 2 has value -1.0"),
        ([tmp_path / "nan.csv"], "column 'loss': row 2 is NaN"),
        ([tmp_path / "zeroflops.csv"], "column 'flops': row 2 has value 0.0"),
        ([tmp_path / "tiny.csv", "--approach", "2"], "needs at least 6 points; the table has 3"),
        ([tmp_path / "tiny.csv", "--approach", "1"], "Approach 1 needs at least 2 training curves"),
        ([tmp_path / "tiny.csv", "--approach", "3"], "Approach 3 needs at least 2 distinct finite quality"),
        ([tmp_path / "tiny.csv"], "no approach could be fitted"),
        ([table_csv, "--flops-per-nd", "0"], "flops_per_nd must be finite and > 0, got 0.0"),
        ([table_csv, "--budget", "-5"], "FLOPs budget must be finite and > 0, got -5.0"),
        ([table_csv, "--budget", "nan"], "FLOPs budget must be finite and > 0"),
        ([table_csv, "--quality", "0"], "must be > 0 (inf allowed)"),
        ([table_csv, "--approach", "4"], "'4' is not one of"),
        ([table_csv, "--n-boot", "-1"], "n_boot must be >= 0, got -1"),
        ([table_csv, "--level", "2"], "level must be in (0, 1)"),
        ([table_csv, "--base-quality", "1"], "base_quality is the first stage of "
                                             "quality_fit='two-stage'"),
        ([table_csv, "--approach", "3", "--quality-fit", "two-stage"],
         "quality_fit='two-stage' is a setting of Approach 2"),
        ([table_csv, "--out", tmp_path / "afile" / "sub"], "cannot create output directory"),
    ]
    # Options given by a case come last, so they override these defaults.
    common = ["--no-plots", "--grid", "small", "--n-boot", "0", "--out", tmp_path / "out"]
    for args, message in cases:
        assert_one_line_error(invoke(*common, *args), message)
    assert not (tmp_path / "out").exists()  # a refused table leaves no folder behind


def test_help_lists_the_command():
    result = CliRunner().invoke(cli, ["scaling", "--help"])
    assert result.exit_code == 0 and "fit" in result.output
    result = CliRunner().invoke(cli, ["scaling", "fit", "--help"])
    assert "--flops-per-nd" in result.output and "--budget" in result.output
