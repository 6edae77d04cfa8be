"""The robustness ceiling of a sample, against brute force and its own properties."""

import itertools

import numpy as np
import pytest
from scipy import sparse
from scipy.optimize import linprog, minimize
from scipy.sparse.csgraph import maximum_bipartite_matching

from robnp.data import make_dataset
from robnp.errors import ConfigError, DataError
from robnp.verify import (ceiling_figure, conflict_pairs, population_ceiling,
                          robustness_ceiling)
from robnp.verify.ceiling import _enclosing_radius


def distance(a, b, norm):
    return np.abs(a - b).max() if norm == "linf" else np.sqrt(((a - b) ** 2).sum())


def conflicts_by_hand(X, y, eps, norm):
    n = len(X)
    return [(i, j) for i in range(n) for j in range(i + 1, n)
            if y[i] != y[j] and distance(X[i], X[j], norm) <= 2 * eps]


def best_correct_set_by_enumeration(X, y, eps, norm):
    """Largest set of points a deterministic classifier can make all robustly correct:
    try every subset, keep those without a conflicting pair."""
    bad = conflicts_by_hand(X, y, eps, norm)
    n = len(X)
    for size in range(n, 0, -1):
        for subset in itertools.combinations(range(n), size):
            chosen = set(subset)
            if not any(i in chosen and j in chosen for i, j in bad):
                return size
    return 0


def tiny_samples(n_classes, count=25, n=8):
    rng = np.random.default_rng(n_classes)
    for _ in range(count):
        X = rng.uniform(0, 1, (n, 2))
        y = rng.integers(0, n_classes, n)
        yield X, y, float(rng.uniform(0.02, 0.35))


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("n_classes", [2, 3, 4])
def test_ceiling_equals_brute_force_on_tiny_samples(norm, n_classes):
    for X, y, eps in tiny_samples(n_classes):
        want = best_correct_set_by_enumeration(X, y, eps, norm) / len(X)
        assert robustness_ceiling(X, y, eps, norm) == pytest.approx(want)
        assert robustness_ceiling(X, y, eps, norm, method="milp") == pytest.approx(want)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_matching_equals_minimum_vertex_cover(norm):
    for X, y, eps in tiny_samples(2, count=30, n=9):
        edges = conflicts_by_hand(X, y, eps, norm)
        matched = round(len(X) * (1 - robustness_ceiling(X, y, eps, norm)))
        cover = next(size for size in range(len(X) + 1)
                     for subset in itertools.combinations(range(len(X)), size)
                     if all(i in subset or j in subset for i, j in edges))
        assert matched == cover
        if edges:  # the vertex-cover LP of a bipartite graph is integral
            A = np.zeros((len(edges), len(X)))
            for row, (i, j) in enumerate(edges):
                A[row, [i, j]] = -1
            lp = linprog(np.ones(len(X)), A_ub=A, b_ub=-np.ones(len(edges)), bounds=(0, 1))
            assert lp.fun == pytest.approx(cover)


def test_matching_agrees_with_hopcroft_karp_on_a_large_sample():
    X, y = make_dataset("circles", 2000, 0.15, seed=3)
    for eps in (0.03, 0.1, 0.2):
        pairs = conflict_pairs(X, y, eps)
        outer = np.where(y[pairs[:, 0]] == 0, pairs[:, 0], pairs[:, 1])
        inner = np.where(y[pairs[:, 0]] == 0, pairs[:, 1], pairs[:, 0])
        graph = sparse.csr_matrix((np.ones(len(pairs)), (outer, inner)), shape=(2000, 2000))
        matched = (maximum_bipartite_matching(graph, perm_type="column") >= 0).sum()
        assert robustness_ceiling(X, y, eps) == pytest.approx(1 - matched / 2000)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_conflict_pairs_are_exactly_the_close_cross_label_pairs(norm):
    X, y = make_dataset("blobs", 150, 0.3, seed=2)
    X = X.astype(np.float64)
    got = conflict_pairs(X, y, 0.08, norm)
    np.testing.assert_array_equal(got, np.array(conflicts_by_hand(X, y, 0.08, norm)).reshape(-1, 2))


