"""Losses on logits: values, and the checks at the boundary before any kernel runs."""

import numpy as np
import pytest

import robnp
from robnp.errors import ConfigError, DataError
from robnp.losses import loss_and_grad_logits, per_example_loss


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
