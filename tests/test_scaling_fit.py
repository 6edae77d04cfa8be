"""Approaches 2 and 3 and the cross-check recover known laws from noisy synthetic runs."""

import numpy as np
import pytest

from robnp.errors import ConfigError, DataError
from robnp.scaling import (
    Approach2Law, Approach3Law, FitConfig, fit_approach2, fit_approach2_varpro, fit_approach3,
    make_table,
)
from robnp.scaling.crosscheck import compare_with_main

TRUTH2 = Approach2Law(A=8.0, B=20.0, E=0.3, alpha=0.35, beta=0.30, eps_q=0.15, zeta=-0.2)
TRUTH3 = Approach3Law(A=8.0, B=float(np.exp(9.0)), E=0.3, Q0=0.02, alpha=0.35, beta=0.30, kappa=0.7,
                      eps_q=0.1)
SMALL = FitConfig(grid="small")


def synthetic(law, qualities=(np.inf,), n_N=10, n_D=25, noise=0.01, seed=0):
    """Losses of ``law`` on a grid of sizes, with ~1% log-normal noise."""
    rng = np.random.default_rng(seed)
    N, D, Q = (a.ravel() for a in np.meshgrid(np.geomspace(1e2, 1e5, n_N), np.geomspace(1e3, 1e6, n_D),
                                               np.asarray(qualities, dtype=float)))
    loss = law.loss(N, D, Q) * np.exp(noise * rng.standard_normal(N.size))
    return make_table(N, D, loss, quality=Q if len(qualities) > 1 else None)


def assert_recovers(law, truth):
    assert law.a == pytest.approx(truth.a, abs=0.02)
    assert law.alpha == pytest.approx(truth.alpha, rel=0.05)
    assert law.beta == pytest.approx(truth.beta, rel=0.05)


@pytest.fixture(scope="module")
def chinchilla_table():
    return synthetic(Approach2Law(8.0, 20.0, 0.3, 0.35, 0.30))          # 250 points, no quality


@pytest.fixture(scope="module")
def quality_table():
    return synthetic(TRUTH2, qualities=(0.05, 0.2, 1.0, np.inf), n_N=8, n_D=8)   # 256 points


def test_approach2_recovers_chinchilla_exponents(chinchilla_table):
    fit = fit_approach2(chinchilla_table, SMALL)
    assert fit.quality_fit == "base-only" and not fit.quality_terms
    assert_recovers(fit.law, TRUTH2)
    assert fit.converged
    conv = fit.convergence[0]
    assert conv.grad_inf <= conv.grad_tol and conv.n_starts == 243 and conv.n_starts_at_best >= 1
    assert set(fit.params()) == {"A", "B", "E", "alpha", "beta"}


def test_approach2_joint_recovers_quality_terms(quality_table):
    fit = fit_approach2(quality_table, SMALL)
    assert fit.quality_fit == "joint"
    assert_recovers(fit.law, TRUTH2)
    assert fit.law.eps_q == pytest.approx(TRUTH2.eps_q, abs=0.03)
    assert fit.law.zeta == pytest.approx(TRUTH2.zeta, abs=0.03)
    assert fit.converged
    assert set(fit.params()) == {"A", "B", "E", "alpha", "beta", "eps_q", "zeta"}


def test_approach2_two_stage(quality_table):
    fit = fit_approach2(quality_table, FitConfig(grid="small", quality_fit="two-stage"))
    assert fit.quality_fit == "two-stage" and len(fit.convergence) == 2
    assert [c.stage for c in fit.convergence] == ["base", "quality"]
    assert_recovers(fit.law, TRUTH2)
    assert fit.law.zeta == pytest.approx(TRUTH2.zeta, abs=0.05)
    # The base level is the one with most runs, ties to the higher quality: inf.
    assert fit.base_quality == np.inf


def test_two_stage_keeps_the_first_stage_fit(quality_table):
    """Stage 2 must not move the predictions on the base level."""
    base_q = 0.2
    fit = fit_approach2(quality_table, FitConfig(grid="small", quality_fit="two-stage", base_quality=base_q))
    rows = quality_table.quality == base_q
    alone = fit_approach2(quality_table.take(rows), SMALL)
    N, D = quality_table.N[rows], quality_table.D[rows]
    np.testing.assert_allclose(fit.predict(N, D, base_q), alone.predict(N, D), rtol=1e-6)


def test_crosscheck_recovers_and_agrees(chinchilla_table, quality_table):
    for table, quality in ((chinchilla_table, False), (quality_table, True)):
        check = fit_approach2_varpro(table)
        assert check.quality_terms == quality
        assert_recovers(check.law, TRUTH2)
        main = fit_approach2(table, SMALL)
        agreements, warnings = compare_with_main(main.law, check.law, None, quality)
        assert warnings == [] and all(a.agrees for a in agreements)


