"""Exact class densities of the generators, and the Bayes rule and error they give."""

import numpy as np
import pytest
from scipy import integrate, optimize, special, stats

from robnp.data import DATASETS, make_dataset, register_dataset
from robnp.data.bayes import (bayes_error, bayes_label, bayes_posterior, class_log_density,
                              class_priors)
from robnp.errors import ConfigError, DataError

SHELL_RADII = (1.0, 0.5)  # label 0 outer, label 1 inner


def sphere_density_by_quadrature(rho, radius, s, d):
    """p(x) for x at distance rho, from the direction average written as an integral
    over the angle to x: E_u exp(k u_1) = int exp(k cos t) sin^(d-2) t / int sin^(d-2) t."""
    kappa = radius * rho / s**2
    peak = min(np.pi, 6 / np.sqrt(kappa)) if kappa > 0 else np.pi
    num = integrate.quad(lambda t: np.exp(kappa * (np.cos(t) - 1)) * np.sin(t) ** (d - 2),
                         0, np.pi, points=[peak] if peak < np.pi else None, limit=200,
                         epsabs=0, epsrel=1e-12)[0]
    den = integrate.quad(lambda t: np.sin(t) ** (d - 2), 0, np.pi, epsrel=1e-12)[0]
    log_mean = kappa + np.log(num / den)
    return np.exp(-d / 2 * np.log(2 * np.pi * s**2) - (rho**2 + radius**2) / (2 * s**2)
                  + log_mean)


@pytest.mark.parametrize("d", [2, 3, 5, 12])
@pytest.mark.parametrize("s", [0.05, 0.15])
def test_blurred_sphere_density_matches_the_angle_integral(d, s):
    name = "circles" if d == 2 else "spheres"
    for rho in [0.0, 1e-7, 0.3, 0.9, 1.0, 1.6]:
        x = np.zeros((1, d))
        x[0, 0] = rho
        got = np.exp(class_log_density(name, x, n_samples=100, noise=s, input_dim=d))[0]
        want = [sphere_density_by_quadrature(rho, r, s, d) for r in SHELL_RADII]
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-300)


@pytest.mark.parametrize("name,d", [("circles", 2), ("spheres", 2), ("spheres", 3),
                                    ("spheres", 6), ("spheres", 40)])
def test_shell_densities_integrate_to_one(name, d):
    s = 0.15
    surface = 2 * np.pi ** (d / 2) / special.gamma(d / 2)

    def radial(rho, k):
        x = np.zeros((1, d))
        x[0, 0] = rho
        return np.exp(class_log_density(name, x, n_samples=10, noise=s, input_dim=d))[0, k] \
            * surface * rho ** (d - 1)

    for k in range(2):
        total = integrate.quad(radial, 0, 1 + 3 * s * np.sqrt(d) + 10 * s, args=(k,),
                               limit=200, epsrel=1e-11)[0]
        assert total == pytest.approx(1.0, abs=1e-8)


def grid_integral(values, xs, ys):
    return integrate.simpson(integrate.simpson(values, x=ys, axis=-1), x=xs, axis=-1)


@pytest.mark.parametrize("name,n,k,s", [("moons", 30, None, 0.15), ("spirals", 25, 3, 0.1),
                                        ("blobs", 50, 5, 0.2), ("moons", 7, None, 0.05)])
def test_mixture_densities_integrate_to_one(name, n, k, s):
    xs = np.linspace(-1 - 10 * s, 2 + 10 * s, 1 + int((3 + 20 * s) / (s / 6)))
    ys = np.linspace(-1 - 10 * s, 1 + 10 * s, 1 + int((2 + 20 * s) / (s / 6)))
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    logp = class_log_density(name, np.column_stack([gx.ravel(), gy.ravel()]),
                             n_samples=n, noise=s, n_classes=k)
    masses = grid_integral(np.exp(logp).T.reshape(-1, len(xs), len(ys)), xs, ys)
    np.testing.assert_allclose(masses, 1.0, atol=1e-7)


