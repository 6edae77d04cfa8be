"""The one-pass data regime: train on fresh samples, each seen once.

The scaling-law paper (Bartoldson et al., 2024) counts data as examples seen, ``D``,
drawn fresh from the generator rather than revisited over epochs. A
:class:`SampleStream` is that source for a registered dataset
(:func:`robnp.data.make_dataset`): an endless sequence of examples in which example
``i`` is fixed by the dataset's settings, the seed and ``i`` alone, whatever batch
size or number of rows a caller draws it with.

It is drawn in blocks of ``block_size`` examples: block ``b`` comes from the
generator ``default_rng(SeedSequence([seed, b]))``, which draws the dataset's seed
for the block and then shuffles the block's rows (so a generator that emits its
classes in order still gives a mixed stream). ``block_size`` is part of the stream's
identity (a different block size is a different stream); reading the stream in any
pieces gives the same examples. Each block is one call of the generator for
``block_size`` points, so for the datasets whose noise-free points depend on the
points drawn (moons' and spirals' evenly spaced arcs) the stream's exact density is
:mod:`robnp.data.bayes`'s with ``n_samples=block_size``.

:func:`fit_stream` trains on the first ``examples`` of a stream in order, each once,
with the general loop of :mod:`robnp.training.fit`.
"""

from __future__ import annotations

import math

import numpy as np

from .. import _checks
from ..data import get_dataset, make_dataset
from ..errors import ConfigError
from ..threads import single_blas_thread
from .config import TrainConfig, resolve_config
from .fit import train_general

__all__ = ["SampleStream", "fit_stream", "BLOCK_SIZE"]

#: Examples per block of a stream unless told otherwise.
BLOCK_SIZE = 1024


