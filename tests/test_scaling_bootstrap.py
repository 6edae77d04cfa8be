"""Bootstrap over runs, and the loss-to-accuracy map."""

import numpy as np
import pytest

from robnp.errors import ConfigError, DataError
from robnp.scaling import (
    Approach2Law, Approach3Law, BootstrapConfig, FitConfig, bootstrap_envelope, bootstrap_parametric,
    fit_approach2, fit_approach3, fit_loss_to_accuracy, loss_accuracy_from_table, make_table,
    resample_groups,
)
from robnp.scaling.bootstrap import replicate_rng

TRUTH = Approach2Law(A=8.0, B=20.0, E=0.3, alpha=0.35, beta=0.30, eps_q=0.15, zeta=-0.2)
SMALL = FitConfig(grid="small")


def runs_table(law=TRUTH, qualities=(0.2, 1.0, np.inf), n_sizes=6, seed=0, noise=0.01, accuracy=False):
    """Runs with 6 checkpoints each; checkpoints share a run-level offset (correlated)."""
    rng = np.random.default_rng(seed)
    N, D, Q, run, loss = [], [], [], [], []
    for q in qualities:
        for n in np.geomspace(1e2, 1e5, n_sizes):
            for m in (4, 32):
                offset = noise * rng.standard_normal()       # shared by the run's checkpoints
                for d in np.geomspace(m * n, 20 * m * n, 6):
                    N.append(n), D.append(d), Q.append(q), run.append(f"{n:.0f}-{m}-{q}")
                    loss.append(law.loss(n, d, q) * np.exp(offset + 0.3 * noise * rng.standard_normal()))
    loss = np.array(loss)
    acc = 1.25 - 0.75 * loss + 0.002 * rng.standard_normal(loss.size) if accuracy else None
    return make_table(N, D, loss, quality=Q, run=run, accuracy=acc)


@pytest.fixture(scope="module")
def table():
    return runs_table()


@pytest.fixture(scope="module")
def fit(table):
    return fit_approach2(table, SMALL)


def test_resample_keeps_runs_whole():
    codes = np.repeat(np.arange(7), 5)
    for r in range(20):
        w = resample_groups(codes, replicate_rng(3, r))
        assert w.shape == codes.shape
        for c in range(7):
            assert np.unique(w[codes == c]).size == 1       # all checkpoints share the count
        assert w.sum() == codes.size                           # 7 draws of 5 rows each


def test_replicates_depend_only_on_seed_and_index():
    codes = np.arange(50)
    a = resample_groups(codes, replicate_rng(1, 4))
    assert np.array_equal(a, resample_groups(codes, replicate_rng(1, 4)))
    assert not np.array_equal(a, resample_groups(codes, replicate_rng(1, 5)))
    assert not np.array_equal(a, resample_groups(codes, replicate_rng(2, 4)))


def test_parametric_bootstrap_is_deterministic_and_covers_the_truth(table, fit):
    config = BootstrapConfig(n_boot=40, seed=5)
    one = bootstrap_parametric(table, fit, [1e12, 1e14], config=config, fit_config=SMALL)
    two = bootstrap_parametric(table, fit, [1e12, 1e14], config=config, fit_config=SMALL)
    for name in one.samples:
        np.testing.assert_array_equal(one.samples[name], two.samples[name])
    other = bootstrap_parametric(table, fit, [1e12, 1e14], config=BootstrapConfig(n_boot=40, seed=6),
                                 fit_config=SMALL)
    assert not np.array_equal(one.samples["alpha"], other.samples["alpha"])
    assert one.n_failed == 0 and one.samples["alpha"].shape == (40,)
    assert one.samples["N_star"].shape == (40, 2)
    lo, hi = one.interval("a")
    assert lo < fit.law.a < hi
    assert lo - 0.02 < TRUTH.a < hi + 0.02
    lo_n, hi_n = one.interval("N_star")
    assert np.all(lo_n < hi_n)