def test_nuisance_coordinates_factor_out_and_cancel():
    s = 0.2
    for name, k in [("circles", None), ("moons", None), ("blobs", 4), ("spirals", 3)]:
        X4, _ = make_dataset(name, 60, s, seed=1, input_dim=4, n_classes=k)
        full = class_log_density(name, X4, n_samples=60, noise=s, input_dim=4, n_classes=k)
        plane = class_log_density(name, X4[:, :2], n_samples=60, noise=s, n_classes=k)
        extra = stats.norm.logpdf(X4[:, 2:].astype(np.float64), scale=s).sum(axis=1)
        np.testing.assert_allclose(full, plane + extra[:, None], rtol=1e-12)
        np.testing.assert_allclose(
            bayes_posterior(name, X4, n_samples=60, noise=s, input_dim=4, n_classes=k),
            bayes_posterior(name, X4[:, :2], n_samples=60, noise=s, n_classes=k), rtol=1e-10)


def chi_square_p(observed, expected):
    """Pearson's test, cells with expected count < 5 pooled into one."""
    small = expected < 5
    obs = np.append(observed[~small], observed[small].sum())
    exp = np.append(expected[~small], expected[small].sum())
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    return stats.chi2.sf(((obs - exp) ** 2 / exp).sum(), len(obs) - 1)


def radial_bin_p(name, d, s, s_model):
    X = np.vstack([make_dataset(name, 2000, s, seed=seed, input_dim=d)[0] for seed in range(5)])
    y = np.concatenate([make_dataset(name, 2000, s, seed=seed, input_dim=d)[1]
                        for seed in range(5)])
    surface = 2 * np.pi ** (d / 2) / special.gamma(d / 2)
    edges = np.linspace(0, 1 + 5 * s, 25)
    worst = 1.0
    for k in range(2):
        rho = np.linalg.norm(X[y == k].astype(np.float64), axis=1)

        def radial(r):
            x = np.zeros((1, d))
            x[0, 0] = r
            return np.exp(class_log_density(name, x, n_samples=2000, noise=s_model,
                                            input_dim=d))[0, k] * surface * r ** (d - 1)

        probs = np.array([integrate.quad(radial, a, b)[0] for a, b in zip(edges[:-1], edges[1:])])
        counts = np.histogram(rho, edges)[0]
        observed = np.append(counts, (rho >= edges[-1]).sum())
        expected = len(rho) * np.append(probs, 1 - probs.sum())
        worst = min(worst, chi_square_p(observed, expected))
    return worst


@pytest.mark.parametrize("name,d", [("circles", 2), ("spheres", 5)])
def test_radius_histograms_of_large_samples_fit_the_density(name, d):
    assert radial_bin_p(name, d, 0.15, 0.15) > 1e-3
    # The same test has power: a density 15% too wide is rejected.
    assert radial_bin_p(name, d, 0.15, 0.15 * 1.15) < 1e-6


def planar_bin_p(name, n, k, s, s_model, n_draws=400):
    draws = [make_dataset(name, n, s, seed=seed, n_classes=k) for seed in range(n_draws)]
    X = np.vstack([d[0] for d in draws]).astype(np.float64)
    y = np.concatenate([d[1] for d in draws])
    xe = np.linspace(X[:, 0].min(), X[:, 0].max(), 11)
    ye = np.linspace(X[:, 1].min(), X[:, 1].max(), 11)
    sub = 8  # Simpson points per bin edge
    xs = np.linspace(xe[0], xe[-1], 10 * sub + 1)
    ys = np.linspace(ye[0], ye[-1], 10 * sub + 1)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    dens = np.exp(class_log_density(name, np.column_stack([gx.ravel(), gy.ravel()]),
                                    n_samples=n, noise=s_model, n_classes=k))
    worst = 1.0
    for c in range(dens.shape[1]):
        grid = dens[:, c].reshape(len(xs), len(ys))
        probs = np.array([[grid_integral(grid[i * sub:(i + 1) * sub + 1, j * sub:(j + 1) * sub + 1],
                                         xs[i * sub:(i + 1) * sub + 1], ys[j * sub:(j + 1) * sub + 1])
                           for j in range(10)] for i in range(10)]).ravel()
        counts = np.histogram2d(X[y == c, 0], X[y == c, 1], [xe, ye])[0].ravel()
        m = (y == c).sum()
        worst = min(worst, chi_square_p(np.append(counts, m - counts.sum()),
                                        m * np.append(probs, max(1 - probs.sum(), 0))))
    return worst


