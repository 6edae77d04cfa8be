"""FAB and FAB-T (Croce and Hein, 2020): the box-constrained hyperplane projection
against linear programs and the slow reference of tests/naive.py, the logits'
Jacobian, FAB's iterates against the reference one row at a time, the properties
every attack has, the minimal perturbation's consistency and its soundness against
the verifier, and the options' checks."""

import numpy as np
import pytest
from scipy.optimize import linprog, minimize

import naive
import robnp
from robnp.attacks import fab, get_attack
from robnp.attacks._fab import FABOptions, FABTOptions, fab_single_run, fab_start_points
from robnp.attacks._jacobian import logit_jacobian, margin_gradients
from robnp.attacks._projections import hyperplane_step, row_norm
from robnp.attacks._threat import AttackedModel, top_wrong_class
from robnp.errors import ConfigError
from robnp.verify.bab import verify
from test_attacks_references import Wrapped

NORMS = ("linf", "l2", "l1")


# -- the projection ----------------------------------------------------------------------

def lp_projection(t, w, b, norm, lower, upper):
    """min ||d||_p (p = inf or 1) s.t. w . (t + d) = b, lower <= t + d <= upper, as a
    linear program; returns the optimal norm, or None when infeasible."""
    d = len(t)
    box = [(lower - t[i], upper - t[i]) for i in range(d)]
    if norm == "linf":
        # variables (d, s): minimise s with -s <= d_i <= s
        A = np.vstack([np.c_[np.eye(d), -np.ones(d)], np.c_[-np.eye(d), -np.ones(d)]])
        res = linprog(np.r_[np.zeros(d), 1.0], A_ub=A, b_ub=np.zeros(2 * d),
                      A_eq=np.r_[w, 0.0][None], b_eq=[b - w @ t], bounds=box + [(0, None)],
                      method="highs")
    else:
        # d = p - m with p, m >= 0: minimise sum p + sum m
        res = linprog(np.ones(2 * d), A_eq=np.r_[w, -w][None], b_eq=[b - w @ t],
                      bounds=[(0, hi) for _, hi in box] + [(0, -lo) for lo, _ in box],
                      method="highs")
    return res.fun if res.status == 0 else None