class SampleStream:
    """Fresh examples of a registered dataset, example ``i`` fixed by ``(dataset,
    noise, input_dim, n_classes, seed, block_size, i)``.

    Parameters
    ----------
    dataset : str
        A registered dataset (:func:`robnp.data.dataset_names`).
    seed : int >= 0
    noise : float
        The generator's noise.
    input_dim : int
    n_classes : int or None
        For datasets with a variable number of classes.
    block_size : int >= 1
        Examples per block (see the module docstring).
    """

    def __init__(self, dataset: str, seed: int = 0, *, noise: float = 0.15,
                 input_dim: int = 2, n_classes: int | None = None,
                 block_size: int = BLOCK_SIZE):
        spec = get_dataset(dataset)
        self.dataset = dataset
        self.seed = _checks.integer("seed", seed, 0)
        self.noise = _checks.real("noise", noise, 0)
        self.input_dim = _checks.integer("input_dim", input_dim, spec.min_input_dim)
        self.n_classes = spec.classes(n_classes)
        self._class_option = n_classes
        self.block_size = _checks.integer("block_size", block_size, 1)
        self._cached: tuple[int, np.ndarray, np.ndarray] | None = None

    @property
    def n_features(self) -> int:
        return self.input_dim

    def identity(self) -> dict:
        """The settings that fix every example, as plain JSON values."""
        return {"dataset": self.dataset, "seed": self.seed, "noise": self.noise,
                "input_dim": self.input_dim, "n_classes": self.n_classes,
                "block_size": self.block_size}

    def block(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Block ``b``: ``X`` float32 of shape ``(block_size, input_dim)``, ``y`` int64
        of shape ``(block_size,)`` (the last one drawn is kept)."""
        if self._cached is not None and self._cached[0] == b:
            return self._cached[1], self._cached[2]
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, b]))
        data_seed = int(rng.integers(2 ** 63))
        X, y = make_dataset(self.dataset, self.block_size, self.noise, seed=data_seed,
                            input_dim=self.input_dim, n_classes=self._class_option)
        order = rng.permutation(self.block_size)
        X = np.ascontiguousarray(X[order], dtype=np.float32)
        y = np.ascontiguousarray(y[order], dtype=np.int64)
        self._cached = (b, X, y)
        return X, y

    def fill(self, start: int, X_out: np.ndarray, y_out: np.ndarray) -> None:
        """Examples ``start, start + 1, ...`` into ``X_out`` (shape ``(rows,
        input_dim)``, any float dtype) and ``y_out`` (shape ``(rows,)``)."""
        rows = X_out.shape[0]
        done = 0
        while done < rows:
            b, offset = divmod(start + done, self.block_size)
            X, y = self.block(b)
            take = min(rows - done, self.block_size - offset)
            X_out[done:done + take] = X[offset:offset + take]
            y_out[done:done + take] = y[offset:offset + take]
            done += take

    def take(self, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Examples ``start`` to ``start + count - 1`` as new arrays (float32, int64)."""
        start = _checks.integer("start", start, 0)
        count = _checks.integer("count", count, 0)
        X = np.empty((count, self.input_dim), np.float32)
        y = np.empty(count, np.int64)
        self.fill(start, X, y)
        return X, y


class _StreamSource:
    """The general loop's rows from a stream: minibatch ``k`` is examples
    ``k * batch_size`` to ``(k + 1) * batch_size - 1`` (the last one short), the run
    cut into ``epochs`` consecutive periods of whole minibatches."""

    def __init__(self, stream: SampleStream, examples: int, batch_size: int, epochs: int):
        self.stream = stream
        self.examples = examples
        self.n_features = stream.n_features
        self.batch_rows = min(batch_size, examples)
        self.total_steps = -(-examples // self.batch_rows)
        self.n_epochs = epochs

    def epoch_batches(self, epoch: int) -> range:
        return range(epoch * self.total_steps // self.n_epochs,
                     (epoch + 1) * self.total_steps // self.n_epochs)

    def fill(self, batch: int, batch_X: np.ndarray, batch_y: np.ndarray) -> int:
        start = batch * self.batch_rows
        rows = min(self.batch_rows, self.examples - start)
        self.stream.fill(start, batch_X[:rows], batch_y[:rows])
        return rows


@single_blas_thread
def fit_stream(model, stream: SampleStream, examples: int,
               config: TrainConfig | None = None, *, epochs: int = 1, n_threads: int = 1,
               on_epoch=None, **overrides):
    """Train ``model`` in place on the first ``examples`` examples of ``stream``, each
    seen once, in order.

    The run is cut into ``epochs`` consecutive periods of whole minibatches (one by
    default); the epoch loss, the stopping rules and the monitors apply per period
    as they do per epoch in :func:`robnp.fit` (``max_epochs`` is not used). Examples
    for ``select="robust"`` are the ``ceil(val_fraction * examples)`` examples that
    follow the training ones; the overfitting check's batch is the first
    ``batch_size`` training examples.

    Parameters
    ----------
    model : MLP
        Its input and class counts must match the stream's.
    stream : SampleStream
    examples : int >= 1
        ``D``, the examples trained on.
    config : TrainConfig, optional
    epochs : int in [1, number of minibatches]
    n_threads : int >= 1
        Threads for the chunks of a minibatch; results are the same for any value.
    on_epoch : callable, optional
        ``on_epoch(epoch, weights, examples, flops)`` after each period: the period
        (from 1), the weights the model would end with there (the average's with
        ``ema``; read only), the examples and training FLOPs so far. How the
        scaling study evaluates its checkpoints.
    **overrides
        Fields of :class:`TrainConfig` to replace.

    Returns
    -------
    History
    """
    if not isinstance(stream, SampleStream):
        raise ConfigError(f"stream must be a SampleStream, got {type(stream).__name__}")
    config = resolve_config(config, overrides)
    examples = _checks.integer("examples", examples, 1)
    n_threads = _checks.integer("n_threads", n_threads, 1)
    if model.n_features != stream.n_features or model.n_classes != stream.n_classes:
        raise ConfigError(f"the model takes {model.n_features} features and {model.n_classes} "
                          f"classes, the stream has {stream.n_features} and "
                          f"{stream.n_classes}")
    source = _StreamSource(stream, examples, config.batch_size, 1)
    epochs = _checks.integer("epochs", epochs, 1, source.total_steps)
    source.n_epochs = epochs
    validation = None
    if config.select == "robust":
        validation = stream.take(examples, int(math.ceil(config.val_fraction * examples)))
        validation = (model.check_input(validation[0]), validation[1])
    check_batch = None
    if config.checks_overfitting:
        X, y = stream.take(0, min(config.batch_size, examples))
        check_batch = (model.check_input(X), y)
    return train_general(model, source, config, n_threads, validation, check_batch, on_epoch)
