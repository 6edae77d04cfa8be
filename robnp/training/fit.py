"""The training loop: minibatches, a recipe's gradient, an optimizer, a schedule,
weight averaging, stopping rules, checkpoint selection and FLOP accounting.

Two paths train a model, and they agree.

* **The fused path** (the study's default configuration: the standard recipe without
  label smoothing, Adam, a constant step size, no weight averaging, loss-based
  stopping, fixed data): up to 16 epochs (as many as take about 0.2 s, so that Ctrl-C
  stays prompt) are one compiled call (:func:`robnp.kernels.train_epochs`): gathering
  each minibatch, the forward and backward passes, the Adam update and the stopping
  rule all happen inside it, so a small network pays no Python overhead per minibatch.
  Python draws each epoch's shuffle from NumPy's generator beforehand, so the stream,
  and every result, is the same as one epoch per call.
* **The general loop** (everything else). Per minibatch: gather the rows; when the
  recipe asks for it, draw its U(-1, 1) noise for the whole minibatch from the loop's
  generator; split the rows into chunks of :data:`CHUNK_ROWS` (a split fixed by the
  minibatch's size alone); run the recipe's ``gradient`` on every chunk, on
  ``n_threads`` threads (the kernels release the GIL); add the chunk gradients in
  chunk order; take the optimizer step at the schedule's step size (and momentum);
  update the weight average. The result is bit-identical for any ``n_threads``.
  At the end of each epoch come the stopping rule and the monitors: robust
  validation accuracy for checkpoint selection (Rice et al., 2020) and the
  catastrophic-overfitting check (Wong et al., 2020).

:func:`robnp.training.stream.fit_stream` runs the same general loop on a stream of
fresh samples, each seen once.
"""

from __future__ import annotations

import dataclasses
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import InitVar, dataclass, field
from typing import Any, Mapping

import numpy as np

from ..threads import single_blas_thread
from .. import _checks, flops, kernels
from ..errors import ConfigError, TrainingDivergedError
from ..losses import loss_code
from .ema import EMA
from .optim import SGD, Adam, AdamW, check_adam_hyperparameters, check_sgd_hyperparameters
from .recipes import RecipeOptions, get_recipe
from .schedules import Constant, Cosine, OneCycle, StepDecay

__all__ = ["TrainConfig", "History", "fit", "objective", "epoch_flops", "CHUNK_ROWS", "OPTIMIZERS", "SCHEDULE_NAMES",
           "MONITOR_STEPS", "OVERFIT_DROP"]

#: Optimizers the loop knows (:mod:`robnp.training.optim`).
OPTIMIZERS = ("adam", "adamw", "sgd")
#: Step-size schedules, stepped once per minibatch (:mod:`robnp.training.schedules`).
SCHEDULE_NAMES = ("constant", "step", "cosine", "one-cycle")
#: Checkpoint selection: the last epoch's weights, or those of the epoch with the best
#: robust validation accuracy.
SELECTIONS = ("last", "robust")
#: Rows per chunk of a minibatch in the general loop. Fixed, so that a minibatch's split,
#: and with it every sum of chunk gradients, depends on its size alone.
CHUNK_ROWS = 64
#: PGD steps of the monitors (step size eps / 4, the evaluation's own PGD).
MONITOR_STEPS = 10
#: A drop of the monitored PGD accuracy on the fixed training batch larger than this
#: from one epoch to the next is catastrophic overfitting (Wong et al., 2020).
OVERFIT_DROP = 0.2

# Fields TrainConfig had before the loop grew slots: always part of its identity, so
# that a study's task keys stay what they were.
_BASE_FIELDS = ("lr", "beta1", "beta2", "adam_eps", "batch_size", "max_epochs", "patience",
                "min_delta", "seed", "loss")


