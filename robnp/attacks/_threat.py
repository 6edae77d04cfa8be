"""The threat model every attack shares: the radius, the optional data box, the
list of radii an evaluation sweeps, and the sign of a gradient.

The projection itself is compiled (:func:`robnp.kernels.project_linf`); here are the
checks at the Python boundary, written once for every attack.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np

from .. import _checks, _memory, kernels
from ..errors import ConfigError, DataError
from ..flops import forward_flops
from ..threads import single_blas_thread

__all__ = ["check_eps", "check_radii", "check_reach", "check_bounds", "gradient_sign", "NORMS",
           "check_norm", "check_threads", "thread_count", "chunk_bounds", "over_chunks", "run_chunks",
           "default_threads",
           "forward_chunks", "chunked_logits", "chunked_input_gradient",
           "available_cores", "row_flops", "MIN_FLOPS_PER_CHUNK", "AttackedModel",
           "top_wrong_class", "ATTACK_CHUNK_ROWS", "as_generator", "refuse_nan",
           "evaluation_memory", "check_evaluation_fits"]

#: Norms of the balls attacks work in.
NORMS = _checks.NORMS


def check_eps(eps) -> float:
    """``eps`` as a float; a clear error unless it is a finite number >= 0."""
    return _checks.real("eps", eps, 0)


def check_radii(eps) -> tuple[float, ...]:
    """One radius or a list of them (any iterable or 1-D array) as a tuple of floats,
    each finite and >= 0; the order is kept."""
    if hasattr(eps, "__iter__") and not isinstance(eps, (str, bytes, np.ndarray)):
        eps = list(eps)
    if np.ndim(eps) == 0:
        eps = [eps]
    elif np.ndim(eps) != 1:
        raise ConfigError(f"eps must be a number or a list of numbers, got {eps!r}")
    radii = tuple(check_eps(e) for e in eps)
    if not radii:
        raise ConfigError("eps must list at least one radius")
    return radii


def check_reach(radii, X: np.ndarray) -> None:
    """A one-line ``ConfigError`` naming ``eps`` unless every radius keeps the ball
    around the data, and a step across it, inside the range of ``X``'s dtype (the
    model's): ``max|X| + 2 eps <= finfo.max``. An attack's arithmetic reaches that
    far (a step of twice the radius in APGD, the difference of two points of the
    ball); beyond it a radius overflows to inf on the way to the model, and the
    points that come back are not finite."""
    limit = float(np.finfo(X.dtype).max)
    reach = float(np.max(np.abs(X))) if X.size else 0.0
    for eps in radii:
        if not reach + 2 * eps <= limit:
            raise ConfigError(
                f"eps must keep the ball around the data within the model's {X.dtype} "
                f"range (max|X| + 2 eps <= {limit:.4g}, max|X| = {reach:.4g}), got "
                f"{eps!r}")


def check_bounds(bounds) -> tuple[float, float, bool]:
    """``(lower, upper, use_bounds)`` from ``None`` or a pair ``lower < upper``; one
    side may be infinite."""
    if bounds is None:
        return 0.0, 0.0, False
    if np.ndim(bounds) != 1 or len(bounds) != 2:
        raise ConfigError(f"bounds must be a pair (lower, upper), got {bounds!r}")
    lower, upper = (_checks.real("bounds", b, finite=False) for b in bounds)
    if not lower < upper:
        raise ConfigError(f"bounds must satisfy lower < upper, got {bounds!r}")
    return lower, upper, True


def gradient_sign(name: str, gradient, X: np.ndarray, kinds: str) -> np.ndarray:
    """``sign(gradient)`` (-1, 0 or 1; NaN stays NaN) as a new C-contiguous array of
    ``X``'s dtype, once ``gradient`` is checked to be an array of ``X``'s shape with a
    dtype kind in ``kinds``. The sign is taken before the cast: a float64 gradient
    too small for float32 still points somewhere."""
    gradient = np.asarray(gradient)
    if gradient.shape != X.shape or gradient.dtype.kind not in kinds:
        what = "float" if kinds == "f" else "real"
        raise ConfigError(f"{name} must be a {what} array of X's shape {X.shape}, got "
                          f"{gradient.dtype} with shape {gradient.shape}")
    return np.ascontiguousarray(np.sign(gradient), dtype=X.dtype)


def check_norm(norm) -> str:
    """``norm`` if it names a ball in :data:`NORMS` (:func:`robnp._checks.norm`)."""
    return _checks.norm("norm", norm)


def check_threads(n_threads):
    """``None`` (decide by the work, see :func:`thread_count`) or an integer >= 1."""
    return None if n_threads is None else _checks.integer("n_threads", n_threads, 1)


#: Most rows of a chunk when an attack's batch is split across threads
#: (:func:`chunk_bounds`). The split depends on the rows alone, so that it, and with it
#: every result, is the same for any number of threads.
ATTACK_CHUNK_ROWS = 256

#: Floating-point operations a chunk must hold for a second thread to pay for itself
#: (starting a pool and handing chunks over costs about 1-3 ms on a busy machine).
#: Measured with ``benchmarks/bench_threads.py --threshold`` on 2 cores, six runs
#: under different loads (benchmarks/RESULTS.md): PGD-10 on 8 chunks of 256 rows broke
#: even on two threads between width 32 (1.9e7 FLOPs per chunk; 0.49x-1.69x) and width
#: 64 (6.9e7; 0.84x-2.46x, 1.25x on the quiet machine), and lost at width 16 (5.4e6)
#: in every run.
MIN_FLOPS_PER_CHUNK = 50_000_000

_default_threads: ContextVar[int | None] = ContextVar("robnp_default_threads", default=None)


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@contextmanager
def default_threads(n_threads):
    """Within the block, attacks (and :func:`robnp.fit`) whose ``n_threads`` is None
    use ``n_threads`` (None: decide by the work). The study runs each task with 1,
    since its workers already run in parallel; an option's value is left as it is."""
    token = _default_threads.set(check_threads(n_threads))
    try:
        yield
    finally:
        _default_threads.reset(token)


