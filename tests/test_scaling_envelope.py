"""Approach 1: the envelope of training curves and its bias safeguards."""

import numpy as np
import pytest

from robnp.errors import ConfigError, DataError
from robnp.scaling import Approach2Law, EnvelopeConfig, fit_envelope, fit_power_law, make_table
from robnp.scaling.envelope import EDGE, KEPT, NOT_COVERED, NOT_IMPROVING

LAW = Approach2Law(A=8.0, B=20.0, E=0.3, alpha=0.35, beta=0.30)
K = 6.0


def training_runs(law=LAW, n_sizes=10, multiples=(2, 8, 32, 128), n_ckpt=12, noise=0.005, seed=0):
    """Runs with checkpoints: for each N, runs to D_max = 20 m N, checkpoints from D_max / 30."""
    rng = np.random.default_rng(seed)
    N, D, run = [], [], []
    for n in np.geomspace(1e2, 1e5, n_sizes):
        for m in multiples:
            d_max = 20 * m * n
            for d in np.geomspace(d_max / 30, d_max, n_ckpt):
                N.append(n), D.append(d), run.append(f"N{n:.0f}-m{m}")
    N, D = np.array(N), np.array(D)
    loss = law.loss(N, D) * np.exp(noise * rng.standard_normal(N.size))
    return make_table(N, D, loss, run=run, flops_per_nd=K)


@pytest.fixture(scope="module")
def runs():
    return training_runs()


def test_recovers_exponents_with_safeguards(runs):
    env = fit_envelope(runs)
    assert env.a == pytest.approx(LAW.a, abs=0.03)
    assert env.a + env.b == pytest.approx(1.0, abs=1e-10)    # N D = F / k along every run
    assert env.L_star.exponent < 0


def test_safeguards_reduce_the_bias(runs):
    guarded = fit_envelope(runs)
    naive = fit_envelope(runs, config=EnvelopeConfig(censor_edges=False, weighting="uniform"))
    assert abs(guarded.a - LAW.a) < abs(naive.a - LAW.a)
    assert np.sum(guarded.status == EDGE) > 0 and np.sum(naive.status == EDGE) == 0


def test_envelope_is_the_lowest_covering_curve_without_extrapolation(runs):
    env = fit_envelope(runs)
    codes = runs.curve_codes()
    labels = list(env.curve_labels)
    for i in np.flatnonzero(np.isfinite(env.loss))[::37]:
        F = env.flops[i]
        best = np.inf
        for c in np.unique(codes):
            rows = np.flatnonzero(codes == c)
            log_f = np.log(runs.flops[rows])
            if log_f.min() - 1e-12 <= np.log(F) <= log_f.max() + 1e-12:
                order = np.argsort(log_f)
                best = min(best, np.exp(np.interp(np.log(F), log_f[order], np.log(runs.loss[rows][order]))))
        assert env.loss[i] == pytest.approx(best, rel=1e-10)
        # The winner really covers this budget.
        rows = runs.run == labels[env.winner[i]]
        assert runs.flops[rows].min() <= F * (1 + 1e-12) and F <= runs.flops[rows].max() * (1 + 1e-12)
        assert env.N[i] * env.D[i] * K == pytest.approx(F, rel=1e-9)


def test_kept_points_improve_and_are_bracketed(runs):
    env = fit_envelope(runs)
    kept = np.flatnonzero(env.status == KEPT)
    # Paper's set Q: each kept point is below every covered point at smaller FLOPs.
    for i in kept[::25]:
        earlier = np.isfinite(env.loss[:i])
        assert np.all(env.loss[i] < env.loss[:i][earlier])
    # Edge rule: the winning N is neither the smallest nor the largest covering model.
    assert env.N[kept].min() > env.curve_N.min() and env.N[kept].max() < env.curve_N.max()
    assert set(np.unique(env.status)) <= {KEPT, NOT_COVERED, NOT_IMPROVING, EDGE}


