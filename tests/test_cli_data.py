"""``robnp data fit-generator`` and ``robnp data quality``."""

import json

import pytest
from click.testing import CliRunner

from robnp.data.generators import load_generator
from robnp_cli.main import cli

TASK = ["--dataset", "blobs", "--noise", "0.2", "--size", "256"]
SMALL = ["--n", "300", "--w1-n", "60"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def one_error_line(result):
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("Error:"), lines
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gen")
    paths = []
    for h in ("0.05", "0.5"):
        path = folder / f"kde{h}.npz"
        result = run("data", "fit-generator", *TASK, "--kind", "kde", "--m", 20, "--seed", 1,
                     "--h", h, "--out", path)
        assert result.exit_code == 0, result.output
        assert "kde m=20 h=" in result.output
        paths.append(path)
    return paths


def test_fit_generator_writes_the_generator(files):
    generator = load_generator(files[0])
    assert generator.kind == "kde" and generator.m == 20 and generator.options.h == 0.05
    assert generator.task.dataset == "blobs" and generator.task.size == 256


def test_quality_prints_a_row_per_rung_and_draws_them(files, tmp_path):
    figure, report = tmp_path / "f.png", tmp_path / "q.json"
    result = run("data", "quality", *files, *SMALL, "--figure", figure, "--json", report)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("generator"))
    rows = lines[header + 2:header + 5]
    assert [row.split()[0] for row in rows] == ["true", "kde", "kde"]
    assert "h=0.05" in rows[1] and "h=0.5" in rows[2]
    reports = json.loads(report.read_text())
    assert reports[0]["exact"]["tv"] == 0
    assert reports[1]["exact"]["tv"] < reports[2]["exact"]["tv"]
    assert figure.stat().st_size > 10000


def test_help_lists_the_group():
    result = run("--help")
    assert "data" in result.output and "controlled quality" in result.output
    result = run("data", "--help")
    assert "fit-generator" in result.output and "quality" in result.output


@pytest.mark.parametrize("args,message", [
    (["--kind", "kde", "--m", 5, "--h", 0], r"h must be a finite number > 0, got 0"),
    (["--kind", "kde", "--m", 5, "--h", -1], r"h must be a finite number > 0"),
    (["--kind", "kde", "--h", 0.1], r"m must be an integer >= 1"),
    (["--kind", "true", "--m", 5], r"m must be None"),
    (["--kind", "gan", "--m", 5], r"unknown generator 'gan'"),
])
def test_fit_generator_bad_input_is_one_line(args, message, tmp_path):
    import re
    line = one_error_line(run("data", "fit-generator", *TASK, *args,
                              "--out", tmp_path / "g.npz"))
    assert re.search(message, line), line


def test_quality_bad_files_are_one_line(files, tmp_path):
    damaged = tmp_path / "d.npz"
    damaged.write_bytes(files[0].read_bytes()[:300])
    assert "generator" in one_error_line(run("data", "quality", damaged, *SMALL))
    other = tmp_path / "o.npz"
    run("data", "fit-generator", "--dataset", "blobs", "--noise", "0.3", "--m", 5,
        "--h", 0.1, "--out", other)
    line = one_error_line(run("data", "quality", files[0], other, *SMALL))
    assert "holds a generator of blobs (noise 0.3" in line


def test_exact_distance_without_a_density_is_one_line(tmp_path):
    path = tmp_path / "z.npz"
    result = run("data", "fit-generator", "--dataset", "blobs", "--noise", 0, "--m", 5,
                 "--h", 0.1, "--out", path)
    assert result.exit_code == 0, result.output
    line = one_error_line(run("data", "quality", path, *SMALL, "--exact", "require"))
    assert "exact class densities" in line and "noise 0 has no density" in line
    result = run("data", "quality", path, *SMALL)
    assert result.exit_code == 0 and " - " in result.output


def test_a_diffusion_file_expands_into_its_step_ladder(tmp_path):
    path = tmp_path / "d.npz"
    result = run("data", "fit-generator", *TASK, "--kind", "diffusion", "--m", 16,
                 "--train-steps", 50, "--width", 8, "--depth", 1, "--out", path)
    assert result.exit_code == 0, result.output
    result = run("data", "quality", path, *SMALL, "--steps", "2,7")
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()
            if line.startswith("diffusion")]
    assert [row[2] for row in rows] == ["steps=2", "steps=7"]
    assert all(row[5] == "-" for row in rows)  # no exact density
    header = next(line.split() for line in result.output.splitlines()
                  if line.startswith("generator"))
    assert header[-2:] == ["TV_b", "floor"]  # from samples instead
    assert all(float(row[-2]) > 0 for row in rows)
    true_row = next(line.split() for line in result.output.splitlines()
                    if line.startswith("true"))
    assert true_row[-2:] == ["-", "-"]
    assert "TV_b: TV after blurring both sides by N(0, 0.1^2 I)" in result.output
    line = one_error_line(run("data", "fit-generator", *TASK, "--kind", "diffusion",
                              "--m", 16, "--steps", 0, "--out", path))
    assert "steps must be an integer >= 1, got 0" in line


def test_quality_adds_accuracy_columns_and_rank_correlations(files, tmp_path):
    report = tmp_path / "q.json"
    result = run("data", "quality", *files, *SMALL, "--accuracy", "--accuracy-examples",
                 2048, "--accuracy-test-n", 300, "--json", report)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(line for line in lines if line.startswith("generator"))
    assert header.split()[-2:] == ["clean", "robust"]
    assert any(line.strip().startswith("TV") and "robust" in line for line in lines)
    assert any(line.startswith("best predictor of robust accuracy:") for line in lines)
    reports = json.loads(report.read_text())
    assert all(r["accuracy"]["examples"] == 2048 for r in reports)
    line = one_error_line(run("data", "quality", *files, *SMALL, "--accuracy",
                              "--accuracy-examples", 0))
    assert "examples must be an integer >= 1, got 0" in line
