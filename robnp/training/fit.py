"""The training loop: minibatches, a recipe's gradient, an optimizer, a schedule,
weight averaging, stopping rules, checkpoint selection and FLOP accounting.

Two paths train a model, and they agree.

* **The fused path** (the study's default configuration: the standard recipe without
  label smoothing, Adam, a constant step size, no weight averaging, loss-based
  stopping, fixed data): up to :data:`EPOCHS_PER_CALL` epochs (as many as take about
  0.2 s, so that Ctrl-C stays prompt) are one compiled call
  (:func:`robnp.kernels.train_epochs`): gathering each minibatch, the forward and
  backward passes, the Adam update and the stopping rule all happen inside it, so a
  small network pays no Python overhead per minibatch.
  Python draws each epoch's shuffle from NumPy's generator beforehand, so the stream,
  and every result, is the same as one epoch per call.
* **The general loop** (everything else). Per minibatch: gather the rows; when the
  recipe asks for it, draw its U(-1, 1) noise for the whole minibatch from the loop's
  generator; split the rows into chunks of :data:`TRAIN_CHUNK_ROWS` (a split fixed by the
  minibatch's size alone); run the recipe's ``gradient`` on every chunk, on
  ``n_threads`` threads (the kernels release the GIL); add the chunk gradients in
  chunk order; take the optimizer step at the schedule's step size (and momentum);
  update the weight average. The result is bit-identical for any ``n_threads``.
  At the end of each epoch come the stopping rule and the monitors: robust
  validation accuracy for checkpoint selection (Rice et al., 2020) and the
  catastrophic-overfitting check (Wong et al., 2020). :func:`train_general` reads
  as these steps: ``_Chunks`` (a minibatch's rows and its gradient), ``_Updates``
  (schedule, optimizer, weight average: the optimizer objects of
  :mod:`robnp.training.optim` take every step) and ``_Monitors`` (the end-of-epoch
  checks and checkpoint selection).

How to train is a :class:`~robnp.training.config.TrainConfig` (importable from here
too). :func:`robnp.training.stream.fit_stream` runs the same general loop on a stream of
fresh samples, each seen once.
"""

from __future__ import annotations

import dataclasses
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..threads import single_blas_thread
from .. import _checks, _memory, flops, kernels
from ..errors import ConfigError, TrainingDivergedError
from ..attacks._threat import thread_count
from ..losses import loss_code
from .config import OPTIMIZERS, SCHEDULE_NAMES, TrainConfig, resolve_config
from .ema import EMA
from .optim import SGD, Adam, AdamW
from .recipes import get_recipe
from .schedules import Constant, Cosine, OneCycle, StepDecay

__all__ = ["TrainConfig", "History", "fit", "objective", "epoch_flops", "train_general",
           "make_optimizer", "make_schedule", "TRAIN_CHUNK_ROWS", "OPTIMIZERS", "SCHEDULE_NAMES",
           "MONITOR_STEPS", "OVERFIT_DROP", "EPOCHS_PER_CALL", "PERMUTATION_BUDGET",
           "fit_memory"]

#: Rows per chunk of a minibatch in the general loop. Fixed, so that a minibatch's split,
#: and with it every sum of chunk gradients, depends on its size alone.
TRAIN_CHUNK_ROWS = 64
#: PGD steps of the monitors (step size eps / 4, the evaluation's own PGD).
MONITOR_STEPS = 10
#: A drop of the monitored PGD accuracy on the fixed training batch larger than this
#: from one epoch to the next is catastrophic overfitting (Wong et al., 2020).
OVERFIT_DROP = 0.2


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


