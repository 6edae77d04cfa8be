"""The adversarial training recipes (PGD-AT, TRADES, FGSM-RS, N-FGSM): their points, the
objective and its parameter gradient against slow references and finite differences,
the properties each recipe promises, and their options."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import naive
import robnp
from robnp import kernels
from robnp.errors import ConfigError
from robnp.gradcheck import relative_error
from robnp.gradients import smoothed_param_gradient
from robnp.losses import per_example_loss
from robnp.training.recipes import RECIPES, get_recipe, recipe_flops

ADVERSARIAL = ["pgd-at", "trades", "fgsm-rs", "n-fgsm"]
NO_JIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"


def problem(seed, n=10, n_features=4, hidden=(9, 7), n_classes=3, dtype=np.float64):
    """A generic random float64 network (so no gradient coordinate ties at zero), inputs,
    labels and the loop's U(-1, 1) draws."""
    rng = np.random.default_rng(seed)
    model = robnp.MLP(n_features, hidden, n_classes, dtype=dtype, seed=seed)
    X = rng.normal(size=(n, n_features)).astype(dtype)
    y = rng.integers(0, n_classes, n)
    noise = rng.uniform(-1, 1, size=X.shape).astype(dtype)
    return model, X, y, noise


def run(name, model, X, y, noise, scale=1.0, rows=None, **options):
    """One call of the recipe's ``gradient``: (value, grad, the points it trained on)."""
    recipe = get_recipe(name)
    opts = recipe.make_options(options)
    ws = recipe.workspace(model, rows or X.shape[0])
    grad = np.full(model.n_params, np.nan, model.dtype)
    value = recipe.gradient(model.params, model.sizes, np.ascontiguousarray(X), y,
                            np.ascontiguousarray(noise), opts, ws, grad, scale)
    return value, grad, ws.X_adv[:X.shape[0]].copy()


def reference_points(name, model, X, y, noise, opts):
    if name == "pgd-at":
        return naive.pgd_at_points(model, X, y, noise, opts.eps, opts.step_size, opts.steps)
    if name == "fgsm-rs":
        return naive.pgd_at_points(model, X, y, noise, opts.eps, opts.step_size, 1)
    if name == "n-fgsm":
        return naive.n_fgsm_points(model, X, y, noise, opts.noise_radius, opts.step_size)
    return naive.trades_points(model, X, noise, opts.eps, opts.step_size, opts.steps)


def reference_objective(name, model, X, X_adv, y, opts):
    """Per-row objective values and the gradient of their sum, the points held fixed."""
    if name == "trades":
        return naive.trades_objective(model, X, X_adv, y, opts.beta, opts.smoothing)
    return naive.ce_objective(model, X_adv, y, opts.smoothing)


CASES = [("pgd-at", {"eps": 0.3}), ("pgd-at", {"eps": 0.2, "steps": 3, "smoothing": 0.2}),
         ("trades", {"eps": 0.3}), ("trades", {"eps": 0.5, "beta": 1.5, "steps": 4,
                                               "smoothing": 0.0, "step_fraction": 0.4}),
         ("fgsm-rs", {"eps": 0.3}), ("fgsm-rs", {"eps": 0.2, "alpha": 0.7, "smoothing": 0.1}),
         ("n-fgsm", {"eps": 0.3}), ("n-fgsm", {"eps": 0.2, "noise_multiple": 0.5,
                                               "step_multiple": 1.5, "smoothing": 0.1})]


# -- against the slow references --------------------------------------------------------

@pytest.mark.parametrize("name, options", CASES)
def test_points_loss_and_gradient_match_the_reference(name, options):
    model, X, y, noise = problem(11)
    opts = get_recipe(name).make_options(options)
    value, grad, X_adv = run(name, model, X, y, noise, scale=0.25, **options)
    expected_points = reference_points(name, model, X, y, noise, opts)
    np.testing.assert_allclose(X_adv, expected_points, rtol=0, atol=1e-12)
    values, expected_grad = reference_objective(name, model, X, expected_points, y, opts)
    assert value == pytest.approx(0.25 * values.sum(), rel=1e-11)
    np.testing.assert_allclose(grad, 0.25 * expected_grad, rtol=1e-9, atol=1e-12)


def test_the_attacks_move_the_points_so_the_reference_comparison_means_something():
    model, X, y, noise = problem(11)
    for name in ADVERSARIAL:
        _, _, X_adv = run(name, model, X, y, noise, eps=0.3)
        start = X + (2 if name == "n-fgsm" else 1) * 0.3 * noise
        assert np.abs(X_adv - start).max() > 0.05, name


