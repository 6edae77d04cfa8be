"""Properties every registered attack must have, parametrized over
``robnp.attacks.attack_names()``, and the guarantees that hold only for some.

Guaranteed for every attack (tested for each): the result stays in the ball (and in
the box when the clean points are in it), ``eps = 0`` gives back the clean points,
a seed fixes the result, float32 and float64 both work, the thread count changes
nothing, and a model seen only through the protocol (``logits``,
``input_gradient``) gives the MLP path's results.

Guaranteed only where stated: restarts never weaken a point (attacks whose first run
is the single run and whose later runs touch only points still robust: all with
``n_restarts`` except ``apgd-t``, whose target loop draws its starts in another
order); robust accuracy never above clean accuracy (attacks that return the clean
point where it is already misclassified: ``apgd-*`` and ``square``). Robust accuracy
falling with eps is not guaranteed by any attack here (each radius runs its own
search), so it is not asserted.
"""

import numpy as np
import pytest

import robnp
from robnp.attacks import PGDOptions, attack_names, get_attack
from robnp.attacks._clean import CleanPoints
from test_attacks_references import Wrapped

ATTACKS = attack_names()
RADII = (0.0, 0.2, 0.6)

# Small budgets keep the suite fast; the defaults are exercised by the registry test.
FAST = {"pgd-cw": {"steps": 8}, "apgd-ce": {"n_iter": 12}, "apgd-dlr": {"n_iter": 12},
        "apgd-t": {"n_iter": 8, "n_target_classes": 3}, "square": {"n_queries": 60}}


def attack(name, model, X, y, radii=RADII, seed=0, **options):
    spec = get_attack(name)
    opts = spec.make_options({**FAST.get(name, {}), **options})
    target = robnp.attacks.Target(model)
    X = target.check_input(X)
    y = target.check_labels(y, X)
    return spec.run(model, X, y, tuple(radii), opts, np.random.default_rng(seed))


def test_the_registry_lists_the_attacks_a_reviewer_expects():
    assert set(ATTACKS) >= {"fgsm", "pgd", "pgd-cw", "apgd-ce", "apgd-dlr", "apgd-t",
                            "square"}
    cw = get_attack("pgd-cw").make_options()
    assert (cw.steps, cw.step_fraction, cw.loss, cw.random_start, cw.use_best) == \
        (40, 0.25, "cw_margin", True, True)
    study = get_attack("pgd").make_options()
    assert (study.steps, study.step_fraction, study.loss, study.random_start,
            study.use_best, study.n_restarts) == (10, 0.25, "cross_entropy", False, False, 1)
    assert get_attack("apgd-ce").make_options().n_iter == 100
    assert get_attack("square").make_options().n_queries == 5000


