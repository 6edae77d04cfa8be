"""Exact verification: verdicts against an independent MILP, counterexamples re-checked,
and the invariants certified <= exact <= PGD <= clean, monotone in eps."""

import numpy as np
import pytest
from scipy.optimize import LinearConstraint, milp

import robnp
from robnp.errors import ConfigError
from robnp.verify import exact_robust_accuracy, verify, verify_radii
from robnp.verify.bab import _verify

EPS_LIST = [0.0, 0.01, 0.05, 0.1, 0.2, 0.5]


# ---------------------------------------------------------------------------
# an independent reference: mixed-integer programming (big-M ReLU encoding)
# ---------------------------------------------------------------------------

def _interval_bounds(Ws, bs, lo, hi):
    """Plain interval arithmetic for the pre-activations, padded to absorb rounding."""
    bounds = []
    for W, b in zip(Ws[:-1], bs[:-1]):
        c, r = (lo + hi) / 2, (hi - lo) / 2
        zc, zr = c @ W + b, r @ np.abs(W)
        l, u = zc - zr - 1e-7, zc + zr + 1e-7
        bounds.append((l, u))
        lo, hi = np.maximum(l, 0), np.maximum(u, 0)
    return bounds


def milp_min_margin(model, x0, label, eps):
    """min over the real box |x - x0|_inf <= eps of min_j (z_label - z_j), by MILP.

    Variables: x, then per hidden layer z, h, a (a binary); h = relu(z) encoded as
    h >= 0, h >= z, h <= u a, h <= z - l (1 - a)."""
    Ws = [W.astype(np.float64) for W in model.coefs_]
    bs = [b.astype(np.float64) for b in model.intercepts_]
    x0 = np.asarray(x0, np.float64)
    lo, hi = x0 - eps, x0 + eps
    layer_bounds = _interval_bounds(Ws, bs, lo, hi)
    d = x0.shape[0]
    widths = [W.shape[1] for W in Ws[:-1]]
    n_var = d + 3 * sum(widths)
    var_lo, var_hi = np.empty(n_var), np.empty(n_var)
    var_lo[:d], var_hi[:d] = lo, hi
    integrality = np.zeros(n_var)
    rows, lbs, ubs = [], [], []
    prev = np.arange(d)
    offset = d
    for (l, u), W, b in zip(layer_bounds, Ws, bs):
        w = W.shape[1]
        z, h, a = (np.arange(offset + k * w, offset + (k + 1) * w) for k in range(3))
        offset += 3 * w
        var_lo[z], var_hi[z] = l, u
        var_lo[h], var_hi[h] = 0.0, np.maximum(u, 0)
        var_lo[a], var_hi[a] = 0.0, 1.0
        integrality[a] = 1
        for i in range(w):
            row = np.zeros(n_var)
            row[z[i]] = 1.0
            row[prev] = -W[:, i]
            rows.append(row), lbs.append(b[i]), ubs.append(b[i])          # z = h W + b
            row = np.zeros(n_var)
            row[h[i]], row[z[i]] = 1.0, -1.0
            rows.append(row), lbs.append(0.0), ubs.append(np.inf)          # h >= z
            row = np.zeros(n_var)
            row[h[i]], row[a[i]] = 1.0, -max(u[i], 0.0)
            rows.append(row), lbs.append(-np.inf), ubs.append(0.0)         # h <= u a
            row = np.zeros(n_var)
            row[h[i]], row[z[i]], row[a[i]] = 1.0, -1.0, -min(l[i], 0.0)
            rows.append(row), lbs.append(-np.inf), ubs.append(-min(l[i], 0.0))  # h <= z - l(1-a)
        prev = h
    constraints = LinearConstraint(np.array(rows), lbs, ubs) if rows else None
    W, b = Ws[-1], bs[-1]
    best = np.inf
    for j in range(W.shape[1]):
        if j == label:
            continue
        c = np.zeros(n_var)
        c[prev] = W[:, label] - W[:, j]
        result = milp(c, integrality=integrality, bounds=(var_lo, var_hi),
                      constraints=constraints, options={"mip_rel_gap": 0, "presolve": True})
        assert result.status == 0, result.message
        best = min(best, result.fun + b[label] - b[j])
    return best