def test_bootstrap_over_runs_is_wider_than_over_checkpoints(table, fit):
    """Checkpoints of a run share their noise: treating them as independent understates uncertainty."""
    by_run = bootstrap_parametric(table, fit, [1e12], config=BootstrapConfig(n_boot=40), fit_config=SMALL)
    rows_as_runs = make_table(table.N, table.D, table.loss, quality=table.quality)   # each row its own run
    fit_rows = fit_approach2(rows_as_runs, SMALL)
    by_row = bootstrap_parametric(rows_as_runs, fit_rows, [1e12], config=BootstrapConfig(n_boot=40),
                                  fit_config=SMALL)
    width = lambda b: np.subtract(*b.interval("alpha")[::-1])
    assert width(by_run) > width(by_row)


def test_two_stage_and_approach3_bootstraps(table):
    two = FitConfig(grid="small", quality_fit="two-stage")
    fit2 = fit_approach2(table, two)
    boot2 = bootstrap_parametric(table, fit2, [1e12], config=BootstrapConfig(n_boot=10), fit_config=two)
    assert boot2.n_failed == 0 and "zeta" in boot2.samples
    law3 = Approach3Law(A=8.0, B=float(np.exp(9.0)), E=0.3, Q0=0.02, alpha=0.35, beta=0.3, kappa=0.7, eps_q=0.1)
    t3 = runs_table(law=law3, seed=2)
    fit3 = fit_approach3(t3, SMALL)
    boot3 = bootstrap_parametric(t3, fit3, [1e12], config=BootstrapConfig(n_boot=10), fit_config=SMALL)
    assert boot3.samples["kappa"].shape == (10,)
    assert np.all(np.isfinite(boot3.samples["a"]))


def test_envelope_bootstrap_resamples_curves():
    t = runs_table(qualities=(np.inf,), n_sizes=10)
    boot = bootstrap_envelope(t, [1e10], config=BootstrapConfig(n_boot=30, seed=1))
    assert boot.n_boot == 30
    assert boot.samples["a"].shape[0] + boot.n_failed == 30
    again = bootstrap_envelope(t, [1e10], config=BootstrapConfig(n_boot=30, seed=1))
    np.testing.assert_array_equal(boot.samples["a"], again.samples["a"])


def test_bootstrap_config_is_checked():
    with pytest.raises(ConfigError, match="n_boot must be >= 0, got -1"):
        BootstrapConfig(n_boot=-1)
    with pytest.raises(ConfigError, match=r"level must be in \(0, 1\), got 1.5"):
        BootstrapConfig(level=1.5)
    with pytest.raises(ConfigError, match="seed must be >= 0"):
        BootstrapConfig(seed=-3)


def test_loss_to_accuracy_recovers_a_line():
    loss = np.linspace(0.5, 1.5, 30)
    m = fit_loss_to_accuracy(loss, 1.2575 - 0.7496 * loss)     # the paper's fitted line (App. F.2.2)
    assert m.slope == pytest.approx(-0.7496) and m.intercept == pytest.approx(1.2575)
    assert m.r2 == pytest.approx(1.0)
    np.testing.assert_allclose(m.predict([0.6, 1.0]), 1.2575 - 0.7496 * np.array([0.6, 1.0]))


def test_loss_to_accuracy_uses_each_runs_best_checkpoint():
    t = runs_table(qualities=(np.inf,), n_sizes=4, accuracy=True)
    m = loss_accuracy_from_table(t)
    assert m.n_points == t.n_runs
    assert m.slope == pytest.approx(-0.75, abs=0.02)
    # Make every non-best checkpoint's accuracy absurd: the map must not change.
    best = np.zeros(t.n_rows, dtype=bool)
    for r in np.unique(t.run):
        rows = np.flatnonzero(t.run == r)
        best[rows[np.argmin(t.loss[rows])]] = True
    noisy = make_table(t.N, t.D, t.loss, run=t.run, accuracy=np.where(best, t.accuracy, 99.0))
    assert loss_accuracy_from_table(noisy).slope == pytest.approx(m.slope)


def test_loss_to_accuracy_errors():
    with pytest.raises(DataError, match="at least 3 pairs, got 2"):
        fit_loss_to_accuracy([1, 2], [0.5, 0.4])
    with pytest.raises(DataError, match="at least 2 distinct loss values"):
        fit_loss_to_accuracy([1, 1, 1], [0.5, 0.4, 0.3])
    with pytest.raises(DataError, match="no 'accuracy' column"):
        loss_accuracy_from_table(make_table([1, 2, 3], [1, 2, 3], [1, 2, 3]))