def instances(seed, n=200):
    """Random points in [-1, 1]^d with hyperplanes at distances from tiny to far past
    the box, some normals with zero coordinates."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        d = int(rng.integers(1, 7))
        t = rng.uniform(-1, 1, d)
        w = rng.normal(size=d)
        w[rng.random(d) < 0.2] = 0.0
        b = w @ t + rng.normal() * rng.choice([0.05, 0.5, 2.0, 8.0])
        yield t, w, b


def assert_best_effort(t, w, b, D, lower, upper):
    """An unreachable hyperplane: every coordinate with w_i != 0 at its bound towards
    the hyperplane, the others unmoved; no box point is nearer the hyperplane."""
    side = np.sign(b - w @ t)
    expected = np.where(w * side > 0, upper, np.where(w * side < 0, lower, t))
    np.testing.assert_allclose(t + D, expected, atol=1e-12)
    corner = np.where(w * side > 0, upper, lower)
    assert abs(b - w @ (t + D)) <= abs(b - w @ corner) + 1e-12


@pytest.mark.parametrize("norm", ["linf", "l1"])
def test_the_projection_is_the_linear_programs_optimum(norm):
    """Feasible exactly when the LP is; then on the hyperplane, in the box and of the
    LP's optimal norm. The instances include hyperplanes the box keeps from reaching
    and ones the unconstrained step would overshoot the box for."""
    binding = unreachable = 0
    for t, w, b in instances(1):
        D, reachable = hyperplane_step(t[None], w[None], np.array([b]), norm, (-1.0, 1.0))
        D = D[0]
        assert np.all(np.abs(t + D) <= 1.0)
        optimum = lp_projection(t, w, b, norm, -1.0, 1.0)
        assert reachable[0] == (optimum is not None)
        if optimum is None:
            unreachable += 1
            assert_best_effort(t, w, b, D, -1.0, 1.0)
            continue
        free, _ = hyperplane_step(t[None], w[None], np.array([b]), norm, None)
        binding += np.abs(t + free[0]).max() > 1
        assert w @ (t + D) == pytest.approx(b, abs=1e-9)
        assert row_norm(D[None], norm)[0] == pytest.approx(optimum, rel=1e-7, abs=1e-9)
    assert binding >= 10 and unreachable >= 10  # both cases are exercised


def test_the_l2_projection_is_the_constrained_minimiser():
    """Against SLSQP on the strictly convex problem: never a larger norm than the
    solver's feasible point, and the same point (the minimiser is unique)."""
    binding = unreachable = compared = 0
    for t, w, b in instances(2):
        D, reachable = hyperplane_step(t[None], w[None], np.array([b]), "l2", (-1.0, 1.0))
        D = D[0]
        assert np.all(np.abs(t + D) <= 1.0)
        if not reachable[0]:
            unreachable += 1
            assert_best_effort(t, w, b, D, -1.0, 1.0)
            continue
        free, _ = hyperplane_step(t[None], w[None], np.array([b]), "l2", None)
        binding += np.abs(t + free[0]).max() > 1
        assert w @ (t + D) == pytest.approx(b, abs=1e-9)
        res = minimize(lambda x: x @ x, np.zeros_like(t), jac=lambda x: 2 * x, method="SLSQP",
                       constraints=[{"type": "eq", "fun": lambda x: w @ (t + x) - b,
                                     "jac": lambda x: w}],
                       bounds=[(-1 - ti, 1 - ti) for ti in t],
                       options={"ftol": 1e-15, "maxiter": 1000})
        if abs(w @ (t + res.x) - b) < 1e-8 and np.all(np.abs(t + res.x) <= 1 + 1e-9):
            assert D @ D <= res.x @ res.x * (1 + 1e-7) + 1e-12
            np.testing.assert_allclose(D, res.x, atol=1e-5)
            compared += 1
    assert binding >= 10 and unreachable >= 10 and compared >= 100


@pytest.mark.parametrize("norm", NORMS)
def test_the_projection_matches_the_one_row_reference(norm):
    """The vectorised step against tests/naive.py's coordinate-by-coordinate walk, with
    a box, a half-open box and none, many rows at once."""
    d = 5
    rng = np.random.default_rng(3)
    T = rng.uniform(-1, 1, (120, d))
    W = rng.normal(size=(120, d)) * (rng.random((120, d)) > 0.2)
    b = np.einsum("ij,ij->i", W, T) + rng.normal(size=120) * rng.choice([0.05, 1.0, 6.0], 120)
    for bounds in [(-1.0, 1.0), (-np.inf, 1.0), None]:
        D, reachable = hyperplane_step(T, W, b, norm, bounds)
        for i in range(120):
            ref, ok = naive.hyperplane_step(T[i], W[i], b[i], norm, bounds)
            assert reachable[i] == ok
            if norm == "l1" and ok:  # ties aside the L1 minimiser is unique here
                assert row_norm(D[i:i + 1], "l1")[0] == pytest.approx(np.abs(ref).sum(),
                                                                       rel=1e-10)
            np.testing.assert_allclose(D[i], ref, atol=1e-10)
        if bounds is None:
            assert reachable[np.any(W != 0, axis=1)].all()


def test_the_projection_without_a_box_is_the_closed_form():
    rng = np.random.default_rng(4)
    T, W = rng.normal(size=(50, 6)), rng.normal(size=(50, 6))
    b = rng.normal(size=50) * 3
    r = b - np.einsum("ij,ij->i", W, T)
    np.testing.assert_allclose(hyperplane_step(T, W, b, "l2")[0],
                               r[:, None] * W / (W * W).sum(axis=1, keepdims=True), atol=1e-12)
    np.testing.assert_allclose(hyperplane_step(T, W, b, "linf")[0],
                               r[:, None] * np.sign(W) / np.abs(W).sum(axis=1, keepdims=True),
                               atol=1e-12)
    l1 = np.zeros_like(W)
    k = np.abs(W).argmax(axis=1)
    l1[np.arange(50), k] = r / W[np.arange(50), k]
    np.testing.assert_allclose(hyperplane_step(T, W, b, "l1")[0], l1, atol=1e-12)
    # a zero normal: nothing to move towards; the point stays
    D, reachable = hyperplane_step(T[:1], np.zeros((1, 6)), np.array([1.0]), "l2")
    assert not reachable[0] and np.all(D == 0)
    D, reachable = hyperplane_step(T[:1], np.zeros((1, 6)), np.array([0.0]), "linf")
    assert reachable[0] and np.all(D == 0)


