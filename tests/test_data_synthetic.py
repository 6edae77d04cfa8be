"""The study's generators, reproduced draw for draw, and the split."""

import numpy as np
import pytest

import robnp
from robnp.data import make_dataset
from robnp.errors import ConfigError


def circles_by_the_book(n, noise, factor, seed):
    rng = np.random.default_rng(seed)
    n_out, n_in = n // 2, n - n // 2
    a = rng.uniform(0, 2 * np.pi, n_out)
    b = rng.uniform(0, 2 * np.pi, n_in)
    X = np.concatenate([np.stack([np.cos(a), np.sin(a)], 1),
                        np.stack([factor * np.cos(b), factor * np.sin(b)], 1)])
    y = np.array([0] * n_out + [1] * n_in)
    X = X + rng.normal(0, noise, X.shape)
    p = rng.permutation(n)
    return X[p].astype(np.float32), y[p].astype(np.int64)


def moons_by_the_book(n, noise, seed):
    rng = np.random.default_rng(seed)
    n_up, n_low = n // 2, n - n // 2
    t1, t2 = np.linspace(0, np.pi, n_up), np.linspace(0, np.pi, n_low)
    X = np.concatenate([np.stack([np.cos(t1), np.sin(t1)], 1),
                        np.stack([1 - np.cos(t2), 1 - np.sin(t2) - 0.5], 1)])
    y = np.array([0] * n_up + [1] * n_low)
    X = X + rng.normal(0, noise, X.shape)
    p = rng.permutation(n)
    return X[p].astype(np.float32), y[p].astype(np.int64)


@pytest.mark.parametrize("n,noise,seed", [(2000, 0.15, 42), (7, 0.3, 0), (101, 0.0, 123)])
def test_circles_follow_the_study_procedure(n, noise, seed):
    X, y = robnp.make_circles(n, noise, seed=seed)
    X_ref, y_ref = circles_by_the_book(n, noise, 0.5, seed)
    np.testing.assert_array_equal(X, X_ref)
    np.testing.assert_array_equal(y, y_ref)


@pytest.mark.parametrize("n,noise,seed", [(2000, 0.15, 42), (7, 0.3, 0), (101, 0.0, 7)])
def test_moons_follow_the_study_procedure(n, noise, seed):
    X, y = robnp.make_moons(n, noise, seed=seed)
    X_ref, y_ref = moons_by_the_book(n, noise, seed)
    np.testing.assert_array_equal(X, X_ref)
    np.testing.assert_array_equal(y, y_ref)


@pytest.mark.parametrize("name", ["circles", "moons", "spheres"])
def test_generators_are_deterministic_typed_and_balanced(name):
    X, y = make_dataset(name, 501, 0.15, seed=9, input_dim=3 if name == "spheres" else 2)
    X2, y2 = make_dataset(name, 501, 0.15, seed=9, input_dim=3 if name == "spheres" else 2)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    assert X.dtype == np.float32 and y.dtype == np.int64
    assert X.shape[0] == 501 and y.shape == (501,)
    assert sorted(np.bincount(y)) == [250, 251]
    X3, _ = make_dataset(name, 501, 0.15, seed=10, input_dim=3 if name == "spheres" else 2)
    assert not np.array_equal(X, X3)