def thread_count(n_threads, n_rows: int, flops_per_row: float | None = None,
                 chunk_rows: int = ATTACK_CHUNK_ROWS) -> int:
    """Threads to use on ``n_rows`` rows in fixed chunks of ``chunk_rows``:
    ``n_threads`` when given (else the one :func:`default_threads` set); when neither
    is, every core (:func:`available_cores`) if a chunk holds at least
    :data:`MIN_FLOPS_PER_CHUNK` of work (``flops_per_row`` times the rows of the
    largest chunk of :func:`chunk_bounds`; unknown work counts as enough), else one.
    Never more threads than chunks."""
    bounds = chunk_bounds(n_rows, chunk_rows)
    chunks = len(bounds)
    if n_threads is None:
        n_threads = _default_threads.get()
    if n_threads is None:
        largest = max((stop - start for start, stop in bounds), default=0)
        enough = flops_per_row is None or largest * flops_per_row >= MIN_FLOPS_PER_CHUNK
        n_threads = available_cores() if enough else 1
    return max(1, min(n_threads, chunks))


def row_flops(target, passes: float) -> float | None:
    """Work per row of ``passes`` forward-pass equivalents through the attacked model
    (an MLP; None for a model of the protocol, whose cost is unknown)."""
    if not getattr(target, "fast", False):
        return None
    return passes * forward_flops(target.model.layer_sizes)


