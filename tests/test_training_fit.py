"""The training loop: Adam, minibatches, the stopping rule, reproducibility."""

import numpy as np
import pytest

import robnp
from robnp.errors import ConfigError, TrainingDivergedError


def test_training_learns_circles(circles_split):
    X_train, X_test, y_train, y_test = circles_split
    model = robnp.MLP(2, (16, 16), 2, seed=0)
    assert robnp.accuracy(model, X_test, y_test) < 0.8
    history = robnp.fit(model, X_train, y_train, max_epochs=400, seed=0)
    assert history.loss[-1] < 0.5 * history.loss[0]
    assert robnp.accuracy(model, X_test, y_test) > 0.9


def test_same_seed_same_model_and_history(circles_split):
    X_train, _, y_train, _ = circles_split
    runs = []
    for _ in range(2):
        model = robnp.MLP(2, (8, 8), 2, seed=1)
        runs.append((robnp.fit(model, X_train, y_train, max_epochs=20, seed=3), model.params))
    np.testing.assert_array_equal(runs[0][0].loss, runs[1][0].loss)
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    other = robnp.MLP(2, (8, 8), 2, seed=1)
    h = robnp.fit(other, X_train, y_train, max_epochs=20, seed=4)
    assert not np.array_equal(h.loss, runs[0][0].loss)


def test_stopping_rule_is_the_studys(circles_split):
    X_train, _, y_train, _ = circles_split
    model = robnp.MLP(2, (8,), 2, seed=2)
    history = robnp.fit(model, X_train, y_train, max_epochs=3000, patience=7, min_delta=1e-3,
                        seed=0)
    # replay the rule on the recorded losses
    best, stale, stop = np.inf, 0, None
    for epoch, loss in enumerate(history.loss, start=1):
        if loss < best - 1e-3:
            best, stale = loss, 0
        else:
            stale += 1
            if stale >= 7:
                stop = epoch
                break
    assert stop == history.epochs and history.stopped_early
    assert history.final_loss == history.loss[-1] and history.best_loss == best


def test_max_epochs_is_a_hard_limit(circles_split):
    X_train, _, y_train, _ = circles_split
    history = robnp.fit(robnp.MLP(2, (8,), 2, seed=0), X_train, y_train, max_epochs=5)
    assert history.epochs == 5 and len(history.loss) == 5 and not history.stopped_early


def test_epoch_loss_is_the_mean_of_minibatch_losses():
    """One epoch with lr tiny enough that parameters barely move: the epoch loss is
    the mean of the per-batch mean losses, the last batch being short."""
    X, y = robnp.make_moons(100, 0.1, seed=0)
    model = robnp.MLP(2, (4,), 2, dtype=np.float64, seed=0)
    before = model.copy()
    history = robnp.fit(model, X, y, max_epochs=1, batch_size=30, lr=1e-12, seed=8)
    perm = np.random.default_rng(8).permutation(100)
    batches = [perm[i:i + 30] for i in range(0, 100, 30)]
    from robnp.losses import mean_loss
    expected = np.mean([mean_loss(before, X[b], y[b]) for b in batches])
    assert history.loss[0] == pytest.approx(expected, rel=1e-9)


def test_non_finite_loss_is_a_clear_error():
    # Finite inputs (non-finite ones are refused up front); an absurd step size
    # overflows the parameters within the first epoch's minibatches.
    X = np.random.default_rng(0).normal(size=(20, 2)).astype(np.float32) * 1e6
    y = np.arange(20) % 2
    with pytest.raises(TrainingDivergedError, match="diverged at epoch 1"):
        robnp.fit(robnp.MLP(2, (4,), 2, seed=0), X, y, max_epochs=3, lr=1e30, batch_size=1)


@pytest.mark.parametrize("option,value", [("lr", 0), ("batch_size", 0), ("patience", -1),
                                          ("max_epochs", 1.5), ("seed", "x"), ("loss", "hinge"),
                                          ("beta1", 1.0)])
def test_bad_training_options(option, value):
    with pytest.raises(ConfigError, match=option if option != "loss" else "unknown loss"):
        robnp.fit(robnp.MLP(2, (4,), 2), np.zeros((4, 2)), np.zeros(4, int), **{option: value})


