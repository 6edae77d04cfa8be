"""Generators fitted to m real points per class: sampling, exact densities, files."""

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from robnp.data import make_dataset
from robnp.data.bayes import class_log_density
from robnp.data.generators import (GENERATORS, DataTask, KDEGenerator, fit_generator,
                                   load_generator, save_generator, true_generator)
from robnp.errors import ConfigError, ModelFileError
from robnp.model import MLP, save_model

TASK = DataTask("spirals", noise=0.1, size=256)


def test_sample_is_fixed_by_seed_and_has_the_task_class_counts():
    for generator in (true_generator(TASK), fit_generator(TASK, "kde", 20, 3, h=0.05)):
        X, y = generator.sample(1001, 7)
        assert X.dtype == np.float32 and y.dtype == np.int64 and X.shape == (1001, 2)
        np.testing.assert_array_equal(np.bincount(y), TASK.class_counts(1001))
        X2, y2 = generator.sample(1001, 7)
        np.testing.assert_array_equal(X, X2)
        np.testing.assert_array_equal(y, y2)
        assert not np.array_equal(X, generator.sample(1001, 8)[0])


def test_two_class_tasks_keep_the_study_rule():
    X, y = true_generator(DataTask("moons", noise=0.1)).sample(7, 0)
    np.testing.assert_array_equal(np.bincount(y), [3, 4])


def test_true_rows_are_rows_of_the_registered_generator():
    rows = TASK.true_rows([5, 5, 5], seed=11)
    # every row is a row of one of the blocks the truth draws
    from robnp.data.generators import child_seed
    X, y = make_dataset("spirals", 256, 0.1, seed=child_seed(11, 0, 0), n_classes=3)
    for k in range(3):
        np.testing.assert_array_equal(rows[k], X[y == k][:5].astype(np.float64))


def test_kde_is_fitted_to_m_true_points_per_class():
    kde = fit_generator(TASK, "kde", 17, 5, h=0.05)
    assert [p.shape for p in kde.points] == [(17, 2)] * 3
    again = fit_generator(TASK, "kde", 17, 5, h=0.2)
    for a, b in zip(kde.points, again.points):  # the knob does not change the draw
        np.testing.assert_array_equal(a, b)
    other = fit_generator(TASK, "kde", 17, 6, h=0.05)
    assert not np.array_equal(kde.points[0], other.points[0])


@pytest.mark.parametrize("d", [2, 3])
def test_kde_density_is_the_mixture_of_gaussians(d):
    task = DataTask("blobs", noise=0.2, input_dim=d)
    kde = fit_generator(task, "kde", 9, 0, h=0.07)
    X = np.random.default_rng(0).normal(0, 1, (40, d))
    X[0] = kde.points[1][0] + 40 * 0.07  # far from every point: still exact
    got = kde.class_log_density(X)
    for k, points in enumerate(kde.points):
        want = logsumexp([stats.multivariate_normal(p, 0.07 ** 2 * np.eye(d)).logpdf(X)
                          for p in points], axis=0) - np.log(len(points))
        np.testing.assert_allclose(got[:, k], want, rtol=1e-9)
    assert np.isfinite(got).all()


def test_kde_density_integrates_to_one_in_2d():
    kde = fit_generator(TASK, "kde", 30, 1, h=0.04)
    spacing = 0.01
    xs = np.arange(-1.6, 1.6, spacing)
    G = np.column_stack([np.repeat(xs, len(xs)), np.tile(xs, len(xs))])
    mass = np.exp(kde.class_log_density(G)).sum(axis=0) * spacing ** 2
    np.testing.assert_allclose(mass, 1.0, atol=1e-8)