def _trained(dataset, hidden, n_classes, dtype, seed):
    X, y = robnp.make_dataset(dataset, 500, 0.2, seed=seed)
    X_train, X_test, y_train, y_test = robnp.train_test_split(X, y, test_fraction=0.2)
    model = robnp.MLP(2, hidden, n_classes, dtype=dtype, seed=seed)
    robnp.fit(model, X_train, y_train, max_epochs=60, seed=seed)
    return model, X_test, y_test


# ---------------------------------------------------------------------------

@pytest.mark.parametrize("hidden,dtype,eps", [((8,), np.float32, 0.15),
                                              ((8, 8), np.float32, 0.1),
                                              ((6, 5), np.float64, 0.2)])
def test_exact_verdicts_agree_with_an_independent_milp(hidden, dtype, eps):
    model, X, y = _trained("moons", hidden, 2, dtype, seed=len(hidden) + hidden[0])
    result = verify(model, X, y, eps)
    assert result.count("undecided") == 0
    # a point misclassified where it stands is not robust; the MILP is for the rest
    right = model.predict(X) == y
    assert np.all(result.verdict[~right] == "not_robust")
    X, y = X[right], y[right]
    result = verify(model, X, y, eps)
    reference = np.array([milp_min_margin(model, X[i], y[i], eps) for i in range(len(y))])
    clear = np.abs(reference) > 1e-5          # away from exact ties the verdict is unique
    assert clear.mean() > 0.95
    robust = result.verdict == "robust"
    np.testing.assert_array_equal(robust[clear], reference[clear] > 0)
    assert 0 < robust.sum() < len(y)          # both verdicts occur: the check has teeth
    # certified margins are lower bounds of the true minimum; counterexamples reach below 0
    assert np.all(result.margin[robust] <= reference[robust] + 1e-6)
    assert np.all(result.margin[~robust] <= 0)
    assert np.all(result.margin[~robust] >= reference[~robust] - 1e-5)


@pytest.mark.parametrize("hidden,dtype,eps", [((8, 8), np.float32, 0.3),
                                              ((8,), np.float64, 0.25)])
def test_branch_and_bound_alone_agrees_with_the_milp(hidden, dtype, eps):
    """No attack: every counterexample must come from branch and bound's corners."""
    model, X, y = _trained("circles", hidden, 2, dtype, seed=hidden[-1])
    right = model.predict(X) == y
    X, y = model.check_input(X[right]), y[right]
    result = _verify(model, X, y, eps, "linf", 4096, None, 0, attacks=False)
    assert result.count("undecided") == 0
    assert np.sum(result.decided_by == "bab") >= 10        # the search did the work
    assert np.all(result.decided_by != "attack")
    _check_counterexamples(model, X, y, result)
    reference = np.array([milp_min_margin(model, X[i], y[i], eps) for i in range(len(y))])
    clear = np.abs(reference) > 1e-5
    np.testing.assert_array_equal((result.verdict == "robust")[clear], reference[clear] > 0)


@pytest.mark.parametrize("d", [3, 4])
def test_inputs_of_dimension_3_and_4_are_decided_and_agree_with_the_milp(d):
    """Complete in practice for small input dimension: branch and bound alone."""
    X, y = robnp.make_dataset("spheres", 400, 0.1, seed=d, input_dim=d)
    model = robnp.MLP(d, (8, 6), 2, seed=d)
    robnp.fit(model, X[:300], y[:300], max_epochs=100, seed=d)
    X, y = model.check_input(X[300:]), y[300:]
    right = model.predict(X) == y
    X, y = X[right][:40], y[right][:40]
    result = _verify(model, X, y, 0.2, "linf", 4096, None, 0, attacks=False)
    assert result.count("undecided") == 0
    _check_counterexamples(model, X, y, result)
    reference = np.array([milp_min_margin(model, X[i], y[i], 0.2) for i in range(len(y))])
    clear = np.abs(reference) > 1e-5
    np.testing.assert_array_equal((result.verdict == "robust")[clear], reference[clear] > 0)
    assert 5 < result.count("robust") < len(y) - 5


