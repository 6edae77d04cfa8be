"""Compute-optimal allocation and compute overhead: identities and cross-checks."""

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from robnp.errors import ConfigError
from robnp.scaling import (
    Approach2Law, Approach3Law, approach2_optimal, approach2_overhead, numeric_optimal,
    numeric_overhead,
)
from robnp.scaling.allocation import local_exponents

LAW2 = Approach2Law(A=6.69, B=9.89, E=0.48, alpha=0.24, beta=0.23, eps_q=0.16, zeta=-0.28)  # paper, App. F.2.1
LAW3 = Approach3Law(A=6.0, B=7000.0, E=0.52, Q0=0.007, alpha=0.24, beta=0.22, kappa=0.6, eps_q=0.04)  # F.3.1
K = 7822.0
BUDGETS = np.array([1e18, 1e21, 1e25])


@pytest.mark.parametrize("quality", [np.inf, 1 / 1.76, 1 / 35.5])
def test_budget_identity_N_D_k_equals_F(quality):
    for opt in (approach2_optimal(LAW2, BUDGETS, K, quality), numeric_optimal(LAW3, BUDGETS, K, quality)):
        np.testing.assert_allclose(opt.N * opt.D * K, BUDGETS, rtol=1e-10)


def test_eq4_matches_a_brute_force_minimum():
    """Eq. 4's closed form against a direct 1-D minimization of Eq. 3 on N D = F/k."""
    q = 1 / 1.76
    opt = approach2_optimal(LAW2, BUDGETS, K, q)
    for i, F in enumerate(BUDGETS):
        c = F / K
        res = minimize_scalar(lambda s: LAW2.loss(np.exp(s), c / np.exp(s), q),
                              bounds=(0, np.log(c)), method="bounded", options={"xatol": 1e-10})
        assert np.log(opt.N[i]) == pytest.approx(res.x, abs=1e-4)
        assert opt.loss[i] <= res.fun + 1e-12
    # And the numeric search used for Approach 3 finds the same optimum for Approach 2.
    num = numeric_optimal(LAW2, BUDGETS, K, q)
    np.testing.assert_allclose(num.N, opt.N, rtol=1e-6)
    np.testing.assert_allclose(num.loss, opt.loss, rtol=1e-12)


def test_eq4_exponents_and_G():
    opt = approach2_optimal(LAW2, BUDGETS, K)
    slope_N = np.diff(np.log(opt.N)) / np.diff(np.log(BUDGETS))
    slope_D = np.diff(np.log(opt.D)) / np.diff(np.log(BUDGETS))
    np.testing.assert_allclose(slope_N, LAW2.beta / (LAW2.alpha + LAW2.beta), rtol=1e-12)
    np.testing.assert_allclose(slope_D, LAW2.alpha / (LAW2.alpha + LAW2.beta), rtol=1e-12)
    G = (LAW2.alpha * LAW2.A / (LAW2.beta * LAW2.B)) ** (1 / (LAW2.alpha + LAW2.beta))
    assert opt.N[0] == pytest.approx(G * (BUDGETS[0] / K) ** LAW2.a, rel=1e-12)


def test_approach3_at_infinite_quality_has_chinchilla_exponents():
    a, b = local_exponents(lambda F: numeric_optimal(LAW3, F, K, np.inf), BUDGETS)
    # The loss is flat at its minimum, so the search pins log N* to ~1e-7;
    # a difference over +-0.05 in log F turns that into ~1e-6 in a.
    np.testing.assert_allclose(a, LAW3.a, atol=1e-5)
    np.testing.assert_allclose(b, LAW3.b, atol=1e-5)
    # ... and at finite quality the bottleneck shifts compute to the model (paper, App. F.4).
    a_q, _ = local_exponents(lambda F: numeric_optimal(LAW3, F, K, 1 / 1.76), [1e25])
    assert a_q[0] > LAW3.a


