"""Specification of robnp.evaluate and the attack registry: the per-sample worst
case over attacks, long-form records, and the sanity checks that warn."""

from dataclasses import dataclass

import numpy as np
import pytest

import robnp
from robnp.attacks import ATTACKS, AttackOptions, register_attack
from robnp.errors import ConfigError

EPS = (0.0, 0.05, 0.1, 0.3)


@pytest.fixture()
def test_split(circles_split):
    return circles_split[1], circles_split[3]


@pytest.fixture()
def scratch_registry(monkeypatch):
    """Attacks registered inside a test disappear after it."""
    monkeypatch.setattr("robnp.attacks._registry.ATTACKS", ATTACKS.copy())
    from robnp.attacks import _registry

    return _registry.ATTACKS


def test_each_attack_alone_equals_robust_accuracy(trained_model, test_split):
    X, y = test_split
    evaluation = robnp.evaluate(trained_model, X, y, EPS, ["fgsm", "pgd"])
    for name in ("fgsm", "pgd"):
        assert evaluation.robust_accuracy(name) == robnp.robust_accuracy(
            trained_model, X, y, name, eps=EPS)


def test_worst_case_is_never_above_any_attack_and_counts_clean_errors(trained_model, test_split):
    X, y = test_split
    evaluation = robnp.evaluate(trained_model, X, y, EPS, ["fgsm", "pgd"])
    clean_wrong = robnp.attacks.predict(trained_model, X) != y
    for k in range(len(EPS)):
        union = clean_wrong | evaluation.attacks["fgsm"].success[k] | \
            evaluation.attacks["pgd"].success[k]
        np.testing.assert_array_equal(evaluation.worst_success[k], union)
        for result in evaluation.attacks.values():
            assert evaluation.worst_robust_acc[k] <= result.robust_acc[k]
    # eps = 0 changes nothing: the worst case is the clean accuracy.
    assert evaluation.worst_robust_acc[0] == pytest.approx(robnp.accuracy(trained_model, X, y))


def test_worst_points_are_in_the_ball_and_misclassified(trained_model, test_split):
    X, y = test_split
    evaluation = robnp.evaluate(trained_model, X, y, EPS, ["fgsm", "pgd"])
    for k, eps in enumerate(EPS):
        points = evaluation.worst_points[k]
        assert np.abs(points - X).max() <= eps + 1e-6
        broken = evaluation.worst_success[k]
        assert np.all(robnp.attacks.predict(trained_model, points[broken]) != y[broken])


def test_cascade_attacks_only_points_still_robust(trained_model, test_split):
    X, y = test_split
    evaluation = robnp.evaluate(trained_model, X, y, EPS, ["pgd", "fgsm"], cascade=True)
    pgd, fgsm = evaluation.attacks["pgd"], evaluation.attacks["fgsm"]
    clean_wrong = robnp.attacks.predict(trained_model, X) != y
    for k in range(len(EPS)):
        np.testing.assert_array_equal(pgd.attacked[k], ~clean_wrong)
        np.testing.assert_array_equal(fgsm.attacked[k], ~clean_wrong & ~pgd.success[k])
    # The cascade's last row is the worst case; PGD's deterministic, so it agrees
    # with the independent evaluation's worst case.
    independent = robnp.evaluate(trained_model, X, y, EPS, ["pgd", "fgsm"])
    np.testing.assert_array_equal(fgsm.robust_acc, evaluation.worst_robust_acc)
    np.testing.assert_array_equal(evaluation.worst_success, independent.worst_success)


def test_records_are_long_form(trained_model, test_split):
    X, y = test_split
    evaluation = robnp.evaluate(trained_model, X, y, EPS, ["fgsm", "pgd"])
    records = evaluation.records()
    assert [(r["attack"], r["epsilon"]) for r in records] == \
        [(a, e) for a in ("fgsm", "pgd") for e in EPS]
    for record in records:
        assert record["norm"] == "linf" and record["n_points"] == len(y)
        assert record["robust_acc"] == (len(y) - record["n_success"]) / len(y)
    assert robnp.report.records.evaluation_problems(records) == []
    as_json = evaluation.to_dict()
    assert as_json["attacks"]["pgd"]["options"]["steps"] == 10