def chunk_bounds(n_rows: int, chunk_rows: int = ATTACK_CHUNK_ROWS) -> list[tuple[int, int]]:
    """The fixed chunks ``(start, stop)`` of ``n_rows`` rows, each of at most
    ``chunk_rows``: as few as that allows, their count rounded up to an even number
    (beyond one), and rows shared evenly (sizes differ by at most one). Fixed by the
    rows alone, never by the thread count; even and equal, so that two threads (or
    four, on multiples of four) finish together: 400 rows in chunks of at most 256
    are two of 200, not 256 and 144."""
    count = -(-n_rows // chunk_rows)
    if count > 1 and count % 2:
        count = min(count + 1, n_rows)  # (chunks of one row cannot be split further)
    base, extra = divmod(n_rows, max(count, 1))
    bounds, start = [], 0
    for c in range(count):
        stop = start + base + (c < extra)
        bounds.append((start, stop))
        start = stop
    return bounds


def over_chunks(work, n_rows: int, n_threads, flops_per_row: float | None = None,
                chunk_rows: int = ATTACK_CHUNK_ROWS) -> None:
    """Call ``work(start, stop)`` on the fixed chunks of :func:`chunk_bounds`, on up to
    ``thread_count(n_threads, n_rows, flops_per_row, chunk_rows)`` threads. ``work``
    must write only its rows and should call nogil kernels (with BLAS on one thread, as
    every entry point sets), so that the threads run in parallel and the result does
    not depend on their number."""
    bounds = chunk_bounds(n_rows, chunk_rows)
    run_chunks(work, bounds, thread_count(n_threads, n_rows, flops_per_row, chunk_rows))


def run_chunks(work, chunks, threads: int) -> None:
    """Call ``work(*chunk)`` for every chunk of ``chunks`` on up to ``threads`` threads
    of the kept pool (:func:`over_chunks` with the chunks given): each chunk's work
    must not depend on which thread runs it, or when."""
    if threads == 1 or len(chunks) < 2 or getattr(_chunk_thread, "busy", False):
        # one thread, or a chunk's work asking for chunks of its own: here, in order
        for chunk in chunks:
            work(*chunk)
        return
    threads = min(threads, len(chunks))
    # ``threads`` runners on the kept pool, each taking the next chunk until none is
    # left (or one has failed, or the caller was interrupted)
    following = iter(chunks)
    lock = threading.Lock()
    stop_early = threading.Event()

    def runner():
        _chunk_thread.busy = True
        try:
            while not stop_early.is_set():
                with lock:
                    chunk = next(following, None)
                if chunk is None:
                    return
                work(*chunk)
        except BaseException:
            stop_early.set()
            raise
        finally:
            _chunk_thread.busy = False

    runners = [_chunk_pool(threads).submit(runner) for _ in range(threads)]
    try:
        wait(runners)  # every chunk done, or failed, before anything is raised or read
    except BaseException:  # interrupted: no new chunk starts; the running ones finish
        stop_early.set()
        wait(runners)
        raise
    for future in runners:
        future.result()


#: The pool of chunk threads, kept for the life of the process and grown to the most
#: threads asked for: an evaluation hands out chunks several times, and starting
#: threads each time costs about 0.5 ms on 2 cores. A forked child starts without one
#: (its parent's threads do not exist in it).
_chunk_pools: list[tuple[int, ThreadPoolExecutor]] = []
_chunk_pools_lock = threading.Lock()
_chunk_thread = threading.local()


def _forget_chunk_pools() -> None:
    global _chunk_pools_lock
    _chunk_pools.clear()
    _chunk_pools_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_chunk_pools)


def _chunk_pool(threads: int) -> ThreadPoolExecutor:
    """A pool of at least ``threads`` threads (a larger request replaces it; the old
    one's threads end once idle)."""
    with _chunk_pools_lock:
        if not _chunk_pools or _chunk_pools[0][0] < threads:
            if _chunk_pools:
                _chunk_pools.pop()[1].shutdown(wait=False)
            _chunk_pools.append((threads, ThreadPoolExecutor(
                threads, thread_name_prefix="robnp-chunks")))
        return _chunk_pools[0][1]


@single_blas_thread
def forward_chunks(model, chunks, take, use, threads: int) -> None:
    """One forward pass of an MLP per chunk of ``chunks`` on up to ``threads`` threads
    (:func:`run_chunks`): ``take(*chunk)`` gives the chunk's inputs (the model's dtype,
    C-contiguous) and ``use(*chunk, Z)`` receives its logits (a scratch view, valid
    during the call). An evaluation's passes over all its points (the clean logits,
    the checks of what each attack found) run this way, so that they do not stay on
    one core while the attacks between them use every core."""
    def work(*chunk):
        X = take(*chunk)
        use(*chunk, kernels.forward(model.params, model.sizes, X,
                                    model.workspace(X.shape[0]).acts))

    run_chunks(work, chunks, threads)


def chunked_logits(model, X: np.ndarray, n_threads=None) -> np.ndarray:
    """The logits of an MLP at the rows of ``X`` (checked, the model's dtype), one
    forward pass per fixed chunk of :func:`chunk_bounds` (:func:`forward_chunks`): the
    same numbers for any number of threads."""
    out = np.empty((X.shape[0], model.layer_sizes[-1]), X.dtype)

    def use(lo, hi, Z):
        out[lo:hi] = Z

    forward_chunks(model, chunk_bounds(X.shape[0]), lambda lo, hi: X[lo:hi], use,
                   thread_count(n_threads, X.shape[0], forward_flops(model.layer_sizes)))
    return out


@single_blas_thread
def chunked_input_gradient(model, X: np.ndarray, y: np.ndarray, loss_kind: int,
                           n_threads=None) -> np.ndarray:
    """The gradient w.r.t. ``X`` of an MLP's mean loss (code ``loss_kind``) over the
    rows of ``X``, in fixed chunks of :data:`ATTACK_CHUNK_ROWS` rows on threads: each
    chunk scales its rows by ``1 / len(X)``, as the whole batch would."""
    dX = np.empty_like(X)
    scale = 1.0 / X.shape[0]

    def work(lo, hi):
        ws = model.workspace(hi - lo)
        kernels.scaled_input_grad(model.params, model.sizes, X[lo:hi], y[lo:hi], loss_kind,
                                  scale, dX[lo:hi], ws.acts, ws.dZ, ws.d0, ws.d1, False)

    over_chunks(work, X.shape[0], n_threads, 3 * forward_flops(model.layer_sizes))
    return dX