@dataclass(frozen=True)
class TrainConfig:
    """How :func:`fit` trains; the defaults are the study's (Adam, early stopping).

    Attributes
    ----------
    lr : float > 0
        Step size (Adam's, or SGD's); with a schedule, its peak (``max_lr`` of
        one-cycle, the start of cosine and step decay).
    beta1, beta2, adam_eps : float
        Adam's moment decays and denominator constant (PyTorch defaults).
    batch_size : int
        Minibatch size; rows are reshuffled every epoch and the last batch may be short.
    max_epochs : int
        Hard limit on epochs.
    patience : int >= 1 or None
        Stop after this many consecutive epochs without improvement of the epoch loss
        (the recipe's own objective); None: no early stopping, exactly
        ``max_epochs`` epochs.
    min_delta : float
        An epoch improves when its loss is below the best so far minus ``min_delta``.
    seed : int or None
        Seed of the loop's generator: each epoch's shuffle and the recipe's noise.
    loss : str
        Training loss of the fused path (see :mod:`robnp.losses`); any other
        configuration trains the recipe's objective and needs ``"cross_entropy"``.
    optimizer : {"adam", "adamw", "sgd"}
        PyTorch's ``Adam``, ``AdamW``, ``SGD`` (:mod:`robnp.training.optim`).
    momentum : float in [0, 1)
        SGD's momentum (``dampening`` 0).
    nesterov : bool
        SGD with Nesterov momentum (needs ``momentum > 0``).
    weight_decay : float >= 0
        With PyTorch's semantics: for ``adam`` and ``sgd`` L2 regularisation,
        ``weight_decay * params`` added to the gradient (so the moments or the
        momentum carry it); for ``adamw`` decoupled decay, ``params *= 1 - lr *
        weight_decay`` before the step.
    schedule : {"constant", "step", "cosine", "one-cycle"}
        The step size of every minibatch (:mod:`robnp.training.schedules`):
        ``lr`` throughout; ``lr * gamma ** (step // step_every)``; cosine annealing
        from ``lr`` to ``lr_floor`` over the run; PyTorch's ``OneCycleLR`` with
        ``max_lr = lr``, warm-up ``pct_start`` and the paper's other defaults. As
        PyTorch does by default, one-cycle also cycles the momentum, SGD's
        ``momentum`` or Adam's ``beta1``, between 0.95 and 0.85 (``momentum`` and
        ``beta1`` are then unused). Cosine and one-cycle need the run's length, so
        they need ``patience=None``.
    step_every : int >= 1
    gamma : float in (0, 1]
        The step schedule's period (in minibatches) and factor.
    lr_floor : float in [0, lr]
        Where the cosine schedule ends.
    pct_start : float in (0, 1)
        One-cycle's share of warm-up steps.
    ema : bool
        Keep an exponential moving average of the weights (:class:`robnp.training.ema.
        EMA`, decay ``min(ema_decay, (1 + t) / (10 + t))`` counted from the end of the
        warm-up: one-cycle's warm-up, else from the first step). The model ends with
        the averaged weights, and the monitors evaluate them; the recorded losses are
        the live weights'.
    ema_decay : float in [0, 1)
    recipe : str
        A registered training recipe (:mod:`robnp.training.recipes`).
    recipe_options : RecipeOptions, mapping or None
        The recipe's options: None for its defaults; a mapping of option names, made
        into the recipe's options. Stored as the options object.
    train_eps : float >= 0 or None (init only)
        Fills the ``eps`` of an adversarial recipe's options; ``recipe_options.eps``
        is the one value kept (read it as :attr:`eps`).
    select : {"last", "robust"}
        Keep the last epoch's weights, or (Rice et al., 2020) those of the epoch with
        the best PGD-10 accuracy on a validation split at the recipe's ``eps``.
    val_fraction : float in [0, 1)
        Share of the training rows held out for ``select="robust"`` (> 0 there).
    overfit_check : bool or None
        The catastrophic-overfitting rule (Wong et al., 2020): after every epoch the
        PGD-10 accuracy at the recipe's ``eps`` on a fixed training batch; a drop of
        more than :data:`OVERFIT_DROP` from the previous epoch restores that epoch's
        weights and stops. None: on for ``fgsm-rs`` and ``n-fgsm``, off otherwise.
    """

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    adam_eps: float = 1e-8
    batch_size: int = 256
    max_epochs: int = 2000
    patience: int | None = 50
    min_delta: float = 1e-5
    seed: int | None = 0
    loss: str = "cross_entropy"
    optimizer: str = "adam"
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "constant"
    step_every: int = 1000
    gamma: float = 0.1
    lr_floor: float = 0.0
    pct_start: float = 0.025
    ema: bool = False
    ema_decay: float = 0.995
    recipe: str = "standard"
    recipe_options: Any = None
    train_eps: InitVar[float | None] = None
    select: str = "last"
    val_fraction: float = 0.0
    overfit_check: bool | None = None

    def __post_init__(self, train_eps):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        # Plain Python numbers: the compiled loop sees one signature, whatever was passed.
        for name, value in zip(("lr", "beta1", "beta2", "adam_eps"), check_adam_hyperparameters(
                self.lr, self.beta1, self.beta2, self.adam_eps)):
            set_(name, value)
        for name in ("batch_size", "max_epochs"):
            set_(name, _checks.integer(name, getattr(self, name), 1))
        if self.patience is not None:
            set_("patience", _checks.integer("patience", self.patience, 1))
        set_("min_delta", _checks.real("min_delta", self.min_delta, 0))
        if self.seed is not None:
            set_("seed", _checks.integer("seed", self.seed, 0))
        loss_code(self.loss)
        _checks.choice("optimizer", self.optimizer, OPTIMIZERS, "optimizer")
        _, momentum, _, weight_decay, nesterov = check_sgd_hyperparameters(
            self.lr, self.momentum, 0.0, self.weight_decay, self.nesterov)
        if nesterov and self.optimizer != "sgd":
            raise ConfigError(f"nesterov is an option of the sgd optimizer, got optimizer "
                              f"{self.optimizer!r}")
        set_("momentum", momentum)
        set_("weight_decay", weight_decay)
        set_("nesterov", nesterov)
        _checks.choice("schedule", self.schedule, SCHEDULE_NAMES, "schedule")
        set_("step_every", _checks.integer("step_every", self.step_every, 1))
        set_("gamma", _checks.real("gamma", self.gamma, 0, 1, low_open=True))
        set_("lr_floor", _checks.real("lr_floor", self.lr_floor, 0, self.lr))
        set_("pct_start", _checks.real("pct_start", self.pct_start, 0, 1, low_open=True,
                                       high_open=True))
        if self.schedule in ("cosine", "one-cycle") and self.patience is not None:
            raise ConfigError(f"the {self.schedule} schedule cannot run with early stopping "
                              f"(patience={self.patience}): its length is undefined; set "
                              f"patience off (None, or 0 on the command line)")
        set_("ema", _checks.flag("ema", self.ema))
        set_("ema_decay", _checks.real("ema_decay", self.ema_decay, 0, 1, high_open=True))
        set_("recipe_options", _recipe_options(self.recipe, self.recipe_options, train_eps))
        _checks.choice("select", self.select, SELECTIONS, "checkpoint selection")
        set_("val_fraction", _checks.real("val_fraction", self.val_fraction, 0, 1,
                                          high_open=True))
        if self.select == "robust":
            if self.val_fraction == 0:
                raise ConfigError("select='robust' needs a validation split: val_fraction "
                                  "must be in (0, 1), got 0.0")
            _monitor_eps(self, "select='robust'")
        if self.overfit_check is not None:
            set_("overfit_check", _checks.flag("overfit_check", self.overfit_check))
            if self.overfit_check:
                _monitor_eps(self, "overfit_check")
        if self.loss != "cross_entropy" and not self.fused:
            raise ConfigError(f"loss={self.loss!r} trains only on the default path (standard "
                              f"recipe without smoothing, adam, constant schedule, no ema, no "
                              f"weight decay, select='last'); recipes train on cross-entropy")

    def replace(self, **changes) -> "TrainConfig":
        """``dataclasses.replace`` that also resets ``recipe_options`` to the new
        recipe's defaults when ``recipe`` changes and no options are given."""
        if ("recipe" in changes and changes["recipe"] != self.recipe
                and "recipe_options" not in changes):
            changes["recipe_options"] = None
        return dataclasses.replace(self, **changes)

    @property
    def eps(self) -> float | None:
        """The recipe's training radius, or None for a recipe without one."""
        return getattr(self.recipe_options, "eps", None)

    @property
    def checks_overfitting(self) -> bool:
        """Whether the catastrophic-overfitting rule runs (``overfit_check`` resolved)."""
        if self.overfit_check is None:
            return get_recipe(self.recipe).options.single_step
        return self.overfit_check

    @property
    def fused(self) -> bool:
        """True when fixed-data training takes the fused compiled path."""
        return (self.recipe == "standard" and self.recipe_options.smoothing == 0
                and self.optimizer == "adam" and self.weight_decay == 0
                and self.schedule == "constant" and not self.ema and self.select == "last"
                and not self.checks_overfitting)

    def identity(self) -> dict:
        """Everything training depends on, as plain JSON values: the fields
        :class:`TrainConfig` always had, then every other field only where it differs
        from its default (so the study's task keys stay as they were); the recipe's
        options, as a dict, whenever the recipe or its options are not the default."""
        defaults = _DEFAULT_CONFIG
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "recipe_options":
                if (self.recipe != "standard"
                        or value != get_recipe(self.recipe).make_options()):
                    out[f.name] = value.to_dict()
            elif f.name in _BASE_FIELDS or value != getattr(defaults, f.name):
                out[f.name] = value
        return out