@pytest.mark.parametrize("name,k,noise,top", [("circles", None, 0.2, 0.6), ("blobs", 3, 0.4, 0.3),
                                              ("spirals", 4, 0.04, 0.12)])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_ceiling_is_non_increasing_in_eps_and_above_the_majority_share(name, k, noise, top, norm):
    X, y = make_dataset(name, 400, noise, seed=5, n_classes=k)
    eps = np.linspace(0, top, 7)
    ceiling = robustness_ceiling(X, y, eps, norm)
    assert ceiling.shape == eps.shape and ceiling[0] == 1.0
    assert np.all(np.diff(ceiling) <= 1e-12)
    assert np.all(ceiling >= np.bincount(y).max() / len(y) - 1e-12)


def test_cross_label_duplicates_cost_one_point_each_at_eps_zero():
    X = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0], [2.0, 2.0], [3, 3]])
    y = np.array([0, 1, 0, 0, 1, 2])
    assert robustness_ceiling(X, y, 0.0) == pytest.approx(5 / 6)
    assert robustness_ceiling(X[2:], y[2:], 0.0) == 1.0


def test_the_ceiling_is_sound_for_the_bayes_classifier_of_circles():
    # The Bayes rule "inner iff |x| < t" is one classifier; on any sample its
    # robust accuracy (exact for this rule) cannot beat the ceiling.
    t = 0.7658
    X, y = make_dataset("circles", 1500, 0.15, seed=11)
    X = X.astype(np.float64)
    for eps in (0.0, 0.05, 0.1, 0.2):
        near = np.linalg.norm(np.maximum(np.abs(X) - eps, 0), axis=1)   # closest box point
        far = np.linalg.norm(np.abs(X) + eps, axis=1)                    # farthest corner
        robust = np.where(y == 1, far < t, near >= t).mean()
        assert robust <= robustness_ceiling(X, y, eps, "linf") + 1e-12
        radius = np.linalg.norm(X, axis=1)
        robust_l2 = np.where(y == 1, radius + eps < t, radius - eps >= t).mean()
        assert robust_l2 <= robustness_ceiling(X, y, eps, "l2") + 1e-12


def test_soft_classifiers_beat_hard_ones_on_three_pairwise_intersecting_balls():
    # Equilateral triangle of side 1, three labels.  At eps = 0.55 the L2 balls meet
    # pairwise (1 <= 1.1) but not all three (circumradius 0.577 > 0.55): a soft
    # classifier splitting each pairwise lens half-half gets 1/2 on every point.
    X = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]])
    y = np.array([0, 1, 2])
    assert robustness_ceiling(X, y, 0.55, "l2") == pytest.approx(1 / 3)
    assert robustness_ceiling(X, y, 0.55, "l2", method="lp") == pytest.approx(0.5)
    assert robustness_ceiling(X, y, 0.55, "l2", method="lp", max_degree=2) == pytest.approx(0.5)
    assert robustness_ceiling(X, y, 0.6, "l2", method="lp") == pytest.approx(1 / 3)
    assert robustness_ceiling(X, y, 0.6, "l2", method="lp", max_degree=2) == pytest.approx(0.5)
    # L-inf boxes that meet pairwise meet all together: no soft advantage.
    assert robustness_ceiling(X, y, 0.5, "linf", method="lp") == pytest.approx(1 / 3)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_soft_ceiling_lies_between_the_hard_one_and_its_pairwise_relaxation(norm):
    for X, y, eps in tiny_samples(3, count=20, n=9):
        hard = robustness_ceiling(X, y, eps, norm)
        soft = robustness_ceiling(X, y, eps, norm, method="lp")
        pairwise = robustness_ceiling(X, y, eps, norm, method="lp", max_degree=2)
        assert hard <= soft + 1e-9 and soft <= pairwise + 1e-9
    for X, y, eps in tiny_samples(2, count=10, n=9):  # two classes: LP is integral
        assert robustness_ceiling(X, y, eps, norm, method="lp") == pytest.approx(
            robustness_ceiling(X, y, eps, norm))