#: The fused path's most epochs per compiled call. Their shuffles are drawn before the
#: call and held at once (the memory estimate, :func:`robnp.limits.training_memory`,
#: counts them).
EPOCHS_PER_CALL = 16
#: The most permutation entries (int64, one per training row and epoch) the fused path
#: holds at once: a large training set gets fewer epochs per call.
PERMUTATION_BUDGET = 1 << 20
# About this long a compiled call, so that Ctrl-C (handled between calls) stays prompt.
_SECONDS_PER_CALL = 0.2
# Tests set this to run the default configuration through the general loop.
_FORCE_GENERAL = False


@single_blas_thread
def fit(model, X, y, config: TrainConfig | None = None, *, n_threads: int | None = None,
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
    n_threads : int >= 1 or None
        Threads of the general loop (chunks of a minibatch run in parallel); the
        result is the same for any value. None (the default): the value
        :func:`robnp.attacks._threat.default_threads` set, else every core when a
        chunk's work is worth a thread (:func:`robnp.attacks._threat.thread_count`).
        The fused path runs on one.
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
    n_threads = None if n_threads is None else _checks.integer("n_threads", n_threads, 1)
    n_rows = np.shape(X)[0] if np.ndim(X) else 0
    if n_rows and hasattr(model, "layer_sizes"):
        _memory.check_fits(fit_memory(model.layer_sizes, n_rows, config, model.dtype.itemsize),
                           f"training on {n_rows} rows")
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
    batch_rows = min(config.batch_size, X.shape[0])
    n_threads = thread_count(n_threads, batch_rows,
                             epoch_flops(model.layer_sizes, config, batch_rows) / batch_rows,
                             TRAIN_CHUNK_ROWS)
    return train_general(model, source, config, n_threads, validation, check_batch)


#: Row-sized arrays a recipe's chunk workspace may hold beyond the model's workspace
#: (adversarial points, their gradient, the best points, a clean distribution), each
#: of ``n_features + n_classes`` values per row.
_RECIPE_ROW_ARRAYS = 4


def _workspace_bytes(sizes, rows: int, itemsize: int) -> int:
    """The four kernel buffers of ``MLP.workspace(rows)``."""
    return rows * (sum(sizes[1:]) + sizes[-1] + 2 * max(sizes)) * itemsize


def fit_memory(layer_sizes, n_rows: int, config: TrainConfig,
               itemsize: int = 4) -> _memory.MemoryEstimate:
    """Peak bytes :func:`fit` allocates beyond the model and the data it is given, for
    a model of ``layer_sizes`` trained on ``n_rows`` rows: the fused path's buffers
    (a gradient, Adam's moments, a minibatch's workspace, the shuffles of one
    compiled call, the epoch losses) or the general loop's (a gradient and a recipe
    workspace per chunk of a minibatch, the optimizer's state, the weight average,
    the monitors' copies and their PGD on the validation and check rows, the
    split's copies of the rows), and one copy of the rows in the model's dtype."""
    sizes = tuple(_memory.check_size("layer size", s) for s in layer_sizes)
    n_rows = _memory.check_size("n_rows", n_rows)
    max_epochs = _memory.check_size("max_epochs", config.max_epochs)
    n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    d = sizes[0]
    batch_rows = min(_memory.check_size("batch_size", config.batch_size), max(n_rows, 1))
    described = f"batch_size={config.batch_size}, layer sizes {sizes}"
    data = n_rows * (d * itemsize + 8)
    if config.fused:
        epochs_at_once = max(1, min(EPOCHS_PER_CALL, PERMUTATION_BUDGET // max(n_rows, 1),
                                    max_epochs))
        vectors = 3 * n_params * itemsize
        loop = (_workspace_bytes(sizes, batch_rows, itemsize) + batch_rows * (d * itemsize + 8)
                + (epochs_at_once + 1) * n_rows * 8)
        # the losses, their copy in the History, the FLOPs per epoch
        per_epoch = 4 * 8 * max_epochs
    else:
        n_chunks = -(-batch_rows // TRAIN_CHUNK_ROWS)
        chunk_rows = min(TRAIN_CHUNK_ROWS, batch_rows)
        # per chunk a gradient; the optimizer's two moments (or SGD's buffer and the
        # L2 term), the weight average, the best checkpoint, the previous epoch's
        # weights (live and averaged), the monitors' model copy
        vectors = (n_chunks + 7) * n_params * itemsize
        rows_per_row = config.recipe_options.model_rows_per_row
        loop = (n_chunks * (_workspace_bytes(sizes, chunk_rows * rows_per_row, itemsize)
                            + _RECIPE_ROW_ARRAYS * chunk_rows * (d + sizes[-1]) * itemsize)
                + 2 * batch_rows * d * itemsize + batch_rows * 8
                + n_rows * (d * itemsize + 4 * 8))
        n_val = math.ceil(config.val_fraction * n_rows) if config.select == "robust" else 0
        for rows in (n_val, batch_rows):
            loop += (_workspace_bytes(sizes, rows, itemsize) + 5 * rows * d * itemsize
                     + 2 * rows * 8)
        # per epoch: losses, FLOPs, monitor accuracies, and Python floats in lists
        per_epoch = 12 * 8 * max_epochs
    return _memory.MemoryEstimate((
        ("parameter-sized buffers", described, float(vectors)),
        ("minibatch buffers", f"{n_rows} rows, {described}", float(loop + data)),
        ("per-epoch records", f"max_epochs={config.max_epochs}", float(per_epoch)),
        ("array objects", "a few arrays per chunk", 65536.0),
    ))


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
    most = max(1, min(EPOCHS_PER_CALL, PERMUTATION_BUDGET // n_samples))
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
            params, model.sizes, X, y, perms, batch_rows, code, adam, step, buffers,
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

def make_optimizer(config: TrainConfig, n_params: int, dtype, cycles_momentum: bool):
    """The configured optimizer (:mod:`robnp.training.optim`) for ``n_params``
    parameters of ``dtype``; the loop steps it with the schedule's step size and
    momentum (SGD's ``momentum``, or Adam's ``beta1``)."""
    if config.optimizer == "sgd":
        # A cycled momentum is never 0, so the buffer must exist.
        momentum = OneCycle().max_momentum if cycles_momentum else config.momentum
        return SGD(n_params, dtype, config.lr, momentum, 0.0, config.weight_decay,
                   config.nesterov)
    # Adam's weight_decay is L2 regularisation, AdamW's decoupled decay (PyTorch's).
    kind = AdamW if config.optimizer == "adamw" else Adam
    return kind(n_params, dtype, config.lr, config.beta1, config.beta2, config.adam_eps,
                config.weight_decay)


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
    workspace = recipe.workspace(model, min(TRAIN_CHUNK_ROWS, n))
    grad = np.empty_like(model.params)
    total = 0.0
    for a in range(0, n, TRAIN_CHUNK_ROWS):
        b = min(a + TRAIN_CHUNK_ROWS, n)
        total += recipe.gradient(model.params, model.sizes, X[a:b], y[a:b],
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

class _Chunks:
    """A minibatch's buffers and its gradient: the rows (and the recipe's noise) of
    one minibatch, split into chunks of :data:`TRAIN_CHUNK_ROWS` rows, each chunk's
    gradient computed by the recipe (on a pool of threads when there are several),
    then summed in chunk order."""

    def __init__(self, model, recipe, options, source, n_threads: int):
        dtype = model.dtype
        batch_rows = source.batch_rows
        n_chunks = -(-batch_rows // TRAIN_CHUNK_ROWS)
        chunk_rows = min(TRAIN_CHUNK_ROWS, batch_rows)
        self.recipe = recipe
        self.options = options
        self.params = model.params
        self.sizes = model.sizes
        self.dtype = dtype
        self.workspaces = [recipe.workspace(model, chunk_rows) for _ in range(n_chunks)]
        self.grads = np.empty((n_chunks, model.params.shape[0]), dtype)
        self.losses = [0.0] * n_chunks
        self.X = np.empty((batch_rows, source.n_features), dtype)
        self.y = np.empty(batch_rows, np.int64)
        self.noise = (np.empty((batch_rows, source.n_features), dtype) if options.needs_noise
                      else None)
        # The arguments of every chunk's call, made once per minibatch size (all
        # minibatches but an epoch's last share one): views, so no minibatch slices
        # or allocates.
        self._calls: dict[int, list] = {}
        self.pool = ThreadPoolExecutor(n_threads) if n_threads > 1 and n_chunks > 1 else None

    def fill(self, source, batch, rng) -> int:
        """Gather minibatch ``batch`` of ``source`` and, when the recipe asks for it,
        draw its U(-1, 1) noise for all its rows at once; its row count."""
        rows = source.fill(batch, self.X, self.y)
        if self.noise is not None:
            draws = self.noise[:rows]
            rng.random(dtype=self.dtype, out=draws)
            draws *= 2
            draws -= 1
        return rows

    def _arguments(self, rows: int) -> list:
        if rows not in self._calls:
            noise = self.noise
            self._calls[rows] = [
                (self.params, self.sizes, self.X[a:b], self.y[a:b],
                 None if noise is None else noise[a:b], self.options, self.workspaces[c],
                 self.grads[c], 1.0 / rows)
                for c, (a, b) in enumerate((a, min(a + TRAIN_CHUNK_ROWS, rows))
                                           for a in range(0, rows, TRAIN_CHUNK_ROWS))]
        return self._calls[rows]

    def _work(self, c: int, args) -> None:
        self.losses[c] = self.recipe.gradient(*args)

    def gradient(self, rows: int) -> tuple[np.ndarray, float]:
        """The minibatch's mean gradient (a view of the first chunk's buffer) and
        mean loss, for the ``rows`` rows :meth:`fill` gathered."""
        calls = self._arguments(rows)
        count = len(calls)
        if self.pool is None or count == 1:
            for c in range(count):
                self.losses[c] = self.recipe.gradient(*calls[c])
        else:
            for _ in self.pool.map(self._work, range(count), calls):
                pass
        # in chunk order, whatever thread finished first
        total = self.grads[0]
        for c in range(1, count):
            total += self.grads[c]
        loss = 0.0
        for c in range(count):
            loss += self.losses[c]
        return total, loss

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)


class _Updates:
    """Everything one optimizer step involves: the schedule's step size (and cycled
    momentum) at the step count, the optimizer's update, the weight average."""

    def __init__(self, config: TrainConfig, params, total_steps: int):
        self.schedule = make_schedule(config)
        self.cycled = isinstance(self.schedule, OneCycle)
        self.optimizer = make_optimizer(config, params.shape[0], params.dtype, self.cycled)
        self.fixed_momentum = config.momentum if config.optimizer == "sgd" else config.beta1
        self.total_steps = total_steps
        # Wang et al. (2023) start the average's decay after the one-cycle warm-up
        warmup = self.schedule.pct_start * total_steps if self.cycled else 0.0
        self.ema = EMA(params, config.ema_decay, warmup) if config.ema else None
        self.params = params
        self.steps = 0

    def step(self, grad) -> None:
        schedule, step, total = self.schedule, self.steps, self.total_steps
        lr = schedule.lr_at(step, total)
        momentum = schedule.momentum_at(step, total) if self.cycled else self.fixed_momentum
        self.optimizer.step(self.params, grad, lr, momentum)
        self.steps += 1
        if self.ema is not None:
            self.ema.update(self.params)

    def weights(self):
        """The weights the monitors evaluate and the model ends with: the average's
        when there is one."""
        return self.ema.shadow if self.ema is not None else self.params


class _Monitors:
    """The end-of-epoch monitors: the catastrophic-overfitting check (Wong et al.,
    2020) on a fixed training batch, which restores the previous epoch's weights
    when the PGD accuracy drops by more than :data:`OVERFIT_DROP`, and the robust
    validation accuracy that checkpoint selection keeps the best epoch of (Rice et
    al., 2020)."""

    def __init__(self, model, updates: _Updates, eps, validation, check_batch,
                 counter: "_FlopCounter", n_epochs: int):
        params = model.params
        self.model = model
        self.updates = updates
        self.eps = eps
        self.validation = validation
        self.check_batch = check_batch
        self.counter = counter
        self.copy = model.copy() if (validation is not None or check_batch is not None) else None
        self.best_params = np.empty_like(params) if validation is not None else None
        self.previous = None
        if check_batch is not None:
            self.previous = (np.empty_like(params),
                             None if updates.ema is None else np.empty_like(params))
            self._keep_previous()
        self.val_acc = np.empty(n_epochs if validation is not None else 0, np.float64)
        self.overfit_acc = np.empty(n_epochs if check_batch is not None else 0, np.float64)
        self.flops = 0.0
        self.best_acc, self.best_epoch = -np.inf, None
        self.overfit_epoch = None

    def _keep_previous(self) -> None:
        np.copyto(self.previous[0], self.model.params)
        if self.updates.ema is not None:
            np.copyto(self.previous[1], self.updates.ema.shadow)

    def overfitting(self, epoch: int) -> bool:
        """Run the overfitting check after ``epoch`` (from 1); True when it fired
        (the previous epoch's weights are then restored)."""
        if self.check_batch is None:
            return False
        X, y = self.check_batch
        acc = pgd_accuracy(self.model, X, y, self.eps)
        self.flops += self.counter.pgd(X.shape[0])
        self.overfit_acc[epoch - 1] = acc
        if epoch > 1 and self.overfit_acc[epoch - 2] - acc > OVERFIT_DROP:
            self.overfit_epoch = epoch
            np.copyto(self.model.params, self.previous[0])
            if self.updates.ema is not None:
                np.copyto(self.updates.ema.shadow, self.previous[1])
            return True
        self._keep_previous()
        return False

    def validate(self, epoch: int) -> None:
        """Robust validation accuracy after ``epoch``; keep the weights if best."""
        if self.validation is None:
            return
        X, y = self.validation
        np.copyto(self.copy.params, self.updates.weights())
        acc = pgd_accuracy(self.copy, X, y, self.eps)
        self.flops += self.counter.pgd(X.shape[0])
        self.val_acc[epoch - 1] = acc
        if acc > self.best_acc:
            self.best_acc, self.best_epoch = acc, epoch
            np.copyto(self.best_params, self.updates.weights())

    def select(self, epoch: int) -> int:
        """Put the selected weights in the model after ``epoch`` epochs: the best
        validation epoch's, else the average's, else the live ones; that epoch."""
        params = self.model.params
        selected = epoch - 1 if self.overfit_epoch is not None else epoch
        if self.validation is not None and self.best_epoch is not None:
            np.copyto(params, self.best_params)
            selected = self.best_epoch
        elif self.updates.ema is not None:
            np.copyto(params, self.updates.ema.shadow)
        return selected


def _check_finite(loss: float, epoch: int, config: TrainConfig, dtype) -> None:
    if not np.isfinite(loss):
        raise TrainingDivergedError(
            f"training diverged at epoch {epoch}: loss is {loss} "
            f"(lr={config.lr}, dtype={dtype.name})")


def _train_epoch(epoch: int, source, chunks: _Chunks, updates: _Updates, rng,
                 counter: "_FlopCounter", epoch_flops: np.ndarray) -> tuple[float, int]:
    """One epoch's minibatches, each: gather, gradient, step. The epoch's loss (the
    mean of its minibatch losses) and the rows it trained on; its FLOPs are added to
    ``epoch_flops[epoch]``."""
    total_loss, n_batches, examples = 0.0, 0, 0
    for batch in source.epoch_batches(epoch):
        rows = chunks.fill(source, batch, rng)
        grad, loss = chunks.gradient(rows)
        updates.step(grad)
        total_loss += loss
        n_batches += 1
        examples += rows
        epoch_flops[epoch] += counter.batch(rows)
    return total_loss / n_batches, examples


def train_general(model, source, config: TrainConfig, n_threads: int = 1, validation=None,
                  check_batch=None, on_epoch=None) -> History:
    """The general loop over ``source`` (rows of fixed data or of a stream; see the
    module docstring). ``validation`` and ``check_batch`` are ``(X, y)`` for the
    robust selection and the overfitting check, or None. ``on_epoch(epoch, weights,
    examples, flops)``, when given, is called after each epoch's monitors with the
    epoch (from 1), the weights the model would end with if training stopped there
    (the average's when there is one; read them, do not keep or change them), the
    examples and the training FLOPs so far."""
    if config.loss != "cross_entropy":
        raise ConfigError(f"loss={config.loss!r} trains only on the default path; recipes "
                          f"train on cross-entropy")
    options = config.recipe_options
    rng = getattr(source, "rng", None) or np.random.default_rng(config.seed)
    updates = _Updates(config, model.params, source.total_steps)
    counter = _FlopCounter(model.layer_sizes, config)
    n_epochs = source.n_epochs
    monitors = _Monitors(model, updates, config.eps, validation, check_batch, counter,
                         n_epochs)
    losses = np.empty(n_epochs, np.float64)
    epoch_flops = np.zeros(n_epochs, np.float64)
    best_loss, stale, examples, epoch = np.inf, 0, 0, 0
    # last: it may start a pool of threads, which the loop's end shuts down
    chunks = _Chunks(model, get_recipe(config.recipe), options, source, n_threads)
    start = time.perf_counter()
    try:
        while epoch < n_epochs:
            loss, rows = _train_epoch(epoch, source, chunks, updates, rng, counter,
                                      epoch_flops)
            examples += rows
            epoch += 1
            losses[epoch - 1] = loss
            _check_finite(loss, epoch, config, model.dtype)
            if monitors.overfitting(epoch):
                break
            monitors.validate(epoch)
            if on_epoch is not None:
                on_epoch(epoch, updates.weights(), examples, float(epoch_flops[:epoch].sum()))
            # the stopping rule: patience epochs without improvement of the loss
            if loss < best_loss - config.min_delta:
                best_loss, stale = loss, 0
            else:
                stale += 1
                if config.patience is not None and stale >= config.patience:
                    break
    finally:
        chunks.close()
    seconds = time.perf_counter() - start

    selected = monitors.select(epoch)
    evaluated = epoch - 1 if monitors.overfit_epoch is not None else epoch
    val_acc = monitors.val_acc
    return History(
        epochs=epoch,
        final_loss=float(losses[epoch - 1]),
        best_loss=float(best_loss),
        loss=losses[:epoch].copy(),
        stopped_early=epoch < n_epochs,
        seconds=seconds,
        recipe=config.recipe,
        recipe_options=options.to_dict(),
        steps=updates.steps,
        examples=examples,
        flops_per_epoch=epoch_flops[:epoch].copy(),
        train_flops=float(epoch_flops[:epoch].sum()),
        monitor_flops=monitors.flops,
        ema=updates.ema is not None,
        val_robust_acc=val_acc[:evaluated].copy(),
        best_epoch=monitors.best_epoch,
        best_val_robust_acc=(None if monitors.best_epoch is None
                             else float(monitors.best_acc)),
        final_val_robust_acc=(float(val_acc[evaluated - 1])
                              if validation is not None and evaluated else None),
        overfit_acc=monitors.overfit_acc[:epoch].copy(),
        overfit=monitors.overfit_epoch is not None,
        overfit_epoch=monitors.overfit_epoch,
        selected_epoch=selected,
    )