def _recipe_options(recipe: str, options, train_eps) -> RecipeOptions:
    """The recipe's options object from None, a mapping or an options object, with
    ``train_eps`` filled into its ``eps``."""
    spec = get_recipe(recipe)
    if train_eps is not None:
        train_eps = _checks.real("train_eps", train_eps, 0)
        if "eps" not in spec.options.field_names():
            raise ConfigError(f"train_eps: the {recipe} recipe has no eps (it trains on "
                              f"clean points), got train_eps={train_eps!r}")
    if options is None:
        options = spec.make_options({} if train_eps is None else {"eps": train_eps})
    elif isinstance(options, Mapping):
        given = {str(key).replace("-", "_"): value for key, value in options.items()}
        if train_eps is not None and "eps" in given:
            given_eps = _checks.real("eps", given["eps"], 0)
            if given_eps != train_eps:
                raise ConfigError(f"train_eps={train_eps!r} and recipe_options eps="
                                  f"{given['eps']!r} disagree; give one of them")
        if train_eps is not None:
            given["eps"] = train_eps
        options = spec.make_options(given)
    elif not isinstance(options, spec.options):
        raise ConfigError(f"recipe_options of recipe {recipe!r} must be a "
                          f"{spec.options.__name__} or a mapping of its options, got "
                          f"{type(options).__name__} (a new recipe needs its own options: "
                          f"use TrainConfig.replace)")
    if train_eps is not None:
        options = dataclasses.replace(options, eps=train_eps)
    return options


