"""The general training loop: optimizers and schedules against a written-out NumPy loop,
the split of minibatches into chunks and threads, weight averaging, label smoothing,
checkpoint selection, the overfitting rule, the one-pass stream, FLOP accounting and
the configuration's errors."""

import dataclasses
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

import robnp
from robnp import flops, kernels
from robnp.errors import ConfigError
from robnp.gradients import param_gradient
from robnp.training import fit as fit_module
from robnp.training.recipes import RECIPES, RecipeOptions, Recipe, get_recipe
from robnp.training.stream import SampleStream, fit_stream


@pytest.fixture(scope="module")
def data():
    X, y = robnp.make_moons(150, 0.2, seed=5)
    return X.astype(np.float64), y


# ---------------------------------------------------------------------------
# a written-out reference: robnp's gradient of each minibatch, NumPy for the rest
# ---------------------------------------------------------------------------

def lr_reference(config, k, total):
    """The schedules as their papers / PyTorch write them."""
    if config.schedule == "constant":
        return config.lr, None
    if config.schedule == "step":
        return config.lr * config.gamma ** (k // config.step_every), None
    if config.schedule == "cosine":
        return (config.lr_floor + (config.lr - config.lr_floor)
                * (1 + math.cos(math.pi * k / (total - 1))) / 2), None
    # OneCycleLR(max_lr=lr, pct_start, anneal_strategy="cos", div_factor=25,
    # final_div_factor=1e4, base_momentum=0.85, max_momentum=0.95)
    initial, peak = config.lr / 25, config.lr
    final = initial / 1e4
    end_warm = config.pct_start * total - 1

    def anneal(a, b, f):
        return b + (a - b) / 2 * (math.cos(math.pi * f) + 1)

    if k <= end_warm:
        f = k / end_warm
        return anneal(initial, peak, f), anneal(0.95, 0.85, f)
    f = (k - end_warm) / (total - 1 - end_warm)
    return anneal(peak, final, f), anneal(0.85, 0.95, f)


def reference_fit(model, X, y, config, record=None):
    """Train ``model`` (float64) with every step written out in NumPy."""
    p = model.params
    rng = np.random.default_rng(config.seed)
    n = X.shape[0]
    per_epoch = -(-n // config.batch_size)
    total = per_epoch * config.max_epochs
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    buf = None
    k = 0
    for _ in range(config.max_epochs):
        perm = rng.permutation(n)
        for start in range(0, n, config.batch_size):
            rows = perm[start:start + config.batch_size]
            _, g = param_gradient(model, X[rows], y[rows])
            lr, cycled = lr_reference(config, k, total)
            wd = config.weight_decay
            if config.optimizer == "sgd":
                mu = config.momentum if cycled is None else cycled
                g = g + wd * p
                if mu:
                    buf = g.copy() if buf is None else mu * buf + g
                    g = g + mu * buf if config.nesterov else buf
                p -= lr * g
            else:
                b1 = config.beta1 if cycled is None else cycled
                if config.optimizer == "adamw":
                    p *= 1 - lr * wd
                else:
                    g = g + wd * p
                t = k + 1
                m[:] = b1 * m + (1 - b1) * g
                v[:] = config.beta2 * v + (1 - config.beta2) * g * g
                p -= (lr / (1 - b1 ** t)) * m / (np.sqrt(v) / math.sqrt(1 - config.beta2 ** t)
                                                  + config.adam_eps)
            k += 1
            if record is not None:
                record.append(p.copy())
    return model


CONFIGS = {
    "adam": dict(),
    "adam-l2-step": dict(weight_decay=0.05, schedule="step", step_every=3, gamma=0.5),
    "adamw-cosine": dict(optimizer="adamw", weight_decay=0.1, schedule="cosine",
                         lr_floor=1e-4, patience=None, lr=1e-2),
    "sgd": dict(optimizer="sgd", lr=0.1),
    "sgd-momentum-l2": dict(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=1e-3),
    "sgd-nesterov-one-cycle": dict(optimizer="sgd", lr=0.2, momentum=0.9, nesterov=True,
                                   weight_decay=5e-4, schedule="one-cycle", patience=None,
                                   pct_start=0.3),
    "adam-one-cycle": dict(schedule="one-cycle", patience=None, lr=1e-2, pct_start=0.25),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_each_optimizer_and_schedule_is_the_written_out_loop(data, name, monkeypatch):
    X, y = data
    monkeypatch.setattr(fit_module, "_FORCE_GENERAL", True)  # plain Adam too
    config = robnp.TrainConfig(batch_size=40, max_epochs=4, seed=3,
                               **{"patience": 100, **CONFIGS[name]})
    model = robnp.MLP(2, (6, 5), 2, dtype=np.float64, seed=1)
    expected = reference_fit(model.copy(), X, y, config)
    history = robnp.fit(model, X, y, config)
    assert history.steps == 16 and history.epochs == 4
    assert not np.array_equal(model.params, robnp.MLP(2, (6, 5), 2, dtype=np.float64, seed=1).params)
    np.testing.assert_allclose(model.params, expected.params, rtol=1e-10, atol=1e-12)


def test_the_general_loop_on_the_default_configuration_is_the_fused_path(data, monkeypatch):
    X, y = data
    fused, general = (robnp.MLP(2, (8, 8), 2, dtype=np.float64, seed=2) for _ in range(2))
    h_fused = robnp.fit(fused, X, y, max_epochs=12, batch_size=64, patience=3)
    monkeypatch.setattr(fit_module, "_FORCE_GENERAL", True)
    h_general = robnp.fit(general, X, y, max_epochs=12, batch_size=64, patience=3)
    assert h_general.epochs == h_fused.epochs
    np.testing.assert_allclose(h_general.loss, h_fused.loss, rtol=1e-12)
    np.testing.assert_allclose(general.params, fused.params, rtol=1e-10, atol=1e-13)
    assert h_general.train_flops == h_fused.train_flops


def test_without_early_stopping_every_epoch_runs(data):
    X, y = data
    history = robnp.fit(robnp.MLP(2, (4,), 2, seed=0), X, y, max_epochs=30, patience=None,
                        lr=1e-9)
    assert history.epochs == 30 and not history.stopped_early
    stopping = robnp.fit(robnp.MLP(2, (4,), 2, seed=0), X, y, max_epochs=30, patience=2,
                         lr=1e-9)
    assert stopping.epochs < 30


# ---------------------------------------------------------------------------
# a stand-in adversarial recipe: noise-augmented cross-entropy at radius eps
# ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class NoisyOptions(RecipeOptions):
    needs_noise = True
    adversarial = True
    single_step = True
    eps: float = 0.1


def _noisy_gradient(params, sizes, X, y, noise, options, workspace, grad, scale):
    ws, shifted = workspace
    np.multiply(noise, options.eps, out=shifted[:X.shape[0]])
    shifted[:X.shape[0]] += X
    return kernels.ce_training_step(params, sizes, shifted[:X.shape[0]], y, 0.0, grad,
                                           ws.acts, ws.dZ, ws.d0, ws.d1, scale)


def _noisy_workspace(model, rows):
    return model.workspace(rows), np.empty((rows, model.n_features), model.dtype)


@pytest.fixture
def noisy_recipe(monkeypatch):
    """Registered under the name of a single-step recipe (its count is not checked)."""
    monkeypatch.setitem(RECIPES, "fgsm-rs", Recipe("fgsm-rs", _noisy_gradient,
                                                   _noisy_workspace, NoisyOptions, "test"))
    return "fgsm-rs"


@pytest.mark.parametrize("kind", ["standard", "noisy"])
def test_any_number_of_threads_gives_the_same_bits(data, kind, noisy_recipe):
    X, y = data
    X = X.astype(np.float32)
    settings = dict(max_epochs=3, batch_size=150, optimizer="sgd", lr=0.1, momentum=0.9,
                    ema=True, seed=7)
    if kind == "noisy":
        settings.update(recipe=noisy_recipe, train_eps=0.2, overfit_check=False)
    else:
        settings.update(recipe_options={"smoothing": 0.1})
    runs = []
    for threads in (1, 2, 3):
        model = robnp.MLP(2, (16, 16), 2, seed=4)
        history = robnp.fit(model, X, y, n_threads=threads, **settings)
        runs.append((model.params, history.loss))
    for params, loss in runs[1:]:
        np.testing.assert_array_equal(params, runs[0][0])
        np.testing.assert_array_equal(loss, runs[0][1])


def test_noise_is_drawn_for_the_whole_minibatch_before_splitting(data, noisy_recipe):
    """The stand-in trains on X + eps U(-1, 1); its per-epoch losses follow from the
    loop's generator drawing one permutation, then one (rows, n_features) block of
    noise per minibatch."""
    X, y = data
    model = robnp.MLP(2, (5,), 2, dtype=np.float64, seed=0)
    before = model.copy()
    history = robnp.fit(model, X, y, recipe=noisy_recipe, train_eps=0.3, overfit_check=False,
                        max_epochs=1, batch_size=100, lr=1e-14, seed=11)
    rng = np.random.default_rng(11)
    perm = rng.permutation(150)
    losses = []
    for start in (0, 100):
        rows = perm[start:start + 100]
        noise = 2 * rng.random((rows.size, 2)) - 1
        losses.append(param_gradient(before, X[rows] + 0.3 * noise, y[rows])[0])
    assert history.loss[0] == pytest.approx(np.mean(losses), rel=1e-10)


# ---------------------------------------------------------------------------
# weight averaging and label smoothing
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("schedule", ["constant", "one-cycle"])
def test_ema_weights_are_the_written_out_average(data, schedule):
    X, y = data
    config = robnp.TrainConfig(optimizer="sgd", lr=0.1, momentum=0.5, max_epochs=6,
                               batch_size=30, ema=True, ema_decay=0.9, seed=2,
                               schedule=schedule, pct_start=0.2,
                               patience=None if schedule == "one-cycle" else 50)
    model = robnp.MLP(2, (6,), 2, dtype=np.float64, seed=3)
    trajectory = []
    reference_fit(model.copy(), X, y, config, record=trajectory)
    warmup = 0.2 * len(trajectory) if schedule == "one-cycle" else 0.0
    shadow = model.params.copy()
    for s, live in enumerate(trajectory, start=1):
        decay = 0.0 if s < warmup else min(0.9, (1 + s - warmup) / (10 + s - warmup))
        shadow = decay * shadow + (1 - decay) * live
    history = robnp.fit(model, X, y, config)
    assert history.ema
    np.testing.assert_allclose(model.params, shadow, rtol=1e-10, atol=1e-12)
    assert not np.allclose(model.params, trajectory[-1])


def test_label_smoothing_changes_the_loss_as_the_formula_says(data):
    X, y = data
    s = 0.2
    model = robnp.MLP(2, (4,), 2, dtype=np.float64, seed=0)
    before = model.copy()
    history = robnp.fit(model, X, y, recipe_options={"smoothing": s}, max_epochs=1,
                        batch_size=64, lr=1e-14, seed=8)
    perm = np.random.default_rng(8).permutation(150)
    expected = []
    for start in range(0, 150, 64):
        rows = perm[start:start + 64]
        Z = before.logits(X[rows])
        log_p = Z - Z.max(axis=1, keepdims=True)
        log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
        q = np.full(Z.shape, s / 2)
        q[np.arange(rows.size), y[rows]] += 1 - s
        expected.append(-(q * log_p).sum(axis=1).mean())
    assert history.loss[0] == pytest.approx(np.mean(expected), rel=1e-10)
    plain = robnp.fit(before.copy(), X, y, max_epochs=1, batch_size=64, lr=1e-14, seed=8)
    assert plain.loss[0] < history.loss[0]


# ---------------------------------------------------------------------------
# monitors: robust checkpoint selection and the overfitting rule
# ---------------------------------------------------------------------------

def scripted(monkeypatch, values):
    calls = []

    def monitor(model, X, y, eps):
        calls.append((X.shape[0], eps))
        return values[len(calls) - 1]

    monkeypatch.setattr(fit_module, "pgd_accuracy", monitor)
    return calls


def test_robust_selection_keeps_the_best_checkpoint(data, noisy_recipe, monkeypatch):
    X, y = data
    settings = dict(recipe=noisy_recipe, train_eps=0.1, overfit_check=False, select="robust",
                    val_fraction=0.2, patience=None, seed=1, batch_size=32)
    calls = scripted(monkeypatch, [0.3, 0.7, 0.5, 0.6])
    model = robnp.MLP(2, (8,), 2, seed=0)
    history = robnp.fit(model, X, y, max_epochs=4, **settings)
    assert calls == [(30, 0.1)] * 4  # the validation rows, at the recipe's eps
    assert history.best_epoch == 2 == history.selected_epoch
    assert history.best_val_robust_acc == 0.7 and history.final_val_robust_acc == 0.6
    np.testing.assert_array_equal(history.val_robust_acc, [0.3, 0.7, 0.5, 0.6])
    assert history.monitor_flops > 0
    scripted(monkeypatch, [0.3, 0.7])
    two = robnp.MLP(2, (8,), 2, seed=0)
    robnp.fit(two, X, y, max_epochs=2, **settings)
    np.testing.assert_array_equal(model.params, two.params)


def test_robust_selection_with_the_real_monitor_scores_the_kept_weights(data, noisy_recipe):
    X, y = data
    model = robnp.MLP(2, (8,), 2, seed=0)
    history = robnp.fit(model, X, y, recipe=noisy_recipe, train_eps=0.1, overfit_check=False,
                        select="robust", val_fraction=0.2, max_epochs=3, patience=None,
                        lr=0.02)
    assert history.best_val_robust_acc == history.val_robust_acc.max()
    assert 0 <= history.best_val_robust_acc <= 1 and len(history.val_robust_acc) == 3


@pytest.mark.parametrize("values,flagged", [([0.75, 0.875, 0.625, 0.9], 3),
                                            ([0.75, 0.625, 0.5, 0.4375], None)])
def test_catastrophic_overfitting_restores_the_previous_weights(data, noisy_recipe,
                                                                monkeypatch, values, flagged):
    X, y = data
    settings = dict(recipe=noisy_recipe, train_eps=0.1, patience=None, seed=1, batch_size=32,
                    ema=True)
    calls = scripted(monkeypatch, values)
    model = robnp.MLP(2, (8,), 2, seed=0)
    history = robnp.fit(model, X, y, max_epochs=4, **settings)  # fgsm-rs: checked by default
    assert all(call == (32, 0.1) for call in calls)
    assert history.overfit_epoch == flagged and history.overfit == (flagged is not None)
    if flagged is None:
        assert history.epochs == 4 and history.selected_epoch == 4
        return
    assert history.epochs == 3 and history.stopped_early and history.selected_epoch == 2
    scripted(monkeypatch, values)
    two = robnp.MLP(2, (8,), 2, seed=0)
    robnp.fit(two, X, y, max_epochs=2, **settings)
    np.testing.assert_array_equal(model.params, two.params)


# ---------------------------------------------------------------------------
# the one-pass stream
# ---------------------------------------------------------------------------

def test_an_example_is_the_same_however_the_stream_is_read():
    stream = SampleStream("moons", 3, block_size=100)
    X, y = stream.take(0, 1000)
    pieces = [(0, 7), (7, 250), (250, 251), (251, 1000)]
    fresh = SampleStream("moons", 3, block_size=100)
    joined = [fresh.take(a, b - a) for a, b in reversed(pieces)][::-1]
    np.testing.assert_array_equal(np.concatenate([p[0] for p in joined]), X)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in joined]), y)
    assert 0.4 < y[:100].mean() < 0.6  # the block is shuffled
    assert not np.array_equal(SampleStream("moons", 4, block_size=100).take(0, 10)[0], X[:10])