def test_attacks_are_seeded_by_name(trained_model, test_split):
    X, y = test_split
    options = {"pgd": {"random_start": True}}
    a = robnp.evaluate(trained_model, X, y, (0.2,), options, seed=3)
    b = robnp.evaluate(trained_model, X, y, (0.2,), {"fgsm": {}, **options}, seed=3)
    c = robnp.evaluate(trained_model, X, y, (0.2,), options, seed=4)
    np.testing.assert_array_equal(a.attacks["pgd"].adversarial, b.attacks["pgd"].adversarial)
    assert not np.array_equal(a.attacks["pgd"].adversarial, c.attacks["pgd"].adversarial)


@pytest.mark.parametrize("attacks,match", [
    (["nope"], "unknown attack 'nope'; known attacks: fgsm, pgd"),
    ([("pgd", {"stepz": 1})], "unknown option 'stepz' for attack 'pgd'"),
    (["pgd", "pgd"], "duplicate"),
    ([], "at least one attack"),
    ([("pgd", robnp.attacks.FGSMOptions())], "must be a PGDOptions"),
])
def test_bad_attack_lists(trained_model, test_split, attacks, match):
    X, y = test_split
    with pytest.raises(ConfigError, match=match):
        robnp.evaluate(trained_model, X, y, (0.1,), attacks)


def test_options_checked_against_the_model_before_any_attack_runs(
        trained_model, test_split, scratch_registry):
    ran = []

    @dataclass(frozen=True)
    class ThreeClasses(AttackOptions):
        def check_classes(self, n_classes):
            if n_classes < 3:
                raise ConfigError(f"needs >= 3 classes, the model has {n_classes}")

    register_attack("needs-three", lambda *args: ran.append(1), ThreeClasses, "test")
    X, y = test_split
    with pytest.raises(ConfigError, match="needs >= 3 classes, the model has 2"):
        robnp.evaluate(trained_model, X, y, (0.1,), ["fgsm", "needs-three"])
    assert ran == []


# --------------------------------------------------------------------------
# sanity checks: each warning fires when, and only when, its condition holds
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class _Plain(AttackOptions):
    pass


@dataclass(frozen=True)
class _BlackBox(AttackOptions):
    black_box = True


def test_a_healthy_evaluation_has_no_warnings(trained_model, test_split):
    X, y = test_split
    evaluation = robnp.evaluate(trained_model, X, y, (0.0, 0.05, 0.1), ["fgsm", "pgd"])
    assert evaluation.warnings == ()


def test_fgsm_beating_an_iterative_attack_is_flagged(trained_model, test_split, scratch_registry):
    X, y = test_split
    register_attack("stays-put", lambda m, X, y, radii, o, rng: [X.copy() for _ in radii],
                    _Plain, "does nothing")
    evaluation = robnp.evaluate(trained_model, X, y, (0.1,), ["fgsm", "stays-put"])
    n_fgsm = int(evaluation.attacks["fgsm"].success[0].sum()
                 - (robnp.attacks.predict(trained_model, X) != y).sum())
    assert any(f"FGSM breaks {n_fgsm} point(s) that stays-put leaves robust" in w
               for w in evaluation.warnings), evaluation.warnings


def test_robust_accuracy_rising_with_eps_is_flagged(trained_model, test_split, scratch_registry):
    X, y = test_split

    def only_small_radii(model, X, y, radii, options, rng):
        # A broken attack: real PGD below 0.3, nothing above.
        return [robnp.pgd(model, X, y, e) if e < 0.3 else X.copy() for e in radii]

    register_attack("fading", only_small_radii, _Plain, "test")
    evaluation = robnp.evaluate(trained_model, X, y, (0.4, 0.2), ["fading"])
    assert any("fading: robust accuracy rises" in w and "eps=0.2 to" in w
               for w in evaluation.warnings), evaluation.warnings