# -- the Jacobian ----------------------------------------------------------------------

def test_the_logit_jacobian_is_every_class_gradient(blobs_model):
    model, X, y = blobs_model
    J = logit_jacobian(model, X[:10])
    _, cache = naive.forward(model, X[:10])
    for k in range(5):
        seed = np.zeros((10, 5))
        seed[:, k] = 1
        np.testing.assert_allclose(J[:, k], naive.backward(model, cache, seed), atol=1e-12)
    h = 1e-6
    up, down = X[:10].copy(), X[:10].copy()
    up[:, 2] += h
    down[:, 2] -= h
    numeric = (model.logits(up) - model.logits(down)) / (2 * h)
    np.testing.assert_allclose(J[:, :, 2], numeric, atol=1e-6)


def test_the_margin_gradients_agree_on_every_path(blobs_model):
    """The compiled Jacobian, a protocol model's own logit_jacobian, and the fallback
    from cross-entropy gradients (of the mean, or of the sum, over rows)."""
    model, X, y = blobs_model
    X, y = X[:12], y[:12]
    t = top_wrong_class(model.logits(X), y)

    class WithJacobian(Wrapped):
        def logit_jacobian(self, X):
            return logit_jacobian(self._model, X)

    class SumGradient(Wrapped):
        def input_gradient(self, X, y, loss, y_target=None):
            return X.shape[0] * super().input_gradient(X, y, loss, y_target)

    Z, G = margin_gradients(AttackedModel(model), X, y)
    assert np.all(G[np.arange(12), y] == 0)
    _, Gt = margin_gradients(AttackedModel(model), X, y, t)
    np.testing.assert_allclose(Gt[:, 0], G[np.arange(12), t], atol=1e-12)
    for other in (Wrapped(model), WithJacobian(model), SumGradient(model)):
        Z2, G2 = margin_gradients(AttackedModel(other), X, y)
        np.testing.assert_allclose(Z2, Z, atol=1e-12)
        np.testing.assert_allclose(G2, G, atol=1e-10)
        _, Gt2 = margin_gradients(AttackedModel(other), X, y, t)
        np.testing.assert_allclose(Gt2, Gt, atol=1e-10)

    class OddGradient(Wrapped):
        def input_gradient(self, X, y, loss, y_target=None):
            # neither mean nor sum: the mean times sqrt(n)
            return np.sqrt(X.shape[0]) * super().input_gradient(X, y, loss, y_target)

    with pytest.raises(robnp.DataError, match="neither the gradient of the mean nor"):
        margin_gradients(AttackedModel(OddGradient(model)), X, y)


# -- FAB's iterates against the reference -----------------------------------------------