def refuse_nan(values: np.ndarray, method: str) -> np.ndarray:
    """``values`` unless it holds NaN: a model method that returns NaN would make
    every comparison after it false without a word (an arg-max picks the NaN, a
    gradient sign is NaN), so the method is named instead. Infinite values pass (a
    log posterior may be -inf)."""
    if values.dtype.kind not in "fc" or not np.isnan(values).any():
        return values
    if values.ndim == 0:
        raise DataError(f"{method} returned NaN")
    rows = np.isnan(values).reshape(values.shape[0], -1).any(axis=1)
    raise DataError(f"{method} returned NaN (first in row {int(np.argmax(rows))} of "
                    f"{values.shape[0]})")


#: Arrays of (n_points, n_features) an evaluation holds per radius and attack: the
#: attack's points kept in its result, the list the attack returns and the stack that
#: copies it (see robnp.attacks._evaluate.evaluate).
_POINT_ARRAYS_PER_ATTACK = 3
#: Arrays of (n_points, n_features) held once: the coerced X, the clean gradient of
#: each loss an attack starts from (cross-entropy and one more), and an attack's
#: starting points and best points.
_POINT_ARRAYS_ONCE = 6


def evaluation_memory(*, n_points: int, n_features: int, n_radii: int, n_attacks: int,
                      layer_sizes=None, itemsize: int = 4) -> _memory.MemoryEstimate:
    """Peak bytes of :func:`robnp.evaluate` (and of one attack's run, with
    ``n_attacks=1``): every attack's points at every radius, the per-sample worst
    case, the success flags, the clean gradients, and the model's workspace for all
    ``n_points`` rows (``layer_sizes``: an MLP's, or None for a model of the protocol,
    whose own memory is its own). Measured with tracemalloc: an upper bound, within
    2x for the study's attacks (tests/test_limits.py)."""
    n_points = _memory.check_size("n_points", n_points)
    n_features = _memory.check_size("n_features", n_features)
    point = n_points * n_features * itemsize
    flags = n_radii * n_points * (2 * n_attacks + 1)
    points = point * (_POINT_ARRAYS_ONCE + n_radii * (1 + _POINT_ARRAYS_PER_ATTACK * n_attacks))
    parts = [("attack points", f"n_points={n_points}, n_features={n_features}, "
              f"{n_radii} radii, {n_attacks} attacks", float(points + flags))]
    if layer_sizes is not None:
        sizes = [_memory.check_size("layer size", s) for s in layer_sizes]
        # the workspace of MLP.workspace(n_points) (four buffers), the logits, the
        # per-row losses, predictions and labels
        per_row = (sum(sizes[1:]) + sizes[-1] + 2 * max(sizes)) * itemsize + sizes[-1] * 16 + 32
        parts.append(("model workspace", f"n_points={n_points}, layer sizes {tuple(sizes)}",
                      float(n_points * per_row)))
    parts.append(("array objects", "a few arrays per attack and radius",
                  float(65536 + 4096 * n_radii * n_attacks)))
    return _memory.MemoryEstimate(tuple(parts))


def check_evaluation_fits(model, X, n_radii: int, n_attacks: int) -> None:
    """Refuse, in one line, an evaluation of the rows of ``X`` whose
    :func:`evaluation_memory` cannot fit; checked before ``X`` is coerced (copied)."""
    n_features = getattr(model, "n_features", None)
    shape = np.shape(X)
    if n_features is None or len(shape) != 2:
        return  # the input checks that follow say what is wrong
    n_points = shape[0]
    sizes = getattr(model, "layer_sizes", None)
    dtype = np.dtype(getattr(model, "dtype", np.float64))
    estimate = evaluation_memory(n_points=n_points, n_features=n_features, n_radii=n_radii,
                                 n_attacks=n_attacks, layer_sizes=sizes,
                                 itemsize=dtype.itemsize)
    _memory.check_fits(estimate, f"an evaluation of {n_points} points at {n_radii} radii by "
                                 f"{n_attacks} attack(s)")


