"""Attack properties: the eps-ball, eps = 0, strength ordering, monotonicity."""

import numpy as np
import pytest

import robnp
from robnp.attacks import PGDOptions, fgsm_from_gradient
from robnp.errors import ConfigError
from robnp.losses import per_example_loss

EPS = [0.0, 0.01, 0.05, 0.1, 0.2, 0.5]


class Given:
    """Clean points whose gradient is given (the evaluation's, or a wrong one)."""

    def __init__(self, gradient):
        self.gradient_at_x = gradient

    def gradient(self, loss):
        return self.gradient_at_x


def run_pgd(model, X, y, radii, clean, **options):
    """The registry's PGD handed the gradient at the clean points."""
    return robnp.attacks.get_attack("pgd").run(model, X, y, radii, PGDOptions(**options),
                                              np.random.default_rng(0), clean=clean)


def linf(a, b):
    return np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max(axis=1)


@pytest.mark.parametrize("eps", EPS)
def test_attacks_never_leave_the_ball(trained_model, circles_split, eps):
    X, y = circles_split[1], circles_split[3]
    slack = 1e-6 * (1 + np.abs(X).max())
    for X_adv in (robnp.fgsm(trained_model, X, y, eps),
                  robnp.pgd(trained_model, X, y, eps),
                  robnp.pgd(trained_model, X, y, eps, steps=25, step_size=eps, random_start=True,
                            seed=0),
                  robnp.pgd(trained_model, X, y, eps, loss="cw_margin")):
        assert X_adv.shape == X.shape and X_adv.dtype == np.float32
        assert linf(X_adv, X).max() <= eps + slack


def test_fgsm_is_a_full_step_on_every_coordinate(trained_model, circles_split):
    X, y = circles_split[1], circles_split[3]
    grad = robnp.input_gradient(trained_model, X, y)
    X_adv = robnp.fgsm(trained_model, X, y, 0.1)
    np.testing.assert_allclose(X_adv - X, 0.1 * np.sign(grad), atol=1e-6)


def test_fgsm_direction_agrees_with_finite_differences():
    """The sign of the analytic gradient is the sign of a numerical one."""
    model = robnp.MLP(2, (9, 9), 2, dtype=np.float64, seed=4)
    rng = np.random.default_rng(4)
    X = rng.normal(size=(12, 2))
    y = rng.integers(0, 2, 12)
    h = 1e-6
    numeric = np.zeros_like(X)
    for i in range(12):
        for k in range(2):
            up, down = X.copy(), X.copy()
            up[i, k] += h
            down[i, k] -= h
            numeric[i, k] = (per_example_loss(model, up, y).mean()
                             - per_example_loss(model, down, y).mean()) / (2 * h)
    big = np.abs(numeric) > 1e-6
    X_adv = robnp.fgsm(model, X, y, 0.2)
    np.testing.assert_array_equal(np.sign(X_adv - X)[big], np.sign(numeric)[big])


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_eps_zero_is_the_identity(trained_model, circles_split, attack):
    X, y = circles_split[1], circles_split[3]
    X_adv = getattr(robnp, attack)(trained_model, X, y, 0.0)
    np.testing.assert_array_equal(X_adv, X)
    assert X_adv is not X


def test_pgd_with_zero_steps_is_refused(trained_model, circles_split):
    # Zero steps is no attack: its "robust accuracy" would be the clean accuracy.
    X, y = circles_split[1], circles_split[3]
    with pytest.raises(ConfigError, match="steps must be an integer >= 1, got 0"):
        robnp.pgd(trained_model, X, y, 0.3, steps=0)


def test_pgd_is_at_least_as_strong_as_fgsm_on_average(trained_model, circles_split):
    X, y = circles_split[1], circles_split[3]
    for eps in (0.05, 0.1, 0.2):
        fgsm_loss = per_example_loss(trained_model, robnp.fgsm(trained_model, X, y, eps), y)
        pgd_loss = per_example_loss(trained_model, robnp.pgd(trained_model, X, y, eps), y)
        clean_loss = per_example_loss(trained_model, X, y)
        assert pgd_loss.mean() >= fgsm_loss.mean() > clean_loss.mean()


def test_robust_accuracy_does_not_increase_with_eps(trained_model, circles_split):
    X, y = circles_split[1], circles_split[3]
    for attack in ("pgd", "fgsm"):
        acc = robnp.robust_accuracy(trained_model, X, y, attack, eps=EPS)
        assert list(acc) == EPS
        values = [acc[e] for e in EPS]
        assert values[0] == robnp.accuracy(trained_model, X, y)
        assert all(b <= a for a, b in zip(values, values[1:])), values
        assert values[-1] < values[0]