def _away_from_kinks(model, point_sets, margin):
    """Rows whose hidden pre-activations at every given point are >= margin from 0."""
    keep = np.ones(point_sets[0].shape[0], bool)
    for points in point_sets:
        for _, Z in naive.forward(model, points)[1][:-1]:
            keep &= np.abs(Z).min(axis=1) >= margin
    return keep


@pytest.mark.parametrize("name, options", CASES)
def test_parameter_gradient_matches_central_differences_at_the_fixed_points(name, options):
    """Danskin: the recipe's gradient is that of the objective with its adversarial
    points held fixed; central differences of the slow objective, parameter by
    parameter."""
    model, X, y, noise = problem(5, n=24)
    _, _, X_adv = run(name, model, X, y, noise, **options)
    keep = _away_from_kinks(model, [X, X_adv], 1e-3)
    assert keep.sum() >= 8
    X, y, noise = X[keep], y[keep], noise[keep]
    _, grad, X_adv = run(name, model, X, y, noise, **options)
    opts = get_recipe(name).make_options(options)
    h = 1e-6
    numeric = np.empty(model.n_params)
    base = model.params.copy()
    for k in range(model.n_params):
        model.params[k] = base[k] + h
        up = reference_objective(name, model, X, X_adv, y, opts)[0].sum()
        model.params[k] = base[k] - h
        down = reference_objective(name, model, X, X_adv, y, opts)[0].sum()
        model.params[k] = base[k]
        numeric[k] = (up - down) / (2 * h)
    assert relative_error(grad, numeric) < 1e-6


def _kl_kernel(Zc, Za, scale=1.0):
    P, logP = np.empty_like(Zc), np.empty_like(Zc)
    kernels.log_softmax_rows(Zc, logP, P)
    dZa, dZc = np.empty_like(Za), np.empty_like(Zc)
    value = kernels.kl_grad_logits(P, logP, Za, dZa, dZc, scale, True, True)
    return value, dZa, dZc


def test_kl_kernel_value_and_both_logit_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    Zc = rng.normal(size=(6, 5)) * 2
    Za = Zc + rng.normal(size=(6, 5))
    value, dZa, dZc = _kl_kernel(Zc, Za, 0.5)
    assert value == pytest.approx(sum(naive.kl_row(Zc[i], Za[i]) for i in range(6)),
                                  rel=1e-12)
    total = lambda a, b: sum(naive.kl_row(a[i], b[i]) for i in range(6))  # noqa: E731
    h = 1e-6
    for target, analytic in ((Za, dZa), (Zc, dZc)):
        numeric = np.empty_like(target)
        for index in np.ndindex(target.shape):
            keep = target[index]
            target[index] = keep + h
            up = total(Zc, Za)
            target[index] = keep - h
            down = total(Zc, Za)
            target[index] = keep
            numeric[index] = (up - down) / (2 * h)
        assert relative_error(analytic, 0.5 * numeric) < 1e-7


def test_kl_kernel_is_stable_for_huge_logit_gaps_and_zero_between_equal_rows():
    Zc = np.array([[900.0, 0.0, -900.0], [1.0, 2.0, 3.0]])
    Za = np.array([[-900.0, 0.0, 900.0], [1.0, 2.0, 3.0]])
    value, dZa, dZc = _kl_kernel(Zc, Za)
    # row 0: p is one-hot at class 0 (in floating point), q is one-hot at class 2, so
    # KL = log p_0 - log q_0 = 0 - (-1800); row 1: identical distributions
    assert value == pytest.approx(1800.0, rel=1e-12)
    assert np.isfinite(dZa).all() and np.isfinite(dZc).all()
    np.testing.assert_allclose(dZa[1], 0, atol=1e-15)
    np.testing.assert_allclose(dZc[1], 0, atol=1e-15)
    # the attack's call (no value) gives the same adversarial gradient
    P, logP = np.empty_like(Zc), np.empty_like(Zc)
    kernels.log_softmax_rows(Zc, logP, P)
    dZa_only = np.empty_like(Za)
    assert kernels.kl_grad_logits(P, logP, Za, dZa_only, np.empty_like(Zc), 1.0, False,
                                  False) == 0
    np.testing.assert_array_equal(dZa_only, dZa)


