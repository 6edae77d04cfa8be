"""Losses on logits: values, and the checks at the boundary before any kernel runs."""

import numpy as np
import pytest

import robnp
from robnp.errors import ConfigError, DataError
from robnp.losses import cross_entropy_smoothed, loss_and_grad_logits, per_example_loss


def reference_cross_entropy(Z, y):
    Z = np.asarray(Z, np.float64)
    shifted = Z - Z.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    grad = np.exp(log_p)
    grad[np.arange(len(y)), y] -= 1
    return -log_p[np.arange(len(y)), y].mean(), grad / len(y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_cross_entropy_matches_the_obvious_numpy(dtype):
    Z = np.array([[1, -2, 3], [0, 0, 0], [5, 1, -1], [2, 2, 1]], dtype=dtype)
    y = np.array([2, 0, 1, 1])
    loss, dZ = loss_and_grad_logits(Z, y)
    expected_loss, expected_grad = reference_cross_entropy(Z, y)
    assert dZ.dtype == (np.float32 if dtype == np.float32 else np.float64)
    assert loss == pytest.approx(expected_loss, rel=1e-6)
    np.testing.assert_allclose(dZ, expected_grad, rtol=1e-5, atol=1e-7)


BAD_LOGITS_AND_LABELS = [
    (np.zeros((3, 2)), [0, 1, 2], "labels must be in \\[0, 1\\].*\\[0, 2\\]"),
    (np.zeros((3, 2)), [0, -1, 1], "labels must be in \\[0, 1\\].*\\[-1, 1\\]"),
    (np.zeros((3, 4)), [0, 1, 2**40], "labels must be in \\[0, 3\\]"),
    (np.zeros((3, 2)), np.array([0, 1, 2**64 - 1], np.uint64), "labels must be in"),
    (np.zeros((3, 2)), [0.0, 1.0, np.inf], "labels must be in"),
    (np.zeros((3, 2)), [0.0, 0.5, 1.0], "integer class labels"),
    (np.zeros((3, 2)), ["0", "1", "1"], "integer class labels"),
    (np.zeros((3, 2)), [0, 1], "y must have shape \\(3,\\)"),
    (np.zeros((3, 2)), [[0, 1, 1]], "y must have shape \\(3,\\)"),
    (np.zeros(3), [0, 1, 1], "Z must have shape"),
    (np.zeros((3, 1)), [0, 0, 0], "n_classes >= 2"),
    (np.zeros((0, 2)), [], "Z has no rows"),
    (np.zeros((3, 2), complex), [0, 1, 1], "Z must hold real numbers"),
    (np.array([["a", "b"]] * 3), [0, 1, 1], "Z must hold real numbers"),
]


@pytest.mark.parametrize("loss", ["cross_entropy", "cw_margin"])
@pytest.mark.parametrize("Z,y,message", BAD_LOGITS_AND_LABELS,
                         ids=[m for _, _, m in BAD_LOGITS_AND_LABELS])
def test_bad_logits_or_labels_are_named_before_any_kernel_runs(Z, y, message, loss):
    with pytest.raises(DataError, match=message):
        loss_and_grad_logits(Z, y, loss=loss)


def test_unknown_loss_and_wrong_model():
    with pytest.raises(ConfigError, match="unknown loss 'hinge'"):
        loss_and_grad_logits(np.zeros((2, 2)), [0, 1], loss="hinge")
    with pytest.raises(ConfigError, match="model must be an MLP"):
        per_example_loss(np.zeros((2, 2)), np.zeros((2, 2)), [0, 1])
    model = robnp.MLP(2, (3,), 2, seed=0)
    with pytest.raises(DataError, match="labels must be in"):
        per_example_loss(model, np.zeros((2, 2)), [0, 7])


def reference_smoothed(Z, y, s):
    """PyTorch's CrossEntropyLoss(label_smoothing=s): (1 - s) nll + s mean_j(-log p_j)."""
    Z = np.asarray(Z, np.float64)
    shifted = Z - Z.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(len(y))
    loss = (1 - s) * -log_p[rows, y] + s * -log_p.mean(axis=1)
    target = np.full(Z.shape, s / Z.shape[1])
    target[rows, y] += 1 - s
    return loss.mean(), (np.exp(log_p) - target) / len(y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("s", [0.0, 0.1, 0.5, 0.99])
def test_smoothed_cross_entropy_matches_the_obvious_numpy(s, dtype):
    rng = np.random.default_rng(5)
    Z = (3 * rng.normal(size=(40, 5))).astype(dtype)
    y = rng.integers(0, 5, 40)
    loss, dZ = cross_entropy_smoothed(Z, y, smoothing=s)
    expected_loss, expected_grad = reference_smoothed(Z, y, s)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert dZ.dtype == dtype
    assert loss == pytest.approx(expected_loss, rel=tol)
    np.testing.assert_allclose(dZ, expected_grad, rtol=tol, atol=tol / 40)


def test_no_smoothing_is_the_cross_entropy_and_the_gradient_sums_to_zero():
    rng = np.random.default_rng(6)
    Z, y = rng.normal(size=(30, 4)), rng.integers(0, 4, 30)
    plain = loss_and_grad_logits(Z, y)
    smoothed = cross_entropy_smoothed(Z, y, smoothing=0.0)
    assert smoothed[0] == pytest.approx(plain[0], rel=1e-14)
    np.testing.assert_allclose(smoothed[1], plain[1], rtol=1e-13, atol=1e-16)
    _, dZ = cross_entropy_smoothed(Z, y, smoothing=0.3)
    np.testing.assert_allclose(dZ.sum(axis=1), 0, atol=1e-15)  # softmax and q both sum to 1


def test_smoothed_logit_gradient_matches_finite_differences():
    rng = np.random.default_rng(7)
    Z, y = rng.normal(size=(6, 3)), rng.integers(0, 3, 6)
    _, dZ = cross_entropy_smoothed(Z, y, 0.2)
    h = 1e-6
    numeric = np.empty_like(Z)
    for index in np.ndindex(Z.shape):
        up, down = Z.copy(), Z.copy()
        up[index] += h
        down[index] -= h
        numeric[index] = (cross_entropy_smoothed(up, y, 0.2)[0]
                          - cross_entropy_smoothed(down, y, 0.2)[0]) / (2 * h)
    np.testing.assert_allclose(dZ, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("s", [1.0, -0.1, np.nan, "0.1", True])
def test_smoothing_outside_zero_one_is_a_config_error(s):
    with pytest.raises(ConfigError, match=r"smoothing must be a finite number in \[0, 1\)"):
        cross_entropy_smoothed(np.zeros((2, 2)), [0, 1], smoothing=s)
