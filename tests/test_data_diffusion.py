"""The diffusion generator: its regression loss's gradient, the EDM schedule, the
step ladder, files."""

import dataclasses

import numpy as np
import pytest

from robnp.data.diffusion import (EDM, DiffusionGenerator, noise_levels,
                                  regression_loss_and_grad)
from robnp.data.generators import DataTask, fit_generator, load_generator, save_generator
from robnp.data.quality import conditional_w1, fid
from robnp.errors import ConfigError
from robnp.model import MLP

TASK = DataTask("blobs", noise=0.1)
SMALL = {"width": 24, "depth": 2, "train_steps": 300, "batch_size": 128}


@pytest.mark.parametrize("hidden", [(7, 5), (3,), (17, 17, 17)])
def test_regression_loss_gradient_matches_finite_differences(hidden):
    model = MLP(3, hidden, 2, seed=1, dtype=np.float64)
    rng = np.random.default_rng(0)
    X, T = rng.normal(size=(33, 3)), rng.normal(size=(33, 2))
    loss, grad = regression_loss_and_grad(model, X, T)
    assert loss == pytest.approx(np.mean(np.sum((model.logits(X) - T) ** 2, axis=1)),
                                 rel=1e-12)
    numeric = np.empty_like(grad)
    for i in range(model.n_params):
        keep = model.params[i]
        model.params[i] = keep + 1e-6
        up = regression_loss_and_grad(model, X, T, False)[0]
        model.params[i] = keep - 1e-6
        down = regression_loss_and_grad(model, X, T, False)[0]
        model.params[i] = keep
        numeric[i] = (up - down) / 2e-6
    assert np.abs(grad - numeric).max() <= 1e-6 * max(1.0, np.abs(numeric).max())


def test_noise_levels_are_edms():
    sigmas = noise_levels(5)
    assert sigmas[0] == pytest.approx(EDM["sigma_max"]) and sigmas[-2] == \
        pytest.approx(EDM["sigma_min"]) and sigmas[-1] == 0
    assert np.all(np.diff(sigmas) < 0) and len(sigmas) == 6
    rho = EDM["rho"]
    middle = ((EDM["sigma_max"] ** (1 / rho) + EDM["sigma_min"] ** (1 / rho)) / 2) ** rho
    assert sigmas[2] == pytest.approx(middle)
    assert noise_levels(1).tolist() == [EDM["sigma_max"], 0.0]


@pytest.fixture(scope="module")
def diffusion():
    return fit_generator(TASK, "diffusion", 64, 0, **SMALL)


def with_steps(generator, steps):
    options = dataclasses.replace(generator.options, steps=steps)
    return DiffusionGenerator(generator.task, options, generator.m, generator.seed,
                              generator.models, generator.means, generator.sds)


def test_more_steps_give_better_samples(diffusion):
    """Measured (W1): 1.45, 0.21, 0.049, 0.034, 0.034 at S = 3, 5, 10, 20, 50. (S = 1
    is one Euler step from sigma_max to 0: every point lands near its class mean.)"""
    steps = (3, 5, 10, 20, 50)
    w1 = [conditional_w1(with_steps(diffusion, s), 600, 0)["value"] for s in steps]
    fids = [fid(with_steps(diffusion, s), 1000, 0)["value"] for s in steps]
    assert w1[0] > w1[1] > w1[2] > w1[3]
    assert fids[0] > fids[1] > fids[2] > fids[3]
    assert abs(w1[4] - w1[3]) < 0.01  # converged within noise
    assert w1[3] < 0.1  # blobs of noise 0.1 learned from 64 points


def test_sampling_is_fixed_and_files_round_trip(diffusion, tmp_path):
    X, y = diffusion.sample(200, 3)
    np.testing.assert_array_equal(X, diffusion.sample(200, 3)[0])
    np.testing.assert_array_equal(np.bincount(y), TASK.class_counts(200))
    path = save_generator(diffusion, tmp_path / "d")
    loaded = load_generator(path, TASK)
    assert loaded.identity() == diffusion.identity()
    np.testing.assert_array_equal(loaded.sample(200, 3)[0], X)


def test_bad_knobs_are_one_line():
    with pytest.raises(ConfigError, match=r"steps must be an integer >= 1, got 0"):
        fit_generator(TASK, "diffusion", 8, 0, steps=0)
    with pytest.raises(ConfigError, match=r"lr must be a finite number > 0"):
        fit_generator(TASK, "diffusion", 8, 0, lr=0.0)
    kde_only = fit_generator(TASK, "diffusion", 8, 0, train_steps=1, width=2, depth=1)
    assert not kde_only.has_density
    with pytest.raises(ConfigError, match=r"has no exact density"):
        kde_only.class_log_density(np.zeros((1, 2)))


def test_heun_solves_the_gaussian_ode_to_second_order():
    """A denoiser whose network outputs 0 is D = c_skip x, the ideal denoiser of
    N(mean, sd^2 I): the probability-flow ODE then gives x(0) = x(sigma_max)
    sqrt(sd^2 / (sigma_max^2 + sd^2)) exactly. Heun's error falls as S^-2 (measured:
    0.039, 0.0089, 0.0021, 0.00051 at S = 20, 40, 80, 160); Euler's would halve."""
    from robnp.data.diffusion import heun_sample
    model = MLP(3, (4,), 2, seed=0, dtype=np.float64)
    model.params[:] = 0
    sd, mean = 0.7, np.array([0.3, -1.0])
    X0 = EDM["sigma_max"] * np.random.default_rng(1).standard_normal((50, 2))
    exact = X0 * np.sqrt(sd ** 2 / (EDM["sigma_max"] ** 2 + sd ** 2))
    errors = []
    for steps in (20, 40, 80, 160):
        X = heun_sample(model, mean, sd, 50, steps, np.random.default_rng(1))
        errors.append(np.abs((X - mean) / exact - 1).max())
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert np.all(ratios > 3.5) and errors[-1] < 1e-3


def trained_like_model(seed=1):
    model = MLP(3, (16, 16), 2, seed=0)
    model.params[:] = (0.3 * np.random.default_rng(seed).standard_normal(model.n_params)
                       ).astype(model.dtype)
    return model


@pytest.mark.parametrize("steps", [1, 2, 7])
def test_the_compiled_sampler_is_the_numpy_one(steps):
    """float32 network: the BLAS path may round its products differently (measured
    max difference 1.3e-8 at S = 20)."""
    from robnp.data.diffusion import heun_sample, heun_sample_numpy
    model = trained_like_model()
    mean, sd = np.array([0.3, -1.0]), 0.6
    want = heun_sample_numpy(model, mean, sd, 700, steps, np.random.default_rng(4))
    got = heun_sample(model, mean, sd, 700, steps, np.random.default_rng(4))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * max(1.0, np.abs(want).max()))
    model64 = MLP(3, (16, 16), 2, seed=0, dtype=np.float64)
    model64.params[:] = model.params
    want = heun_sample_numpy(model64, mean, sd, 700, steps, np.random.default_rng(4))
    got = heun_sample(model64, mean, sd, 700, steps, np.random.default_rng(4))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_the_sampler_does_not_depend_on_the_thread_count():
    from robnp.data.diffusion import heun_sample
    model = trained_like_model(2)
    runs = [heun_sample(model, np.zeros(2), 0.5, 1500, 5, np.random.default_rng(0),
                        n_threads=t) for t in (1, 2, 3)]
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0], runs[2])