def test_kl_kernel_propagates_nan():
    Zc = np.array([[0.0, np.nan, 1.0]])
    value, _, dZc = _kl_kernel(Zc, np.zeros((1, 3)))
    assert np.isnan(value) and np.isnan(dZc).any()


# -- properties -------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["pgd-at", "trades", "fgsm-rs"])
def test_points_stay_in_the_eps_ball(name, dtype):
    for seed in range(4):
        model, X, y, noise = problem(seed, n=40, dtype=dtype)
        for eps in (1e-3, 0.1, 1.0):
            options = {"eps": eps} if name == "fgsm-rs" else {"eps": eps, "steps": 3}
            _, _, X_adv = run(name, model, X, y, noise, **options)
            distance = np.abs(X_adv.astype(np.float64) - X.astype(np.float64))
            slack = 2 * np.finfo(dtype).eps * max(1.0, np.abs(X).max())
            assert distance.max() <= eps + slack
            assert distance.max() >= 0.5 * eps  # the ball is used, not just respected


@pytest.mark.parametrize("k, m", [(2.0, 1.0), (0.5, 1.5), (0.0, 1.0)])
def test_n_fgsm_is_not_projected_and_stays_within_its_noise_plus_step(k, m):
    model, X, y, noise = problem(2, n=40)
    eps = 0.1
    _, _, X_adv = run("n-fgsm", model, X, y, noise, eps=eps, noise_multiple=k,
                      step_multiple=m)
    distance = np.abs(X_adv - X)
    assert distance.max() <= (k + m) * eps + 1e-12
    assert distance.max() > eps  # beyond the ball: nothing was projected
    if k == 0:  # plain FGSM from the clean point: every coordinate moves by exactly m eps
        np.testing.assert_allclose(distance, m * eps, rtol=1e-12)


def test_trades_with_beta_zero_is_the_smoothed_cross_entropy_on_the_clean_points():
    model, X, y, noise = problem(4, n=16)
    value, grad, _ = run("trades", model, X, y, noise, scale=1 / 16, eps=0.2, beta=0.0,
                         smoothing=0.1)
    expected_value, expected_grad = smoothed_param_gradient(model, X, y, 0.1)
    assert value == pytest.approx(expected_value, rel=1e-12)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-10, atol=1e-14)


def test_the_gradient_is_the_training_step_at_the_points_it_reports():
    """PGD-AT, FGSM-RS and N-FGSM train on the (smoothed) cross-entropy at X_adv."""
    model, X, y, noise = problem(6, n=12)
    for name in ("pgd-at", "fgsm-rs", "n-fgsm"):
        value, grad, X_adv = run(name, model, X, y, noise, scale=1 / 12, eps=0.3,
                                 smoothing=0.05)
        expected_value, expected_grad = smoothed_param_gradient(model, X_adv, y, 0.05)
        assert value == pytest.approx(expected_value, rel=1e-12)
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-10, atol=1e-14)


def test_fgsm_rs_is_one_pgd_step_of_alpha_eps():
    model, X, y, noise = problem(7)
    fgsm = run("fgsm-rs", model, X, y, noise, eps=0.2, alpha=1.25)
    pgd = run("pgd-at", model, X, y, noise, eps=0.2, steps=1, step_fraction=1.25)
    for a, b in zip(fgsm, pgd):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_a_batch_is_the_sum_of_its_chunks(name):
    """The loop splits a minibatch into chunks with the same scale and the same noise
    rows; the sum of the chunks' results is the batch's (up to rounding), and each
    row's point does not depend on the chunk it is in. The workspace is reused across
    chunks of different lengths, as the loop does."""
    model, X, y, noise = problem(8, n=15, dtype=np.float32)
    scale = 1 / 15
    value, grad, X_adv = run(name, model, X, y, noise, scale=scale, eps=0.2)
    recipe = get_recipe(name)
    opts = recipe.make_options({"eps": 0.2})
    ws = recipe.workspace(model, 9)
    total_value, total_grad, points = 0.0, np.zeros_like(grad), []
    for rows in (slice(0, 9), slice(9, 15)):
        part = np.empty_like(grad)
        total_value += recipe.gradient(model.params, model.sizes, X[rows], y[rows],
                                       noise[rows], opts, ws, part, scale)
        total_grad += part
        points.append(ws.X_adv[:rows.stop - rows.start].copy())
    assert total_value == pytest.approx(value, rel=1e-5)
    np.testing.assert_allclose(total_grad, grad, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.vstack(points), X_adv, rtol=0, atol=1e-6)


