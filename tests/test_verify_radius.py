"""The exact robustness radius: sound by sampling, equal to a brute-force grid on a tiny
2-D model, brackets that close to the tolerance and hold the truth, never above FAB's
minimal perturbation, in float32 and float64."""

import numpy as np
import pytest

import robnp
from robnp.attacks import fab
from robnp.errors import ConfigError
from robnp.verify import RobustnessRadius, robustness_radius, verify


def _tiny(dtype=np.float32, seed=3, n_classes=3):
    """A small 2-D ReLU net trained on 3-class blobs, its test points, and two labels
    changed (clean errors)."""
    X, y = robnp.make_dataset("blobs", 400, 0.5, seed=seed, n_classes=n_classes)
    model = robnp.MLP(2, (12,), n_classes, seed=seed)
    robnp.fit(model, X[:360], y[:360], max_epochs=40)
    model = model.astype(dtype)
    X, y = X[360:384].astype(dtype), model.predict(X[360:384].astype(dtype)).astype(np.int64)
    y[:2] = (y[:2] + 1) % n_classes
    return model, X, y


@pytest.fixture(scope="module")
def tiny():
    model, X, y = _tiny()
    return model, X, y, robustness_radius(model, X, y, seed=0)


def _ball_samples(rng, x, radius, n=4000):
    """Uniform points and every corner of the L-inf ball around ``x``, float64."""
    inner = x + radius * rng.uniform(-1, 1, (n, x.size))
    corners = x + radius * np.array([[sx, sy] for sx in (-1, 1) for sy in (-1, 1)])
    return np.vstack([inner, corners])


def test_certified_ball_keeps_the_label_and_the_attack_point_breaks_it(tiny):
    model, X, y, result = tiny
    rng = np.random.default_rng(0)
    correct = result.status != "clean_error"
    assert correct.sum() == X.shape[0] - 2
    for i in np.flatnonzero(correct):
        samples = _ball_samples(rng, X[i].astype(np.float64), result.lower[i])
        assert np.all(model.predict(samples.astype(model.dtype)) == y[i])
        cex = result.counterexample[i]
        assert model.predict(cex[None])[0] != y[i]
        distance = np.abs(cex.astype(np.float64) - X[i]).max()
        assert distance <= result.upper[i] * (1 + 1e-6)
        assert result.lower[i] <= result.upper[i]


def test_clean_errors_have_radius_zero(tiny):
    model, X, y, result = tiny
    assert list(result.status[:2]) == ["clean_error"] * 2
    assert np.all(result.lower[:2] == 0) and np.all(result.upper[:2] == 0)
    certified, attack = result.robust_accuracy(0.0)
    assert certified == attack == pytest.approx((X.shape[0] - 2) / X.shape[0])


def test_brackets_close_to_the_stated_tolerance(tiny):
    _, _, _, result = tiny
    exact = result.status == "exact"
    assert exact.sum() >= 18
    width = result.upper[exact] - result.lower[exact]
    assert np.all(width <= np.maximum(result.atol, result.rtol * result.upper[exact]))


def test_grid_agrees_on_a_tiny_2d_model(tiny):
    """Brute force: the nearest misclassified point of a fine grid around each point
    (601 x 601 over the box of 1.1 times its attack radius), in L-inf."""
    model, X, y, result = tiny
    steps = np.linspace(-1.0, 1.0, 601)
    gx, gy = np.meshgrid(steps, steps)
    unit = np.column_stack([gx.ravel(), gy.ravel()])
    for i in np.flatnonzero(result.status == "exact"):
        reach = 1.1 * result.upper[i]
        h = reach / 300
        grid = X[i].astype(np.float64) + reach * unit
        wrong = grid[model.predict(grid.astype(model.dtype)) != y[i]]
        nearest = np.abs(wrong - X[i].astype(np.float64)).max(axis=1).min()
        # a misclassified grid point lies at `nearest`: the exact radius is at most that;
        # the decision regions are polygons, so the grid misses the boundary by < 2h
        assert result.lower[i] <= nearest + 1e-9
        assert result.upper[i] >= nearest - 2 * h


def test_verify_agrees_inside_and_outside_the_bracket(tiny):
    model, X, y, result = tiny
    rows = np.flatnonzero(result.status == "exact")[:6]
    for i in rows:
        inside = verify(model, X[i:i + 1], y[i:i + 1], 0.999 * result.lower[i])
        outside = verify(model, X[i:i + 1], y[i:i + 1], result.upper[i])
        assert inside.verdict[0] == "robust"
        assert outside.verdict[0] == "not_robust"


def test_brackets_at_two_tolerances_overlap_and_nest_in_width(tiny):
    model, X, y, fine = tiny
    coarse = robustness_radius(model, X, y, rtol=0.05, seed=0)
    both = (fine.status == "exact") & (coarse.status == "exact")
    # both brackets hold the exact radius, so each lower lies below the other upper
    assert np.all(fine.lower[both] <= coarse.upper[both])
    assert np.all(coarse.lower[both] <= fine.upper[both])
    assert np.all(fine.upper[both] - fine.lower[both]
                  <= coarse.upper[both] - coarse.lower[both] + 1e-12)
    assert coarse.verified_points < fine.verified_points


def test_fab_never_goes_below_the_certified_radius(tiny):
    model, X, y, result = tiny
    for targeted in (False, True):
        found = fab(model, X, y, targeted=targeted, seed=0)
        assert np.all(found.norms >= result.lower)