def test_enclosing_radius_matches_a_numerical_minimum():
    rng = np.random.default_rng(4)
    for size, dim in [(2, 2), (3, 2), (3, 3), (4, 3), (5, 4)]:
        for _ in range(5):
            P = rng.normal(size=(size, dim))
            # The dual of the smallest enclosing ball: r^2 = max over weights w in the
            # simplex of sum_i w_i |p_i - sum_j w_j p_j|^2, a smooth concave program.
            def neg_dual(w):
                return -(w @ (P ** 2).sum(axis=1) - ((w @ P) ** 2).sum())
            best = minimize(neg_dual, np.full(size, 1 / size), method="SLSQP",
                            bounds=[(0, 1)] * size,
                            constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}],
                            options={"ftol": 1e-15, "maxiter": 1000})
            best.fun = -best.fun
            assert _enclosing_radius(P) == pytest.approx(np.sqrt(best.fun), rel=1e-6)


def test_population_ceiling_by_size_is_reproducible_and_above_bayes_at_eps_zero():
    result = population_ceiling("circles", [0.0, 0.1], sizes=(200, 800, 3200), seed=1)
    again = population_ceiling("circles", [0.0, 0.1], sizes=(200, 800, 3200), seed=1)
    assert result.ceilings.shape == (3, 2)
    np.testing.assert_array_equal(result.ceilings, again.ceilings)
    np.testing.assert_array_equal(result.ceilings[:, 0], 1.0)  # no duplicates: optimistic
    assert result.ceilings[-1, 1] < result.ceilings[0, 1] < 1
    fig = ceiling_figure(result, bayes_accuracy=0.9504)
    labelled = [line for line in fig.axes[0].lines if not line.get_label().startswith("_")]
    assert len(labelled) == 3
    # the eps = 0 ceilings (1.0) lie above the Bayes accuracy: drawn hollow as well
    hollow = [line for line in fig.axes[0].lines if line.get_markerfacecolor() == "white"]
    assert len(hollow) == 1 and list(hollow[0].get_ydata()) == [1.0, 1.0, 1.0]


def test_population_ceiling_is_cut_to_the_bayes_accuracy_it_cannot_exceed():
    # A fresh draw of 1000 circles points has a ceiling near 1 at eps 0.01, above the
    # Bayes accuracy (about 0.95): no classifier attains that on the population.
    from robnp.data.bayes import bayes_error

    result = population_ceiling("circles", [0.0, 0.01, 0.2], sizes=(250, 1000), seed=0)
    bayes = 1 - bayes_error("circles", n_samples=1000, noise=0.15)
    np.testing.assert_allclose(result.bayes_accuracy, [bayes, bayes], rtol=1e-12)
    assert result.ceilings[1, 1] > bayes + 0.02
    np.testing.assert_array_equal(result.capped,
                                  np.minimum(result.ceilings, bayes))
    assert np.all(result.capped <= bayes)
    np.testing.assert_array_equal(result.above_bayes, result.ceilings > bayes)
    assert result.above_bayes[:, 0].all() and not result.above_bayes[:, 2].any()
    # moons' arcs depend on the size, and so does its Bayes accuracy
    moons = population_ceiling("moons", 0.05, sizes=(200, 400), seed=0)
    assert moons.bayes_accuracy[0] == pytest.approx(
        1 - bayes_error("moons", n_samples=200, noise=0.15), rel=1e-12)
    assert moons.bayes_accuracy[0] != moons.bayes_accuracy[1]


def test_bad_arguments_are_named(tmp_path):
    X, y = np.zeros((4, 2)), np.array([0, 1, 0, 1])
    for kwargs, match in [({"eps": -0.1}, "eps"), ({"eps": []}, "eps"),
                          ({"eps": 0.1, "norm": "l1"}, "norm"),
                          ({"eps": 0.1, "method": "greedy"}, "method"),
                          ({"eps": 0.1, "method": "lp", "max_degree": 1}, "max_degree"),
                          ({"eps": 0.1, "time_limit": 0}, "time_limit")]:
        with pytest.raises(ConfigError, match=match):
            robustness_ceiling(X, y, **kwargs)
    with pytest.raises(ConfigError, match="at most 2 labels"):
        robustness_ceiling(X, np.array([0, 1, 2, 0]), 0.1, method="matching")
    with pytest.raises(DataError, match="y must have shape"):
        robustness_ceiling(X, y[:3], 0.1)
    with pytest.raises(DataError, match="row 2"):
        robustness_ceiling(np.array([[0, 0], [1, 1], [np.inf, 0], [2, 2]]), y, 0.1)
    with pytest.raises(ConfigError, match="sizes"):
        population_ceiling("circles", 0.1, sizes=[1])
