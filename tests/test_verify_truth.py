"""What the data allows: invalid shares, error-region accuracy and the Bayes classifier's
robust accuracy against slow references, and the bracket certified <= exact <= attacks
<= clean."""

import numpy as np
import pytest

import robnp
from robnp.attacks import predict
from robnp.data import bayes
from robnp.errors import ConfigError, DataError
from robnp.verify import (BayesClassifier, DataSource, bayes_robust_accuracy,
                          error_region_robust_accuracy, invalid_share, robustness_bracket)

EPS = (0.0, 0.05, 0.1, 0.2, 0.5)


def _split(dataset, n=400, noise=0.15, seed=0, input_dim=2):
    X, y = robnp.make_dataset(dataset, n, noise, seed=seed, input_dim=input_dim)
    return robnp.train_test_split(X, y, test_fraction=0.25)


@pytest.fixture(scope="module")
def moons_setup():
    X_train, X_test, y_train, y_test = _split("moons")
    model = robnp.MLP(2, (16, 16), 2, seed=1)
    robnp.fit(model, X_train, y_train, max_epochs=150, seed=1)
    evaluation = robnp.evaluate(model, X_test[:60], y_test[:60], EPS, ("fgsm", "pgd"), seed=2)
    return model, X_test[:60], y_test[:60], evaluation, DataSource("moons", 400, 0.15)


# ---------------------------------------------------------------------------
# gradients of the Bayes classifier
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dataset,input_dim,n_classes", [("moons", 2, None),
                                                         ("blobs", 3, 4),
                                                         ("spirals", 2, 3)])
