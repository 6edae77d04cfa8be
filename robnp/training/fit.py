"""The training loop: minibatch Adam with the study's early stopping.

Up to 16 epochs (as many as take about 0.2 s, so that Ctrl-C stays prompt) are one
compiled call (:func:`robnp.kernels.train_epochs`): gathering each minibatch, the
forward and backward passes, the Adam update and the stopping rule all happen inside
it, so a small network pays no Python overhead per minibatch or per epoch. Python draws each epoch's shuffle from NumPy's generator
beforehand, so the stream, and every result, is the same as one epoch per call.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from ..threads import single_blas_thread
from .. import _checks, kernels
from ..errors import ConfigError, TrainingDivergedError
from ..losses import loss_code
from .optim import check_adam_hyperparameters

__all__ = ["TrainConfig", "History", "fit"]


@dataclass(frozen=True)
class TrainConfig:
    """How :func:`fit` trains; the defaults are the study's.

    Attributes
    ----------
    lr, beta1, beta2, adam_eps : float
        Adam's step size, moment decays and denominator constant (PyTorch defaults).
    batch_size : int
        Minibatch size; rows are reshuffled every epoch and the last batch may be short.
    max_epochs : int
        Hard limit on epochs.
    patience : int
        Stop after this many consecutive epochs without improvement.
    min_delta : float
        An epoch improves when its loss is below the best so far minus ``min_delta``.
    seed : int or None
        Seed of the generator that draws each epoch's shuffle.
    loss : str
        Training loss (see :mod:`robnp.losses`).
    """

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    adam_eps: float = 1e-8
    batch_size: int = 256
    max_epochs: int = 2000
    patience: int = 50
    min_delta: float = 1e-5
    seed: int | None = 0
    loss: str = "cross_entropy"

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        # Plain Python numbers: the compiled loop sees one signature, whatever was passed.
        for name, value in zip(("lr", "beta1", "beta2", "adam_eps"), check_adam_hyperparameters(
                self.lr, self.beta1, self.beta2, self.adam_eps)):
            set_(name, value)
        for name in ("batch_size", "max_epochs", "patience"):
            set_(name, _checks.integer(name, getattr(self, name), 1))
        set_("min_delta", _checks.real("min_delta", self.min_delta, 0))
        if self.seed is not None:
            set_("seed", _checks.integer("seed", self.seed, 0))
        loss_code(self.loss)


@dataclass(frozen=True)
class History:
    """What :func:`fit` did.

    Attributes
    ----------
    epochs : int
        Epochs run (the study's ``final_epoch``).
    final_loss : float
        Loss of the last epoch (mean of its minibatch losses).
    best_loss : float
        Lowest epoch loss seen.
    loss : ndarray of shape (epochs,), float64
        Loss of every epoch.
    stopped_early : bool
        True when the patience rule stopped training before ``max_epochs``.
    seconds : float
        Wall time of the loop.
    """

    epochs: int
    final_loss: float
    best_loss: float
    loss: np.ndarray
    stopped_early: bool
    seconds: float


# At most this many epochs per compiled call, about this long a call, and a cap on
# the permutation entries held at once.
_EPOCHS_PER_CALL = 16
_SECONDS_PER_CALL = 0.2
_PERMUTATION_BUDGET = 1 << 20


@single_blas_thread
def fit(model, X, y, config: TrainConfig | None = None, **overrides) -> History:
    """Train ``model`` in place on ``(X, y)`` with minibatch Adam.

    Each epoch visits the rows in a fresh permutation drawn from
    ``numpy.random.default_rng(config.seed)``, in minibatches of ``batch_size``
    (the mean loss of each minibatch is minimised); the epoch loss is the mean of
    its minibatch losses. Training stops after ``patience`` epochs in a row
    without improvement, or at ``max_epochs``.

    Parameters
    ----------
    model : MLP
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    config : TrainConfig, optional
    **overrides
        Fields of :class:`TrainConfig` to replace, e.g. ``max_epochs=100``.

    Returns
    -------
    History

    Raises
    ------
    TrainingDivergedError
        When an epoch's loss is not finite (the model's parameters are then
        whatever the last update left).
    """
    if config is None:
        config = TrainConfig()
    elif not isinstance(config, TrainConfig):
        raise ConfigError(f"config must be a TrainConfig, got {type(config).__name__}")
    if overrides:
        unknown = set(overrides) - {f.name for f in dataclasses.fields(TrainConfig)}
        if unknown:
            raise ConfigError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        config = dataclasses.replace(config, **overrides)
    X = model.check_input(X)
    y = model.check_labels(y, X.shape[0])
    n_samples = X.shape[0]
    batch_rows = min(config.batch_size, n_samples)

    dtype = model.dtype
    params = model.params
    grad = np.empty_like(params)
    m = np.zeros_like(params)
    v = np.zeros_like(params)
    batch_X = np.empty((batch_rows, model.n_features), dtype)
    batch_y = np.empty(batch_rows, np.int64)
    ws = model.workspace(batch_rows)
    code = loss_code(config.loss)
    rng = np.random.default_rng(config.seed)

    losses = np.empty(config.max_epochs, np.float64)
    # Permutations are drawn in Python, one per epoch in order, and handed to the
    # compiled loop a chunk at a time; draws past the stopping epoch are never used.
    # Chunks grow from one epoch to as many as take about _SECONDS_PER_CALL, so that
    # Ctrl-C (handled between calls) still stops a large network promptly.
    most = max(1, min(_EPOCHS_PER_CALL, _PERMUTATION_BUDGET // n_samples))
    chunk = 1
    best = np.inf
    stale = 0
    step = 0
    epoch = 0
    start = time.perf_counter()
    while epoch < config.max_epochs:
        count = min(chunk, config.max_epochs - epoch)
        call_start = time.perf_counter()
        perms = np.empty((count, n_samples), np.int64)
        for row in perms:
            row[:] = rng.permutation(n_samples)
        ran, step, best, stale, stopped = kernels.train_epochs(
            params, model._sizes, X, y, perms, batch_rows, code, m, v, step,
            config.lr, config.beta1, config.beta2, config.adam_eps,
            grad, batch_X, batch_y, ws.acts, ws.dZ, ws.d0, ws.d1,
            losses[epoch:epoch + count], best, stale, config.patience, config.min_delta)
        epoch += ran
        if not np.isfinite(losses[epoch - 1]):
            raise TrainingDivergedError(
                f"training diverged at epoch {epoch}: loss is {losses[epoch - 1]} "
                f"(lr={config.lr}, dtype={dtype.name})")
        if stopped:
            break
        per_epoch = (time.perf_counter() - call_start) / ran
        chunk = max(1, min(most, int(_SECONDS_PER_CALL / max(per_epoch, 1e-9))))
    seconds = time.perf_counter() - start
    return History(
        epochs=epoch,
        final_loss=float(losses[epoch - 1]),
        best_loss=float(best),
        loss=losses[:epoch].copy(),
        stopped_early=epoch < config.max_epochs,
        seconds=seconds,
    )