def test_a_black_box_attack_beating_every_white_box_one_is_flagged(
        trained_model, test_split, scratch_registry):
    X, y = test_split
    register_attack("stays-put", lambda m, X, y, radii, o, rng: [X.copy() for _ in radii],
                    _Plain, "does nothing")
    register_attack("oracle", lambda m, X, y, radii, o, rng: [robnp.pgd(m, X, y, e) for e in radii],
                    _BlackBox, "pretends to be black-box")
    evaluation = robnp.evaluate(trained_model, X, y, (0.2,), ["stays-put", "oracle"])
    assert any("black-box oracle breaks" in w and "gradient masking" in w
               for w in evaluation.warnings), evaluation.warnings


def test_zero_input_gradients_are_flagged(test_split):
    X, y = test_split
    dead = robnp.MLP(2, (8,), 2, seed=0)
    dead.coefs_[0][:] = 0  # every hidden unit sees nothing: the input gradient is 0
    dead.intercepts_[0][:] = 1
    evaluation = robnp.evaluate(dead, X, y, (0.1,), ["pgd"])
    assert evaluation.zero_gradient_share == 1.0
    assert any("100.0% of the points have an input gradient of exactly zero" in w
               for w in evaluation.warnings)


def test_accuracy_above_majority_in_a_ball_covering_the_data_is_flagged(
        trained_model, test_split, scratch_registry):
    X, y = test_split
    register_attack("stays-put", lambda m, X, y, radii, o, rng: [X.copy() for _ in radii],
                    _Plain, "does nothing")
    covering = float(np.max(X.max(axis=0) - X.min(axis=0)))
    evaluation = robnp.evaluate(trained_model, X, y, (covering,), ["stays-put"])
    assert any("above the majority share" in w for w in evaluation.warnings)
    strong = robnp.evaluate(trained_model, X, y, (covering,), ["pgd"])
    assert not any("above the majority share" in w for w in strong.warnings)


def test_doubling_the_steps_flags_an_unconverged_attack(trained_model, test_split):
    X, y = test_split
    one_step = {"pgd": {"steps": 1, "step_size": 0.05}}
    evaluation = robnp.evaluate(trained_model, X, y, (0.3,), one_step,
                                check_convergence=True)
    assert any(w.startswith("pgd: ") and "broken with 2 steps at eps=0.3" in w
               and "add steps (steps)" in w and "restarts would repeat them" in w
               for w in evaluation.warnings), evaluation.warnings
    converged = robnp.evaluate(trained_model, X, y, (0.05,), ["pgd"], check_convergence=True)
    assert not any("not converged" in w for w in converged.warnings), converged.warnings


@pytest.fixture(scope="module")
def spirals_3():
    """A 3-class spirals model (noise 0.05, width 32) and its 200 test points: at eps
    0.1 APGD-CE with its single restart leaves points that new random starts break
    and more iterations do not."""
    from robnp.study import task_data, train_task
    from robnp.study.config import StudyConfig

    task = StudyConfig(datasets=("spirals",), n_classes=3, noise=0.05, seeds=(0,),
                       widths=(32,), n_samples=1000, max_epochs=600).tasks()[0]
    X_train, X_test, y_train, y_test = task_data(task)
    model, _ = train_task(task, X_train, y_train)
    return model, X_test, y_test