def test_scale_multiplies_value_and_gradient():
    model, X, y, noise = problem(9)
    for name in ADVERSARIAL:
        one = run(name, model, X, y, noise, scale=1.0, eps=0.2)
        third = run(name, model, X, y, noise, scale=1 / 3, eps=0.2)
        assert third[0] == pytest.approx(one[0] / 3, rel=1e-12)
        np.testing.assert_allclose(third[1], one[1] / 3, rtol=1e-12, atol=1e-15)


def test_pgd_at_raises_the_loss_of_a_trained_network(blobs_model):
    model, X, y = blobs_model
    rng = np.random.default_rng(0)
    noise = rng.uniform(-1, 1, X.shape)
    eps = 0.3
    _, _, X_adv = run("pgd-at", model, X, y, noise, eps=eps)
    attacked = per_example_loss(model, X_adv, y)
    at_start = per_example_loss(model, X + eps * noise, y)
    clean = per_example_loss(model, X, y)
    assert np.mean(attacked > at_start) >= 0.9
    assert np.mean(attacked > clean) >= 0.9
    assert attacked.mean() > clean.mean()


def test_trades_attack_raises_the_divergence_from_the_clean_distribution(blobs_model):
    model, X, y = blobs_model
    noise = np.random.default_rng(1).uniform(-1, 1, X.shape)
    eps = 0.3
    _, _, X_adv = run("trades", model, X, y, noise, eps=eps)

    def divergence(points):
        Zc, Za = model.logits(X), model.logits(points)
        return np.array([naive.kl_row(Zc[i], Za[i]) for i in range(len(X))])

    assert np.mean(divergence(X_adv) > divergence(X + eps * noise)) >= 0.9


def test_float32_models_train_on_points_close_to_the_float64_ones():
    model, X, y, noise = problem(10, n=12)
    small = model.astype(np.float32)
    for name in ADVERSARIAL:
        value64, grad64, _ = run(name, model, X, y, noise, eps=0.2)
        value32, grad32, X_adv32 = run(name, small, X.astype(np.float32), y,
                                       noise.astype(np.float32), eps=0.2)
        assert X_adv32.dtype == np.float32 and grad32.dtype == np.float32
        assert value32 == pytest.approx(value64, rel=1e-3)
        # a sign flip of a near-zero input gradient can move a point by one step
        assert relative_error(grad32.astype(np.float64), grad64) < 0.05


# -- options and the registry -------------------------------------------------------------

def test_defaults_are_the_papers():
    assert get_recipe("pgd-at").make_options({"eps": 0.1}).to_dict() == {
        "eps": 0.1, "steps": 10, "step_fraction": 0.25, "smoothing": 0.0}
    assert get_recipe("trades").make_options({"eps": 0.1}).to_dict() == {
        "eps": 0.1, "beta": 5.0, "steps": 10, "step_fraction": 0.25, "smoothing": 0.1}
    assert get_recipe("fgsm-rs").make_options({"eps": 0.1}).to_dict() == {
        "eps": 0.1, "alpha": 1.25, "smoothing": 0.0}
    assert get_recipe("n-fgsm").make_options({"eps": 0.1}).to_dict() == {
        "eps": 0.1, "noise_multiple": 2.0, "step_multiple": 1.0, "smoothing": 0.0}
    for name in ADVERSARIAL:
        options = get_recipe(name).options
        assert options.needs_noise and options.adversarial


BAD_OPTIONS = [
    (name, "eps", value) for name in ADVERSARIAL
    for value in (-0.1, float("nan"), float("inf"), "0.1", True)
] + [
    ("pgd-at", "steps", 0), ("pgd-at", "steps", 2.5), ("pgd-at", "step_fraction", 0),
    ("pgd-at", "smoothing", 1.0), ("pgd-at", "smoothing", -0.1),
    ("trades", "beta", -1), ("trades", "beta", float("nan")), ("trades", "steps", -1),
    ("trades", "step_fraction", -0.25), ("trades", "smoothing", 1),
    ("fgsm-rs", "alpha", 0), ("fgsm-rs", "alpha", float("inf")),
    ("fgsm-rs", "smoothing", 2),
    ("n-fgsm", "noise_multiple", -1), ("n-fgsm", "step_multiple", 0),
    ("n-fgsm", "smoothing", 1.5),
]