def test_kde_samples_follow_its_density():
    """Mean and covariance of one class's samples are the mixture's, within 5
    standard errors, and the fraction in a half-plane its probability."""
    h = 0.05
    kde = fit_generator(TASK, "kde", 25, 2, h=h)
    X, y = kde.sample(60000, 4)
    points = kde.points[0]
    A = X[y == 0].astype(np.float64)
    mean = points.mean(axis=0)
    cov = np.cov(points.T, bias=True) + h * h * np.eye(2)
    se = np.sqrt(np.diag(cov) / len(A))
    assert np.all(np.abs(A.mean(axis=0) - mean) < 5 * se)
    np.testing.assert_allclose(np.cov(A.T), cov, atol=5 * cov.max() * np.sqrt(2 / len(A)))
    # one point per class: the samples are N(x_1, h^2 I)
    single = fit_generator(TASK, "kde", 1, 2, h=h)
    X1, y1 = single.sample(30000, 5)
    B = X1[y1 == 1].astype(np.float64) - single.points[1][0]
    assert np.all(np.abs(B.mean(axis=0)) < 5 * h / np.sqrt(len(B)))
    np.testing.assert_allclose(B.var(axis=0), h * h, atol=5 * h * h * np.sqrt(2 / len(B)))
    # P(x_0 > 0) = mean over points of Phi(p_0 / h)
    p = stats.norm.cdf(points[:, 0] / h).mean()
    assert abs((A[:, 0] > 0).mean() - p) < 5 * np.sqrt(p * (1 - p) / len(A))


def test_true_density_is_bayes_with_the_draw_size():
    X = np.random.default_rng(1).normal(0, 1, (20, 2))
    got = true_generator(TASK).class_log_density(X)
    want = class_log_density("spirals", X, n_samples=256, noise=0.1, n_classes=3)
    np.testing.assert_array_equal(got, want)


def test_bad_input_is_one_line():
    with pytest.raises(ConfigError, match=r"h must be a finite number > 0, got 0"):
        fit_generator(TASK, "kde", 10, 0, h=0)
    with pytest.raises(ConfigError, match=r"h must be"):
        fit_generator(TASK, "kde", 10, 0, h=-0.1)
    with pytest.raises(ConfigError, match=r"m must be an integer >= 1"):
        fit_generator(TASK, "kde", 0, 0, h=0.1)
    with pytest.raises(ConfigError, match=r"m must be None"):
        fit_generator(TASK, "true", 10)
    with pytest.raises(ConfigError, match=r"unknown option 'bandwidth'.*known options: h"):
        fit_generator(TASK, "kde", 10, 0, bandwidth=0.1)
    with pytest.raises(ConfigError, match=r"unknown generator 'gan'; known generators: "
                                          r"true, kde"):
        fit_generator(TASK, "gan", 10)
    with pytest.raises(ConfigError, match=r"unknown dataset"):
        DataTask("nope")
    with pytest.raises(ConfigError, match=r"n must be an integer >= 1"):
        true_generator(TASK).sample(0)
    for message in ("h must be",):
        assert "\n" not in message
    assert set(GENERATORS.names()) >= {"true", "kde"}


def test_save_load_round_trip(tmp_path):
    for generator in (true_generator(TASK), fit_generator(TASK, "kde", 12, 9, h=0.03)):
        path = save_generator(generator, tmp_path / f"{generator.kind}")
        assert path.endswith(".npz")
        loaded = load_generator(path, TASK)
        assert loaded.identity() == generator.identity()
        np.testing.assert_array_equal(loaded.sample(300, 1)[0], generator.sample(300, 1)[0])
        if isinstance(generator, KDEGenerator):
            for a, b in zip(loaded.points, generator.points):
                np.testing.assert_array_equal(a, b)


def test_damaged_or_foreign_files_are_one_line_errors(tmp_path):
    path = save_generator(fit_generator(TASK, "kde", 12, 9, h=0.03), tmp_path / "g.npz")
    data = open(path, "rb").read()
    bad = tmp_path / "cut.npz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=r"cannot read generator file|not a valid"):
        load_generator(bad)
    with pytest.raises(ModelFileError, match=r"not found"):
        load_generator(tmp_path / "missing.npz")
    with pytest.raises(ModelFileError, match=r"holds a generator of spirals \(noise 0.1.*"
                                             r"not of spirals \(noise 0.2"):
        load_generator(path, DataTask("spirals", noise=0.2, size=256))
    model = tmp_path / "model.npz"
    save_model(MLP(2, (4,), 3, seed=0), model)
    with pytest.raises(ModelFileError, match=r"not a valid robnp generator"):
        load_generator(model)
    # points of the wrong shape
    archive = dict(np.load(path))
    archive["points_1"] = archive["points_1"][:3]
    np.savez(tmp_path / "shape.npz", **archive)
    with pytest.raises(ModelFileError, match=r"points_1.*shape"):
        load_generator(tmp_path / "shape.npz")
