"""The gradcheck command and the CLI's error contract."""

from click.testing import CliRunner

from robnp_cli.main import cli


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_version_and_help():
    import robnp

    result = run("--version")
    assert result.exit_code == 0 and robnp.__version__ in result.output
    result = run("--help")
    assert result.exit_code == 0
    for command in ("sweep", "report", "validate", "gradcheck", "scaling"):
        assert command in result.output


def test_gradcheck_prints_every_block_and_passes():
    result = run("gradcheck", "--hidden", "5,4", "--samples", "6")
    assert result.exit_code == 0, result.output
    for block in ("W1", "b1", "W2", "b2", "W3", "b3", "input"):
        assert f"\n  {block} " in result.output
    assert "PASSED" in result.output


def test_gradcheck_says_where_the_check_was_vacuous():
    import numpy as np

    from robnp.gradcheck import check_model_gradients

    result = run("gradcheck", "--hidden", "1,1,1", "--samples", "1")
    assert result.exit_code == 0, result.output
    vacuous = [line.split()[0] for line in result.output.splitlines() if line.endswith("vacuous")]
    assert vacuous and "note: " + ", ".join(vacuous) + ": both gradients exactly 0" in result.output
    healthy = run("gradcheck", "--hidden", "5,4", "--samples", "6")
    assert "vacuous" not in healthy.output
    # In the library: a block is vacuous exactly when both gradients are zero.
    import robnp

    model = robnp.MLP(2, (3,), 2, dtype=np.float64, seed=0)
    model.intercepts_[0][:] = -100.0  # every hidden unit dead
    report = check_model_gradients(model, np.zeros((4, 2)), np.array([0, 1, 0, 1]))
    assert report.vacuous == ("W1", "b1", "W2", "input") and report.passed


def test_gradcheck_fails_above_tolerance():
    result = run("gradcheck", "--hidden", "5", "--samples", "4", "--tol", "1e-14")
    assert result.exit_code == 1
    assert "FAILED" in result.output


def test_bad_input_is_one_line_and_exit_2():
    for args, needle in ((["gradcheck", "--hidden", "0"], "layer sizes"),
                         (["gradcheck", "--hidden", "a,b"], "--hidden"),
                         (["gradcheck", "--samples", "0"], "n_samples"),
                         (["nosuch"], "No such command")):
        result = run(*args)
        assert result.exit_code == 2, (args, result.output)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error:") and needle in lines[0], lines
        assert "Traceback" not in result.output


def test_bare_command_prints_help():
    for args, needle in (([], "robnp: adversarial robustness"), (["scaling"], "Scaling laws")):
        result = run(*args)
        assert result.exit_code == 0, result.output
        assert result.output.startswith("Usage: ") and needle in result.output
        assert "Commands:" in result.output and "Error" not in result.output
    assert "  sweep " in run().output