def test_without_fab_the_brackets_hold_the_same_radius(tiny):
    model, X, y, result = tiny
    alone = robustness_radius(model, X, y, start=None, seed=0)
    both = (result.status == "exact") & (alone.status == "exact")
    assert both.sum() >= 18
    assert np.all(alone.lower[both] <= result.upper[both])
    assert np.all(result.lower[both] <= alone.upper[both])


def test_a_given_start_is_rechecked(tiny):
    """Points that are not counterexamples (the clean points, far points of the right
    class) are ignored, not taken as upper brackets."""
    model, X, y, result = tiny
    fake = (X.copy(), np.full(X.shape[0], 1e-6))
    again = robustness_radius(model, X, y, start=fake, seed=0)
    both = (result.status == "exact") & (again.status == "exact")
    assert np.all(again.lower[both] <= result.upper[both])
    assert np.all(again.upper[2:] > 1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float32_and_float64_models(dtype):
    model, X, y = _tiny(dtype, seed=5)
    result = robustness_radius(model, X, y, seed=0)
    assert result.counterexample.dtype == dtype
    other = robustness_radius(model.astype(np.float64 if dtype == np.float32 else np.float32),
                              X, y, seed=0)
    both = (result.status == "exact") & (other.status == "exact")
    assert both.sum() >= 18
    # the same weights in two precisions: the radii differ by rounding only
    slack = 1e-5 * (1 + result.upper[both])
    assert np.all(result.lower[both] <= other.upper[both] + slack)
    assert np.all(other.lower[both] <= result.upper[both] + slack)


def test_undecided_points_keep_a_sound_bracket():
    model = robnp.MLP(2, (64, 64), 2, seed=1)
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, (12, 2)).astype(np.float32)
    y = model.predict(X)
    result = robustness_radius(model, X, y, budget=1, seed=0)
    assert isinstance(result, RobustnessRadius)
    undecided = result.status == "undecided"
    assert undecided.any()
    assert np.all(result.lower <= result.upper)
    for i in np.flatnonzero(undecided):
        samples = _ball_samples(rng, X[i].astype(np.float64), result.lower[i])
        assert np.all(model.predict(samples.astype(np.float32)) == y[i])


def test_bounds_cap_the_search():
    """With a box, a point robust in the whole box is unbounded."""
    model = robnp.MLP(2, (4,), 2, seed=0)
    model.params[:] = 0
    model.intercepts_[-1][0] = 1.0        # class 0 everywhere
    X = np.array([[0.2, 0.3]], np.float32)
    result = robustness_radius(model, X, [0], bounds=(0.0, 1.0), seed=0)
    assert result.status[0] == "unbounded"
    assert result.lower[0] == 1.0 and np.isinf(result.upper[0])


@pytest.mark.parametrize("kwargs, needle", [
    ({"rtol": 1.0}, "rtol"), ({"atol": -1e-3}, "atol"), ({"rtol": 0, "atol": 0}, "rtol and atol"),
    ({"norm": "l1"}, "norm"), ({"budget": 0}, "budget"), ({"max_radius": 0}, "max_radius"),
    ({"start": "pgd"}, "start"), ({"start": (np.zeros((3, 2)), np.zeros(3))}, "start"),
])
def test_bad_input_is_one_line(tiny, kwargs, needle):
    model, X, y, _ = tiny
    with pytest.raises(ConfigError, match=needle) as info:
        robustness_radius(model, X, y, **kwargs)
    assert "\n" not in str(info.value)


def test_probes_are_grouped_into_the_fewest_radii():
    from robnp.verify.radius import _stab

    rng = np.random.default_rng(0)
    left = rng.uniform(0, 1, 200)
    right = left + rng.uniform(0, 0.2, 200)
    chosen = _stab(left, right)
    assert np.all((left <= chosen) & (chosen <= right))
    # optimal: the windows whose right end became a radius are pairwise disjoint, and
    # disjoint windows need one radius each
    radii = np.unique(chosen)
    owners = [np.flatnonzero(right == r)[0] for r in radii]
    for a in owners:
        for b in owners:
            if a != b:
                assert right[a] < left[b] or right[b] < left[a]
    assert np.array_equal(_stab(np.array([0.0, 0.5, 0.4]), np.array([1.0, 0.6, 0.45])),
                          [0.6, 0.6, 0.45])


@pytest.mark.parametrize("start", ["fab", None, "given"])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_every_point_a_clean_error_gives_radius_zero_without_verifying(norm, start):
    model, X, y = _tiny()
    y = (model.predict(X) + 1) % model.n_classes
    if start == "given":
        start = (X + 0.1, np.full(X.shape[0], 0.1))
    result = robustness_radius(model, X, y, norm=norm, start=start)
    assert np.all(result.status == "clean_error")
    assert np.all(result.lower == 0) and np.all(result.upper == 0)
    assert result.verify_calls == 0
    assert result.robust_accuracy(0.0) == (0.0, 0.0)


def test_radii_are_bit_identical_on_one_and_two_threads(monkeypatch):
    """The bounds run in fixed chunks (here 3 rows) that threads share."""
    import robnp.verify.bounds as bounds_module

    model, X, y = _tiny()
    monkeypatch.setattr(bounds_module, "_CHUNK_FLOPS",
                        3 * bounds_module.row_flops(model.layer_sizes))
    one = robustness_radius(model, X, y, seed=0, n_threads=1)
    two = robustness_radius(model, X, y, seed=0, n_threads=2)
    for field in ("lower", "upper", "status", "counterexample"):
        np.testing.assert_array_equal(getattr(two, field), getattr(one, field))
    assert two.verify_calls == one.verify_calls