def test_the_convergence_check_advises_restarts_where_restarts_break_more(spirals_3):
    import re

    model, X, y = spirals_3
    evaluation = robnp.evaluate(model, X, y, (0.1,), ["apgd-ce"], seed=0,
                                check_convergence=True)
    (warning,) = [w for w in evaluation.warnings if w.startswith("apgd-ce: ")]
    found = re.match(r"apgd-ce: (\d+) more point\(s\) broken with 2 restarts, (\d+) with "
                     r"200 iterations at eps=0.1 \(reruns on the (\d+) point\(s\) it left "
                     r"robust, from one new random start\): not converged, (.*)$", warning)
    assert found, warning
    restarts, iterations, left = (int(v) for v in found.groups()[:3])
    assert restarts > iterations and found.group(4) == "add restarts (n_restarts)"
    assert left == np.count_nonzero(~evaluation.attacks["apgd-ce"].success[0])
    # five restarts from the start break what 1000 iterations do not
    one = robnp.robust_accuracy(model, X, y, "apgd-ce", (0.1,), seed=0)[0.1]
    long = robnp.robust_accuracy(model, X, y, "apgd-ce", (0.1,), seed=0, n_iter=400)[0.1]
    five = robnp.robust_accuracy(model, X, y, "apgd-ce", (0.1,), seed=0, n_restarts=5)[0.1]
    assert five < long and five < one


def test_the_convergence_check_reruns_only_the_points_left_robust(blobs_model, monkeypatch):
    from robnp.attacks import _evaluate

    model, X, y = blobs_model
    calls = []
    real = _evaluate.get_attack

    def spying(name):
        spec = real(name)

        def run(model, X, y, radii, options, rng, **kwargs):
            calls.append((name, X.shape[0], dict(options.to_dict())))
            return spec.run(model, X, y, radii, options, rng, **kwargs)

        return spec.__class__(spec.name, run, spec.options, spec.summary)

    monkeypatch.setattr(_evaluate, "get_attack", spying)
    evaluation = robnp.evaluate(model, X, y, (0.2, 0.4), {"apgd-ce": {"n_iter": 10},
                                                          "fgsm": {}},
                                check_convergence=True)
    left = evaluation.attacks["apgd-ce"].attacked & ~evaluation.attacks["apgd-ce"].success
    reruns = [(n, options) for name, n, options in calls
              if name == "apgd-ce" and (options["n_iter"], options["n_restarts"]) != (10, 1)]
    expected = []
    for count in left.sum(axis=1):  # per radius: twice the iterations, twice the restarts
        expected += [(int(count), 20, 1), (int(count), 10, 2)]
    assert [(n, o["n_iter"], o["n_restarts"]) for n, o in reruns] == expected
    assert not any(name == "fgsm" and n < len(y) for name, n, _ in calls)  # nothing to add


def test_any_object_with_logits_and_input_gradient_can_be_evaluated(trained_model, test_split):
    class Wrapped:
        def __init__(self, model):
            self._model = model

        def logits(self, X):
            return self._model.logits(X)

        def input_gradient(self, X, y, loss):
            return self._model.input_gradient(X, y, loss)

    X, y = test_split
    wrapped = robnp.evaluate(Wrapped(trained_model), X, y, EPS, ["fgsm"])
    direct = robnp.evaluate(trained_model, X, y, EPS, ["fgsm"])
    assert wrapped.clean_acc == pytest.approx(robnp.accuracy(trained_model, X, y))
    np.testing.assert_array_equal(wrapped.worst_success, direct.worst_success)


def test_every_registered_attack_runs_in_one_evaluation(blobs_model):
    model, X, y = blobs_model
    names = robnp.attacks.attack_names()
    assert {"fgsm", "pgd", "pgd-cw", "apgd-ce", "apgd-dlr", "apgd-t", "square"} <= set(names)
    budgets = {"pgd-cw": {"steps": 5}, "apgd-ce": {"n_iter": 10}, "apgd-dlr": {"n_iter": 10},
               "apgd-t": {"n_iter": 10, "n_target_classes": 2}, "square": {"n_queries": 50}}
    evaluation = robnp.evaluate(model, X, y, (0.0, 0.3), {n: budgets.get(n, {}) for n in names})
    for result in evaluation.attacks.values():
        assert result.robust_acc[0] == pytest.approx(evaluation.clean_acc)
        assert evaluation.worst_robust_acc[1] <= result.robust_acc[1]


