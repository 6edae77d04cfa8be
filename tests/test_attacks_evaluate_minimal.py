"""Per-point minimal perturbations from an evaluation: FAB's reported directly, the
fixed-radius attacks' nearest success, never above a successful radius and never
below the exact robustness radius."""

import numpy as np
import pytest

import robnp
from robnp.attacks import MinimalPerturbation, evaluate, fab
from robnp.errors import ConfigError, DataError
from robnp.verify import robustness_radius

EPS = (0.05, 0.1, 0.2, 0.4)


@pytest.fixture(scope="module")
def setting():
    X, y = robnp.make_dataset("blobs", 400, 0.5, seed=4, n_classes=3)
    model = robnp.MLP(2, (16,), 3, seed=4)
    robnp.fit(model, X[:340], y[:340], max_epochs=40)
    X_test, y_test = X[340:].astype(np.float32), y[340:]
    evaluation = evaluate(model, X_test, y_test, EPS, ("fgsm", "pgd", "fab"), seed=0)
    return model, X_test, y_test, evaluation


def test_fab_reports_its_norms_directly(setting):
    model, X, y, evaluation = setting
    minimal = evaluation.minimal_perturbation(X, "fab")
    assert isinstance(minimal, MinimalPerturbation)
    # one restart: the run the registry makes is fab()'s own, whatever the radii
    direct = fab(model, X, y)
    np.testing.assert_array_equal(minimal.norms, direct.norms)
    np.testing.assert_array_equal(minimal.points, direct.points)
    assert evaluation.attacks["fab"].minimal is not None
    assert evaluation.attacks["pgd"].minimal is None


def test_fixed_radius_attacks_give_their_nearest_success(setting):
    model, X, y, evaluation = setting
    for name in ("fgsm", "pgd"):
        result = evaluation.attacks[name]
        radius = evaluation.minimal_radius(X, name)
        for k, eps in enumerate(EPS):
            assert np.all(radius[result.success[k]] <= eps)
        never = ~result.success.any(axis=0)
        assert np.all(np.isinf(radius[never]))
        points = evaluation.minimal_perturbation(X, name).points
        found = np.isfinite(radius)
        assert np.all(model.predict(points[found]) != y[found])
        size = np.abs(points[found].astype(np.float64) - X[found]).max(axis=1)
        assert np.all(radius[found] <= size + 1e-12)


def test_the_smallest_over_attacks_never_exceeds_any_success(setting):
    model, X, y, evaluation = setting
    radius = evaluation.minimal_radius(X)
    for name in evaluation.attacks:
        assert np.all(radius <= evaluation.minimal_radius(X, name))
        for k, eps in enumerate(EPS):
            assert np.all(radius[evaluation.attacks[name].success[k]] <= eps)
    wrong = ~evaluation.clean_correct
    assert np.all(radius[wrong] == 0)
    # robust accuracy from the radii is at most each attack's at every radius
    minimal = evaluation.minimal_perturbation(X)
    for k, eps in enumerate(EPS):
        assert minimal.robust_accuracy(eps) <= evaluation.worst_robust_acc[k] + 1e-12


def test_never_below_the_exact_radius(setting):
    model, X, y, evaluation = setting
    exact = robustness_radius(model, X[:30], y[:30], seed=0)
    for name in (None, "fab", "pgd"):
        assert np.all(evaluation.minimal_radius(X, name)[:30] >= exact.lower)


def test_cascade_keeps_what_fab_reported(setting):
    model, X, y, _ = setting
    cascaded = evaluate(model, X, y, EPS, ("pgd", "fab"), seed=0, cascade=True)
    radius = cascaded.minimal_radius(X, "fab")
    reported = cascaded.attacks["fab"].minimal.norms
    ran = cascaded.attacks["fab"].attacked.any(axis=0)
    assert np.all(np.isinf(reported[~ran]))
    assert np.all(radius <= reported)


def test_numbers_and_records_are_unchanged_by_the_report(setting):
    model, X, y, evaluation = setting
    again = evaluate(model, X, y, EPS, ("fgsm", "pgd", "fab"), seed=0)
    assert again.records() == evaluation.records()
    assert "minimal" not in str(evaluation.to_dict())


def test_bad_requests(setting):
    model, X, y, evaluation = setting
    with pytest.raises(ConfigError, match="attack must be one of"):
        evaluation.minimal_perturbation(X, "square")
    with pytest.raises(DataError, match="rows"):
        evaluation.minimal_perturbation(X[:3])
    mixed = evaluate(model, X, y, (0.1,), ("pgd", ("fab", {"norm": "l1"})), seed=0)
    with pytest.raises(ConfigError, match="different norms"):
        mixed.minimal_perturbation(X)
    assert np.all(mixed.minimal_radius(X, "fab") >= 0)