def test_three_classes_agree_with_the_milp():
    model, X, y = _trained("circles", (8,), 2, np.float32, seed=4)
    # a three-class problem: relabel a third of the points and retrain
    y3 = np.where(X[:, 0] > 0.5, 2, y)
    assert np.sum(y3 == 2) > 10
    model = robnp.MLP(2, (8,), 3, seed=4)
    robnp.fit(model, X, y3, max_epochs=80, seed=4)
    right = np.flatnonzero(model.predict(X) == y3)[:60]
    result = verify(model, X[right], y3[right], 0.1)
    reference = np.array([milp_min_margin(model, X[i], y3[i], 0.1) for i in right])
    clear = np.abs(reference) > 1e-5
    np.testing.assert_array_equal((result.verdict == "robust")[clear], reference[clear] > 0)


def _check_counterexamples(model, X, y, result, norm="linf", bounds=None):
    bad = result.verdict == "not_robust"
    cx = result.counterexample[bad]
    assert cx.dtype == model.dtype
    cast = model.dtype.type
    diff = cx - X[bad]
    if norm == "linf":
        assert np.all(np.abs(diff).max(axis=1) <= cast(result.eps))
    else:
        assert np.all(np.sqrt(np.sum(diff * diff, axis=1, dtype=model.dtype)) <= cast(result.eps))
    if bounds is not None:
        assert np.all((cx >= cast(bounds[0])) & (cx <= cast(bounds[1])))
    assert np.all(model.predict(cx) != y[bad])
    assert np.all(np.isnan(result.counterexample[~bad]))


def test_every_counterexample_is_in_the_ball_and_misclassified(trained_model, circles_split):
    X, y = circles_split[1], circles_split[3]
    for result in verify_radii(trained_model, X, y, EPS_LIST):
        _check_counterexamples(trained_model, trained_model.check_input(X), y, result)


def test_invariants_certified_exact_pgd_clean_and_monotone_in_eps(trained_model, circles_split):
    X, y = circles_split[1], circles_split[3]
    clean = robnp.accuracy(trained_model, X, y)
    pgd = robnp.robust_accuracy(trained_model, X, y, attack="pgd", eps=EPS_LIST[1:])
    results = verify_radii(trained_model, X, y, EPS_LIST)
    previous = None
    for eps, result in zip(EPS_LIST, results):
        bracket = result.bracket
        assert bracket.undecided == 0
        assert bracket.certified == bracket.attack == bracket.exact
        if eps == 0:
            assert bracket.exact == clean
        else:
            assert bracket.exact <= pgd[eps] <= clean
        if previous is not None:
            robust_now = result.verdict == "robust"
            assert np.all(previous[robust_now])           # robust at eps => robust below
        previous = result.verdict == "robust"
    # separate calls at each radius give the same verdicts
    for eps, result in zip(EPS_LIST, results):
        np.testing.assert_array_equal(verify(trained_model, X, y, eps).verdict, result.verdict)


def test_misclassified_points_are_not_robust_with_the_clean_point():
    model, X, y = _trained("moons", (8,), 2, np.float32, seed=2)
    wrong = model.predict(X) != y
    assert wrong.any()
    result = verify(model, X, y, 0.05)
    assert np.all(result.verdict[wrong] == "not_robust")
    np.testing.assert_array_equal(result.counterexample[wrong], model.check_input(X)[wrong])
    assert np.all(result.decided_by[wrong] == "clean")


def _everything_wrong():
    """A model that misclassifies every point given: labels are the other class."""
    model = robnp.MLP(2, (8,), 2, seed=0)
    X = np.random.default_rng(0).normal(size=(12, 2)).astype(np.float32)
    return model, X, 1 - model.predict(X)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_a_call_where_every_point_is_a_clean_error_is_all_not_robust(norm):
    model, X, y = _everything_wrong()
    for eps in (0.0, 0.1):
        result = verify(model, X, y, eps, norm=norm)
        assert np.all(result.verdict == "not_robust") and np.all(result.decided_by == "clean")
        assert result.bracket == robnp.verify.Bracket(0.0, 0.0, 0)
        assert exact_robust_accuracy(model, X, y, eps, norm=norm).exact == 0.0
    results = verify_radii(model, X, y, [0.0, 0.05, 0.5], norm=norm)
    assert [r.bracket.exact for r in results] == [0.0, 0.0, 0.0]