@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("targeted", [False, True])
@pytest.mark.parametrize("bounds", [None, (-1.5, 1.5)], ids=["no-box", "box"])
@pytest.mark.parametrize("path", ["compiled", "numpy"])
def test_fab_iterates_match_the_reference_one_by_one(norm, targeted, bounds, path):
    """A small float64 net; every iterate, the points kept and their norms, on the
    compiled loop (an MLP) and on the NumPy loop (the same net behind the protocol).
    FAB's decisions (the nearest class, success, a smaller norm) are comparisons that
    rounding can flip at a near tie (a step can land exactly on a boundary between
    two wrong classes), so each row is compared up to the first decision the
    reference took on a near tie (``naive.fab``'s ``settled``), and its result only
    when there was none; most iterates must be compared."""
    rng = np.random.default_rng(5)
    model = robnp.MLP(6, (8, 8), 6, dtype=np.float64, seed=5)
    attacked = AttackedModel(model if path == "compiled" else Wrapped(model))
    assert attacked.fast == (path == "compiled")
    X = rng.uniform(-1.2, 1.2, (16, 6))
    y = model.predict(X)
    t = top_wrong_class(model.logits(X), y) if targeted else None
    start = X.copy()
    if bounds is None:
        start[8:] = fab_start_points(rng, X[8:], np.full(8, 0.1), norm, None)
    n_iter = 25
    trace = []
    points, norms = fab_single_run(attacked, X, y, t, start, norm=norm, n_iter=n_iter,
                                   alpha_max=0.1, eta=1.05, beta=0.9, bounds=bounds,
                                   trace=trace)
    trace = np.array(trace)
    ref_trace, ref_points, ref_norms, settled = naive.fab(model, X, y, start, n_iter,
                                                          norm=norm, t=t, bounds=bounds)
    for r in range(16):
        np.testing.assert_allclose(trace[:settled[r], r], ref_trace[:settled[r], r],
                                   atol=1e-9)
        if settled[r] == n_iter:
            np.testing.assert_allclose(points[r], ref_points[r], atol=1e-9)
            assert norms[r] == pytest.approx(ref_norms[r], abs=1e-9)
    assert settled.sum() >= 0.75 * 16 * n_iter
    assert np.isfinite(norms).sum() >= 8  # not vacuous: most points were broken


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("targeted", [False, True])
def test_the_compiled_loop_on_a_float32_net_follows_the_reference(norm, targeted):
    """A float32 net: the compiled loop evaluates it in float32 at each float64
    iterate rounded to float32, the reference in float64 at the iterate itself. The
    two differ by float32 rounding (relative 1e-7 per pass, a few ulps per step), so
    iterates are compared to 1e-4 (measured: within 1e-5) up to the first near tie at
    that precision (relative 1e-5), and every point found must be misclassified by
    the float32 net."""
    rng = np.random.default_rng(6)
    model = robnp.MLP(6, (8, 8), 6, seed=6)
    assert model.dtype == np.float32
    X = rng.uniform(-1.2, 1.2, (16, 6)).astype(np.float32)
    y = model.predict(X)
    t = top_wrong_class(model.logits(X), y) if targeted else None
    n_iter = 25
    trace = []
    points, norms = fab_single_run(AttackedModel(model), X, y, t, X, norm=norm,
                                   n_iter=n_iter, alpha_max=0.1, eta=1.05, beta=0.9,
                                   bounds=(-1.5, 1.5), trace=trace)
    trace = np.array(trace)
    ref_trace, _, ref_norms, settled = naive.fab(model, X, y, X, n_iter, norm=norm, t=t,
                                                 bounds=(-1.5, 1.5), tie_tol=1e-5)
    for r in range(16):
        np.testing.assert_allclose(trace[:settled[r], r], ref_trace[:settled[r], r],
                                   atol=1e-4)
        if settled[r] == n_iter and np.isfinite(ref_norms[r]):
            assert norms[r] == pytest.approx(ref_norms[r], rel=1e-3, abs=1e-4)
    assert settled.sum() >= 0.5 * 16 * n_iter
    found = np.isfinite(norms)
    assert found.sum() >= 8 and points.dtype == np.float32
    assert np.all(model.predict(points[found]) != y[found])


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("d", [1, 7, 40])
def test_the_compiled_projection_matches_the_vectorised_one(norm, d):
    """``kernels.hyperplane_row`` (the compiled loop's projection) against
    :func:`hyperplane_step`, row by row, with a box, a half-open box and none,
    hyperplanes near, far and unreachable, and normals with zero coordinates; few
    features (sorted by insertion) and many (by ``np.argsort``)."""
    from robnp import kernels
    from robnp.attacks._fab import FAB_NORM_CODES

    rng = np.random.default_rng(7)
    n = 150
    T = rng.uniform(-1, 1, (n, d))
    W = rng.normal(size=(n, d)) * (rng.random((n, d)) > 0.2)
    W[:3] = 0.0
    b = np.einsum("ij,ij->i", W, T) + rng.normal(size=n) * rng.choice([0.0, 0.05, 1.0, 6.0], n)
    D = np.empty(d)
    scratch = np.empty((8, d + 1))
    order = np.empty(d, np.int64)
    for bounds in [(-1.0, 1.0), (-np.inf, 1.0), None]:
        lower, upper = bounds if bounds is not None else (0.0, 0.0)
        ref, ref_reachable = hyperplane_step(T, W, b, norm, bounds)
        for i in range(n):
            reachable = kernels.hyperplane_row(T[i], W[i], b[i], FAB_NORM_CODES[norm],
                                               lower, upper, bounds is not None, D, scratch,
                                               order)
            assert reachable == ref_reachable[i]
            np.testing.assert_allclose(D, ref[i], rtol=1e-12, atol=1e-12)