@pytest.mark.parametrize("law,overhead_fn", [(LAW2, approach2_overhead), (LAW2, numeric_overhead),
                                             (LAW3, numeric_overhead)])
def test_overhead_identities(law, overhead_fn):
    omega = np.geomspace(0.2, 5, 41)
    omega[20] = 1.0
    ov = overhead_fn(law, omega, 1e21, K, 1 / 1.76)
    assert ov.omega_D[20] == pytest.approx(1.0, abs=1e-9)
    assert ov.overhead[20] == pytest.approx(1.0, abs=1e-9)
    ok = ov.feasible
    assert np.all(ov.overhead[ok] >= 1.0 - 1e-9)
    # The loss stays at L* wherever omega_D exists.
    loss = law.loss(omega[ok] * ov.N_star, ov.omega_D[ok] * ov.D_star, 1 / 1.76)
    np.testing.assert_allclose(loss, ov.loss_star, rtol=1e-9)
    # Bigger models need less data, smaller ones more.
    assert np.all(ov.omega_D[omega > 1] < 1) and np.all(ov.omega_D[ok & (omega < 1)] > 1)


def test_eq6_agrees_with_the_numeric_solution():
    omega = np.geomspace(0.3, 4, 15)
    closed = approach2_overhead(LAW2, omega, 1e21, K, 1 / 1.76)
    # Same optimum for both, so only the solution of Eq. 6 is compared ...
    exact = approach2_optimal(LAW2, 1e21, K, 1 / 1.76)
    numeric = numeric_overhead(LAW2, omega, 1e21, K, 1 / 1.76, optimal=exact)
    np.testing.assert_array_equal(closed.feasible, numeric.feasible)
    np.testing.assert_allclose(closed.omega_D[closed.feasible], numeric.omega_D[numeric.feasible], rtol=1e-9)
    # ... and with its own numeric optimum it agrees to the search's resolution.
    searched = numeric_overhead(LAW2, omega, 1e21, K, 1 / 1.76)
    np.testing.assert_allclose(searched.omega_D, closed.omega_D, rtol=1e-6)


def test_overhead_half_size_model_matches_the_papers_ten_percent():
    # Paper, Section 3.3.2: omega_N = 0.5 costs about 10% more compute.
    ov = approach2_overhead(LAW2, [0.5], 1e21, K, 1 / 1.65)
    assert 1.05 < ov.overhead[0] < 1.2


def test_too_small_models_cannot_reach_L_star():
    omega = np.array([1e-3, 0.01, 1.0])
    for ov in (approach2_overhead(LAW2, omega, 1e21, K), numeric_overhead(LAW2, omega, 1e21, K)):
        assert list(ov.feasible) == [False, False, True]
        assert np.isinf(ov.omega_D[0]) and np.isinf(ov.overhead[0])
    # The boundary: with unlimited data the small model's loss is exactly L*.
    ov = approach2_overhead(LAW2, [1.0], 1e21, K)
    ratio = LAW2.beta / LAW2.alpha               # A N*^-alpha / (B D*^-beta) at the optimum
    boundary = (1 + 1 / ratio) ** (-1 / LAW2.alpha)
    near = approach2_overhead(LAW2, [boundary * 1.001, boundary * 0.999], 1e21, K)
    assert list(near.feasible) == [True, False]


def test_bad_budgets_and_multiples():
    with pytest.raises(ConfigError, match="FLOPs budget must be finite and > 0, got -1.0"):
        approach2_optimal(LAW2, [-1.0], K)
    with pytest.raises(ConfigError, match="too small"):
        approach2_optimal(LAW2, [100.0], K)
    with pytest.raises(ConfigError, match="omega_N must be finite and > 0, got 0.0"):
        approach2_overhead(LAW2, [0.0], 1e21, K)
    with pytest.raises(ConfigError, match="quality must be > 0"):
        numeric_optimal(LAW3, [1e21], K, 0.0)