def test_crosscheck_warns_outside_the_bootstrap_interval():
    main = Approach2Law(8.0, 20.0, 0.3, 0.35, 0.30)
    other = Approach2Law(8.0, 20.0, 0.3, 0.45, 0.30)
    intervals = {"alpha": (0.34, 0.36), "beta": (0.29, 0.31), "a": (0.45, 0.47), "b": (0.53, 0.55)}
    agreements, warnings = compare_with_main(main, other, intervals)
    assert {a.name for a in agreements if not a.agrees} == {"alpha", "a", "b"}
    assert any("disagrees on alpha" in w and "bootstrap interval [0.34, 0.36]" in w for w in warnings)


def test_approach3_recovers_its_law():
    table = synthetic(TRUTH3, qualities=(0.05, 0.2, 1.0, np.inf), n_N=8, n_D=8, seed=3)
    fit = fit_approach3(table, SMALL)
    assert fit.converged
    assert_recovers(fit.law, TRUTH3)
    assert fit.law.kappa == pytest.approx(TRUTH3.kappa, rel=0.15)
    assert set(fit.params()) == set(Approach3Law.PARAMS)


def test_fits_are_deterministic(quality_table):
    one, two = fit_approach2(quality_table, SMALL), fit_approach2(quality_table, SMALL)
    np.testing.assert_array_equal(one.law.theta(), two.law.theta())
    c1, c2 = fit_approach2_varpro(quality_table), fit_approach2_varpro(quality_table)
    np.testing.assert_array_equal(c1.law.theta(), c2.law.theta())


def test_paper_grid_is_the_hoffmann_grid(chinchilla_table):
    from robnp.scaling.fit import approach2_grid, quality_grid

    grid = approach2_grid("paper")
    assert grid.shape == (3125, 5)
    assert sorted(set(grid[:, 3])) == [0.0, 0.1, 0.25, 0.5, 1.0]
    assert quality_grid().shape == (12, 2)


def test_too_few_points_for_each_approach():
    tiny = make_table([1e2, 1e3, 1e4, 1e5, 1e2], [1e3, 1e4, 1e5, 1e6, 1e6], [2, 1.5, 1.2, 1.0, 1.1])
    with pytest.raises(DataError, match="Approach 2 fits 5 parameters and needs at least 6 points; the table has 5"):
        fit_approach2(tiny, SMALL)
    same_N = make_table([1e3] * 8, np.geomspace(1e3, 1e6, 8), np.linspace(2, 1, 8))
    with pytest.raises(DataError, match="at least 2 distinct values of N"):
        fit_approach2(same_N, SMALL)
    with pytest.raises(DataError, match="Approach 3 needs at least 2 distinct finite quality levels"):
        fit_approach3(synthetic(Approach2Law(8.0, 20.0, 0.3, 0.35, 0.30), n_N=4, n_D=4), SMALL)
    few = synthetic(TRUTH3, qualities=(0.1, 1.0), n_N=2, n_D=2)
    with pytest.raises(DataError, match="Approach 3 fits 8 parameters and needs at least 9 points; the table has 8"):
        fit_approach3(few, SMALL)
    two_level = synthetic(TRUTH2, qualities=(0.1, 1.0), n_N=3, n_D=3)
    with pytest.raises(DataError, match="at least 3 points off the base quality level"):
        fit_approach2(two_level.take(np.r_[np.flatnonzero(two_level.quality == 1.0),
                                           np.flatnonzero(two_level.quality == 0.1)[:2]]),
                      FitConfig(grid="small", quality_fit="two-stage", base_quality=1.0))


def test_bad_fit_config():
    with pytest.raises(ConfigError, match="grid must be one of"):
        FitConfig(grid="huge")
    with pytest.raises(ConfigError, match="huber_delta must be finite and > 0, got -1"):
        FitConfig(huber_delta=-1)
    with pytest.raises(ConfigError, match="quality_fit must be one of"):
        FitConfig(quality_fit="both")
    with pytest.raises(ConfigError, match="base_quality is the first stage of quality_fit="
                                          "'two-stage' .*got base_quality=1.0 with "
                                          "quality_fit='joint'"):
        FitConfig(base_quality=1.0)
    with pytest.raises(ConfigError, match="base_quality .* is not a quality level"):
        fit_approach2(synthetic(TRUTH2, qualities=(0.1, 1.0), n_N=3, n_D=3),
                      FitConfig(grid="small", quality_fit="two-stage", base_quality=0.5))


def test_fit_object_api(quality_table):
    fit = fit_approach2(quality_table, SMALL)
    assert fit.reference_quality == 1.0   # highest finite level
    np.testing.assert_allclose(fit.predict(1e3, 1e4), fit.law.loss(1e3, 1e4, 1.0))
    opt = fit.optimal([1e12, 1e14])
    assert opt.N.shape == (2,) and opt.quality == 1.0
    ov = fit.overhead([0.5, 1.0, 2.0])
    assert ov.omega_D[1] == pytest.approx(1.0)