def test_fab_on_the_protocol_matches_the_mlp(blobs_model):
    model, X, y = blobs_model
    for targeted in (False, True):
        direct = fab(model, X[:30], y[:30], targeted=targeted, n_iter=30)
        wrapped = fab(Wrapped(model), X[:30], y[:30], targeted=targeted, n_iter=30)
        np.testing.assert_allclose(wrapped.points, direct.points, atol=1e-9)
        np.testing.assert_allclose(wrapped.norms, direct.norms, atol=1e-9)


# -- properties --------------------------------------------------------------------------

def registry(name, model, X, y, radii, seed=0, **options):
    spec = get_attack(name)
    target = AttackedModel(model)
    X = target.check_input(X)
    y = target.check_labels(y, X)
    return spec.run(model, X, y, tuple(radii), spec.make_options(options),
                    np.random.default_rng(seed))


@pytest.mark.parametrize("name", ["fab", "fab-t"])
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_lie_in_the_ball_and_the_box(blobs_model, name, norm, dtype):
    model, X, y = blobs_model
    model = model.astype(dtype)
    bounds = (-2.0, 2.0)
    X = np.clip(X, *bounds).astype(dtype)
    radii = (0.0, 0.3, 1.0)
    results = registry(name, model, X, y, radii, norm=norm, bounds=bounds, n_iter=30,
                       n_restarts=2, seed=1)
    np.testing.assert_array_equal(results[0], X)
    for eps, X_adv in zip(radii, results):
        assert X_adv.dtype == dtype
        assert np.all(row_norm(X_adv.astype(np.float64) - X, norm) <= eps)
        assert X_adv.min() >= bounds[0] and X_adv.max() <= bounds[1]
    assert robnp.accuracy(model, results[-1], y) < robnp.accuracy(model, X, y)


@pytest.mark.parametrize("name", ["fab", "fab-t"])
def test_seeds_fix_restarts_and_threads_change_nothing(name):
    rng = np.random.default_rng(6)
    model = robnp.MLP(3, (6,), 4, seed=6)
    X = rng.normal(size=(600, 3)).astype(np.float32)
    y = model.predict(X)
    common = dict(n_iter=10, n_restarts=3, n_target_classes=2) if name == "fab-t" else \
        dict(n_iter=10, n_restarts=3)
    one = registry(name, model, X, y, (0.3,), seed=1, n_threads=1, **common)[0]
    two = registry(name, model, X, y, (0.3,), seed=1, n_threads=2, **common)[0]
    np.testing.assert_array_equal(one, two)
    assert get_attack(name).make_options(common).randomized
    other = registry(name, model, X, y, (0.3,), seed=2, **common)[0]
    assert not np.array_equal(one, other)


def test_the_minimal_perturbation_is_consistent(blobs_model):
    """Each reported norm is the norm of the returned point's difference; a point with
    a finite norm is misclassified; clean mistakes have norm 0; the registry's result
    at eps is the point where its norm is within eps."""
    model, X, y = blobs_model
    y = y.copy()
    y[:6] = (y[:6] + 1) % 5  # six clean mistakes
    for norm in NORMS:
        found = fab(model, X, y, norm=norm, n_iter=40)
        finite = np.isfinite(found.norms)
        np.testing.assert_allclose(row_norm(found.points[finite] - X[finite], norm),
                                   found.norms[finite], rtol=0, atol=0)
        assert np.all(found.points[~finite] == X[~finite])
        assert np.all(model.predict(found.points[finite]) != y[finite])
        assert np.all(found.norms[model.predict(X) != y] == 0)
        assert finite.sum() > 20
        for eps in (0.1, 0.4):
            at = registry("fab", model, X, y, (eps,), norm=norm, n_iter=40)[0]
            assert robnp.accuracy(model, at, y) == pytest.approx(found.robust_accuracy(eps))