def test_robust_accuracy_fgsm_shortcut_equals_the_attack(trained_model, circles_split):
    X, y = circles_split[1], circles_split[3]
    fast = robnp.robust_accuracy(trained_model, X, y, "fgsm", eps=[0.1, 0.2])
    slow = {e: robnp.accuracy(trained_model, robnp.fgsm(trained_model, X, y, e), y)
            for e in (0.1, 0.2)}
    assert fast == slow
    custom = robnp.robust_accuracy(trained_model, X, y,
                                   lambda m, X_, y_, e: robnp.fgsm(m, X_, y_, e), eps=[0.1, 0.2])
    assert custom == slow


def test_bounds_keep_adversarial_points_in_the_box(trained_model, circles_split):
    X, y = circles_split[1], circles_split[3]
    X_box = np.clip(X, -1, 1)
    for X_adv in (robnp.fgsm(trained_model, X_box, y, 0.3, bounds=(-1, 1)),
                  robnp.pgd(trained_model, X_box, y, 0.3, bounds=(-1, 1), random_start=True,
                            seed=1)):
        assert X_adv.min() >= -1 and X_adv.max() <= 1
        assert linf(X_adv, X_box).max() <= 0.3 + 1e-6


def test_random_start_is_seeded(trained_model, circles_split):
    X, y = circles_split[1], circles_split[3]
    a = robnp.pgd(trained_model, X, y, 0.2, random_start=True, seed=5)
    b = robnp.pgd(trained_model, X, y, 0.2, random_start=True, seed=5)
    c = robnp.pgd(trained_model, X, y, 0.2, random_start=True, seed=6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_pgd_step_follows_the_gradient_sign_once(trained_model, circles_split):
    """One PGD step from X with step eps is FGSM at eps."""
    X, y = circles_split[1], circles_split[3]
    np.testing.assert_array_equal(robnp.pgd(trained_model, X, y, 0.1, steps=1, step_size=0.1),
                                  robnp.fgsm(trained_model, X, y, 0.1))


@pytest.mark.parametrize("kwargs,match", [
    ({"eps": -0.1}, "eps"), ({"eps": float("nan")}, "eps"), ({"eps": 0.1, "steps": -1}, "steps"),
    ({"eps": 0.1, "step_size": -1.0}, "step_size"), ({"eps": 0.1, "bounds": (1, 0)}, "bounds"),
    ({"eps": 0.1, "loss": "mse"}, "unknown loss"),
])
def test_bad_attack_arguments(trained_model, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        robnp.pgd(trained_model, np.zeros((2, 2)), np.zeros(2, int), **kwargs)


def test_bounds_never_break_the_ball_when_clean_points_lie_outside_the_box(trained_model):
    """A clean coordinate far outside the box moves only as far as the ball allows
    towards it; a coordinate within eps of the box ends inside the box."""
    X = np.array([[1.8, 0.2], [-1.05, 0.0], [0.5, -0.5], [2.0, -2.0]], np.float32)
    y = np.array([0, 1, 0, 1])
    eps = 0.2
    for X_adv in (robnp.fgsm(trained_model, X, y, eps, bounds=(-1, 1)),
                  robnp.pgd(trained_model, X, y, eps, bounds=(-1, 1)),
                  robnp.pgd(trained_model, X, y, eps, bounds=(-1, 1), random_start=True, seed=3)):
        assert linf(X_adv, X).max() <= eps + 1e-6
        np.testing.assert_allclose(X_adv[0, 0], 1.6, atol=1e-6)  # 0.8 outside: moved eps in
        np.testing.assert_allclose(X_adv[3], [1.8, -1.8], atol=1e-6)
        inside = np.abs(X) <= 1 + eps
        assert np.all(np.abs(X_adv[inside]) <= 1)


@pytest.mark.parametrize("call,match", [
    (lambda m, X, y: robnp.pgd(m, X, y, 0.1, step_size="a"), "step_size"),
    (lambda m, X, y: robnp.pgd(m, X, y, True), "eps"),
    (lambda m, X, y: robnp.fgsm(m, X, y, [0.1, 0.2]), "eps"),
    (lambda m, X, y: robnp.pgd(m, X, y, 0.1, bounds=(0, "x")), "bounds"),
    (lambda m, X, y: robnp.pgd(m, X, y, 0.1, bounds=(0, 1, 2)), "bounds"),
    (lambda m, X, y: robnp.pgd(m, X, y, "0.1"), "eps"),
    (lambda m, X, y: robnp.pgd(m, X, y, np.complex128(0.1 + 1j)), "eps"),
    (lambda m, X, y: robnp.pgd(m, X, y, 0.1, bounds=("0", "1")), "bounds"),
    (lambda m, X, y: robnp.pgd(m, X, y, 0.1, bounds=(0, np.nan)), "bounds"),
    (lambda m, X, y: robnp.robust_accuracy(m, X, y, "fgsm", eps="0.1"), "eps"),
    (lambda m, X, y: robnp.robust_accuracy(m, X, y, "fgsm", eps=[[0.1]]), "eps"),
    (lambda m, X, y: fgsm_from_gradient(X, np.ones((3, 2)), 0.1), "dL_dX"),
    (lambda m, X, y: fgsm_from_gradient(X.astype(int), np.ones_like(X), 0.1), "X must"),
])
def test_bad_attack_arguments_are_config_errors(trained_model, call, match):
    X = np.zeros((2, 2), np.float32)
    with pytest.raises(ConfigError, match=match):
        call(trained_model, X, np.zeros(2, int))


def test_robust_accuracy_takes_numpy_radii(trained_model, circles_split):
    X, y = circles_split[1], circles_split[3]
    assert list(robnp.robust_accuracy(trained_model, X, y, "fgsm", eps=np.array(0.1))) == [0.1]
    by_array = robnp.robust_accuracy(trained_model, X, y, "fgsm", eps=np.array([0.1, 0.2]))
    by_generator = robnp.robust_accuracy(trained_model, X, y, "fgsm", eps=(e for e in (0.1, 0.2)))
    assert by_array == by_generator and list(by_array) == [0.1, 0.2]


def test_fgsm_from_gradient_accepts_any_layout(trained_model, circles_split):
    X, y = circles_split[1], circles_split[3]
    grad = robnp.input_gradient(trained_model, X, y)
    expected = fgsm_from_gradient(X, grad, 0.1)
    np.testing.assert_array_equal(fgsm_from_gradient(np.asfortranarray(X),
                                                           np.asfortranarray(grad), 0.1), expected)


@pytest.mark.parametrize("options", [{}, {"steps": 3, "step_size": 0.07}, {"loss": "cw_margin"},
                                     {"bounds": (-1, 1), "random_start": False}])
def test_pgd_sweep_sharing_the_first_gradient_changes_nothing(trained_model, circles_split,
                                                              options):
    """robust_accuracy computes the gradient at X once for every radius; each attack
    must equal PGD run from scratch, bit for bit."""
    X, y = circles_split[1], circles_split[3]
    loss = options.get("loss", "cross_entropy")
    grad = robnp.input_gradient(trained_model, X, y, loss=loss)
    clean = Given(grad)
    shared = run_pgd(trained_model, X, y, (0.05, 0.3), clean, **options)
    for eps, X_adv in zip((0.05, 0.3), shared):
        np.testing.assert_array_equal(X_adv, robnp.pgd(trained_model, X, y, eps, **options))
    swept = robnp.robust_accuracy(trained_model, X, y, "pgd", eps=[0.05, 0.3], **options)
    one_by_one = {e: robnp.pgd(trained_model, X, y, e, **options) for e in (0.05, 0.3)}
    assert swept == {e: robnp.accuracy(trained_model, X_adv, y) for e, X_adv in one_by_one.items()}
    np.testing.assert_array_equal(grad, robnp.input_gradient(
        trained_model, X, y, loss=options.get("loss", "cross_entropy")))  # not overwritten


def test_pgd_first_step_uses_the_clean_gradient_it_is_handed(trained_model, circles_split):
    """A wrong clean gradient changes the result, so PGD does not recompute it."""
    X, y = circles_split[1], circles_split[3]
    grad = robnp.input_gradient(trained_model, X, y)
    flipped = run_pgd(trained_model, X, y, (0.1,), Given(-grad), steps=1, step_size=0.1)[0]
    np.testing.assert_allclose(flipped, X - 0.1 * np.sign(grad), atol=1e-6)
    with pytest.raises(ConfigError, match="dL_dX"):
        run_pgd(trained_model, X, y, (0.1,), Given(grad[:3]))


def test_one_sided_bounds_are_allowed(trained_model, circles_split):
    X, y = circles_split[1], circles_split[3]
    X_adv = robnp.pgd(trained_model, X, y, 0.3, bounds=(0, np.inf))
    assert linf(X_adv, X).max() <= 0.3 + 1e-6
    assert np.all(X_adv[X >= 0] >= 0)
    np.testing.assert_array_equal(robnp.pgd(trained_model, X, y, 0.3, bounds=(-np.inf, np.inf)),
                                  robnp.pgd(trained_model, X, y, 0.3))


def test_gradient_sign_is_taken_before_the_cast_to_float32():
    """A float64 gradient below float32's smallest number still moves the point."""
    X = np.zeros((1, 3), np.float32)
    grad = np.array([[1e-50, -1e-300, 2.0]])
    np.testing.assert_array_equal(fgsm_from_gradient(X, grad, 0.1),
                                  np.array([[0.1, -0.1, 0.1]], np.float32))
    model = robnp.MLP(3, (4,), 2, seed=0)
    X_adv = run_pgd(model, X, np.array([0]), (0.1,), Given(grad), steps=1, step_size=0.1)[0]
    np.testing.assert_array_equal(X_adv, np.array([[0.1, -0.1, 0.1]], np.float32))