@pytest.mark.parametrize("name, option, value", BAD_OPTIONS)
def test_a_bad_option_is_one_line_naming_it_and_the_value(name, option, value):
    values = {"eps": 0.1, option: value}
    with pytest.raises(ConfigError, match=rf"^{option} must be") as error:
        get_recipe(name).make_options(values)
    assert repr(value) in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_eps_is_required_and_zero_points_to_the_standard_recipe(name):
    with pytest.raises(ConfigError, match=rf"recipe '{name}' needs eps"):
        get_recipe(name).make_options({})
    with pytest.raises(ConfigError, match=r"eps must be a finite number > 0, got 0; use "
                                          r"recipe 'standard' for eps 0"):
        get_recipe(name).make_options({"eps": 0})


def test_unknown_recipe_and_unknown_option_list_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown recipe 'pgd'; known recipes: .*pgd-at.*"
                                          r"trades.*fgsm-rs.*n-fgsm"):
        get_recipe("pgd")
    with pytest.raises(ConfigError, match=r"unknown option 'beta' for recipe 'pgd-at'; "
                                          r"known options: eps, steps, step_fraction"):
        get_recipe("pgd-at").make_options({"eps": 0.1, "beta": 5})
    # dashes are accepted for underscores
    options = get_recipe("n-fgsm").make_options({"eps": 0.1, "noise-multiple": 1})
    assert options.noise_multiple == 1


def test_every_adversarial_recipe_counts_its_flops_under_its_own_name():
    sizes = (4, 9, 7, 3)
    for name, recipe in RECIPES.items():
        if not recipe.options.adversarial:
            continue
        assert "example_flops" in vars(recipe.options)
        steps = 7 if name in ("pgd-at", "trades") else None
        values = {"eps": 0.1} if steps is None else {"eps": 0.1, "steps": steps}
        count = recipe.flops(recipe.make_options(values), sizes, batch_size=32)
        assert count.recipe == name
        assert count.paper_forward_passes == {"pgd-at": 2 * 7 + 3, "trades": 2 * 7 + 7,
                                              "fgsm-rs": 5, "n-fgsm": 5}[name]
        assert count == recipe_flops(sizes, name, steps, batch_size=32)


@pytest.mark.skipif(NO_JIT, reason="the compiled cache does not exist without the JIT")
def test_a_second_process_loads_the_recipe_kernels_from_the_cache():
    """The workspace is a NamedTuple argument: the kernels must still cache."""
    model, X, y, noise = problem(0, dtype=np.float32)
    for name in ADVERSARIAL:  # compile (or load) and write the cache in this process
        run(name, model, X, y, noise, eps=0.1)
    script = textwrap.dedent("""
        import numpy as np, robnp
        from robnp import kernels
        from robnp.training.recipes import get_recipe
        model = robnp.MLP(4, (9, 7), 3, dtype=np.float32, seed=0)
        rng = np.random.default_rng(0)
        X = rng.normal(size=(10, 4)).astype(np.float32)
        y = rng.integers(0, 3, 10)
        noise = rng.uniform(-1, 1, X.shape).astype(np.float32)
        for name in ("pgd-at", "trades", "fgsm-rs", "n-fgsm"):
            recipe = get_recipe(name)
            grad = np.empty(model.n_params, np.float32)
            recipe.gradient(model.params, model.sizes, X, y, noise,
                            recipe.make_options({"eps": 0.1}), recipe.workspace(model, 10),
                            grad, 0.1)
        for kernel in (kernels.pgd_at_gradient, kernels.trades_gradient,
                       kernels.n_fgsm_gradient):
            stats = kernel.stats
            print(kernel.__name__, sum(stats.cache_hits.values()),
                  sum(stats.cache_misses.values()))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=300).stdout.split("\n")
    for line in filter(None, out):
        name, hits, misses = line.split()
        assert (int(hits), int(misses)) == (1, 0), line


@pytest.mark.parametrize("module", ["_standard", "_pgd_at", "_trades", "_fgsm_rs", "_n_fgsm"])
def test_a_recipe_module_imports_on_its_own(module):
    """A fresh interpreter that imports one recipe module first still gets the whole
    registry (no import cycle through the registry lines)."""
    import subprocess
    import sys

    code = (f"import robnp.training.{module}; from robnp.training.recipes import recipe_names; "
            f"print(','.join(recipe_names()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "standard,pgd-at,trades,fgsm-rs,n-fgsm"