@pytest.mark.parametrize("attack,needed", [("apgd-dlr", 3), ("apgd-t", 4)])
def test_dlr_on_too_few_classes_is_refused_before_anything_runs(trained_model, test_split,
                                                                attack, needed):
    X, y = test_split
    with pytest.raises(ConfigError, match=f"needs at least {needed} classes, the model has 2"):
        robnp.evaluate(trained_model, X, y, (0.1,), ["fgsm", attack])


def test_the_clean_gradient_is_computed_once_per_evaluation(trained_model, circles_split,
                                                             monkeypatch):
    """FGSM, PGD's first step at every radius and the zero-gradient check share one
    gradient at the clean points."""
    X, y = circles_split[1], circles_split[3]
    from robnp.attacks import _clean

    calls = []
    real = _clean.chunked_input_gradient

    def counted(model, X, y, loss_kind, *args, **kwargs):
        calls.append(loss_kind)
        return real(model, X, y, loss_kind, *args, **kwargs)

    monkeypatch.setattr(_clean, "chunked_input_gradient", counted)
    shared = robnp.evaluate(trained_model, X, y, EPS, ["fgsm", "pgd"])
    assert calls == [robnp.kernels.LOSS_CROSS_ENTROPY]
    monkeypatch.setattr(_clean, "chunked_input_gradient", real)
    for name in ("fgsm", "pgd"):
        alone = robnp.robust_accuracy(trained_model, X, y, name, eps=EPS)
        assert shared.robust_accuracy(name) == alone


class _Protocol:
    """``model`` seen only through the attack protocol, in float64; ``nan_in`` puts a
    NaN into one row of what the named method returns."""

    def __init__(self, model, nan_in=None, row=3):
        self._model, self._nan_in, self._row = model, nan_in, row

    def logits(self, X):
        Z = np.array(self._model.logits(X), np.float64)
        if self._nan_in == "logits" and len(Z) > self._row:
            Z[self._row, 0] = np.nan
        return Z

    def input_gradient(self, X, y, loss, y_target=None):
        G = np.array(self._model.input_gradient(X, y, loss), np.float64)
        if self._nan_in == "input_gradient" and len(G) > self._row:
            G[self._row, 1] = np.nan
        return G


def test_protocol_path_returns_plain_floats_as_the_mlp_path(trained_model, test_split):
    X, y = test_split
    for model in (trained_model, _Protocol(trained_model)):
        assert type(robnp.accuracy(model, X, y)) is float
        values = robnp.robust_accuracy(model, X, y, "fgsm", eps=(0.05, 0.1))
        assert all(type(v) is float for v in values.values()), values


@pytest.mark.parametrize("method", ["logits", "input_gradient"])
@pytest.mark.parametrize("call", ["accuracy", "robust_accuracy", "evaluate", "pgd", "fab"])
def test_nan_from_a_protocol_model_is_refused_naming_the_method(trained_model, test_split,
                                                                method, call):
    from robnp.errors import DataError

    X, y = test_split
    model = _Protocol(trained_model, nan_in=method)
    run = {"accuracy": lambda: robnp.accuracy(model, X, y),
           "robust_accuracy": lambda: robnp.robust_accuracy(model, X, y, "pgd", eps=(0.1,)),
           "evaluate": lambda: robnp.evaluate(model, X, y, (0.1,), ["fgsm", "pgd"]),
           "pgd": lambda: robnp.pgd(model, X, y, 0.1, steps=3),
           "fab": lambda: robnp.robust_accuracy(model, X, y, "fab", eps=(0.1,), n_iter=3)}[call]
    if call == "accuracy" and method == "input_gradient":
        run()  # accuracy asks for no gradient
        return
    with pytest.raises(DataError, match=rf"model\.{method} returned NaN \(first in row 3 "):
        run()