def test_unknown_option_is_rejected():
    with pytest.raises(ConfigError, match="unknown training option"):
        robnp.fit(robnp.MLP(2, (4,), 2), np.zeros((4, 2)), np.zeros(4, int), epochs=3)


def _fit_one_epoch_per_call(model, X, y, max_epochs, patience, seed):
    """The training loop written the plain way: one permutation, one compiled epoch
    and one stopping decision at a time, in Python."""
    from robnp import kernels

    X = model.check_input(X)
    y = model.check_labels(y, X.shape[0])
    params = model.params
    grad, m, v = np.empty_like(params), np.zeros_like(params), np.zeros_like(params)
    rows = min(256, X.shape[0])
    ws = model.workspace(rows)
    batch_X, batch_y = np.empty((rows, X.shape[1]), X.dtype), np.empty(rows, np.int64)
    rng = np.random.default_rng(seed)
    losses, best, stale, step = [], np.inf, 0, 0
    while len(losses) < max_epochs:
        total, n_batches, step = kernels.train_epoch(
            params, model.sizes, X, y, rng.permutation(X.shape[0]), rows, 0,
            kernels.AdamState(m, v, 1e-3, 0.9, 0.999, 1e-8), step,
            kernels.EpochBuffers(grad, batch_X, batch_y, ws.acts, ws.dZ, ws.d0, ws.d1))
        losses.append(total / n_batches)
        if losses[-1] < best - 1e-5:
            best, stale = losses[-1], 0
        else:
            stale += 1
            if stale >= patience:
                break
    return np.array(losses)


@pytest.mark.parametrize("seconds_per_call", [0.0, 0.2, 1e9])  # 1, adaptive, 16 epochs a call
@pytest.mark.parametrize("max_epochs,patience", [(5, 50), (16, 50), (17, 50), (40, 3), (300, 20)])
def test_many_epochs_per_call_changes_nothing(circles_split, max_epochs, patience,
                                              seconds_per_call, monkeypatch):
    """fit runs epochs in chunks inside one compiled call; the losses, the epoch at
    which it stops and the parameters are those of the one-epoch-at-a-time loop."""
    monkeypatch.setattr("robnp.training.fit._SECONDS_PER_CALL", seconds_per_call)
    X, y = circles_split[0], circles_split[2]
    fast, plain = (robnp.MLP(2, (8, 8), 2, seed=2) for _ in range(2))
    history = robnp.fit(fast, X, y, max_epochs=max_epochs, patience=patience, seed=9)
    expected = _fit_one_epoch_per_call(plain, X, y, max_epochs, patience, seed=9)
    np.testing.assert_array_equal(history.loss, expected)
    np.testing.assert_array_equal(fast.params, plain.params)
    assert history.epochs == len(expected) and history.stopped_early == (len(expected) < max_epochs)


@pytest.mark.parametrize("option,value", [
    ("lr", "a"), ("lr", "0.1"), ("lr", True), ("beta1", "x"), ("beta2", None),
    ("adam_eps", "1e-8"), ("min_delta", "0"), ("min_delta", True), ("seed", -1),
    ("seed", 1.0), ("batch_size", "32"), ("patience", False)])
def test_options_of_the_wrong_type_are_config_errors(option, value):
    with pytest.raises(ConfigError, match=f"^{option} must be"):
        robnp.TrainConfig(**{option: value})
    with pytest.raises(ConfigError, match=f"^{option} must be"):
        robnp.fit(robnp.MLP(2, (4,), 2), np.zeros((4, 2)), np.zeros(4, int), **{option: value})


def test_numpy_numbers_are_accepted_as_plain_ones():
    config = robnp.TrainConfig(lr=np.float64(0.01), batch_size=np.int64(8), seed=np.int32(3))
    assert config == robnp.TrainConfig(lr=0.01, batch_size=8, seed=3)
    assert type(config.lr) is float and type(config.batch_size) is int


def test_config_must_be_a_train_config():
    with pytest.raises(ConfigError, match="config must be a TrainConfig"):
        robnp.fit(robnp.MLP(2, (4,), 2), np.zeros((4, 2)), np.zeros(4, int), {"lr": 0.1})
