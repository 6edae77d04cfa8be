"""The laws, their analytic gradients, the Huber loss and the batched L-BFGS."""

import math

import numpy as np
import pytest
from scipy.optimize import minimize, rosen, rosen_der

from robnp.errors import DataError
from robnp.scaling import Approach2Law, Approach3Law
from robnp.scaling.fit import Stage
from robnp.scaling.laws import LawInputs, approach2_log_loss, approach3_log_loss
from robnp.scaling.minimize import batched_lbfgs, huber

rng = np.random.default_rng(7)
N = np.exp(rng.uniform(np.log(1e2), np.log(1e6), 40))
D = np.exp(rng.uniform(np.log(1e3), np.log(1e7), 40))
Q = rng.choice([0.05, 0.3, 2.0, np.inf], 40)


def chinchilla(N, D, A, B, E, alpha, beta):
    return A / N ** alpha + B / D ** beta + E


def test_approach2_matches_eq3_written_out():
    law = Approach2Law(A=7.0, B=12.0, E=0.4, alpha=0.3, beta=0.25, eps_q=0.16, zeta=-0.28)
    u = np.log1p(1 / Q)
    B_eff = np.exp(np.log(12.0) + u * -0.28)
    E_eff = np.exp(np.log(0.4) + u * 0.16)
    np.testing.assert_allclose(law.loss(N, D, Q), 7.0 / N ** 0.3 + B_eff / D ** 0.25 + E_eff, rtol=1e-12)


def test_approach3_matches_eq5_written_out():
    law = Approach3Law(A=6.0, B=7000.0, E=0.5, Q0=0.007, alpha=0.24, beta=0.22, kappa=0.6, eps_q=0.04)
    finite = np.isfinite(Q)
    bottleneck = np.where(finite, (0.007 / np.where(finite, Q, 1.0)) ** (0.6 / 0.22), 0.0)
    expected = 6.0 / N ** 0.24 + (7000.0 / D + bottleneck) ** 0.22 + 0.5 * (1 + 1 / Q) ** 0.04
    np.testing.assert_allclose(law.loss(N, D, Q), expected, rtol=1e-12)


def test_both_reduce_to_chinchilla_at_infinite_quality():
    a2 = Approach2Law(A=7.0, B=12.0, E=0.4, alpha=0.3, beta=0.25, eps_q=0.5, zeta=-0.7)
    np.testing.assert_allclose(a2.loss(N, D, np.inf), chinchilla(N, D, 7.0, 12.0, 0.4, 0.3, 0.25), rtol=1e-12)
    a3 = Approach3Law(A=6.0, B=7000.0, E=0.5, Q0=0.3, alpha=0.24, beta=0.22, kappa=0.6, eps_q=0.3)
    np.testing.assert_allclose(a3.loss(N, D, np.inf),
                               chinchilla(N, D, 6.0, 7000.0 ** 0.22, 0.5, 0.24, 0.22), rtol=1e-12)
    assert a3.chinchilla_B == pytest.approx(7000.0 ** 0.22)
    assert a2.E_eff(np.inf) == pytest.approx(0.4) and a2.B_eff(np.inf) == pytest.approx(12.0)


def test_theta_round_trip_and_paper_exponents():
    law = Approach2Law(A=6.69, B=9.89, E=0.48, alpha=0.24, beta=0.23, eps_q=0.16, zeta=-0.28)
    back = Approach2Law.from_theta(law.theta())
    for name in Approach2Law.PARAMS:
        assert getattr(back, name) == pytest.approx(getattr(law, name), rel=1e-14)
    # The paper's fitted values give a = 0.49, b = 0.51 (Table 3 rounds to 0.48 / 0.52).
    assert law.a == pytest.approx(0.23 / 0.47) and law.a + law.b == pytest.approx(1.0)


def test_law_inputs_reject_bad_sizes():
    with pytest.raises(DataError, match="N must be > 0 and finite, got 0.0"):
        Approach2Law(1, 1, 1, 0.3, 0.3).loss(0.0, 10.0)
    with pytest.raises(DataError, match="quality must be > 0"):
        Approach2Law(1, 1, 1, 0.3, 0.3).loss(10.0, 10.0, -1.0)


@pytest.mark.parametrize("r", [-0.5, -1e-3, -2e-4, 0.0, 3e-4, 2.0])
def test_huber_value_and_derivative(r):
    delta = 1e-3
    value, deriv = huber(np.array([r]), delta)
    expected = 0.5 * r * r if abs(r) <= delta else delta * (abs(r) - 0.5 * delta)
    assert value[0] == pytest.approx(expected, rel=1e-12, abs=1e-18)
    h = 1e-9  # small: at |r| = delta the second derivative jumps
    numeric = (huber(np.array([r + h]), delta)[0][0] - huber(np.array([r - h]), delta)[0][0]) / (2 * h)
    assert deriv[0] == pytest.approx(numeric, rel=1e-5, abs=1e-12)