_SMALL_BUDGETS = {"pgd": {"steps": 5}, "pgd-cw": {"steps": 5}, "apgd-ce": {"n_iter": 5},
                  "apgd-dlr": {"n_iter": 5}, "apgd-t": {"n_iter": 5, "n_target_classes": 2},
                  "square": {"n_queries": 20}, "fab": {"n_iter": 5},
                  "fab-t": {"n_iter": 5, "n_target_classes": 2}}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_radius_the_dtype_cannot_hold_is_refused_naming_eps(blobs_model, dtype):
    import warnings

    trained, X, y = blobs_model
    model = robnp.MLP(4, (12, 12), 5, dtype=dtype, seed=7)
    model.params[:] = trained.params
    X = X[:20].astype(dtype)
    limit = float(np.finfo(dtype).max)
    inside = (limit - float(np.abs(X).max())) / 2 * (1 - 1e-6)
    with pytest.raises(ConfigError, match=rf"eps must keep the ball around the data within "
                                          rf"the model's {np.dtype(dtype).name} range .*"
                                          rf"got 1e\+308"):
        robnp.robust_accuracy(model, X, y[:20], "fgsm", eps=(0.1, 1e308))
    with pytest.raises(ConfigError, match="eps must keep the ball"):
        robnp.evaluate(model, X, y[:20], (inside * 1.01,), ["fgsm"])
    # Just inside the limit, each single attack's arithmetic stays finite: no overflow
    # warning, finite points.
    singles = [name for name in robnp.attacks.attack_names() if name in _SMALL_BUDGETS]
    assert len(singles) == len(_SMALL_BUDGETS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluation = robnp.evaluate(model, X, y[:20], (inside,),
                                    {name: _SMALL_BUDGETS[name] for name in singles})
    for result in evaluation.attacks.values():
        assert np.isfinite(result.adversarial).all()


def _boundary_points(model, n, seed):
    """Points within a few float32 steps of the model's decision boundary (bisection
    between a point of each class), and the class each was labelled: their verdicts
    turn on the last bits of the logits."""
    rng = np.random.default_rng(seed)
    probe = rng.normal(size=(4000, 2)).astype(np.float32) * 3
    cls = model.predict(probe)
    a, b = probe[cls == 0][:n].astype(np.float64), probe[cls == 1][:n].astype(np.float64)
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    for _ in range(60):
        mid = (a + b) / 2
        zero = model.predict(mid.astype(np.float32)) == 0
        a[zero], b[~zero] = mid[zero], mid[~zero]
    points = np.where(rng.random((n, 1)) < 0.5, a, b).astype(np.float32)
    return points, rng.integers(0, 2, n)


def test_a_verdict_is_the_same_whatever_else_is_evaluated(scratch_registry):
    """A point's verdict at a radius is that of accuracy() on that radius's points, and
    does not depend on the other radii evaluated beside it, even at margins within a
    few units in the last place of zero."""
    model = robnp.MLP(2, (512, 512), 2, seed=0)
    points, y = _boundary_points(model, 300, 0)
    found = [np.roll(points, shift, axis=0) for shift in (0, 7, 131)]

    def run(model, X, y, radii, options, rng):  # the boundary points, in another order per radius
        return [found[int(round(eps * 10)) - 1] for eps in radii]

    register_attack("boundary", run, _Plain, "test")
    X = points + 1.0  # where the clean points are does not matter here
    together = robnp.evaluate(model, X, y, (0.1, 0.2, 0.3), ["boundary"])
    success = together.attacks["boundary"].success
    for k, eps in enumerate((0.1, 0.2, 0.3)):
        alone = robnp.evaluate(model, X, y, (eps,), ["boundary"])
        np.testing.assert_array_equal(success[k], alone.attacks["boundary"].success[0])
        assert together.attacks["boundary"].robust_acc[k] == robnp.attacks.accuracy(
            model, found[k], y)
        np.testing.assert_array_equal(success[k], robnp.attacks.predict(model, found[k]) != y)