def _monitor_eps(config: TrainConfig, what: str) -> float:
    """The radius the monitors attack at: the recipe's ``eps``."""
    eps = config.eps
    if eps is None:
        raise ConfigError(f"{what} attacks at the recipe's eps, and the {config.recipe} "
                          f"recipe has none; use an adversarial recipe")
    return float(eps)


def _train_config_fields() -> set[str]:
    return {f.name for f in dataclasses.fields(TrainConfig)} | {"train_eps"}


@dataclass(frozen=True)
class History:
    """What :func:`fit` did.

    Attributes
    ----------
    epochs : int
        Epochs run (the study's ``final_epoch``).
    final_loss : float
        Loss of the last epoch (mean of its minibatch losses; the recipe's objective,
        of the live weights).
    best_loss : float
        Lowest epoch loss seen.
    loss : ndarray of shape (epochs,), float64
        Loss of every epoch.
    stopped_early : bool
        True when a stopping rule (patience, catastrophic overfitting) ended training
        before ``max_epochs``.
    seconds : float
        Wall time of the loop.
    recipe : str
        The recipe trained.
    recipe_options : dict
        Its options.
    steps : int
        Optimizer steps taken.
    examples : int
        Training examples processed (a row seen in two epochs counts twice).
    flops_per_epoch : ndarray of shape (epochs,), float64
        Training FLOPs of every epoch (:func:`robnp.flops.recipe_flops` per example,
        the optimizer's update per minibatch, the weight average's 3 per parameter
        and step); monitoring excluded.
    train_flops : float
        Their sum.
    monitor_flops : float
        FLOPs of the monitors (PGD on the validation split and on the overfitting
        check's batch): per row and run ``MONITOR_STEPS`` attack steps and the
        scoring forward pass.
    ema : bool
        True when the model holds the weight average.
    val_robust_acc : ndarray of shape (epochs,), float64
        PGD-10 accuracy on the validation split after every epoch (empty unless
        ``select="robust"``).
    best_epoch : int or None
        The epoch (from 1) whose weights the model holds under ``select="robust"``.
    best_val_robust_acc, final_val_robust_acc : float or None
        Robust validation accuracy of that epoch and of the last one.
    overfit_acc : ndarray of shape (epochs,), float64
        PGD-10 accuracy on the overfitting check's training batch after every epoch
        (empty when the check is off).
    overfit : bool
        True when catastrophic overfitting was detected.
    overfit_epoch : int or None
        The epoch at which it was; the model then holds the weights of the epoch
        before, and ``epochs`` counts the epoch detected.
    selected_epoch : int
        The epoch whose weights the model ends with.
    """

    epochs: int
    final_loss: float
    best_loss: float
    loss: np.ndarray
    stopped_early: bool
    seconds: float
    recipe: str = "standard"
    recipe_options: dict = field(default_factory=dict)
    steps: int = 0
    examples: int = 0
    flops_per_epoch: np.ndarray = field(default_factory=lambda: np.zeros(0))
    train_flops: float = 0.0
    monitor_flops: float = 0.0
    ema: bool = False
    val_robust_acc: np.ndarray = field(default_factory=lambda: np.zeros(0))
    best_epoch: int | None = None
    best_val_robust_acc: float | None = None
    final_val_robust_acc: float | None = None
    overfit_acc: np.ndarray = field(default_factory=lambda: np.zeros(0))
    overfit: bool = False
    overfit_epoch: int | None = None
    selected_epoch: int = 0

    def summary(self) -> dict:
        """JSON-ready facts (the per-epoch arrays as lists)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = [float(v) for v in value] if isinstance(value, np.ndarray) else value
        return out


# At most this many epochs per compiled call, about this long a call, and a cap on
# the permutation entries held at once.
_EPOCHS_PER_CALL = 16
_SECONDS_PER_CALL = 0.2
_PERMUTATION_BUDGET = 1 << 20
# Tests set this to run the default configuration through the general loop.
_FORCE_GENERAL = False


def resolve_config(config: TrainConfig | None, overrides: Mapping) -> TrainConfig:
    """``config`` (the defaults when None) with ``overrides`` replaced, checked."""
    if config is None:
        config = TrainConfig()
    elif not isinstance(config, TrainConfig):
        raise ConfigError(f"config must be a TrainConfig, got {type(config).__name__}")
    if overrides:
        unknown = set(overrides) - _train_config_fields()
        if unknown:
            raise ConfigError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        config = config.replace(**overrides)
    return config


@single_blas_thread
def fit(model, X, y, config: TrainConfig | None = None, *, n_threads: int = 1,
        **overrides) -> History:
    """Train ``model`` in place on ``(X, y)``.

    Each epoch visits the rows in a fresh permutation drawn from
    ``numpy.random.default_rng(config.seed)``, in minibatches of ``batch_size``
    (the mean of the recipe's objective over each minibatch is minimised); the epoch
    loss is the mean of its minibatch losses. Training stops after ``patience``
    epochs in a row without improvement, at catastrophic overfitting (when checked),
    or at ``max_epochs``. See the module docstring for the two paths.

    Parameters
    ----------
    model : MLP
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    config : TrainConfig, optional
    n_threads : int >= 1
        Threads of the general loop (chunks of a minibatch run in parallel); the
        result is the same for any value. The fused path runs on one.
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
    config = resolve_config(config, overrides)
    n_threads = _checks.integer("n_threads", n_threads, 1)
    X = model.check_input(X)
    y = model.check_labels(y, X.shape[0])
    if config.fused and not _FORCE_GENERAL:
        return _fit_fused(model, X, y, config)
    n_val = int(math.ceil(config.val_fraction * X.shape[0])) if config.select == "robust" else 0
    if n_val and X.shape[0] - n_val < 1:
        raise ConfigError(f"val_fraction={config.val_fraction} leaves no training rows of "
                          f"{X.shape[0]}")
    split_rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(1,)))
    order = split_rng.permutation(X.shape[0]) if n_val else None
    validation = None
    if n_val:
        # A random held-out set: rows are not assumed to be shuffled.
        validation = (X[order[-n_val:]], y[order[-n_val:]])
        keep = np.sort(order[:-n_val])
        X, y = np.ascontiguousarray(X[keep]), np.ascontiguousarray(y[keep])
    check_batch = None
    if config.checks_overfitting:
        rows = split_rng.choice(X.shape[0], size=min(config.batch_size, X.shape[0]),
                                replace=False)
        check_batch = (X[rows], y[rows])
    source = _ArraySource(X, y, config.batch_size, config.max_epochs,
                          np.random.default_rng(config.seed))
    return train_general(model, source, config, n_threads, validation, check_batch)


