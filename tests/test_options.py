"""The registries and the options every attack and recipe describes itself with: its
cost follows its options, its budget is one of its options, every option is checked
by a declared constraint, and a new attack is one class and one registry line."""

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pytest

import robnp
from robnp import _checks
from robnp._options import Options, Registry
from robnp.attacks import ATTACKS, AttackOptions, get_attack, register_attack
from robnp.errors import ConfigError
from robnp.study.config import StudyConfig
from robnp.training.recipes import RECIPES, RecipeOptions, get_recipe

TINY = (2, 3, 2)  # the 2-3-2 network counted by hand in test_flops.py


def _recipe_options(name, **values):
    options = RECIPES[name].options
    if options.adversarial:
        values.setdefault("eps", 0.1)
    return options(**values)


@pytest.fixture()
def scratch_registry(monkeypatch):
    """Attacks registered inside a test disappear after it."""
    monkeypatch.setattr("robnp.attacks._registry.ATTACKS", ATTACKS.copy())
    from robnp.attacks import _registry

    return _registry.ATTACKS


# --------------------------------------------------------------------------
# attacks: cost and budget from the options
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(ATTACKS))
def test_every_attack_prices_one_run_from_its_options(name):
    options = ATTACKS[name].options()
    passes = options.passes()
    assert isinstance(passes, float) and math.isfinite(passes) and passes >= 1
    doubled = []
    if options.budget is not None:
        assert options.budget in options.field_names()
        doubled.append(options.budget)
    doubled += [field for field in ("n_restarts", "n_target_classes")
                if field in options.field_names()]
    for field in doubled:
        more = dataclasses.replace(options, **{field: 2 * getattr(options, field)})
        assert 1.8 < more.passes() / passes <= 2.0, field


def test_apgd_with_100_iterations_costs_about_100_fgsm_runs():
    fgsm = get_attack("fgsm").options().passes()
    apgd = get_attack("apgd-ce").options(n_iter=100).passes()
    assert fgsm == 4
    assert 50 <= apgd / fgsm <= 150
    assert apgd == pytest.approx(300, rel=0.01)
    assert get_attack("apgd-t").options().passes() == pytest.approx(2700, rel=0.01)
    assert get_attack("pgd").options().passes() == pytest.approx(30, rel=0.05)
    assert get_attack("square").options(n_queries=1000).passes() == pytest.approx(1000, rel=0.01)


def test_the_budgets_the_convergence_check_doubles():
    known = {"fgsm": None, "pgd": "steps", "pgd-cw": "steps", "apgd-ce": "n_iter",
             "apgd-dlr": "n_iter", "apgd-t": "n_iter", "square": "n_queries",
             "fab": "n_iter", "fab-t": "n_iter"}
    for name, budget in known.items():
        assert ATTACKS[name].options.budget == budget, name
    for spec in ATTACKS.values():  # any attack registered later names a field or nothing
        assert spec.options.budget in (None, *spec.options.field_names()), spec.name


def test_task_cost_counts_each_attack_by_its_options():
    task = StudyConfig(widths=(16,), seeds=(0,), datasets=("blobs",), n_classes=10,
                       max_epochs=1, attacks=("fgsm",)).tasks()[0]
    with_apgd = dataclasses.replace(
        task, attacks=task.attacks + (("apgd-ce", get_attack("apgd-ce").options()),))
    with_apgd_t = dataclasses.replace(
        task, attacks=task.attacks + (("apgd-t", get_attack("apgd-t").options()),))
    fgsm_part = with_apgd.cost() - task.cost()
    assert fgsm_part > 0
    assert (with_apgd_t.cost() - task.cost()) / fgsm_part == pytest.approx(9, rel=0.01)
    # On 4 classes only 3 targets exist, and the cost says so.
    four = {name: dataclasses.replace(t, n_classes=4)
            for name, t in (("base", task), ("apgd", with_apgd), ("apgd-t", with_apgd_t))}
    part = four["apgd"].cost() - four["base"].cost()
    assert (four["apgd-t"].cost() - four["base"].cost()) / part == pytest.approx(3, rel=0.01)


# --------------------------------------------------------------------------
# recipes: FLOPs, forward passes and the overfitting check from the options
# --------------------------------------------------------------------------