def _stage(approach, theta_true, noise=0.02, weights=False):
    x = LawInputs.from_arrays(N, D, Q)
    law_cls = Approach2Law if approach == 2 else Approach3Law
    loss = law_cls.from_theta(theta_true).loss(N, D, Q) * np.exp(noise * rng.standard_normal(N.size))
    P = theta_true.size
    return Stage("test", approach, x, np.log(loss), np.ones(P, dtype=bool), np.zeros(P), 1e-3)


@pytest.mark.parametrize("approach,theta", [
    (2, np.array([2.0, 2.5, -0.9, 0.3, 0.25, 0.16, -0.28])),
    (3, np.array([1.8, 8.8, -0.7, np.log(0.05), 0.24, 0.22, 0.6, 0.04])),
])
def test_analytic_gradient_matches_central_differences(approach, theta):
    """The summed Huber objective's gradient, parameter by parameter (float64)."""
    stage = _stage(approach, theta)
    weights = rng.integers(0, 3, size=(1, N.size)).astype(float)
    for fun in (stage.objective(), stage.objective(weights=weights, weight_rows=np.zeros(1, dtype=int))):
        # Evaluate away from the optimum so every component is non-trivial.
        point = theta + rng.normal(0, 0.05, theta.size)
        f0, g = fun(point[None], np.zeros(1, dtype=int))
        for j in range(theta.size):
            h = 1e-6 * max(1.0, abs(point[j]))
            up, down = point.copy(), point.copy()
            up[j] += h
            down[j] -= h
            numeric = (fun(up[None], np.zeros(1, dtype=int))[0][0]
                       - fun(down[None], np.zeros(1, dtype=int))[0][0]) / (2 * h)
            assert g[0, j] == pytest.approx(numeric, rel=1e-5, abs=1e-9), f"parameter {j}"


def test_log_loss_batches_rows_independently():
    x = LawInputs.from_arrays(N, D, Q)
    thetas = np.array([[2.0, 2.5, -0.9, 0.3, 0.25, 0.16, -0.28], [1.0, 3.0, -1.2, 0.4, 0.2, 0.1, 0.1]])
    batch, _ = approach2_log_loss(thetas, x)
    for i in range(2):
        single, _ = approach2_log_loss(thetas[i:i + 1], x)
        np.testing.assert_allclose(batch[i], single[0], rtol=1e-14, atol=1e-15)
    thetas3 = np.array([[1.8, 8.8, -0.7, -3.0, 0.24, 0.22, 0.6, 0.04], [1.0, 7.0, -1.0, -2.0, 0.3, 0.3, 0.8, 0.1]])
    batch3, _ = approach3_log_loss(thetas3, x)
    np.testing.assert_allclose(batch3[1], approach3_log_loss(thetas3[1:], x)[0][0], rtol=1e-14, atol=1e-15)


def test_tiny_terms_do_not_produce_nan():
    # Enormous exponents push two terms to exp(-1000): weights must be exact zeros.
    law = Approach2Law(A=1.0, B=1.0, E=0.5, alpha=4.0, beta=4.0)
    assert np.all(np.isfinite(law.loss(np.array([1e80]), np.array([1e80]))))
    assert law.loss(1e80, 1e80) == pytest.approx(0.5)


def test_batched_lbfgs_solves_independent_rosenbrocks():
    starts = np.array([[-1.2, 1.0], [0.0, 0.0], [2.0, 2.0], [-0.5, 1.5]])

    def fun(X, rows):
        return np.array([rosen(x) for x in X]), np.array([rosen_der(x) for x in X])

    res = batched_lbfgs(fun, starts, np.full(2, -10.0), np.full(2, 10.0), max_iter=2000, gtol=1e-9)
    np.testing.assert_allclose(res.x, np.ones((4, 2)), atol=1e-5)
    assert res.converged.all()
    # Same optimum as SciPy from the first start.
    ref = minimize(rosen, starts[0], jac=rosen_der, method="L-BFGS-B")
    np.testing.assert_allclose(res.x[0], ref.x, atol=1e-4)


def test_batched_lbfgs_respects_bounds():
    # Minimum of (x - 3)^2 + (y + 2)^2 in the box [0, 1]^2 is at (1, 0).
    def fun(X, rows):
        target = np.array([3.0, -2.0])
        return ((X - target) ** 2).sum(axis=1), 2 * (X - target)

    res = batched_lbfgs(fun, np.array([[0.5, 0.5], [0.0, 1.0]]), np.zeros(2), np.ones(2))
    np.testing.assert_allclose(res.x, [[1.0, 0.0], [1.0, 0.0]], atol=1e-10)
    assert res.converged.all()


def test_gradient_of_approach3_is_finite_at_infinite_quality_only():
    x = LawInputs.from_arrays(N[:5], D[:5], np.inf)
    theta = np.array([[1.8, 8.8, -0.7, -3.0, 0.24, 0.22, 0.6, 0.04]])
    log_loss, vjp = approach3_log_loss(theta, x)
    g = vjp(np.ones_like(log_loss))
    assert np.all(np.isfinite(g))
    # Q0 and kappa have no effect on perfect data.
    assert g[0, 3] == 0.0 and g[0, 6] == 0.0
    assert math.isfinite(float(log_loss.sum()))