@pytest.mark.parametrize("batch_size,threads", [(32, 1), (50, 2), (200, 1)])
def test_fit_stream_sees_each_example_once_in_order(batch_size, threads, monkeypatch):
    seen = []
    original = SampleStream.fill

    def recording(self, start, X_out, y_out):
        original(self, start, X_out, y_out)
        seen.append(X_out.copy())

    monkeypatch.setattr(SampleStream, "fill", recording)
    stream = SampleStream("circles", 2, block_size=64)
    model = robnp.MLP(2, (8,), 2, seed=0)
    history = fit_stream(model, stream, 700, batch_size=batch_size, n_threads=threads,
                         epochs=2)
    monkeypatch.setattr(SampleStream, "fill", original)
    X, _ = SampleStream("circles", 2, block_size=64).take(0, 700)
    np.testing.assert_array_equal(np.concatenate(seen), X)
    assert history.examples == 700 and history.epochs == 2
    assert history.steps == -(-700 // batch_size)


def test_fit_stream_refuses_a_model_of_other_sizes():
    with pytest.raises(ConfigError, match="the stream has 2 and 3"):
        fit_stream(robnp.MLP(2, (4,), 2), SampleStream("blobs", 0), 100)
    with pytest.raises(ConfigError, match="epochs must be an integer in"):
        fit_stream(robnp.MLP(2, (4,), 2), SampleStream("moons", 0), 100, batch_size=50,
                   epochs=3)


# ---------------------------------------------------------------------------
# FLOPs, counted by hand for a 2-3-2 network
# ---------------------------------------------------------------------------

def test_flops_of_a_tiny_network_by_hand(data, noisy_recipe, monkeypatch):
    X, y = data
    X10, y10 = X[:10], y[:10]
    # sizes (2, 3, 2): 12 weights, 5 biases, 17 parameters, 3 hidden units.
    # forward: 2*6 + 3 + 3 (ReLU) + 2*6 + 2 = 32; softmax CE with its value: 5*2 + 4 = 14;
    # backward: weight grads 2*12, bias grads 5, delta to the hidden layer 2*6, mask 3 = 44.
    per_example = 32 + 14 + 44
    adam_step = 13 * 17
    history = robnp.fit(robnp.MLP(2, (3,), 2, seed=0), X10, y10, max_epochs=3, batch_size=4,
                        patience=None)
    # minibatches of 4, 4 and 2 rows
    assert history.flops_per_epoch.tolist() == [10 * per_example + 3 * adam_step] * 3
    assert history.train_flops == 3 * (10 * per_example + 3 * adam_step)
    assert history.monitor_flops == 0
    # SGD with momentum, Nesterov and L2 decay: 2 + 3 + 2 + 2 per parameter; EMA 3 more
    sgd = robnp.fit(robnp.MLP(2, (3,), 2, seed=0), X10, y10, max_epochs=1, batch_size=4,
                    optimizer="sgd", momentum=0.9, nesterov=True, weight_decay=1e-4, ema=True)
    assert sgd.train_flops == 10 * per_example + 3 * (9 + 3) * 17
    # a PGD-10 monitor row: 10 steps of forward 32, CE gradient 5*2 + 1, input backward
    # 2*12 + 3, signed step and projection 7*2; then the scoring forward 32
    scripted(monkeypatch, [0.5, 0.5])
    monitored = robnp.fit(robnp.MLP(2, (3,), 2, seed=0), X10, y10, max_epochs=2,
                          batch_size=4, recipe=noisy_recipe, train_eps=0.1, patience=None)
    assert monitored.monitor_flops == 2 * 4 * (10 * (32 + 11 + 27 + 14) + 32)


# ---------------------------------------------------------------------------
# configuration: identity, errors
# ---------------------------------------------------------------------------

def test_identity_of_the_default_is_the_configuration_the_study_always_had():
    config = robnp.TrainConfig(seed=4)
    assert config.identity() == {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "adam_eps": 1e-8,
                                 "batch_size": 256, "max_epochs": 2000, "patience": 50,
                                 "min_delta": 1e-5, "seed": 4, "loss": "cross_entropy"}
    other = robnp.TrainConfig(optimizer="sgd", momentum=0.9, recipe_options={"smoothing": 0.1})
    extra = {k: v for k, v in other.identity().items() if k not in config.identity()}
    assert extra == {"optimizer": "sgd", "momentum": 0.9, "recipe_options": {"smoothing": 0.1}}
    json.dumps(other.identity())


def test_recipe_options_come_from_none_a_mapping_or_the_options_object():
    options = get_recipe("standard").options
    assert robnp.TrainConfig().recipe_options == options()
    assert robnp.TrainConfig(recipe_options={"smoothing": 0.3}).recipe_options == options(0.3)
    assert robnp.TrainConfig(recipe_options=options(0.3)).recipe_options.smoothing == 0.3
    with pytest.raises(ConfigError, match="must be a StandardOptions or a mapping"):
        robnp.TrainConfig(recipe_options=NoisyOptions())


def test_train_eps_fills_the_recipes_eps(noisy_recipe):
    config = robnp.TrainConfig(recipe=noisy_recipe, train_eps=0.25, overfit_check=False)
    assert config.recipe_options == NoisyOptions(0.25) and config.eps == 0.25
    again = dataclasses.replace(config, lr=0.01)
    assert again.eps == 0.25
    assert robnp.TrainConfig(recipe=noisy_recipe, recipe_options={"eps": 0.25},
                             train_eps=0.25).eps == 0.25
    with pytest.raises(ConfigError, match="disagree"):
        robnp.TrainConfig(recipe=noisy_recipe, recipe_options={"eps": 0.1}, train_eps=0.2)


@pytest.mark.parametrize("settings,message", [
    (dict(optimizer="rmsprop"), "unknown optimizer 'rmsprop'"),
    (dict(momentum=1.0), "momentum must be a finite number in \\[0, 1\\), got 1.0"),
    (dict(momentum=-0.1), "momentum must be"),
    (dict(optimizer="sgd", nesterov=True), "nesterov needs momentum > 0"),
    (dict(nesterov=True, momentum=0.9), "nesterov is an option of the sgd optimizer"),
    (dict(momentum=0.9), "momentum is an option of the sgd optimizer .*got momentum=0.9 "
                         "with optimizer 'adam'"),
    (dict(optimizer="adamw", momentum=0.5), "momentum is an option of the sgd optimizer"),
    (dict(weight_decay=-1e-4), "weight_decay must be a finite number >= 0"),
    (dict(weight_decay=float("nan")), "weight_decay must be"),
    (dict(schedule="linear"), "unknown schedule 'linear'"),
    (dict(schedule="cosine"), "cosine schedule cannot run with early stopping .* its length "
                              "is undefined; set patience off"),
    (dict(schedule="one-cycle", patience=10), "one-cycle schedule cannot run with early"),
    (dict(step_every=0), "step_every must be an integer >= 1"),
    (dict(gamma=0), "gamma must be"),
    (dict(pct_start=1.0), "pct_start must be"),
    (dict(lr_floor=1.0), "lr_floor must be a finite number in \\[0, 0.001\\]"),
    (dict(ema="yes"), "ema must be true or false"),
    (dict(ema_decay=1.0), "ema_decay must be"),
    (dict(recipe="pgd-nope"), "unknown recipe 'pgd-nope'; known recipes: standard"),
    (dict(recipe_options={"smoothing": 1.0}), "smoothing must be a finite number in \\[0, 1\\)"),
    (dict(recipe_options={"smoothing": -0.1}), "smoothing must be"),
    (dict(recipe_options={"beta": 6.0}), "unknown option 'beta' for recipe 'standard'"),
    (dict(train_eps=-0.1), "train_eps must be a finite number >= 0, got -0.1"),
    (dict(train_eps=float("nan")), "train_eps must be a finite number >= 0, got nan"),
    (dict(train_eps=0.1), "the standard recipe has no eps"),
    (dict(select="best"), "unknown checkpoint selection 'best'"),
    (dict(select="robust"), "needs a validation split: val_fraction must be in \\(0, 1\\)"),
    (dict(select="robust", val_fraction=0.2), "attacks at the recipe's eps, and the standard "
                                              "recipe has none"),
    (dict(val_fraction=1.0), "val_fraction must be"),
    (dict(overfit_check=1), "overfit_check must be true or false"),
    (dict(overfit_check=True), "overfit_check attacks at the recipe's eps"),
    (dict(patience=0), "patience must be an integer >= 1, got 0"),
    (dict(loss="cw_margin", optimizer="sgd"), "loss='cw_margin' trains only on the default"),
])
def test_bad_settings_are_one_line_config_errors(settings, message):
    with pytest.raises(ConfigError, match=message) as error:
        robnp.TrainConfig(**settings)
    assert "\n" not in str(error.value)


def test_n_threads_is_checked(data):
    with pytest.raises(ConfigError, match="n_threads must be an integer >= 1"):
        robnp.fit(robnp.MLP(2, (4,), 2), *data, n_threads=0)


# ---------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------

def run(*args):
    from robnp_cli.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


TINY = ["--n-samples", "200", "--max-epochs", "6", "--width", "4"]


def test_train_with_the_loops_options_reports_them(tmp_path):
    path = tmp_path / "m.npz"
    result = run("train", *TINY, "--optimizer", "sgd", "--momentum", "0.9", "--nesterov",
                 "--lr", "0.05", "--schedule", "one-cycle", "--patience", "0", "--ema",
                 "--label-smoothing", "0.1", "--weight-decay", "1e-4", "--out", path)
    assert result.exit_code == 0, result.output
    assert "recipe standard (smoothing=0.1)" in result.output and "training FLOPs" in result.output
    meta = json.loads(path.with_suffix(".json").read_text())
    train = meta["task"]["train"]
    assert train["optimizer"] == "sgd" and train["schedule"] == "one-cycle"
    assert train["patience"] is None and train["recipe_options"] == {"smoothing": 0.1}
    history = meta["history"]
    assert history["epochs"] == 6 and history["ema"] is True
    assert history["train_flops"] == pytest.approx(sum(history["flops_per_epoch"]))


@pytest.mark.parametrize("args,message", [
    (["--recipe", "nope"], "unknown recipe 'nope'"),
    (["--beta", "-1"], "unknown option 'beta' for recipe 'standard'"),
    (["--label-smoothing", "1"], "smoothing must be"),
    (["--train-eps", "-0.5"], "train_eps must be"),
    (["--train-eps", "nan"], "train_eps must be"),
    (["--momentum", "1.5"], "momentum must be"),
    (["--momentum", "0.9"], "momentum is an option of the sgd optimizer"),
    (["--nesterov"], "nesterov is an option of the sgd optimizer"),
    (["--schedule", "cosine"], "its length is undefined; set patience off"),
    (["--select", "robust"], "val_fraction must be"),
])
def test_train_refuses_bad_loop_options_in_one_line(tmp_path, args, message):
    result = run("train", *TINY, *args, "--out", tmp_path / "m.npz")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], lines
    assert not (tmp_path / "m.npz").exists()