def test_every_recipe_counts_the_flops_counted_by_hand():
    standard, start, attack_step = 32 + 14 + 44, 2 + 4 * 2, 32 + 11 + 27 + 14
    trades_step = 32 + 12 + 27 + 14
    expected = {
        "standard": standard,
        "pgd-at": start + 3 * attack_step + standard,
        "trades": 42 + start + 3 * trades_step + 64 + 14 + 26 + 88,
        "fgsm-rs": start + attack_step + standard,
        "n-fgsm": 2 + 32 + 11 + 27 + 3 * 2 + standard,
    }
    assert set(expected) == set(RECIPES)
    for name, flops in expected.items():
        steps = {"steps": 3} if "steps" in RECIPES[name].options.field_names() else {}
        options = _recipe_options(name, **steps)
        assert options.example_flops(TINY) == flops, name
        count = RECIPES[name].flops(options, TINY, batch_size=17)
        assert count.recipe == name and count.flops == flops + 9 * 17 / 17
        assert count.paper_forward_passes == options.forward_passes


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_costs_more_with_more_steps(name):
    options = _recipe_options(name)
    assert options.forward_passes >= 3
    if "steps" not in options.field_names():
        return
    sizes = (8, 32, 32, 3)
    more = dataclasses.replace(options, steps=2 * options.steps)
    assert more.forward_passes - options.forward_passes == 2 * options.steps
    attack = options.example_flops(sizes) - _recipe_options("standard").example_flops(sizes)
    assert more.example_flops(sizes) - options.example_flops(sizes) == pytest.approx(
        attack, rel=0.2)


def test_adversarial_recipes_count_their_own_work():
    for name, recipe in RECIPES.items():
        if recipe.options.adversarial:
            assert "example_flops" in vars(recipe.options), name
            assert "forward_passes" in vars(recipe.options), name


def test_single_step_recipes_are_the_ones_checked_for_overfitting():
    assert [name for name, recipe in RECIPES.items() if recipe.options.single_step] == \
        ["fgsm-rs", "n-fgsm"]
    for name in RECIPES:
        config = robnp.TrainConfig(recipe=name, train_eps=0.1 if name != "standard" else None)
        assert config.checks_overfitting == get_recipe(name).options.single_step


# --------------------------------------------------------------------------
# constraints: declared once per field, one message everywhere
# --------------------------------------------------------------------------

@pytest.mark.parametrize("options", [spec.options for spec in ATTACKS.values()]
                         + [spec.options for spec in RECIPES.values()],
                         ids=[*ATTACKS, *RECIPES])
def test_every_option_has_a_declared_constraint(options):
    declared = _checks.declared_constraints(options)
    assert set(options.field_names()) <= set(declared)


@pytest.mark.parametrize("make,message", [
    (lambda: get_attack("pgd").options(steps=0), "steps must be an integer >= 1, got 0"),
    (lambda: get_attack("pgd").options(step_size=-0.1),
     r"step_size must be a finite number >= 0, got -0.1"),
    (lambda: get_attack("pgd").options(use_best="yes"), "use_best must be true or false"),
    (lambda: get_attack("apgd-ce").options(rho=1.0),
     r"rho must be a finite number in \(0, 1\), got 1.0"),
    (lambda: get_attack("apgd-t").options(n_target_classes=0),
     "n_target_classes must be an integer >= 1, got 0"),
    (lambda: get_attack("apgd-t").options(loss="cross_entropy"), "loss must be 'dlr'"),
    (lambda: get_attack("square").options(p_init=0), r"p_init must be a finite number in \(0, 1\]"),
    (lambda: get_attack("square").options(p_init=1.5), r"p_init must be a finite number in \(0, 1\]"),
    (lambda: get_attack("square").options(n_queries=0), "n_queries must be an integer >= 1, got 0"),
    (lambda: get_attack("apgd-ce").options(n_iter=0), "n_iter must be an integer >= 1, got 0"),
    (lambda: get_attack("apgd-t").options(n_iter=0), "n_iter must be an integer >= 1, got 0"),
    (lambda: get_attack("fab").options(n_iter=0), "n_iter must be an integer >= 1, got 0"),
    (lambda: get_attack("fab-t").options(n_iter=0), "n_iter must be an integer >= 1, got 0"),
    (lambda: get_attack("fgsm").options(loss="hinge"), "unknown loss 'hinge'; known losses"),
    (lambda: get_attack("pgd").options(norm="l1"), "norm must be one of linf, l2, got 'l1'"),
    (lambda: get_recipe("trades").options(eps=0.1, steps=0), "steps must be an integer >= 1"),
    (lambda: get_recipe("pgd-at").options(), "recipe 'pgd-at' needs eps"),
    (lambda: get_recipe("standard").options(smoothing=1.0), r"smoothing must be a finite number in \[0, 1\)"),
])
def test_a_bad_option_is_one_line_naming_it(make, message):
    with pytest.raises(ConfigError, match=message) as error:
        make()
    assert "\n" not in str(error.value)