@pytest.mark.parametrize("name,n,k,s", [("moons", 40, None, 0.15), ("spirals", 30, 3, 0.1),
                                        ("blobs", 60, 4, 0.3)])
def test_binned_counts_of_many_draws_fit_the_density(name, n, k, s):
    assert planar_bin_p(name, n, k, s, s) > 1e-3
    assert planar_bin_p(name, n, k, s, 1.15 * s) < 1e-6


def test_circles_bayes_rule_is_inner_inside_radius_0_7658():
    s = 0.15

    def log_ratio(r):  # log p(r | outer) - log p(r | inner), written with I_0 itself
        return (-(r**2 + 1) / (2 * s**2) + np.log(special.i0(r / s**2))
                + (r**2 + 0.25) / (2 * s**2) - np.log(special.i0(0.5 * r / s**2)))

    threshold = optimize.brentq(log_ratio, 0.6, 0.9, xtol=1e-12)
    assert threshold == pytest.approx(0.7658, abs=1e-4)
    rng = np.random.default_rng(0)
    X = rng.uniform(-1.5, 1.5, (4000, 2))
    label = bayes_label("circles", X, n_samples=2000, noise=s)
    np.testing.assert_array_equal(label, (np.linalg.norm(X, axis=1) < threshold).astype(int))
    on_ray = np.array([[threshold * (1 - 1e-9), 0], [threshold * (1 + 1e-9), 0]])
    np.testing.assert_array_equal(bayes_label("circles", on_ray, n_samples=2000, noise=s), [1, 0])
    assert bayes_error("circles", n_samples=2000, noise=s) == pytest.approx(0.0496, abs=1e-4)


def test_bayes_error_of_blobs_matches_its_closed_forms():
    for s in (0.3, 0.5):
        # two blobs at (+-1, 0): Phi(-1/s); four at the axes: 1 - Phi(1/(s sqrt 2))^2
        assert bayes_error("blobs", n_samples=2000, noise=s, n_classes=2) == pytest.approx(
            stats.norm.cdf(-1 / s), abs=1e-8)
        assert bayes_error("blobs", n_samples=2000, noise=s, n_classes=4) == pytest.approx(
            1 - stats.norm.cdf(1 / (s * np.sqrt(2))) ** 2, abs=1e-8)


def test_grid_bayes_error_has_converged():
    coarse = bayes_error("spirals", n_samples=300, noise=0.1, resolution=8)
    fine = bayes_error("spirals", n_samples=300, noise=0.1, resolution=16)
    assert abs(coarse - fine) < 1e-5


@pytest.mark.parametrize("name,n,k,s,draws", [
    ("circles", 2000, None, 0.15, 20), ("moons", 200, None, 0.15, 200),
    ("spheres", 2000, None, 0.3, 20), ("blobs", 3000, 3, 0.4, 10),
    ("spirals", 600, 3, 0.1, 40),
])
def test_bayes_error_matches_the_error_rate_of_bayes_labels_on_fresh_samples(name, n, k, s, draws):
    d = 3 if name == "spheres" else 2
    wrong = total = 0
    for seed in range(1000, 1000 + draws):
        X, y = make_dataset(name, n, s, seed=seed, input_dim=d, n_classes=k)
        wrong += (bayes_label(name, X, n_samples=n, noise=s, input_dim=d, n_classes=k) != y).sum()
        total += n
    exact = bayes_error(name, n_samples=n, noise=s, input_dim=d, n_classes=k)
    assert abs(wrong / total - exact) < 4 * np.sqrt(exact * (1 - exact) / total)


def test_priors_are_the_generator_s_class_proportions():
    np.testing.assert_allclose(class_priors("circles", n_samples=2001), [1000 / 2001, 1001 / 2001])
    np.testing.assert_allclose(class_priors("blobs", n_samples=10), [0.4, 0.3, 0.3])
    np.testing.assert_allclose(class_priors("spirals", n_samples=10, n_classes=4),
                               [0.3, 0.3, 0.2, 0.2])
    for name, k in [("moons", None), ("blobs", 4), ("spheres", None)]:
        _, y = make_dataset(name, 1001, 0.1, seed=0, n_classes=k)
        np.testing.assert_allclose(class_priors(name, n_samples=1001, n_classes=k),
                                   np.bincount(y) / 1001)