def test_log_posterior_gradient_matches_finite_differences(dataset, input_dim, n_classes):
    X, _ = robnp.make_dataset(dataset, 300, 0.2, seed=4, input_dim=input_dim,
                              n_classes=n_classes)
    X = X[:8].astype(np.float64)  # a float32 step of 1e-6 would round away
    kw = dict(n_samples=300, noise=0.2, input_dim=input_dim, n_classes=n_classes)
    log_post, grad = bayes.log_posterior_gradient(dataset, X, **kw)
    np.testing.assert_allclose(np.exp(log_post), bayes.bayes_posterior(dataset, X, **kw),
                               rtol=1e-10, atol=1e-14)
    h = 1e-6
    for j in range(input_dim):
        step = np.zeros_like(X)
        step[:, j] = h
        numeric = (bayes.log_posterior_gradient(dataset, X + step, **kw)[0]
                   - bayes.log_posterior_gradient(dataset, X - step, **kw)[0]) / (2 * h)
        np.testing.assert_allclose(grad[:, :, j], numeric, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("loss", ["cross_entropy", "cw_margin"])
def test_bayes_classifier_input_gradient_matches_finite_differences(loss):
    source = DataSource("moons", 300, 0.2)
    clf = BayesClassifier(source)
    X, y = robnp.make_dataset("moons", 300, 0.2, seed=5)
    X, y = X[:6].astype(np.float64), y[:6]
    grad = clf.input_gradient(X, y, loss)
    h = 1e-6

    def mean_loss(Xp):
        from robnp.losses import loss_and_grad_logits
        return loss_and_grad_logits(clf.logits(Xp), y, loss)[0]

    # The loss is a mean over rows, so a step in one row moves it by 1/n of that row's.
    for i in range(len(X)):
        for j in range(2):
            step = np.zeros_like(X)
            step[i, j] = h
            numeric = (mean_loss(X + step) - mean_loss(X - step)) / (2 * h)
            assert grad[i, j] == pytest.approx(numeric, rel=1e-4, abs=1e-7)


# ---------------------------------------------------------------------------
# the Bayes classifier's robust accuracy
# ---------------------------------------------------------------------------

def _box_samples(x, eps, n_grid=41):
    """A grid of the box in the first two coordinates, its corners, and the point of
    the box nearest the origin (the extremes of |x| over the box)."""
    d = x.shape[0]
    t = np.linspace(-eps, eps, n_grid)
    g = np.stack(np.meshgrid(t, t), -1).reshape(-1, 2)
    pts = np.repeat(x[None], len(g) + 1, axis=0)
    pts[:-1, :2] += g
    pts[-1, :2] = np.clip(0.0, x[:2] - eps, x[:2] + eps)
    pts[-1, 2:] = x[2:]
    assert d == x.shape[0]
    return pts


def _ball_samples(x, eps, n=720):
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    pts = np.repeat(x[None], n + 2, axis=0)
    pts[:n, :2] += eps * np.column_stack([np.cos(angles), np.sin(angles)])
    unit = x[:2] / np.linalg.norm(x[:2])
    pts[n, :2] = x[:2] + eps * unit
    pts[n + 1, :2] = x[:2] - min(eps, np.linalg.norm(x[:2])) * unit
    return pts


def _brute_force(source, X, y, eps, samples):
    return np.array([np.all(source.label(samples(x, eps)) == label) if eps > 0
                     else source.label(x[None])[0] == label for x, label in zip(X, y)])


@pytest.mark.parametrize("norm,samples", [("linf", _box_samples), ("l2", _ball_samples)])
@pytest.mark.parametrize("input_dim", [2, 3])
def test_radial_bayes_robust_accuracy_is_exact_against_sampling_the_ball(norm, samples,
                                                                         input_dim):
    _, X, _, y = _split("circles", n=400, input_dim=input_dim)
    X, y = X[:50], y[:50]
    source = DataSource("circles", 400, 0.15, input_dim=input_dim)
    acc, exact = bayes_robust_accuracy(source, X, y, EPS, norm=norm)
    assert exact
    expected = [_brute_force(source, X, y, e, samples).mean() for e in EPS]
    np.testing.assert_array_equal(acc, expected)
    assert acc[0] == np.mean(source.label(X) == y)
    assert np.all(np.diff(acc) <= 0)


def test_nuisance_coordinates_do_not_change_the_radial_answer():
    _, X, _, y = _split("circles", n=400, input_dim=4)
    two = bayes_robust_accuracy(DataSource("circles", 400, 0.15), X[:, :2], y, EPS)[0]
    four = bayes_robust_accuracy(DataSource("circles", 400, 0.15, input_dim=4), X, y, EPS)[0]
    np.testing.assert_array_equal(two, four)


def test_spheres_box_extremes_against_sampling_corners_and_nearest_point():
    X, y = robnp.make_dataset("spheres", 200, 0.15, seed=3, input_dim=3)
    X, y = X[:40], y[:40]
    source = DataSource("spheres", 200, 0.15, input_dim=3)
    for eps in (0.05, 0.2):
        acc = bayes_robust_accuracy(source, X, y, [eps])[0][0]
        signs = np.array(np.meshgrid(*[[-1, 1]] * 3)).reshape(3, -1).T
        t = np.linspace(-eps, eps, 9)
        grid = np.stack(np.meshgrid(t, t, t), -1).reshape(-1, 3)
        robust = []
        for x, label in zip(X, y):
            pts = np.vstack([x + eps * signs, x + grid,
                             np.clip(0.0, x - eps, x + eps)[None]])
            robust.append(np.all(source.label(pts) == label))
        assert acc == np.mean(robust)


def test_mixture_bayes_robust_accuracy_agrees_with_a_dense_grid_on_a_few_points():
    _, X, _, y = _split("moons", n=200)
    X, y = X[:16], y[:16]
    source = DataSource("moons", 200, 0.15)
    eps = (0.05, 0.2)
    acc, exact = bayes_robust_accuracy(source, X, y, eps, attacks=("pgd",))
    assert not exact
    grid = [_brute_force(source, X, y, e, lambda x, r: _box_samples(x, r, 61)).mean()
            for e in eps]
    # The attack's points are real counterexamples (so acc <= truth) and the grid's
    # too; on these points both find the same ones.
    np.testing.assert_allclose(acc, grid, atol=1.5 / len(X))


def test_three_class_spirals_bayes_robust_accuracy_agrees_with_a_dense_grid():
    X, y = robnp.make_dataset("spirals", 1024, 0.05, seed=0, n_classes=3)
    X, y = X[:24], y[:24]
    source = DataSource("spirals", 1024, 0.05, n_classes=3)
    assert not source.radial
    eps = (0.03, 0.1)
    acc, exact = bayes_robust_accuracy(source, X, y, eps)
    assert not exact
    grid = [_brute_force(source, X, y, e, lambda x, r: _box_samples(x, r, 61)).mean()
            for e in eps]
    np.testing.assert_allclose(acc, grid, atol=1.5 / len(X))
    assert acc[0] > acc[1] > 0  # the radii matter on these points: not a vacuous check


def test_bayes_classifier_refuses_radial_datasets_and_the_analysis_checks_norm():
    with pytest.raises(ConfigError, match="Gaussian mixture"):
        BayesClassifier(DataSource("circles", 100, 0.1))
    with pytest.raises(ConfigError, match="norm"):
        bayes_robust_accuracy(DataSource("circles", 100, 0.1), np.zeros((1, 2)), [0], [0.1],
                              norm="l1")
    with pytest.raises(ConfigError, match="noise"):
        DataSource("moons", 100, 0.0)


# ---------------------------------------------------------------------------
# invalid shares and error-region accuracy against slow loops
# ---------------------------------------------------------------------------

def test_invalid_share_and_error_region_accuracy_match_a_loop(moons_setup):
    model, X, y, evaluation, source = moons_setup
    shares = invalid_share(evaluation, y, source)
    region = error_region_robust_accuracy(model, evaluation, source)
    for name, result in evaluation.attacks.items():
        for k in range(len(EPS)):
            broken = changed = agree = 0
            for i in range(len(y)):
                x_adv = result.adversarial[k, i][None]
                truth = bayes.bayes_label("moons", x_adv, n_samples=400, noise=0.15)[0]
                pred = int(np.argmax(model.logits(x_adv)[0]))
                broken += pred != y[i]
                changed += (pred != y[i]) and truth != y[i]
                agree += pred == truth
            if broken:
                assert shares[name][k] == pytest.approx(changed / broken)
            else:
                assert np.isnan(shares[name][k])
            assert region[name][k] == pytest.approx(agree / len(y))
    # At eps = 0 an error-region error is a disagreement with the Bayes rule.
    assert region["pgd"][0] == pytest.approx(np.mean(predict(model, X) == source.label(X)))


def test_points_moved_into_the_other_class_are_all_invalid(moons_setup):
    import dataclasses
    model, X, y, evaluation, source = moons_setup
    result = evaluation.attacks["pgd"]
    # Every point pushed onto the other moon's arc: each success changed the class.
    arcs = robnp.data.synthetic.moon_arcs(400)
    moved = np.stack([arcs[1 - label][0] for label in y])
    adversarial = np.repeat(moved[None], len(EPS), axis=0)
    fake = dataclasses.replace(result, adversarial=adversarial,
                               success=np.ones_like(result.success))
    fake_eval = dataclasses.replace(evaluation, attacks={"pgd": fake})
    np.testing.assert_array_equal(invalid_share(fake_eval, y, source)["pgd"], 1.0)
    with pytest.raises(DataError, match="y must have shape"):
        invalid_share(evaluation, y[:-1], source)


# ---------------------------------------------------------------------------
# the bracket
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dataset,seed", [("moons", 0), ("circles", 1)])
def test_bracket_certified_exact_attacks_clean(dataset, seed):
    X_train, X_test, y_train, y_test = _split(dataset, n=400, noise=0.1, seed=seed)
    model = robnp.MLP(2, (16, 16), 2, seed=seed)
    robnp.fit(model, X_train, y_train, max_epochs=300, seed=seed)
    X, y = X_test[:40], y_test[:40]
    assert robnp.accuracy(model, X, y) > 0.8
    evaluation = robnp.evaluate(model, X, y, EPS, ("fgsm", "pgd"), seed=seed)
    bracket = robustness_bracket(model, X, y, evaluation, budget=512)
    assert np.all(bracket.certified <= bracket.upper)
    assert np.all(np.diff(bracket.certified) <= 0) and np.all(np.diff(bracket.upper) <= 0)
    for acc in bracket.attacks.values():
        assert np.all(bracket.upper <= acc + 1e-12)
        assert np.all(acc <= bracket.clean)
    decided = bracket.undecided == 0
    assert decided.any()
    np.testing.assert_array_equal(bracket.exact[decided], bracket.certified[decided])
    assert bracket.certified[0] == bracket.clean  # eps 0: clean correctness
    # The verifier's count, re-derived: certified points are robust at every
    # sampled point of their box.
    robust_rows = np.flatnonzero(robnp.verify.verify(model, X, y, 0.1, budget=512).verdict
                                 == "robust")
    rng = np.random.default_rng(0)
    for i in robust_rows[:10]:
        pts = X[i] + rng.uniform(-0.1, 0.1, (200, 2))
        assert np.all(predict(model, pts.astype(np.float32)) == y[i])


def test_a_bracket_where_every_point_is_a_clean_error_is_all_zero():
    """Clean errors only: the evaluation attacks none of them and the verifier decides
    every one at the clean point, so every bound is 0 at every radius."""
    model = robnp.MLP(2, (8,), 2, seed=0)
    X = np.random.default_rng(0).normal(size=(12, 2)).astype(np.float32)
    y = 1 - model.predict(X)
    evaluation = robnp.evaluate(model, X, y, EPS, ("fgsm", "pgd"), seed=0)
    bracket = robustness_bracket(model, X, y, evaluation)
    assert bracket.clean == 0.0
    np.testing.assert_array_equal(bracket.certified, 0.0)
    np.testing.assert_array_equal(bracket.upper, 0.0)
    np.testing.assert_array_equal(bracket.exact, 0.0)
    for acc in bracket.attacks.values():
        np.testing.assert_array_equal(acc, 0.0)
