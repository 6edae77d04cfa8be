"""Every gradient against central finite differences (float64), and float32 against float64."""

import numpy as np
import pytest

import robnp
from robnp.gradcheck import check_gradients, check_model_gradients, sample_away_from_kinks


@pytest.mark.parametrize("loss", ["cross_entropy", "cw_margin"])
@pytest.mark.parametrize("n_samples", [1, 33])
@pytest.mark.parametrize("hidden", [(1,), (17,), (17, 1), (1, 17, 17), (17, 17, 17)])
def test_every_block_matches_finite_differences(hidden, n_samples, loss):
    report = check_gradients(hidden, n_features=3, n_classes=3, n_samples=n_samples,
                             loss=loss, seed=len(hidden) * 100 + n_samples)
    names = [block.name for block in report.blocks]
    assert names[-1] == "input"
    assert len(names) == 2 * (len(hidden) + 1) + 1  # every W, every b, the input
    for block in report.blocks:
        assert block.rel_error <= 1e-6, (block.name, block.rel_error)


@pytest.mark.parametrize("n_samples", [1, 33])
@pytest.mark.parametrize("hidden", [(17,), (17, 17), (17, 17, 17)])
def test_every_block_of_the_dlr_loss_matches_finite_differences(hidden, n_samples):
    """DLR is invariant to scaling the logits, so below a width-1 layer (with zero
    biases the logits are then homogeneous in that unit) its gradient is exactly 0 and
    a relative error means nothing: only nets without one are checked."""
    report = check_gradients(hidden, n_features=3, n_classes=4, n_samples=n_samples,
                             loss="dlr", seed=len(hidden) * 10 + n_samples)
    for block in report.blocks:
        assert block.rel_error <= 1e-6, (block.name, block.rel_error)


def test_the_check_catches_a_wrong_gradient(monkeypatch):
    """A deliberately broken backward pass must fail the check."""
    import robnp.gradcheck as gc

    real = gc.param_gradient

    def broken(model, X, y, loss="cross_entropy"):
        value, grad = real(model, X, y, loss=loss)
        grad[3] += 1e-3 * np.abs(grad).max()
        return value, grad

    monkeypatch.setattr(gc, "param_gradient", broken)
    report = check_gradients((5,), n_samples=4)
    assert not report.passed
    assert [b.name for b in report.blocks if not b.passed] == ["W1"]


def test_inputs_are_kept_away_from_relu_kinks():
    rng = np.random.default_rng(0)
    model = robnp.MLP(2, (17, 17), 2, dtype=np.float64, seed=rng)
    X, y = sample_away_from_kinks(model, 50, rng, kink_margin=1e-2)
    A = X
    for W, b in zip(model.coefs_[:-1], model.intercepts_[:-1]):
        Z = A @ W + b
        assert np.abs(Z).min() >= 1e-2
        A = np.maximum(Z, 0)


def test_float32_path_agrees_with_float64(trained_model, circles_split):
    X_test, y_test = circles_split[1], circles_split[3]
    m64 = trained_model.astype(np.float64)
    g32 = robnp.input_gradient(trained_model, X_test, y_test)
    g64 = robnp.input_gradient(m64, X_test, y_test)
    assert g32.dtype == np.float32 and g64.dtype == np.float64
    scale = np.abs(g64).max()
    np.testing.assert_allclose(g32, g64, atol=1e-4 * scale, rtol=1e-3)
    _, p32 = robnp.param_gradient(trained_model, X_test, y_test)
    _, p64 = robnp.param_gradient(m64, X_test, y_test)
    np.testing.assert_allclose(p32, p64, atol=1e-4 * np.abs(p64).max(), rtol=1e-3)
    np.testing.assert_allclose(trained_model.logits(X_test), m64.logits(X_test), rtol=1e-4,
                               atol=1e-4)


def test_a_trained_float32_model_checks_through_a_float64_copy(trained_model):
    rng = np.random.default_rng(11)
    m64 = trained_model.astype(np.float64)
    X, y = sample_away_from_kinks(m64, 20, rng)
    report = check_model_gradients(trained_model, X, y)
    assert report.passed, [(b.name, b.rel_error) for b in report.blocks]


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.6])
@pytest.mark.parametrize("hidden", [(17,), (17, 17)])
def test_every_block_of_the_smoothed_loss_matches_finite_differences(hidden, smoothing):
    """Label-smoothed cross-entropy: the parameter gradient of the compiled training
    kernel against central differences of the per-example smoothed loss."""
    from robnp.gradcheck import _central_differences, relative_error
    from robnp.gradients import smoothed_param_gradient
    from robnp.losses import per_example_smoothed_loss

    rng = np.random.default_rng(40 + len(hidden))
    model = robnp.MLP(3, hidden, 4, dtype=np.float64, seed=rng)
    X, y = sample_away_from_kinks(model, 25, rng)
    _, grad = smoothed_param_gradient(model, X, y, smoothing)
    numeric = _central_differences(
        model.params, lambda: per_example_smoothed_loss(model, X, y, smoothing).mean(), 1e-6)
    for analytic, numerical in zip(model.split_params(grad)[0] + model.split_params(grad)[1],
                                   model.split_params(numeric)[0]
                                   + model.split_params(numeric)[1]):
        assert relative_error(analytic, numerical) <= 1e-6
    if smoothing == 0.0:
        np.testing.assert_allclose(grad, robnp.param_gradient(model, X, y)[1], rtol=1e-12,
                                   atol=1e-15)