def _fit_fused(model, X, y, config: TrainConfig) -> History:
    """The study's default configuration, many epochs per compiled call."""
    n_samples = X.shape[0]
    batch_rows = min(config.batch_size, n_samples)
    dtype = model.dtype
    params = model.params
    ws = model.workspace(batch_rows)
    buffers = kernels.EpochBuffers(np.empty_like(params),
                                   np.empty((batch_rows, model.n_features), dtype),
                                   np.empty(batch_rows, np.int64), ws.acts, ws.dZ, ws.d0, ws.d1)
    adam = kernels.AdamState(np.zeros_like(params), np.zeros_like(params), config.lr,
                             config.beta1, config.beta2, config.adam_eps)
    code = loss_code(config.loss)
    rng = np.random.default_rng(config.seed)
    # Without early stopping the stale count never reaches a patience past max_epochs.
    patience = config.max_epochs + 1 if config.patience is None else config.patience

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
            params, model._sizes, X, y, perms, batch_rows, code, adam, step, buffers,
            losses[epoch:epoch + count], best, stale, patience, config.min_delta)
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
    per_epoch_flops = np.full(epoch, epoch_flops(model.layer_sizes, config, n_samples))
    return History(
        epochs=epoch,
        final_loss=float(losses[epoch - 1]),
        best_loss=float(best),
        loss=losses[:epoch].copy(),
        stopped_early=epoch < config.max_epochs,
        seconds=seconds,
        recipe=config.recipe,
        recipe_options=config.recipe_options.to_dict(),
        steps=step,
        examples=epoch * n_samples,
        flops_per_epoch=per_epoch_flops,
        train_flops=float(per_epoch_flops.sum()),
        selected_epoch=epoch,
    )


def _batch_rows(n: int, batch_rows: int) -> list[int]:
    """Row counts of the minibatches of an epoch over ``n`` rows."""
    return [min(batch_rows, n - start) for start in range(0, n, batch_rows)]


def epoch_flops(sizes, config: TrainConfig, n_rows: int) -> float:
    """Training FLOPs of one epoch over ``n_rows`` rows of the MLP ``sizes`` under
    ``config`` (its recipe, optimizer and minibatches; monitors not included): what
    :attr:`History.flops_per_epoch` records, from the sizes alone."""
    n_rows = _checks.integer("n_rows", n_rows, 1)
    counter = _FlopCounter(sizes, config)
    return float(sum(counter.batch(rows)
                     for rows in _batch_rows(n_rows, min(config.batch_size, n_rows))))


# ---------------------------------------------------------------------------
# data sources of the general loop
# ---------------------------------------------------------------------------