def test_points_all_broken_at_a_smaller_radius_are_not_robust_at_larger_ones():
    """The smaller radius's counterexamples decide every point at the larger ones
    before any attack runs there: nothing is left to attack."""
    model = robnp.MLP(2, (8,), 2, seed=0)
    X = np.random.default_rng(0).normal(size=(12, 2)).astype(np.float32)
    y = model.predict(X)
    results = verify_radii(model, X, y, [5.0, 10.0, 20.0])
    for result in results:
        assert np.all(result.verdict == "not_robust")
        assert result.bracket.exact == 0.0


def test_ties_count_as_the_model_arg_max_does():
    """Equal logits: the first index wins, so label 1 is misclassified and label 0 is
    not (at eps = 0 that is the verdict itself)."""
    model = robnp.MLP(2, (), 2, dtype=np.float64, seed=0)
    model.params[:] = 0.0                               # every logit is 0
    X = np.zeros((2, 2))
    result = verify(model, X, np.array([0, 1]), 0.1)
    assert result.verdict[1] == "not_robust" and result.verdict[0] != "not_robust"
    clean = verify(model, X, np.array([0, 1]), 0.0)
    assert list(clean.verdict) == ["robust", "not_robust"]


def test_a_data_box_only_shrinks_the_ball(trained_model, circles_split):
    X, y = circles_split[1], circles_split[3]
    box = (-0.6, 0.6)
    inside = np.all(np.abs(X) <= 0.5, axis=1)
    X, y = X[inside], y[inside]
    free = verify(trained_model, X, y, 0.2)
    boxed = verify(trained_model, X, y, 0.2, bounds=box)
    _check_counterexamples(trained_model, trained_model.check_input(X), y, boxed, bounds=box)
    assert np.all((boxed.verdict == "robust")[free.verdict == "robust"])
    assert boxed.bracket.exact >= free.bracket.exact


def test_l2_verdicts_are_consistent_with_linf(trained_model, circles_split):
    """The L2 ball lies inside the L-infinity ball of the same radius."""
    X, y = circles_split[1][:80], circles_split[3][:80]
    l2 = verify(trained_model, X, y, 0.1, norm="l2")
    linf = verify(trained_model, X, y, 0.1)
    _check_counterexamples(trained_model, trained_model.check_input(X), y, l2, norm="l2")
    assert not np.any((l2.verdict == "not_robust") & (linf.verdict == "robust"))
    assert np.all(l2.verdict[linf.verdict == "robust"] == "robust")
    # a sampled L2 ball never contradicts a robust verdict
    rng = np.random.default_rng(0)
    for i in np.flatnonzero(l2.verdict == "robust")[:10]:
        v = rng.normal(size=(2000, 2))
        v *= 0.1 / np.linalg.norm(v, axis=1, keepdims=True)
        assert np.all(trained_model.predict(X[i] + v) == y[i])


def test_a_small_budget_leaves_points_undecided_and_the_bracket_holds_the_truth(
        trained_model, circles_split):
    X, y = circles_split[1], circles_split[3]
    exact = exact_robust_accuracy(trained_model, X, y, 0.2)
    assert exact.exact is not None
    rough = exact_robust_accuracy(trained_model, X, y, 0.2, budget=1)
    assert rough.undecided > 0 and rough.exact is None
    assert rough.certified <= exact.exact <= rough.attack


def test_bad_input_is_a_clear_error(trained_model):
    X, y = np.zeros((2, 2)), np.array([0, 1])
    with pytest.raises(ConfigError, match="eps"):
        verify(trained_model, X, y, -0.1)
    with pytest.raises(ConfigError, match="budget"):
        verify(trained_model, X, y, 0.1, budget=0)
    with pytest.raises(ConfigError, match="norm"):
        verify(trained_model, X, y, 0.1, norm="l1")
    with pytest.raises(ConfigError, match="bounds"):
        verify(trained_model, X, y, 0.1, bounds=(1, 0))


def test_a_split_follows_the_bound_s_slope_but_never_leaves_a_side_four_times_wider():
    from robnp.verify.bab import _split_dims

    lo = np.zeros((3, 2))
    hi = np.array([[1.0, 1.0], [0.2, 1.0], [0.3, 1.0]])
    # The worst margin's linear bound varies along x0 only.
    coefficients = np.zeros((3, 2, 2))
    coefficients[:, 1, 0] = 5.0
    worst = np.array([1, 1, 1])
    dims = _split_dims(coefficients, worst, lo, hi)
    assert list(dims) == [0, 1, 0]   # the slope's side, unless 4x narrower than the widest
    flat = np.zeros((1, 2, 2))
    assert _split_dims(flat, np.array([0]), lo[:1], np.array([[0.5, 1.0]]))[0] == 1