def test_restarts_without_a_radius_only_shrink_the_perturbation(blobs_model):
    model, X, y = blobs_model
    once = fab(model, X, y, n_iter=20, seed=3)
    thrice = fab(model, X, y, n_iter=20, n_restarts=3, seed=3)
    assert np.all(thrice.norms <= once.norms)
    assert np.any(thrice.norms < once.norms)


def test_fab_t_uses_at_most_n_classes_minus_one_targets(blobs_model):
    model, X, y = blobs_model
    four = fab(model, X, y, targeted=True, n_target_classes=4, n_iter=20)
    nine = fab(model, X, y, targeted=True, n_target_classes=9, n_iter=20)
    np.testing.assert_array_equal(four.points, nine.points)
    one = fab(model, X, y, targeted=True, n_target_classes=1, n_iter=20)
    assert np.all(four.norms <= one.norms)


def test_two_classes(trained_model, circles_split):
    """With two classes FAB-T's single target is the other class: the untargeted run
    (up to rounding: one backward pass of e_t - e_y against the difference of two)."""
    X, y = circles_split[1], circles_split[3]
    model = trained_model.astype(np.float64)
    untargeted = fab(model, X, y, n_iter=30)
    targeted = fab(model, X, y, targeted=True, n_iter=30)
    np.testing.assert_allclose(untargeted.points, targeted.points, atol=1e-9)
    np.testing.assert_allclose(untargeted.norms, targeted.norms, atol=1e-9)
    assert np.isfinite(untargeted.norms).sum() >= 0.9 * len(y)
    at = robnp.robust_accuracy(trained_model, X, y, "fab-t", eps=[0.0, 0.1])
    assert at[0.0] == robnp.accuracy(trained_model, X, y)
    assert at[0.1] == pytest.approx(untargeted.robust_accuracy(0.1))


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_the_verifier_never_proves_robust_what_fab_broke(norm):
    """A point FAB breaks at distance r has an adversarial point in every ball of
    radius >= r, so verify at a radius just above r must not say robust; and where
    the verifier proves a point robust at eps, FAB's perturbation is larger."""
    X, y = robnp.make_dataset("blobs", 300, noise=0.3, seed=2, n_classes=4)
    model = robnp.MLP(2, (16, 16), 4, dtype=np.float64, seed=2)
    robnp.fit(model, X[:240], y[:240], seed=2, max_epochs=200)
    X, y = X[240:].astype(np.float64), y[240:]
    found = fab(model, X, y, norm=norm, targeted=True, n_iter=50)
    broken = np.flatnonzero(np.isfinite(found.norms) & (found.norms > 0))
    assert broken.size >= 30
    for i in broken[:30]:
        result = verify(model, X[i:i + 1], y[i:i + 1], found.norms[i] * (1 + 1e-9), norm=norm)
        assert result.verdict[0] != "robust"
    for eps in (0.1, 0.3):
        result = verify(model, X, y, eps, norm=norm)
        assert np.all(found.norms[result.verdict == "robust"] > eps)


def test_bad_options_are_one_line_config_errors():
    for options, match in [
        ({"norm": "l3"}, r"norm must be one of linf, l2, l1, got 'l3'"),
        ({"alpha_max": 0.0}, r"alpha_max must be .*\(0, 1\].*got 0.0"),
        ({"alpha_max": 1.5}, r"alpha_max .*1.5"),
        ({"eta": 0.9}, r"eta must be .*>= 1.*0.9"),
        ({"beta": 1.0}, r"beta must be .*\(0, 1\).*1.0"),
        ({"beta": 0.0}, r"beta .*0.0"),
        ({"n_iter": 0}, r"n_iter must be an integer >= 1, got 0"),
        ({"n_restarts": 0}, r"n_restarts must be an integer >= 1, got 0"),
    ]:
        for cls in (FABOptions, FABTOptions):
            with pytest.raises(ConfigError, match=match) as info:
                cls(**options)
            assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=r"n_target_classes must be an integer >= 1, got 0"):
        get_attack("fab-t").make_options({"n_target_classes": 0})
    with pytest.raises(ConfigError, match="unknown option 'n_target_classes'"):
        get_attack("fab").make_options({"n_target_classes": 3})