def test_circles_radii_match_the_factor_without_noise():
    X, y = robnp.make_circles(400, 0.0, factor=0.3, seed=1)
    radius = np.linalg.norm(X, axis=1)
    np.testing.assert_allclose(radius[y == 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(radius[y == 1], 0.3, atol=1e-6)


def test_extra_input_dimensions_keep_the_2d_points_and_add_noise():
    X2, y2 = make_dataset("circles", 300, 0.15, seed=4)
    X5, y5 = make_dataset("circles", 300, 0.15, seed=4, input_dim=5)
    assert X5.shape == (300, 5) and X5.flags.c_contiguous
    np.testing.assert_array_equal(X5[:, :2], X2)
    np.testing.assert_array_equal(y5, y2)
    assert 0.1 < X5[:, 2:].std() < 0.2  # noise coordinates, sd = noise


def test_spheres_live_on_two_radii_in_any_dimension():
    X, y = make_dataset("spheres", 200, 0.0, seed=2, input_dim=4)
    radius = np.linalg.norm(X, axis=1)
    np.testing.assert_allclose(radius[y == 0], 1.0, atol=1e-5)
    np.testing.assert_allclose(radius[y == 1], 0.5, atol=1e-5)


def test_split_takes_the_first_rows_for_training():
    X = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10)
    X_train, X_test, y_train, y_test = robnp.train_test_split(X, y, 0.25)
    assert len(X_train) == 8 and len(X_test) == 2  # 10 - int(2.5)
    np.testing.assert_array_equal(y_test, [8, 9])


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown dataset 'spiral'.*circles, moons"):
        make_dataset("spiral", 100)


@pytest.mark.parametrize("kwargs,match", [
    ({"n_samples": 1}, "n_samples"), ({"noise": -0.1}, "noise"), ({"input_dim": 1}, "input_dim"),
])
def test_bad_generator_arguments(kwargs, match):
    args = {"name": "moons", "n_samples": 100, "noise": 0.1, "seed": 0} | kwargs
    with pytest.raises(ConfigError, match=match):
        make_dataset(**args)


def test_a_new_dataset_is_one_registered_function():
    from robnp.data import DATASETS, register_dataset

    @register_dataset("stripes")
    def _stripes(n_samples, noise, seed, input_dim=2):
        """Vertical stripes."""
        rng = np.random.default_rng(seed)
        X = rng.uniform(-1, 1, (n_samples, input_dim)).astype(np.float32)
        return X, (X[:, 0] > 0).astype(np.int64)

    try:
        X, y = make_dataset("stripes", 50, 0.0, seed=1, input_dim=3)
        assert X.shape == (50, 3) and set(np.unique(y)) <= {0, 1}
        assert "stripes" in robnp.dataset_names()
    finally:
        DATASETS.pop("stripes")


# -- multi-class datasets and the class-count registry -------------------------------

@pytest.mark.parametrize("name", ["blobs", "spirals"])
@pytest.mark.parametrize("n,k", [(300, 3), (301, 4), (7, 7)])
def test_multiclass_generators_draw_the_documented_class_counts(name, n, k):
    X, y = make_dataset(name, n, 0.1, seed=3, n_classes=k)
    assert X.dtype == np.float32 and y.dtype == np.int64 and X.shape == (n, 2)
    # n // k each, one more for the first n % k classes
    expected = [n // k + (1 if c < n % k else 0) for c in range(k)]
    np.testing.assert_array_equal(np.bincount(y, minlength=k), expected)
    X2, y2 = make_dataset(name, n, 0.1, seed=3, n_classes=k)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)


def test_blobs_default_to_three_classes_and_sit_on_the_unit_circle_without_noise():
    X, y = make_dataset("blobs", 90, 0.0, seed=1)
    assert set(np.unique(y)) == {0, 1, 2}
    angle = 2 * np.pi * y / 3
    np.testing.assert_allclose(X, np.column_stack([np.cos(angle), np.sin(angle)]), atol=1e-7)


def test_spiral_arms_follow_their_formula_without_noise():
    k = 4
    X, y = make_dataset("spirals", 203, 0.0, seed=5, n_classes=k)
    for c in range(k):
        pts = X[y == c].astype(np.float64)
        rho = np.linalg.norm(pts, axis=1)
        order = np.argsort(rho)
        t = np.linspace(0, 1, len(pts))
        np.testing.assert_allclose(rho[order], 0.25 + 0.75 * t, atol=1e-6)
        phi = 2 * np.pi * c / k + 2 * np.pi * t
        np.testing.assert_allclose(pts[order], (0.25 + 0.75 * t)[:, None]
                                   * np.column_stack([np.cos(phi), np.sin(phi)]), atol=1e-6)


def test_multiclass_extra_dimensions_are_noise_and_keep_the_plane():
    X2, y2 = make_dataset("spirals", 120, 0.1, seed=2, n_classes=5)
    X4, y4 = make_dataset("spirals", 120, 0.1, seed=2, input_dim=4, n_classes=5)
    np.testing.assert_array_equal(X4[:, :2], X2)
    np.testing.assert_array_equal(y4, y2)


def test_the_registry_knows_each_call_s_class_count():
    from robnp.data import get_dataset
    assert get_dataset("circles").classes() == 2
    assert get_dataset("circles").classes(2) == 2
    assert get_dataset("blobs").classes() == 3
    assert get_dataset("blobs").classes(6) == 6
    for name, bad in [("circles", 3), ("moons", 1), ("blobs", 1), ("blobs", True), ("spirals", 2.0)]:
        with pytest.raises(ConfigError, match=f"n_classes.*{name}"):
            get_dataset(name).classes(bad)
    with pytest.raises(ConfigError, match="n_classes.*fixed at 2"):
        make_dataset("circles", 100, 0.1, seed=0, n_classes=3)
    with pytest.raises(ConfigError, match="n_samples must be >= n_classes"):
        make_dataset("blobs", 4, 0.1, seed=0, n_classes=5)


def test_a_registered_dataset_may_take_a_class_count():
    from robnp.data import DATASETS, get_dataset, register_dataset

    @register_dataset("bands", n_classes=4, min_classes=3)
    def _bands(n_samples, noise, seed, input_dim=2, n_classes=4):
        """Horizontal bands."""
        rng = np.random.default_rng(seed)
        X = rng.uniform(0, 1, (n_samples, input_dim)).astype(np.float32)
        return X, np.minimum((X[:, 1] * n_classes).astype(np.int64), n_classes - 1)

    try:
        assert get_dataset("bands").classes() == 4
        _, y = make_dataset("bands", 400, 0.0, seed=0, n_classes=6)
        assert set(np.unique(y)) == set(range(6))
        with pytest.raises(ConfigError, match="n_classes must be an integer >= 3"):
            make_dataset("bands", 400, 0.0, seed=0, n_classes=2)
    finally:
        DATASETS.pop("bands")
    with pytest.raises(ConfigError, match="min_classes"):
        register_dataset("nope", n_classes=3, min_classes=4)


# -- the split's input checks -------------------------------------------------------

def test_split_refuses_misaligned_arrays():
    from robnp.errors import DataError
    with pytest.raises(DataError, match="same number of rows, got 10 and 9"):
        robnp.train_test_split(np.zeros((10, 2)), np.zeros(9), 0.2)


def test_split_names_the_first_non_finite_row():
    from robnp.errors import DataError
    X = np.zeros((6, 2))
    X[4, 0] = np.inf
    X[3, 1] = np.nan
    with pytest.raises(DataError, match="row 3"):
        robnp.train_test_split(X, np.zeros(6), 0.5)


@pytest.mark.parametrize("fraction", [0, 0.0, 1, 1.0, -0.1, float("nan"), True, "0.2"])
def test_split_fraction_must_lie_in_zero_one(fraction):
    with pytest.raises(ConfigError, match=r"test_fraction must be a number in \(0, 1\)"):
        robnp.train_test_split(np.zeros((10, 2)), np.zeros(10), fraction)


def test_split_refuses_a_fraction_that_rounds_to_no_test_row():
    # The command line refuses an empty test set, and so does the library: 5 rows at
    # 0.1 give int(0.5) = 0 test rows.
    with pytest.raises(ConfigError, match="at least one train and one test row.*0 test "
                                          "and 5 train rows"):
        robnp.train_test_split(np.arange(10.0).reshape(5, 2), np.arange(5), 0.1)


def test_split_keeps_a_single_train_row():
    X_train, X_test, _, _ = robnp.train_test_split(np.arange(10.0).reshape(5, 2),
                                                   np.arange(5), 0.999)
    assert X_train.shape == (1, 2) and X_test.shape == (4, 2)