@pytest.mark.parametrize("name", ATTACKS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ball_box_and_eps_zero(blobs_model, name, dtype):
    model, X, y = blobs_model
    model = model.astype(dtype)
    bounds = (-2.0, 2.0)
    X = np.clip(X[:30], *bounds).astype(dtype)
    results = attack(name, model, X, y[:30], bounds=bounds)
    np.testing.assert_array_equal(results[0], X)
    slack = 4 * np.finfo(dtype).eps * (1 + np.abs(X).max())
    for eps, X_adv in zip(RADII, results):
        assert X_adv.dtype == dtype and X_adv.shape == X.shape
        assert np.abs(X_adv.astype(np.float64) - X).max() <= eps + slack
        assert X_adv.min() >= bounds[0] and X_adv.max() <= bounds[1]
    assert robnp.robust_accuracy(model, X, y[:30], name, eps=[0.0], **FAST.get(name, {})) \
        == {0.0: robnp.accuracy(model, X, y[:30])}


@pytest.mark.parametrize("name", ATTACKS)
def test_a_seed_fixes_the_result(blobs_model, name):
    model, X, y = blobs_model
    first = attack(name, model, X[:30], y[:30], seed=3)
    again = attack(name, model, X[:30], y[:30], seed=3)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    if get_attack(name).make_options(FAST.get(name, {})).randomized:
        other = attack(name, model, X[:30], y[:30], seed=4)
        assert not np.array_equal(first[-1], other[-1])


@pytest.mark.parametrize("name", [n for n in ATTACKS
                                  if "n_threads" in get_attack(n).options.field_names()])
def test_the_thread_count_changes_nothing(name):
    """A batch of several chunks (600 rows), on one thread and on two."""
    rng = np.random.default_rng(5)
    model = robnp.MLP(3, (6,), 4, seed=5)
    X = rng.normal(size=(600, 3)).astype(np.float32)
    y = model.predict(X)
    one = attack(name, model, X, y, radii=(0.3,), n_threads=1, seed=1)
    two = attack(name, model, X, y, radii=(0.3,), n_threads=2, seed=1)
    np.testing.assert_array_equal(one[0], two[0])


def test_the_study_pgd_is_bit_identical_on_any_thread_count(trained_model, circles_split):
    X, y = circles_split[1], circles_split[3]
    X = np.concatenate([X] * 4)  # 600 rows: three chunks
    y = np.concatenate([y] * 4)
    clean = CleanPoints(robnp.attacks.Target(trained_model), X, y)
    for eps in (0.05, 0.2):
        study = robnp.pgd(trained_model, X, y, eps)
        np.testing.assert_array_equal(robnp.pgd(trained_model, X, y, eps, n_threads=2), study)
        np.testing.assert_array_equal(
            get_attack("pgd").run(trained_model, X, y, (eps,), PGDOptions(n_threads=2),
                                  np.random.default_rng(0), clean=clean)[0], study)


@pytest.mark.parametrize("name", ATTACKS)
def test_a_model_behind_the_protocol_gives_the_mlp_results(blobs_model, name):
    model, X, y = blobs_model
    direct = attack(name, model, X[:30], y[:30], seed=2)
    wrapped = attack(name, Wrapped(model), X[:30], y[:30], seed=2)
    for a, b in zip(direct, wrapped):
        np.testing.assert_allclose(a, b, atol=1e-9)


@pytest.mark.parametrize("name", [n for n in ATTACKS if n != "apgd-t"
                                  and "n_restarts" in get_attack(n).options.field_names()])
def test_restarts_never_lose_a_point(blobs_model, name):
    model, X, y = blobs_model
    extra = {"random_start": True} if name == "pgd" else {}
    once = attack(name, model, X, y, radii=(0.4,), seed=6, **extra)[0]
    thrice = attack(name, model, X, y, radii=(0.4,), seed=6, n_restarts=3, **extra)[0]
    broken_once = model.predict(once) != y
    broken_thrice = model.predict(thrice) != y
    assert np.all(broken_thrice[broken_once])
    np.testing.assert_array_equal(thrice[broken_once], once[broken_once])


@pytest.mark.parametrize("name", [n for n in ATTACKS if n.startswith("apgd") or n == "square"])
def test_robust_accuracy_never_exceeds_clean_accuracy(blobs_model, name):
    model, X, y = blobs_model
    y_noisy = y.copy()
    y_noisy[::4] = (y_noisy[::4] + 1) % 5  # some points misclassified when clean
    clean = robnp.accuracy(model, X, y_noisy)
    for eps, X_adv in zip(RADII, attack(name, model, X, y_noisy)):
        assert robnp.accuracy(model, X_adv, y_noisy) <= clean


def test_stronger_attacks_find_what_the_study_pgd_finds(blobs_model):
    """Not a guarantee per point, but on this model the evaluation attacks at their
    defaults break at least as many points as the study's PGD-10."""
    model, X, y = blobs_model
    study = robnp.robust_accuracy(model, X, y, "pgd", eps=[0.4])[0.4]
    for name in ("pgd-cw", "apgd-ce", "apgd-dlr"):
        assert robnp.robust_accuracy(model, X, y, name, eps=[0.4], seed=0)[0.4] <= study


def test_l2_pgd_stays_in_the_l2_ball_and_box(blobs_model):
    model, X, y = blobs_model
    X = np.clip(X, -2, 2)
    for options in ({}, {"random_start": True}, {"bounds": (-2.0, 2.0), "random_start": True},
                    {"use_best": True, "n_restarts": 2, "random_start": True}):
        X_adv = robnp.pgd(model, X, y, 0.5, steps=5, norm="l2", seed=0, **options)
        assert np.linalg.norm(X_adv - X, axis=1).max() <= 0.5 * (1 + 1e-12)
        if "bounds" in options:
            assert X_adv.min() >= -2 and X_adv.max() <= 2
    rng = np.random.default_rng(0)
    starts = robnp.attacks._pgd.random_start_points(rng, np.zeros((4000, 3)),
                                                    np.full(4000, 1.0), "l2", None)
    radius = np.linalg.norm(starts, axis=1)
    # uniform in the 3-ball: P(|x| <= r) = r^3
    for r in (0.5, 0.8):
        assert abs((radius <= r).mean() - r ** 3) < 0.03


def test_bad_options_are_config_errors(blobs_model):
    model, X, y = blobs_model
    for name, options, match in [
        ("pgd", {"norm": "l1"}, "norm must be one of"),
        ("pgd", {"n_restarts": 0}, "n_restarts"),
        ("pgd", {"n_threads": 0}, "n_threads"),
        ("apgd-ce", {"rho": 1.5}, "rho"),
        ("apgd-t", {"loss": "cross_entropy"}, "targeted DLR"),
        ("square", {"p_init": 0.0}, "p_init"),
        ("square", {"n_queries": -1}, "n_queries"),
    ]:
        with pytest.raises(robnp.ConfigError, match=match):
            get_attack(name).make_options(options)
    with pytest.raises(robnp.ConfigError, match="logits"):
        robnp.pgd(object(), X, y, 0.1)


def test_registry_targets_are_the_most_likely_wrong_class(blobs_model):
    model, X, y = blobs_model
    target = robnp.attacks._threat.top_wrong_class(model.logits(X), y)
    Z = model.logits(X).astype(np.float64)
    Z[np.arange(len(y)), y] = -np.inf
    np.testing.assert_array_equal(target, Z.argmax(axis=1))
    registry = attack("pgd", model, X, y, radii=(0.5,), targeted=True, use_best=True)[0]
    direct = robnp.pgd(model, X, y, 0.5, y_target=target, use_best=True)
    np.testing.assert_array_equal(registry, direct)


def test_square_needs_only_logits(blobs_model):
    model, X, y = blobs_model

    class ScoresOnly:
        dtype = model.dtype

        def logits(self, X):
            return model.logits(X)

        def input_gradient(self, X, y, loss):
            raise AssertionError("the Square attack must not ask for gradients")

    got = robnp.attacks.square(ScoresOnly(), X, y, 0.4, n_queries=50, seed=1)
    np.testing.assert_array_equal(got, robnp.attacks.square(model, X, y, 0.4, n_queries=50,
                                                            seed=1))
    assert robnp.accuracy(model, got, y) < robnp.accuracy(model, X, y)


def test_l2_apgd_stays_in_the_l2_ball(blobs_model):
    model, X, y = blobs_model
    X_adv = robnp.attacks.apgd(model, X, y, 0.5, n_iter=10, norm="l2", seed=0)
    assert np.linalg.norm(X_adv - X, axis=1).max() <= 0.5 * (1 + 1e-12)
    assert robnp.accuracy(model, X_adv, y) < robnp.accuracy(model, X, y)


@pytest.mark.parametrize("options", [{}, {"steps": 3, "step_size": 0.07}, {"loss": "cw_margin"},
                                     {"bounds": (-1, 1)}, {"steps": 1}])
def test_the_registry_pgd_is_the_study_pgd_bit_for_bit(trained_model, circles_split, options):
    """The registry runs every radius in one compiled call; each must equal the
    function the study calls, radius by radius."""
    X, y = circles_split[1], circles_split[3]
    radii = (0.0, 0.01, 0.05, 0.1, 0.2, 0.5)
    swept = attack("pgd", trained_model, X, y, radii=radii, **options)
    function = {k: v for k, v in options.items()}
    for eps, X_adv in zip(radii, swept):
        np.testing.assert_array_equal(X_adv, robnp.pgd(trained_model, X, y, eps, **function))
