"""Progress of attack and verify: the library reports work done, the CLI shows the
sweep's bar on a terminal once a run has lasted DELAY_SECONDS, log lines elsewhere,
and nothing at all for a short run."""

import numpy as np
import pytest
from click.testing import CliRunner

import robnp
from robnp.verify import verify_radii
from robnp_cli import progress as progress_module
from robnp_cli.main import cli
from robnp_cli.progress import DelayedProgress


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    X, y = robnp.make_dataset("moons", 300, 0.15, seed=2)
    X_train, X_test, y_train, y_test = robnp.train_test_split(X, y, 0.2)
    model = robnp.MLP(2, (16, 16), 2, seed=2)
    robnp.fit(model, X_train, y_train, max_epochs=60, seed=2)
    path = tmp_path_factory.mktemp("m") / "m.npz"
    robnp.save_model(model, path)
    return model, X_test, y_test, path


def calls_of(fn):
    seen = []
    out = fn(lambda done, total: seen.append((done, total)))
    return out, seen


@pytest.mark.parametrize("cascade,check", [(False, False), (True, False), (False, True)])
def test_evaluate_reports_monotone_work_up_to_its_total(trained, cascade, check):
    model, X, y, _ = trained
    run = lambda progress: robnp.evaluate(model, X, y, (0.05, 0.1, 0.2),
                                          ("fgsm", "pgd", "square"), seed=1,
                                          cascade=cascade, check_convergence=check,
                                          progress=progress)
    evaluation, seen = calls_of(run)
    plain = run(None)
    assert len(seen) >= 3
    totals = {total for _, total in seen}
    assert len(totals) == 1
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[0] > 0 and done[-1] == totals.pop()
    for name, result in plain.attacks.items():  # the callback changes nothing
        np.testing.assert_array_equal(result.adversarial, evaluation.attacks[name].adversarial)
    assert plain.warnings == evaluation.warnings


def test_verify_radii_reports_decided_pairs_up_to_their_total(trained):
    model, X, y, _ = trained
    run = lambda progress: verify_radii(model, X, y, (0.02, 0.1, 0.3), budget=64, seed=0,
                                        progress=progress)
    results, seen = calls_of(run)
    plain = run(None)
    n = X.shape[0]
    assert {total for _, total in seen} == {3 * n}
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[-1] == 3 * n
    assert {n, 2 * n, 3 * n} <= set(done)  # after each radius
    for a, b in zip(results, plain):
        np.testing.assert_array_equal(a.verdict, b.verdict)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.mark.parametrize("tty", [True, False])
def test_nothing_before_the_delay_then_a_bar_or_log_lines(monkeypatch, capsys, tty):
    monkeypatch.setattr(progress_module, "is_terminal", lambda: tty)
    clock = Clock()
    bar = DelayedProgress("verify", clock=clock)
    clock.now = progress_module.DELAY_SECONDS - 0.5
    bar(5, 10)
    assert capsys.readouterr().err == ""
    clock.now = progress_module.DELAY_SECONDS + 1
    bar(5, 10)
    clock.now += 1
    bar(6, 10)
    bar.close()
    err = capsys.readouterr().err
    if tty:
        assert err.count("\rverify [") == 2 and "60%" in err and err.endswith("\n")
        assert "ETA 3s" in err  # 4 s for 6 of 10: 2.7 s left
    else:
        # One log line: the next may come only LOG_SECONDS later.
        assert err == "verify: 50% done after 4s, ETA 4s\n"


@pytest.mark.parametrize("command", [
    ["attack", "--eps", "0.1", "--attacks", "fgsm,pgd"],
    ["verify", "--eps", "0.1", "--budget", "16"],
])
def test_a_short_run_prints_what_it_printed_before(trained, monkeypatch, command):
    _, _, _, path = trained
    args = [command[0], str(path), "--dataset", "moons", "--seed", "2", "--n-samples", "300",
            *command[1:]]
    quiet = CliRunner().invoke(cli, args)
    assert quiet.exit_code == 0, quiet.output
    assert "\r" not in quiet.output and "done after" not in quiet.output
    monkeypatch.setattr(progress_module, "DELAY_SECONDS", 0.0)
    monkeypatch.setattr(progress_module, "is_terminal", lambda: True)
    shown = CliRunner().invoke(cli, args)
    assert shown.exit_code == 0, shown.output
    assert f"\r{command[0]} [" in shown.output.replace("\033[K", "")
    assert shown.output.replace("\n", "").endswith(
        quiet.output.replace("\n", "")[-40:])  # the report itself is unchanged
