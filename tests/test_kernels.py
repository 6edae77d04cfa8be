"""Compiled kernels against slow, obvious NumPy versions."""

import numpy as np
import pytest

import robnp
from robnp import kernels
from robnp.losses import loss_and_grad_logits
from robnp.training.optim import Adam
from naive import reference_forward


def softmax(Z):
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def reference_backward(model, X, y):
    """Weight gradients and input gradient of the mean cross-entropy, plain NumPy."""
    acts = reference_forward(model, X)
    n = X.shape[0]
    D = softmax(acts[-1])
    D[np.arange(n), y] -= 1
    D /= n
    grads_W, grads_b = [], []
    coefs = [W.astype(np.float64) for W in model.coefs_]
    for layer in range(len(coefs) - 1, -1, -1):
        grads_W.insert(0, acts[layer].T @ D)
        grads_b.insert(0, D.sum(axis=0))
        D = D @ coefs[layer].T
        if layer > 0:
            D = D * (acts[layer] > 0)
    return grads_W, grads_b, D


@pytest.fixture(params=[(2, (5,), 2), (3, (16, 7), 4), (2, (64, 64), 2), (4, (), 3)],
                ids=["1-hidden", "2-hidden-odd", "study-net", "logistic"])
def case(request):
    n_features, hidden, n_classes = request.param
    rng = np.random.default_rng(0)
    model = robnp.MLP(n_features, hidden, n_classes, dtype=np.float64, seed=1)
    X = rng.normal(size=(37, n_features))
    y = rng.integers(0, n_classes, 37)
    return model, X, y


def test_forward_matches_numpy(case):
    model, X, y = case
    np.testing.assert_allclose(model.logits(X), reference_forward(model, X)[-1], rtol=1e-12,
                               atol=1e-12)


def test_param_and_input_gradients_match_numpy(case):
    model, X, y = case
    loss, grad = robnp.param_gradient(model, X, y)
    grads_W, grads_b, dX = reference_backward(model, X, y)
    got_W, got_b = model.split_params(grad)
    for got, want in zip(got_W + got_b, grads_W + grads_b):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(robnp.input_gradient(model, X, y), dX, rtol=1e-10, atol=1e-12)
    Z = reference_forward(model, X)[-1]
    want_loss = np.mean(np.log(np.exp(Z).sum(axis=1)) - Z[np.arange(len(y)), y])
    assert loss == pytest.approx(want_loss, rel=1e-12)


def test_cross_entropy_grad_on_logits():
    rng = np.random.default_rng(3)
    Z = rng.normal(size=(9, 4)) * 5
    y = rng.integers(0, 4, 9)
    loss, dZ = loss_and_grad_logits(Z, y)
    onehot = np.eye(4)[y]
    np.testing.assert_allclose(dZ, (softmax(Z) - onehot) / 9, rtol=1e-12, atol=1e-15)
    logp = Z - Z.max(1, keepdims=True) - np.log(np.exp(Z - Z.max(1, keepdims=True)).sum(1, keepdims=True))
    assert loss == pytest.approx(-logp[np.arange(9), y].mean(), rel=1e-12)


def test_cross_entropy_is_stable_for_huge_logits():
    Z = np.array([[1000.0, -1000.0], [-1000.0, 1000.0]])
    loss, dZ = loss_and_grad_logits(Z, np.array([0, 0]))
    assert np.isfinite(loss) and loss == pytest.approx(1000.0)
    assert np.all(np.isfinite(dZ))


def test_cw_margin_on_logits():
    Z = np.array([[3.0, 1.0, 2.0], [0.0, 5.0, -1.0]])
    y = np.array([0, 2])
    loss, dZ = loss_and_grad_logits(Z, y, loss="cw_margin")
    assert loss == pytest.approx(((2.0 - 3.0) + (5.0 - -1.0)) / 2)
    np.testing.assert_allclose(dZ, [[-0.5, 0, 0.5], [0, 0.5, -0.5]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_step_matches_the_written_out_formula(dtype):
    rng = np.random.default_rng(7)
    p = rng.normal(size=50).astype(dtype)
    grads = [rng.normal(size=50).astype(dtype) for _ in range(3)]
    lr, b1, b2, e = 1e-2, 0.9, 0.999, 1e-8
    opt = Adam(50, dtype=dtype, lr=lr, beta1=b1, beta2=b2, adam_eps=e)
    ref = p.astype(np.float64).copy()
    m = np.zeros(50)
    v = np.zeros(50)
    for t, g in enumerate(grads, start=1):
        opt.step(p, g)
        g = g.astype(np.float64)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        ref -= lr * m_hat / (np.sqrt(v_hat) + e)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(p, ref, rtol=tol, atol=tol)


def test_first_adam_step_moves_every_parameter_by_lr():
    p = np.zeros(4)
    Adam(4, dtype=np.float64, lr=0.1).step(p, np.array([3.0, -2.0, 1e-3, -5.0]))
    np.testing.assert_allclose(p, [-0.1, 0.1, -0.1, 0.1], rtol=1e-4)


def test_relu_lets_nan_through_so_divergence_is_visible():
    model = robnp.MLP(2, (4,), 2, dtype=np.float64, seed=0)
    model.params[0] = np.nan
    assert np.isnan(model.logits(np.ones((3, 2)))).any()


def test_kernels_do_not_depend_on_workspace_contents():
    model = robnp.MLP(3, (8, 8), 3, dtype=np.float64, seed=2)
    X = np.random.default_rng(1).normal(size=(10, 3))
    y = np.arange(10) % 3
    ws = model.workspace(10)
    for buffer in ws:
        buffer.fill(np.nan)
    dX = np.empty_like(X)
    kernels.loss_and_input_grad(model.params, model.sizes, X, y, 0, dX, *ws, True)
    np.testing.assert_allclose(dX, robnp.input_gradient(model, X, y), rtol=1e-13)


def test_adam_flushes_subnormal_moments_without_changing_parameters():
    """A gradient that stops (a dead unit): m decays into subnormal numbers. The kernel
    stores it as 0, and the parameters stay bit-identical to unflushed Adam."""
    f32 = np.float32
    p = np.array([0.5, -0.25, 0.125], f32)
    opt = Adam(3, dtype=np.float32, lr=1e-3)
    ref_p, m, v = p.copy(), np.zeros(3, f32), np.zeros(3, f32)
    b1, b2, lr, e = f32(0.9), f32(0.999), 1e-3, f32(1e-8)
    # m = 1e-4 * 0.9^(t-1) is subnormal for t in about 740..890
    for t in range(1, 801):
        g = np.array([1e-3, -2e-3, 3e-3], f32) if t == 1 else np.zeros(3, f32)
        opt.step(p, g)
        m = b1 * m + (f32(1) - b1) * g
        v = b2 * v + (f32(1) - b2) * g * g
        ss = f32(lr / (1 - 0.9 ** t))
        ibc = f32(1 / np.sqrt(1 - 0.999 ** t))
        ref_p -= ss * m / (np.sqrt(v) * ibc + e)
    tiny = np.finfo(np.float32).tiny
    assert np.all((m != 0) & (np.abs(m) < tiny))  # unflushed Adam is in subnormal range
    assert np.all(opt.m == 0)
    np.testing.assert_array_equal(p, ref_p)


def test_adam_keeps_nan_gradients_visible():
    p = np.ones(3)
    Adam(3, dtype=np.float64).step(p, np.array([np.nan, 1.0, 0.0]))
    assert np.isnan(p[0]) and p[1] < 1 and p[2] == 1