def test_constraints_coerce_to_plain_python_types():
    options = get_attack("pgd").options(steps=np.int64(5), step_size=np.float32(0.5),
                                        n_threads=np.int32(2))
    assert type(options.steps) is int and type(options.step_size) is float
    assert type(options.n_threads) is int
    assert options.to_dict()["steps"] == 5


def test_a_subclass_adds_and_replaces_constraints():
    @dataclass(frozen=True)
    class Base(Options):
        a: int = 1
        constraints = {"a": _checks.Integer(0)}

    @dataclass(frozen=True)
    class Child(Base):
        b: float = 0.5
        constraints = {"a": _checks.Integer(1), "b": _checks.Real(0, 1)}

    with pytest.raises(ConfigError, match="a must be an integer >= 1, got 0"):
        Child(a=0)
    assert Base(a=0).a == 0
    with pytest.raises(ConfigError, match=r"b must be a finite number in \[0, 1\], got 2"):
        Child(b=2)


def test_names_parse_a_comma_separated_string_or_a_list_the_same_way():
    assert _checks.names("attacks", "fgsm, pgd") == ("fgsm", "pgd")
    assert _checks.names("attacks", ["fgsm", "pgd"]) == ("fgsm", "pgd")
    with pytest.raises(ConfigError, match="attacks has duplicate values"):
        _checks.names("attacks", "pgd,pgd")
    with pytest.raises(ConfigError, match="attacks: 'fgsm,,pgd' has an empty item"):
        _checks.names("attacks", "fgsm,,pgd")
    with pytest.raises(ConfigError, match="attacks must hold non-empty names"):
        _checks.names("attacks", ["fgsm", ""])


@pytest.mark.parametrize("check", [
    lambda norm: _checks.norm("norm", norm),
    lambda norm: robnp.attacks._threat.check_norm(norm),
    lambda norm: robnp.pgd(robnp.MLP(2, (4,), 2), np.zeros((1, 2)), [0], 0.1, norm=norm),
])
def test_one_norm_check(check):
    with pytest.raises(ConfigError, match="norm must be one of linf, l2, got 'l1'"):
        check("l1")


def test_the_verifier_and_the_ceiling_check_the_norm_the_same_way(trained_model, circles_split):
    from robnp.verify import robustness_ceiling, verify

    X, y = circles_split[1][:5], circles_split[3][:5]
    with pytest.raises(ConfigError, match="norm must be one of linf, l2, got 'l1'"):
        verify(trained_model, X, y, 0.1, norm="l1")
    with pytest.raises(ConfigError, match="norm must be one of linf, l2, got 'l1'"):
        robustness_ceiling(X, y, [0.1], "l1")


# --------------------------------------------------------------------------
# the registry class
# --------------------------------------------------------------------------

def test_a_registry_refuses_options_of_another_kind_and_lists_what_it_knows():
    @dataclass(frozen=True)
    class NotAttackOptions(RecipeOptions):
        pass

    with pytest.raises(ConfigError, match="options of attack 'x' must be an AttackOptions"):
        register_attack("x", lambda *args: [], NotAttackOptions, "wrong base")
    assert "x" not in ATTACKS
    with pytest.raises(ConfigError, match="unknown attack 'nope'; known attacks: fgsm, pgd"):
        get_attack("nope")
    with pytest.raises(ConfigError, match="unknown recipe 'nope'; known recipes: standard"):
        get_recipe("nope")
    copy = ATTACKS.copy()
    assert isinstance(copy, Registry) and copy.kind == "attack" and dict(copy) == dict(ATTACKS)