def test_boxes_stay_compact_so_a_slope_free_side_is_split_too():
    """A net whose margin's linear bound has no slope along x1 on the root box still
    has every side of its open boxes within a factor 8 of each other."""
    from robnp.verify.bab import _MAX_ASPECT, _split_dims

    rng = np.random.default_rng(0)
    lo, hi = np.zeros((1, 2)), np.ones((1, 2))
    coefficients = np.zeros((1, 2, 2))
    coefficients[0, 0, 0] = 1.0
    for _ in range(40):
        dim = _split_dims(coefficients, np.array([0]), lo, hi)[0]
        mid = (lo[0, dim] + hi[0, dim]) / 2
        if rng.random() < 0.5:
            hi[0, dim] = mid
        else:
            lo[0, dim] = mid
        width = hi - lo
        assert width.max() <= 2 * _MAX_ASPECT * width.min()


@pytest.mark.parametrize("call", ["verify", "verify_radii", "exact_robust_accuracy",
                                  "margin_bounds", "box_margin_bounds"])
def test_the_verifier_says_it_needs_an_mlp(call):
    class LogitsOnly:
        """A model of the attack protocol: logits and input gradients, no weights."""

        def logits(self, X):
            return np.asarray(X, np.float64)

        def input_gradient(self, X, y, loss="cross_entropy"):
            return np.zeros_like(np.asarray(X, np.float64))

    X, y, model = np.zeros((2, 2)), np.array([0, 1]), LogitsOnly()
    run = {"verify": lambda: verify(model, X, y, 0.1),
           "verify_radii": lambda: verify_radii(model, X, y, [0.1]),
           "exact_robust_accuracy": lambda: exact_robust_accuracy(model, X, y, 0.1),
           "margin_bounds": lambda: robnp.verify.margin_bounds(model, X, y, 0.1),
           "box_margin_bounds": lambda: robnp.verify.box_margin_bounds(model, X, X + 1, y)}
    with pytest.raises(ConfigError, match="the verifier needs an MLP .*got LogitsOnly"):
        run[call]()


def test_verdicts_are_bit_identical_on_one_two_and_three_threads(trained_model, circles_split,
                                                                 monkeypatch):
    """Points and branch and bound's boxes are bounded in fixed chunks (here 7 rows)
    that threads share: every count gives the same verdicts, margins, counterexamples
    and branch counts, and more than one thread does run the bounds."""
    import threading

    import robnp.verify.bounds as bounds_module

    X, y = circles_split[1][:60], circles_split[3][:60]
    monkeypatch.setattr(bounds_module, "_CHUNK_FLOPS",
                        7 * bounds_module.row_flops(trained_model.layer_sizes))
    assert bounds_module.chunk_rows(trained_model.layer_sizes) == 7
    seen = set()
    chunk = bounds_module._bounds_chunk

    def recording(*args):
        seen.add(threading.get_ident())
        return chunk(*args)

    monkeypatch.setattr(bounds_module, "_bounds_chunk", recording)
    runs = {}
    for n_threads in (1, 2, 3):
        seen.clear()
        runs[n_threads] = verify_radii(trained_model, X, y, [0.05, 0.15], budget=64,
                                       n_threads=n_threads)
        assert len(seen) == 1 if n_threads == 1 else len(seen) > 1
    assert sum(r.branches.sum() for r in runs[1]) > 0          # branch and bound ran
    for n_threads in (2, 3):
        for one, many in zip(runs[1], runs[n_threads]):
            for field in ("verdict", "margin", "counterexample", "decided_by", "branches"):
                np.testing.assert_array_equal(getattr(many, field), getattr(one, field))


def test_a_thread_count_below_one_is_refused(trained_model, circles_split):
    X, y = circles_split[1][:5], circles_split[3][:5]
    with pytest.raises(ConfigError, match="n_threads"):
        verify(trained_model, X, y, 0.1, n_threads=0)