def test_posterior_is_a_distribution_that_puts_far_points_on_the_near_class():
    X = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]])
    post = bayes_posterior("blobs", X, n_samples=300, noise=0.2, n_classes=2)
    assert post.shape == (3, 2) and post.dtype == np.float64
    np.testing.assert_allclose(post.sum(axis=1), 1.0)
    assert post[0, 0] > 0.999 and post[1, 1] > 0.999
    np.testing.assert_allclose(post[2], [0.5, 0.5])


def test_bad_arguments_are_named():
    @register_dataset("stripes")
    def _stripes(n_samples, noise, seed, input_dim=2):
        """Stripes."""
        X = np.zeros((n_samples, input_dim), np.float32)
        return X, np.zeros(n_samples, np.int64)

    try:
        with pytest.raises(ConfigError, match="no exact class density.*'stripes'"):
            bayes_posterior("stripes", np.zeros((1, 2)), n_samples=10, noise=0.1)
    finally:
        DATASETS.pop("stripes")
    X = np.zeros((2, 2))
    with pytest.raises(ConfigError, match="noise must be a finite number > 0"):
        bayes_label("circles", X, n_samples=10, noise=0.0)
    with pytest.raises(ConfigError, match="n_classes.*fixed at 2"):
        bayes_label("moons", X, n_samples=10, noise=0.1, n_classes=3)
    with pytest.raises(ConfigError, match="n_classes must be an integer >= 2"):
        bayes_label("blobs", X, n_samples=10, noise=0.1, n_classes=1)
    with pytest.raises(ConfigError, match="n_samples"):
        bayes_error("moons", n_samples=1, noise=0.1)
    with pytest.raises(ConfigError, match="resolution"):
        bayes_error("moons", n_samples=10, noise=0.1, resolution=1)
    with pytest.raises(DataError, match="shape"):
        bayes_label("circles", np.zeros((2, 3)), n_samples=10, noise=0.1)
    with pytest.raises(DataError, match="row 1"):
        bayes_label("circles", np.array([[0, 0], [np.nan, 0]]), n_samples=10, noise=0.1)


def _naive_mixture(X2, centres, s):
    """The mixture's log density and gradient written out with NumPy's temporaries."""
    from scipy.special import logsumexp

    diff = centres[None, :, :] - X2[:, None, :]
    logits = -(diff ** 2).sum(axis=2) / (2 * s * s)
    norm = logsumexp(logits, axis=1)
    weights = np.exp(logits - norm[:, None])
    log = norm - np.log(len(centres)) - np.log(2 * np.pi * s * s)
    return log, np.einsum("ij,ijk->ik", weights, diff) / (s * s)


@pytest.mark.parametrize("s", [0.01, 0.15, 2.0])
def test_compiled_mixture_matches_the_written_out_log_sum_exp(s):
    from robnp.data.bayes import _mixture

    rng = np.random.default_rng(3)
    centres = rng.normal(size=(257, 2))
    # Near the centres, between them, and far away (every term tiny but the largest).
    X2 = np.vstack([centres[:5] + 1e-3, rng.normal(size=(40, 2)), rng.normal(size=(5, 2)) * 40])
    log, grad = _mixture(X2, centres, s, True)
    ref_log, ref_grad = _naive_mixture(X2, centres, s)
    np.testing.assert_allclose(log, ref_log, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-9, atol=1e-9 * np.abs(ref_grad).max())
    assert np.array_equal(_mixture(X2, centres, s, False)[0], log)


def test_mixture_gradient_matches_finite_differences():
    from robnp.data.bayes import _mixture

    rng = np.random.default_rng(4)
    centres = rng.normal(size=(30, 2))
    X2 = rng.normal(size=(6, 2))
    _, grad = _mixture(X2, centres, 0.3, True)
    h = 1e-6
    for k in range(2):
        step = np.zeros(2)
        step[k] = h
        fd = (_mixture(X2 + step, centres, 0.3, False)[0]
              - _mixture(X2 - step, centres, 0.3, False)[0]) / (2 * h)
        np.testing.assert_allclose(grad[:, k], fd, rtol=1e-6, atol=1e-7)