# --------------------------------------------------------------------------
# a new attack: one options class, one run function, one registry line
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class RepeatedFGSMOptions(AttackOptions):
    """FGSM steps of eps / n_steps, each projected: a toy iterative attack."""

    n_steps: int = 1

    constraints = {"n_steps": _checks.Integer(0)}
    budget = "n_steps"

    def passes(self, n_classes: int | None = None) -> float:
        return self.GRADIENT_PASSES * self.n_steps + 1


def _repeated_fgsm(model, X, y, radii, options, rng):
    out = []
    for eps in radii:
        X_adv = X.copy()
        for _ in range(options.n_steps):
            step = robnp.fgsm(model, X_adv, y, eps / max(options.n_steps, 1))
            X_adv = np.clip(step, X - eps, X + eps).astype(X.dtype)
        out.append(X_adv)
    return out


def test_a_new_attack_is_one_class_and_one_registry_line(trained_model, circles_split,
                                                         scratch_registry):
    steps_run = []

    def run(model, X, y, radii, options, rng):
        steps_run.append(options.n_steps)
        return _repeated_fgsm(model, X, y, radii, options, rng)

    register_attack("repeated-fgsm", run, RepeatedFGSMOptions, "toy")
    X, y = circles_split[1][:200], circles_split[3][:200]
    # runnable by name
    accuracy = robnp.robust_accuracy(trained_model, X, y, "repeated-fgsm", (0.0, 0.3),
                                     n_steps=3)
    assert accuracy[0.0] == robnp.attacks.accuracy(trained_model, X, y)
    assert accuracy[0.3] <= accuracy[0.0]
    # budget-checked: the convergence check doubles n_steps
    steps_run.clear()
    evaluation = robnp.evaluate(trained_model, X, y, (0.05,), {"repeated-fgsm": {}},
                                check_convergence=True)
    assert evaluation.attacks["repeated-fgsm"].robust_acc[0] > 0  # points left to rerun on
    assert steps_run == [1, 2]
    assert all("not converged" not in w or "with 2 n_steps" in w
               for w in evaluation.warnings)
    # priced: a study's task counts it by its options
    config = StudyConfig(widths=(16,), seeds=(0,), datasets=("moons",), max_epochs=1,
                         attacks=("fgsm",))
    task = config.tasks()[0]
    one = dataclasses.replace(task, attacks=(("repeated-fgsm", RepeatedFGSMOptions()),))
    ten = dataclasses.replace(task, attacks=(("repeated-fgsm", RepeatedFGSMOptions(10)),))
    assert one.cost() == task.cost()  # one step costs what FGSM costs
    assert ten.cost() > one.cost()
    study = StudyConfig(widths=(16,), seeds=(0,), datasets=("moons",), max_epochs=1,
                        attacks=("fgsm", "repeated-fgsm"))
    assert study.tasks()[0].cost() > task.cost()


def test_an_attack_that_does_not_price_itself_says_so(scratch_registry):
    @dataclass(frozen=True)
    class Unpriced(AttackOptions):
        pass

    register_attack("unpriced", lambda m, X, y, radii, o, rng: [X.copy() for _ in radii],
                    Unpriced, "test")
    with pytest.raises(NotImplementedError, match="Unpriced does not say what one run"):
        Unpriced().passes()


def test_costs_that_grow_with_the_class_count_follow_it():
    apgd_t, fab, fab_t = (get_attack(name).options() for name in ("apgd-t", "fab", "fab-t"))
    # Targets beyond K - 1 are never run, so they cost nothing.
    assert apgd_t.passes(3) == pytest.approx(apgd_t.passes() * 2 / 9, rel=0.01)
    assert fab_t.passes(5) == pytest.approx(fab_t.passes() * 4 / 9, rel=0.01)
    # Untargeted FAB needs a gradient per class at every step.
    assert fab.passes(20) > 2 * fab.passes(5) > 2 * fab.passes(2)
    for name in ("fgsm", "pgd", "square", "apgd-ce"):
        options = get_attack(name).options()
        assert options.passes(2) == options.passes(10) == options.passes()