def test_per_run_weights_give_each_winner_equal_weight(runs):
    env = fit_envelope(runs)
    kept = env.status == KEPT
    totals = [env.weights[kept & (env.winner == w)].sum() for w in np.unique(env.winner[kept])]
    np.testing.assert_allclose(totals, 1.0)
    uniform = fit_envelope(runs, config=EnvelopeConfig(weighting="uniform"))
    assert set(uniform.weights[uniform.status == KEPT]) == {1.0}


def test_a_long_dominant_run_does_not_flatten_N_star():
    """One run trained far longer than the rest wins a long stretch with one N.

    Without safeguards that stretch flattens N*; edge censoring drops the part
    only that run covers, and per-run weights stop the rest from dominating.
    """
    base = training_runs(n_sizes=10, multiples=(4, 16, 64), noise=0.0)
    n_long = np.unique(base.N)[7]
    d = np.geomspace(20 * n_long, 2e6 * n_long, 300)
    table = make_table(np.r_[base.N, np.full(d.size, n_long)], np.r_[base.D, d],
                       np.r_[base.loss, LAW.loss(n_long, d)], run=np.r_[base.run, ["long"] * d.size],
                       flops_per_nd=K)
    guarded = fit_envelope(table)
    censor_only = fit_envelope(table, config=EnvelopeConfig(weighting="uniform"))
    naive = fit_envelope(table, config=EnvelopeConfig(weighting="uniform", censor_edges=False))
    errors = [abs(fit.a - LAW.a) for fit in (guarded, censor_only, naive)]
    assert errors[0] < errors[1] < errors[2]
    assert guarded.a == pytest.approx(fit_envelope(base).a, abs=0.005)


def test_optimal_uses_the_power_laws(runs):
    env = fit_envelope(runs)
    opt = env.optimal([1e10, 1e12])
    np.testing.assert_allclose(opt.N, env.N_star.coef * np.array([1e10, 1e12]) ** env.a)
    np.testing.assert_allclose(opt.loss, env.L_star([1e10, 1e12]))


def test_power_law_fit_is_exact_on_a_power_law():
    x = np.geomspace(1, 1e6, 20)
    p = fit_power_law(x, 3.0 * x ** 0.42)
    assert p.exponent == pytest.approx(0.42) and p.coef == pytest.approx(3.0) and p.r2 == pytest.approx(1.0)


def test_uses_one_quality_level():
    a = training_runs(n_sizes=6, seed=1)
    b = training_runs(law=Approach2Law(8.0, 20.0, 0.6, 0.35, 0.30), n_sizes=6, seed=2)
    table = make_table(np.r_[a.N, b.N], np.r_[a.D, b.D], np.r_[a.loss, b.loss],
                       quality=np.r_[np.full(a.n_rows, 2.0), np.full(b.n_rows, 0.5)],
                       run=np.r_[a.run, [r + "-low" for r in b.run]], flops_per_nd=K)
    high = fit_envelope(table)
    assert high.quality == 2.0 and all(not lbl.endswith("-low") for lbl in high.curve_labels)
    low = fit_envelope(table, quality=0.5)
    assert all(lbl.endswith("-low") for lbl in low.curve_labels)
    with pytest.raises(ConfigError, match="quality 1.0 is not a level"):
        fit_envelope(table, quality=1.0)


def test_errors_for_unusable_tables(runs):
    one_run = runs.take(runs.run == runs.run[0])
    with pytest.raises(DataError, match="needs at least 2 training curves"):
        fit_envelope(one_run)
    mixed = make_table([1e2, 2e2, 1e3, 1e3], [1e3, 2e3, 1e3, 2e3], [2, 1.9, 1.5, 1.4], run=["a", "a", "b", "b"])
    with pytest.raises(DataError, match="run 'a' has 2 different values of N"):
        fit_envelope(mixed)
    two_sizes = training_runs(n_sizes=2, multiples=(4,))
    with pytest.raises(DataError, match="usable envelope points"):
        fit_envelope(two_sizes)
    with pytest.raises(ConfigError, match="weighting must be one of"):
        EnvelopeConfig(weighting="area")
