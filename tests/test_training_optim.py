"""Optimizers: each against its update written out in plain NumPy, step by step."""

import numpy as np
import pytest

import robnp
from robnp.errors import ConfigError
from robnp.training.optim import SGD, Adam, AdamW

N = 37
STEPS = 60


def gradients(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=N).astype(dtype), [rng.normal(size=N).astype(dtype)
                                              for _ in range(STEPS)]


def sgd_reference(p, grads, lr, momentum, dampening, weight_decay, nesterov):
    """torch.optim.SGD's rules, one NumPy line each, in the parameters' dtype."""
    dt = p.dtype.type
    p = p.copy()
    b = None
    for g in grads:
        g = g + dt(weight_decay) * p
        if momentum:
            b = g.copy() if b is None else dt(momentum) * b + dt(1 - dampening) * g
            g = g + dt(momentum) * b if nesterov else b
        p = p - dt(lr) * g
    return p


SGD_SETTINGS = [
    dict(momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False),
    dict(momentum=0.0, dampening=0.0, weight_decay=5e-4, nesterov=False),
    dict(momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=False),
    dict(momentum=0.9, dampening=0.3, weight_decay=1e-2, nesterov=False),
    dict(momentum=0.9, dampening=0.0, weight_decay=5e-4, nesterov=True),  # the paper's
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("settings", SGD_SETTINGS, ids=str)
def test_sgd_matches_its_written_out_rules(settings, dtype):
    p0, grads = gradients(dtype)
    p = p0.copy()
    opt = SGD(N, dtype=dtype, lr=0.05, **settings)
    for g in grads:
        opt.step(p, g)
    expected = sgd_reference(p0, grads, 0.05, **settings)
    # the same operations in the same dtype and order: the same bits
    np.testing.assert_array_equal(p, expected)
    # and close to the same rules in float64 (the float32 rounding is all that differs)
    exact = sgd_reference(p0.astype(np.float64), [g.astype(np.float64) for g in grads],
                          0.05, **settings)
    np.testing.assert_allclose(p, exact, rtol=1e-4 if dtype == np.float32 else 1e-12,
                               atol=1e-5 if dtype == np.float32 else 1e-12)


def test_sgd_first_step_takes_the_gradient_as_the_buffer():
    """PyTorch's rule: the buffer starts as the gradient itself, not (1 - dampening)
    times it; dampening applies from the second step on."""
    opt = SGD(2, dtype=np.float64, lr=1.0, momentum=0.5, dampening=0.25)
    p = np.zeros(2)
    opt.step(p, np.array([4.0, -8.0]))
    np.testing.assert_array_equal(opt.buf, [4.0, -8.0])
    np.testing.assert_array_equal(p, [-4.0, 8.0])
    opt.step(p, np.array([2.0, 2.0]))
    np.testing.assert_array_equal(opt.buf, [0.5 * 4 + 0.75 * 2, 0.5 * -8 + 0.75 * 2])
    np.testing.assert_array_equal(p, [-4.0 - 3.5, 8.0 + 2.5])


def test_nesterov_looks_ahead_by_momentum_times_the_buffer():
    opt = SGD(1, dtype=np.float64, lr=0.1, momentum=0.9, nesterov=True)
    p = np.array([1.0])
    opt.step(p, np.array([2.0]))        # b = 2, step g + 0.9 b = 3.8
    np.testing.assert_allclose(p, [1.0 - 0.38], rtol=1e-15)
    opt.step(p, np.array([1.0]))        # b = 0.9 * 2 + 1 = 2.8, step 1 + 2.52 = 3.52
    np.testing.assert_allclose(p, [1.0 - 0.38 - 0.352], rtol=1e-15)


def test_weight_decay_alone_shrinks_towards_zero():
    opt = SGD(3, dtype=np.float64, lr=0.1, weight_decay=0.5)
    p = np.array([1.0, -2.0, 4.0])
    opt.step(p, np.zeros(3))
    np.testing.assert_allclose(p, [0.95, -1.9, 3.8], rtol=1e-15)


def adam_reference(p, grads, lr, b1, b2, eps, weight_decay=0.0, decoupled=False):
    p = p.astype(np.float64).copy()
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        g = g.astype(np.float64)
        if decoupled:
            p *= 1 - lr * weight_decay
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p -= lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    return p


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2, 0.3])
def test_adamw_matches_decoupled_decay_then_adam(weight_decay, dtype):
    p0, grads = gradients(dtype, seed=3)
    p = p0.copy()
    opt = AdamW(N, dtype=dtype, lr=1e-2, weight_decay=weight_decay)
    for g in grads:
        opt.step(p, g)
    expected = adam_reference(p0, grads, 1e-2, 0.9, 0.999, 1e-8, weight_decay, True)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(p, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_over_many_steps_and_adamw_without_decay_is_adam(dtype):
    p0, grads = gradients(dtype, seed=4)
    p_adam, p_adamw = p0.copy(), p0.copy()
    adam, adamw = Adam(N, dtype=dtype, lr=3e-3), AdamW(N, dtype=dtype, lr=3e-3,
                                                       weight_decay=0.0)
    for g in grads:
        adam.step(p_adam, g)
        adamw.step(p_adamw, g)
    np.testing.assert_array_equal(p_adam, p_adamw)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(p_adam, adam_reference(p0, grads, 3e-3, 0.9, 0.999, 1e-8),
                               rtol=tol, atol=tol)
    assert robnp.Adam is Adam and robnp.AdamW is AdamW and robnp.SGD is SGD


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_weight_decay_is_l2_added_to_the_gradient_which_is_left_as_given(dtype):
    """torch.optim.Adam's weight_decay: ``g + weight_decay p`` enters the moments."""
    p0, grads = gradients(dtype, seed=5)
    p = p0.copy()
    opt = Adam(N, dtype=dtype, lr=1e-2, weight_decay=0.1)
    for g in grads:
        before = g.copy()
        opt.step(p, g)
        np.testing.assert_array_equal(g, before)
    # the same as Adam without decay on the decayed gradients, bit for bit
    q = p0.copy()
    plain = Adam(N, dtype=dtype, lr=1e-2)
    for g in grads:
        plain.step(q, g + dtype(0.1) * q)
    np.testing.assert_array_equal(p, q)
    # and PyTorch's rule written out in float64
    exact, m, v = p0.astype(np.float64), np.zeros(N), np.zeros(N)
    for t, g in enumerate(grads, start=1):
        g = g.astype(np.float64) + 0.1 * exact
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        exact = exact - 1e-2 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(p, exact, rtol=tol, atol=tol)
    with pytest.raises(ConfigError, match="weight_decay must be a finite number >= 0"):
        Adam(N, weight_decay=-1.0)


def test_a_momentum_given_to_step_overrides_it_for_that_step_only():
    g = np.array([1.0, -1.0])
    cycled, fixed = Adam(2, dtype=np.float64, beta1=0.9), Adam(2, dtype=np.float64, beta1=0.85)
    p, q = np.zeros(2), np.zeros(2)
    cycled.step(p, g, momentum=0.85)
    fixed.step(q, g)
    np.testing.assert_array_equal(p, q)
    assert cycled.beta1 == 0.9
    with pytest.raises(ConfigError, match=r"beta1 must be a finite number in \[0, 1\)"):
        cycled.step(p, g, momentum=1.0)
    with pytest.raises(ConfigError, match="momentum > 0"):
        SGD(2, dtype=np.float64).step(p, g, momentum=0.9)


def test_a_step_size_given_to_step_overrides_lr_for_that_step_only():
    g = np.array([1.0, -1.0])
    fixed, scheduled = SGD(2, dtype=np.float64, lr=0.1), SGD(2, dtype=np.float64, lr=0.1)
    p, q = np.zeros(2), np.zeros(2)
    scheduled.step(q, g, lr=0.5)
    np.testing.assert_array_equal(q, [-0.5, 0.5])
    fixed.step(p, g)
    scheduled.step(q, g)
    np.testing.assert_array_equal(q, [-0.6, 0.6])
    np.testing.assert_array_equal(p, [-0.1, 0.1])


@pytest.mark.parametrize("make,message", [
    (lambda: SGD(3, momentum=1.0), r"momentum must be a finite number in \[0, 1\), got 1.0"),
    (lambda: SGD(3, momentum=-0.1), r"momentum must be a finite number in \[0, 1\), got -0.1"),
    (lambda: SGD(3, weight_decay=-1e-4), r"weight_decay must be a finite number >= 0, got"),
    (lambda: SGD(3, nesterov=True), r"nesterov needs momentum > 0 and dampening 0, "
                                    r"got momentum 0.0"),
    (lambda: SGD(3, momentum=0.9, dampening=0.1, nesterov=True), r"nesterov needs"),
    (lambda: SGD(3, nesterov="yes"), r"nesterov must be true or false, got 'yes'"),
    (lambda: SGD(3, lr=0), r"lr must be a finite number > 0, got 0"),
    (lambda: SGD(0), r"n_params must be an integer >= 1, got 0"),
    (lambda: AdamW(3, weight_decay=-0.01), r"weight_decay must be a finite number >= 0"),
    (lambda: AdamW(3, beta1=1.0), r"beta1 must be a finite number in \[0, 1\)"),
    (lambda: SGD(3, momentum=0.9).step(np.zeros(3), np.zeros(3), lr=-1.0),
     r"lr must be a finite number > 0, got -1.0"),
    (lambda: SGD(3).step(np.zeros(4), np.zeros(4)), r"params and grad must have shape \(3,\)"),
])
def test_bad_hyperparameters_are_one_line_config_errors(make, message):
    with pytest.raises(ConfigError, match=message) as info:
        make()
    assert "\n" not in str(info.value)