@pytest.fixture(scope="module")
def blobs5():
    """A float32 model on 5-class blobs as ``robnp train --dataset blobs --n-classes 5
    --noise 0.3 --n-samples 1000 --width 32`` makes it, and its 200 test points."""
    X, y = robnp.make_dataset("blobs", 1000, noise=0.3, seed=42, n_classes=5)
    X_train, X_test, y_train, y_test = robnp.train_test_split(X, y, test_fraction=0.2)
    model = robnp.MLP(2, (32, 32), 5, seed=42)
    robnp.fit(model, X_train, y_train, seed=42)
    return model, X_test, y_test


def test_fab_t_on_five_class_blobs_is_within_a_point_of_the_exact_value(blobs5):
    """Measured: FAB-T 0.755, exact (verify, nothing undecided) 0.755, APGD-CE 0.765.
    FAB is sound (never below the exact value) and misses only points whose exact
    radius lies within FAB's ~1% overshoot of eps; one point of slack for another
    machine's rounding."""
    model, X, y = blobs5
    eps = 0.2
    exact = verify(model, X, y, eps).bracket
    assert exact.undecided == 0
    found = fab(model, X, y, targeted=True)
    assert exact.exact <= found.robust_accuracy(eps) <= exact.exact + 1 / 200
    registry_value = robnp.robust_accuracy(model, X, y, "fab-t", eps=[eps])[eps]
    assert registry_value == found.robust_accuracy(eps)
    assert robnp.robust_accuracy(model, X, y, "apgd-ce", eps=[eps], seed=0)[eps] > exact.exact


def test_a_float32_model_is_attacked_from_float64_iterates(blobs5):
    """With float32 iterates an iterate can stop within rounding of the boundary and
    never move again; FAB keeps its iterates in float64 and the float32 model sees
    each rounded, so its perturbations are those of the float64 model but for that
    rounding (measured: no point more than 1% larger, largest ratio 1.0000; with
    float32 iterates 7, up to 19%; with steps along a float64 copy 1, up to 1.3%)."""
    model, X, y = blobs5
    single = fab(model, X, y, targeted=True)
    double = fab(model.astype(np.float64), X.astype(np.float64), y, targeted=True)
    both = np.isfinite(double.norms) & (double.norms > 0)
    ratio = single.norms[both] / double.norms[both]
    assert np.sum(ratio > 1.01) <= 3 and ratio.max() < 1.05
    assert single.points.dtype == np.float32
    assert np.all(model.predict(single.points[np.isfinite(single.norms)])
                  != y[np.isfinite(single.norms)])


@pytest.mark.parametrize("norm", NORMS)
def test_clean_points_outside_the_box(blobs_model, norm):
    """The box is any box: clean points partly outside it are attacked from their
    clipped copies, every iterate stays in the box and distances are measured from
    the clean points; a half-open box works too."""
    model, X, y = blobs_model
    for bounds in [(-1.0, 1.0), (-np.inf, 0.5)]:
        found = fab(model, X, y, norm=norm, bounds=bounds, n_iter=30)
        finite = np.isfinite(found.norms)
        moved = finite & (found.norms > 0)  # clean mistakes stay where they are
        assert moved.sum() >= 10
        assert np.all(found.points[moved] >= bounds[0])
        assert np.all(found.points[moved] <= bounds[1])
        np.testing.assert_array_equal(row_norm(found.points[finite] - X[finite], norm),
                                      found.norms[finite])
        assert np.all(model.predict(found.points[finite]) != y[finite])
        outside = (X < bounds[0]) | (X > bounds[1])
        assert outside[moved].any()  # not vacuous