class AttackedModel:
    """The model under attack, seen through the attack protocol.

    A :class:`robnp.MLP` runs the compiled kernels (``fast``). Any other object with
    ``logits(X) -> (n, n_classes)`` and ``input_gradient(X, y, loss) -> (n, d)`` (the
    gradient of the mean, or of the sum, of the named loss over the rows: attacks use
    only its direction per row) runs a NumPy loop over those two methods; targeted
    losses call ``input_gradient(X, y, loss, y_target=t)``. ``n_features``,
    ``n_classes`` and ``dtype`` are read when the object has them (the inputs are then
    checked against them; the dtype defaults to float64).
    """

    def __init__(self, model):
        from ..model import MLP

        self.model = model
        self.fast = isinstance(model, MLP)
        if not self.fast and not (callable(getattr(model, "logits", None))
                                  and callable(getattr(model, "input_gradient", None))):
            raise ConfigError(f"model must be an MLP or have logits(X) and "
                              f"input_gradient(X, y, loss) methods, got "
                              f"{type(model).__name__}")
        self.dtype = np.dtype(getattr(model, "dtype", np.float64))
        if self.dtype not in (np.float32, np.float64):
            raise ConfigError(f"model dtype must be float32 or float64, got {self.dtype}")
        self.n_features = getattr(model, "n_features", None)
        self._n_classes = getattr(model, "n_classes", None)

    def check_input(self, X) -> np.ndarray:
        if self.fast:
            return self.model.check_input(X)
        X = np.asarray(X)
        if X.ndim != 2 or (self.n_features is not None and X.shape[1] != self.n_features):
            width = self.n_features if self.n_features is not None else "n_features"
            raise DataError(f"X must have shape (n_samples, {width}), got {X.shape}")
        if X.shape[0] == 0:
            raise DataError("X has no rows")
        if not np.issubdtype(X.dtype, np.number) or X.dtype.kind == "c":
            raise DataError(f"X must be real numbers, got dtype {X.dtype}")
        return np.ascontiguousarray(X, dtype=self.dtype)

    def n_classes(self, X) -> int:
        if self._n_classes is None:
            self._n_classes = int(np.shape(self.model.logits(X[:1]))[1])
        return int(self._n_classes)

    def check_labels(self, y, X) -> np.ndarray:
        from ..model import check_labels

        return check_labels(y, X.shape[0], self.n_classes(X))

    def logits(self, X) -> np.ndarray:
        """Logits as a C-contiguous array of the model's dtype."""
        if self.fast:
            return kernels.forward(self.model.params, self.model.sizes, X,
                                   self.model.workspace(X.shape[0]).acts).copy()
        Z = np.ascontiguousarray(self.model.logits(X), dtype=self.dtype)
        if Z.ndim != 2 or Z.shape[0] != X.shape[0]:
            raise DataError(f"model.logits returned shape {Z.shape} for {X.shape[0]} rows")
        return refuse_nan(Z, "model.logits")

    def evaluate(self, X, y, t, loss: str, want_grad: bool = True):
        """Per-row loss (float64), predicted class and the input gradient (or None)
        at the rows of ``X`` over the protocol (the NumPy path)."""
        from ..losses import loss_code

        Z = self.logits(X)
        row_loss = np.empty(X.shape[0])
        pred = np.empty(X.shape[0], np.int64)
        kernels.logit_stats(loss_code(loss, True), Z, y, t, np.empty_like(Z), row_loss, pred)
        if not want_grad:
            return row_loss, pred, None
        if loss.endswith("_targeted"):
            grad = self.model.input_gradient(X, y, loss, y_target=t)
        else:
            grad = self.model.input_gradient(X, y, loss)
        grad = np.asarray(grad)
        if grad.shape != X.shape:
            raise DataError(f"model.input_gradient returned shape {grad.shape} for X of "
                            f"shape {X.shape}")
        return row_loss, pred, refuse_nan(np.ascontiguousarray(grad, dtype=self.dtype),
                                          "model.input_gradient")


def top_wrong_class(Z: np.ndarray, y: np.ndarray, rank: int = 1) -> np.ndarray:
    """The ``rank``-th most likely class other than the label of every row (rank 1:
    the strongest wrong class), int64 of shape (n,)."""
    Z = np.array(Z, np.float64)
    Z[np.arange(len(y)), y] = -np.inf
    order = np.argsort(-Z, axis=1, kind="stable")
    return np.ascontiguousarray(order[:, rank - 1], dtype=np.int64)


def as_generator(seed) -> np.random.Generator:
    """``seed`` itself when it is a Generator, else a new one seeded by it."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