class _ArraySource:
    """Fixed rows, a fresh permutation per epoch drawn from the loop's generator (the
    fused path's draws, in the same order)."""

    def __init__(self, X, y, batch_size, max_epochs, rng):
        self.X, self.y = X, y
        self.rng = rng
        self.n_features = X.shape[1]
        self.batch_rows = min(batch_size, X.shape[0])
        self.n_epochs = max_epochs
        self.batches_per_epoch = -(-X.shape[0] // self.batch_rows)
        self.total_steps = self.n_epochs * self.batches_per_epoch
        self._perm = None

    def epoch_batches(self, epoch: int) -> range:
        self._perm = self.rng.permutation(self.X.shape[0])
        return range(self.batches_per_epoch)

    def fill(self, batch: int, batch_X: np.ndarray, batch_y: np.ndarray) -> int:
        start = batch * self.batch_rows
        index = self._perm[start:start + self.batch_rows]
        rows = index.shape[0]
        # mode="clip": the indices are valid, and "raise" would buffer the output
        np.take(self.X, index, axis=0, out=batch_X[:rows], mode="clip")
        np.take(self.y, index, out=batch_y[:rows], mode="clip")
        return rows


# ---------------------------------------------------------------------------
# optimizer, schedule, FLOPs
# ---------------------------------------------------------------------------

class _Optimizer:
    """The configured optimizer's state (an :mod:`robnp.training.optim` object) and one
    step at a given step size and momentum, through the same kernels."""

    def __init__(self, config: TrainConfig, n_params: int, dtype, cycles_momentum: bool):
        self.kind = config.optimizer
        self.l2 = config.weight_decay if self.kind == "adam" else 0.0
        if self.kind == "sgd":
            # A cycled momentum is never 0, so the buffer must exist.
            momentum = OneCycle().max_momentum if cycles_momentum else config.momentum
            self.state = SGD(n_params, dtype, config.lr, momentum, 0.0, config.weight_decay,
                             config.nesterov)
        elif self.kind == "adamw":
            self.state = AdamW(n_params, dtype, config.lr, config.beta1, config.beta2,
                               config.adam_eps, config.weight_decay)
        else:
            self.state = Adam(n_params, dtype, config.lr, config.beta1, config.beta2,
                              config.adam_eps)
        self.decay_term = np.empty(n_params, dtype) if self.l2 else None
        self.l2_cast = np.dtype(dtype).type(self.l2)

    def step(self, params, grad, lr: float, momentum: float) -> None:
        """One update; ``momentum`` is SGD's momentum or Adam's ``beta1``."""
        state = self.state
        if self.kind == "sgd":
            kernels.sgd_update(params, grad, state.buf, state.t == 0, lr, momentum, 0.0,
                               state.weight_decay, state.nesterov)
            state.t += 1
            return
        if self.l2:
            # torch.optim.Adam's weight_decay: g + wd * p, then the moments
            np.multiply(params, self.l2_cast, out=self.decay_term)
            grad += self.decay_term
        state.t += 1
        if self.kind == "adamw":
            kernels.adamw_update(params, grad, state.m, state.v, state.t, lr, momentum,
                                 state.beta2, state.adam_eps, state.weight_decay)
        else:
            kernels.adam_update(params, grad, state.m, state.v, state.t, lr, momentum,
                                state.beta2, state.adam_eps)


def make_schedule(config: TrainConfig):
    """The configured schedule object (:mod:`robnp.training.schedules`)."""
    if config.schedule == "step":
        return StepDecay(config.lr, config.gamma, config.step_every)
    if config.schedule == "cosine":
        return Cosine(config.lr, config.lr_floor)
    if config.schedule == "one-cycle":
        return OneCycle(max_lr=config.lr, pct_start=config.pct_start)
    return Constant(config.lr)


class _FlopCounter:
    """Training FLOPs of a minibatch and monitoring FLOPs of a PGD run, counted with
    :mod:`robnp.flops`."""

    def __init__(self, sizes, config: TrainConfig):
        self.sizes = tuple(int(s) for s in sizes)
        self.config = config
        self._cache: dict[int, float] = {}
        n_params = flops.layer_counts(self.sizes)[0] + flops.layer_counts(self.sizes)[1]
        # Not in recipe_flops: Adam's L2 term (a multiply and an add per parameter) and
        # the weight average (two multiplies and an add per parameter), per step.
        self.extra = n_params * ((2 if config.optimizer == "adam" and config.weight_decay
                                  else 0) + (3 if config.ema else 0))
        fwd = flops.forward_flops(self.sizes)
        self.pgd_row = (MONITOR_STEPS * (fwd + flops.cross_entropy_flops(self.sizes[-1], False)
                                         + flops.input_backward_flops(self.sizes)
                                         + flops.attack_step_flops(self.sizes[0])) + fwd)

    def batch(self, rows: int) -> float:
        """FLOPs of one training minibatch of ``rows`` rows, its update included."""
        if rows not in self._cache:
            config = self.config
            cycled = config.schedule == "one-cycle"
            counted = get_recipe(config.recipe).flops(
                config.recipe_options, self.sizes, batch_size=rows,
                optimizer=config.optimizer, momentum=config.momentum > 0 or cycled,
                nesterov=config.nesterov, weight_decay=config.weight_decay > 0)
            # recipe_flops shares the update over the rows; the whole is an integer
            self._cache[rows] = float(round(counted.flops * rows)) + self.extra
        return self._cache[rows]

    def pgd(self, rows: int) -> float:
        """FLOPs of one monitoring PGD run on ``rows`` rows and its scoring."""
        return float(rows * self.pgd_row)


@single_blas_thread
def objective(model, X, y, config: TrainConfig | None = None, seed: int = 0) -> float:
    """Mean of the recipe's training objective over ``(X, y)`` for ``model`` as it
    is: what an epoch's loss measures, at the model's current weights (the noise of
    a random start drawn from ``default_rng(seed)`` for all rows at once). Compares
    a trained model's final loss with its loss at initialisation."""
    config = resolve_config(config, {})
    X = model.check_input(X)
    y = model.check_labels(y, X.shape[0])
    recipe = get_recipe(config.recipe)
    options = config.recipe_options
    n = X.shape[0]
    noise = None
    if options.needs_noise:
        noise = np.random.default_rng(seed).random(X.shape, dtype=model.dtype)
        noise *= 2
        noise -= 1
    workspace = recipe.workspace(model, min(CHUNK_ROWS, n))
    grad = np.empty_like(model.params)
    total = 0.0
    for a in range(0, n, CHUNK_ROWS):
        b = min(a + CHUNK_ROWS, n)
        total += recipe.gradient(model.params, model._sizes, X[a:b], y[a:b],
                                 None if noise is None else noise[a:b], options, workspace,
                                 grad, 1.0 / n)
    return total


def pgd_accuracy(model, X, y, eps: float) -> float:
    """The monitors' measure: accuracy of ``model`` under the evaluation's PGD
    (:func:`robnp.attacks.robust_accuracy`, ``MONITOR_STEPS`` steps of ``eps / 4``)."""
    from ..attacks import robust_accuracy

    return robust_accuracy(model, X, y, "pgd", eps=[eps], steps=MONITOR_STEPS)[eps]


# ---------------------------------------------------------------------------
# the general loop
# ---------------------------------------------------------------------------

def train_general(model, source, config: TrainConfig, n_threads: int = 1, validation=None,
                  check_batch=None) -> History:
    """The general loop over ``source`` (rows of fixed data or of a stream; see the
    module docstring). ``validation`` and ``check_batch`` are ``(X, y)`` for the
    robust selection and the overfitting check, or None."""
    if config.loss != "cross_entropy":
        raise ConfigError(f"loss={config.loss!r} trains only on the default path; recipes "
                          f"train on cross-entropy")
    recipe = get_recipe(config.recipe)
    options = config.recipe_options
    dtype = model.dtype
    params = model.params
    sizes = model._sizes
    n_params = params.shape[0]
    batch_rows = source.batch_rows
    n_chunks = -(-batch_rows // CHUNK_ROWS)
    chunk_rows = min(CHUNK_ROWS, batch_rows)
    workspaces = [recipe.workspace(model, chunk_rows) for _ in range(n_chunks)]
    grads = np.empty((n_chunks, n_params), dtype)
    chunk_loss = [0.0] * n_chunks
    batch_X = np.empty((batch_rows, source.n_features), dtype)
    batch_y = np.empty(batch_rows, np.int64)
    noise = np.empty((batch_rows, source.n_features), dtype) if options.needs_noise else None
    rng = getattr(source, "rng", None) or np.random.default_rng(config.seed)

    schedule = make_schedule(config)
    cycled = isinstance(schedule, OneCycle)
    optimizer = _Optimizer(config, n_params, dtype, cycled)
    fixed_momentum = config.momentum if config.optimizer == "sgd" else config.beta1
    total_steps = source.total_steps
    # Wang et al. (2023) start the average's decay after the one-cycle warm-up
    warmup = schedule.pct_start * total_steps if cycled else 0.0
    ema = EMA(params, config.ema_decay, warmup) if config.ema else None
    output = (lambda: ema.shadow) if ema is not None else (lambda: params)
    counter = _FlopCounter(model.layer_sizes, config)

    eps = config.eps
    monitor = model.copy() if (validation is not None or check_batch is not None) else None
    best_params = np.empty_like(params) if validation is not None else None
    previous = None
    if check_batch is not None:
        previous = (np.empty_like(params), None if ema is None else np.empty_like(params))
        np.copyto(previous[0], params)
        if ema is not None:
            np.copyto(previous[1], ema.shadow)

    n_epochs = source.n_epochs
    losses = np.empty(n_epochs, np.float64)
    epoch_flops = np.zeros(n_epochs, np.float64)
    val_acc = np.empty(n_epochs if validation is not None else 0, np.float64)
    overfit_acc = np.empty(n_epochs if check_batch is not None else 0, np.float64)
    monitor_flops = 0.0
    best_loss, stale, step, examples = np.inf, 0, 0, 0
    best_acc, best_epoch = -np.inf, None
    overfit_epoch = None
    stopped = False
    epoch = 0

    # The arguments of every chunk's call, made once per minibatch size (all minibatches
    # but an epoch's last share one): views, so no minibatch slices or allocates.
    chunk_args: dict[int, list] = {}

    def arguments(rows):
        if rows not in chunk_args:
            chunk_args[rows] = [
                (params, sizes, batch_X[a:b], batch_y[a:b],
                 None if noise is None else noise[a:b], options, workspaces[c], grads[c],
                 1.0 / rows)
                for c, (a, b) in enumerate((a, min(a + CHUNK_ROWS, rows))
                                           for a in range(0, rows, CHUNK_ROWS))]
        return chunk_args[rows]

    def work(c, args):
        chunk_loss[c] = recipe.gradient(*args)

    def run_chunks(rows, pool):
        calls = arguments(rows)
        count = len(calls)
        if pool is None or count == 1:
            for c in range(count):
                chunk_loss[c] = recipe.gradient(*calls[c])
        else:
            for _ in pool.map(work, range(count), calls):
                pass
        # in chunk order, whatever thread finished first
        total = grads[0]
        for c in range(1, count):
            total += grads[c]
        loss = 0.0
        for c in range(count):
            loss += chunk_loss[c]
        return total, loss

    pool = ThreadPoolExecutor(n_threads) if n_threads > 1 and n_chunks > 1 else None
    start = time.perf_counter()
    try:
        while epoch < n_epochs and not stopped:
            total_loss, n_batches = 0.0, 0
            for batch in source.epoch_batches(epoch):
                rows = source.fill(batch, batch_X, batch_y)
                if noise is not None:
                    draws = noise[:rows]
                    rng.random(dtype=dtype, out=draws)
                    draws *= 2
                    draws -= 1
                grad, loss = run_chunks(rows, pool)
                lr = schedule.lr_at(step, total_steps)
                momentum = schedule.momentum_at(step, total_steps) if cycled else fixed_momentum
                optimizer.step(params, grad, lr, momentum)
                step += 1
                if ema is not None:
                    ema.update(params)
                total_loss += loss
                n_batches += 1
                examples += rows
                epoch_flops[epoch] += counter.batch(rows)
            epoch += 1
            loss = total_loss / n_batches
            losses[epoch - 1] = loss
            if not np.isfinite(loss):
                raise TrainingDivergedError(
                    f"training diverged at epoch {epoch}: loss is {loss} "
                    f"(lr={config.lr}, dtype={dtype.name})")
            if check_batch is not None:
                acc = pgd_accuracy(model, check_batch[0], check_batch[1], eps)
                monitor_flops += counter.pgd(check_batch[0].shape[0])
                overfit_acc[epoch - 1] = acc
                if epoch > 1 and overfit_acc[epoch - 2] - acc > OVERFIT_DROP:
                    overfit_epoch = epoch
                    np.copyto(params, previous[0])
                    if ema is not None:
                        np.copyto(ema.shadow, previous[1])
                    stopped = True
                    break
                np.copyto(previous[0], params)
                if ema is not None:
                    np.copyto(previous[1], ema.shadow)
            if validation is not None:
                np.copyto(monitor.params, output())
                acc = pgd_accuracy(monitor, validation[0], validation[1], eps)
                monitor_flops += counter.pgd(validation[0].shape[0])
                val_acc[epoch - 1] = acc
                if acc > best_acc:
                    best_acc, best_epoch = acc, epoch
                    np.copyto(best_params, output())
            if loss < best_loss - config.min_delta:
                best_loss, stale = loss, 0
            else:
                stale += 1
                if config.patience is not None and stale >= config.patience:
                    stopped = True
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    seconds = time.perf_counter() - start

    selected = epoch - 1 if overfit_epoch is not None else epoch
    if validation is not None and best_epoch is not None:
        np.copyto(params, best_params)
        selected = best_epoch
    elif ema is not None:
        np.copyto(params, ema.shadow)
    evaluated = epoch - 1 if overfit_epoch is not None else epoch
    return History(
        epochs=epoch,
        final_loss=float(losses[epoch - 1]),
        best_loss=float(best_loss),
        loss=losses[:epoch].copy(),
        stopped_early=epoch < n_epochs,
        seconds=seconds,
        recipe=config.recipe,
        recipe_options=options.to_dict(),
        steps=step,
        examples=examples,
        flops_per_epoch=epoch_flops[:epoch].copy(),
        train_flops=float(epoch_flops[:epoch].sum()),
        monitor_flops=monitor_flops,
        ema=ema is not None,
        val_robust_acc=val_acc[:evaluated].copy(),
        best_epoch=best_epoch,
        best_val_robust_acc=None if best_epoch is None else float(best_acc),
        final_val_robust_acc=(float(val_acc[evaluated - 1])
                              if validation is not None and evaluated else None),
        overfit_acc=overfit_acc[:epoch].copy(),
        overfit=overfit_epoch is not None,
        overfit_epoch=overfit_epoch,
        selected_epoch=selected,
    )


_DEFAULT_CONFIG = TrainConfig()
