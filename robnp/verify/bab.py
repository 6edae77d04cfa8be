"""Exact robustness verdicts: attacks, sound bounds, then input-splitting branch and bound.

For each point, :func:`verify` decides whether the model, *as it runs in its own
dtype*, classifies every input of the eps-ball around it as its label:

1. **Clean check.** A point the model misclassifies is ``not_robust``, with the
   clean point as its counterexample. With ``eps = 0`` the remaining points are
   ``robust``: the verdict is clean correctness.
2. **Attack.** PGD on the Carlini-Wagner margin (``robnp.attacks.pgd``) from the
   clean point, and the ball's corners (inputs of dimension <= 4). A candidate is
   accepted only after re-checking, in the model's dtype, that it lies in the ball
   (``|x' - x|_inf <= eps``, and inside ``bounds``) and that the model's arg-max
   (first index on ties, as :func:`robnp.kernels.count_correct`) differs from the
   label.
3. **Bounds on the whole ball.** IBP and CROWN (:mod:`robnp.verify.bounds`), sound
   for the model's float evaluation; a positive bound on every margin is ``robust``.
4. **More attack** on what is left: PGD with random starts.
5. **Branch and bound** over the input box (L-infinity only; in the spirit of
   BaB-style complete verifiers, Bunel et al., 2018, "A Unified View of Piecewise
   Linear Neural Network Verification"). Each point keeps a heap of sub-boxes
   ordered by their bound (best-first: the lowest bound is split next). A box is
   halved along the input dimension with the largest ``|a_k| (hi_k - lo_k)``, where
   ``a`` is CROWN's linear lower bound of the worst margin, unless that side is more
   than four times narrower than the box's widest, which is halved instead. Children with a
   positive bound are done; for every other child the corner minimising that
   linear bound is evaluated by the model, which gives real counterexamples. A box
   on which every neuron is stable is a region where the network is affine, so its
   minimum is at that corner and the bound is exact up to rounding: if the corner
   is classified correctly yet the bound is not positive, the margin there is
   within floating-point error of zero: the box is set aside, and unless another box
   yields a counterexample the point ends ``undecided``. Rounds are vectorised over
   all points and many boxes at once.

``budget`` bounds the number of sub-boxes bounded per point; a point whose budget
runs out is ``undecided``. For inputs of dimension <= 4 this is complete in
practice: boxes shrink until the bound is positive or a corner is misclassified,
except when the true minimum margin is zero to within rounding.

**L2 balls.** Attacks are the attacks' L2 PGD (``robnp.attacks.pgd`` with
``norm="l2"``: normalised-gradient steps, exact projection onto ball and box, random
starts uniform in the ball) and the L-infinity PGD inside the inscribed cube; bounds
use the dual norm (``min a x = a x0 - eps ||a||_2``). There is no branch and bound
over an L2 ball: what neither decides is ``undecided``.
"""

from __future__ import annotations

import heapq
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np

from .. import _checks, _memory
from ..attacks import check_eps, check_reach, pgd
from ..attacks._threat import (check_threads, chunked_logits, default_threads,
                              evaluation_memory)
from ..errors import ConfigError
from ..threads import single_blas_thread
from .bounds import (Box, Float64Net, bound_threads, check_verifiable,
                     chunk_rows, input_region, region_margin_bounds, row_elements)

__all__ = ["Verification", "Bracket", "verify", "verify_radii", "exact_robust_accuracy",
           "verification_memory",
           "ROBUST", "NOT_ROBUST", "UNDECIDED"]

ROBUST, NOT_ROBUST, UNDECIDED = "robust", "not_robust", "undecided"
_VERDICT_DTYPE = "<U10"
_MAX_CORNER_DIM = 4
_BATCH_BOXES = 2048          # sub-boxes bounded together in one branch-and-bound round


@dataclass(frozen=True)
class Bracket:
    """Robust accuracy known to lie in ``[certified, attack]``.

    ``certified`` is the fraction of points proven robust, ``attack`` one minus the
    fraction with a verified counterexample; ``undecided`` points make the gap."""

    certified: float
    attack: float
    undecided: int

    @property
    def exact(self) -> float | None:
        """The robust accuracy when nothing is undecided, else None."""
        return self.certified if self.undecided == 0 else None


@dataclass(frozen=True)
class Verification:
    """Verdicts for every point at one radius.

    Attributes
    ----------
    eps : float
    norm : {"linf", "l2"}
    verdict : ndarray of shape (n,), str: "robust", "not_robust" or "undecided"
    margin : ndarray of shape (n,), float64
        For ``robust`` points a certified lower bound (> 0) on the smallest margin
        ``z_y - max_{j != y} z_j`` over the ball, for the model as it runs; for
        ``not_robust`` points the margin at the counterexample (<= 0); for
        ``undecided`` points the best lower bound reached (<= 0).
    counterexample : ndarray of shape (n, n_features), the model's dtype
        A verified counterexample for ``not_robust`` rows; NaN elsewhere.
    decided_by : ndarray of shape (n,), str
        ``clean``, ``attack``, ``bound`` (whole-ball bound), ``bab`` (branch and
        bound), ``budget`` (ran out), ``rounding`` (margin zero to within
        rounding), ``unsplit`` (no branch and bound for this norm), or, from
        :func:`verify_radii`, ``larger`` (robust at a larger radius).
    branches : ndarray of shape (n,), int64
        Sub-boxes bounded by branch and bound for the point.
    """

    eps: float
    norm: str
    verdict: np.ndarray
    margin: np.ndarray
    counterexample: np.ndarray
    decided_by: np.ndarray
    branches: np.ndarray

    def count(self, verdict: str) -> int:
        return int(np.sum(self.verdict == verdict))

    @property
    def bracket(self) -> Bracket:
        n = self.verdict.shape[0]
        return Bracket(self.count(ROBUST) / n, (n - self.count(NOT_ROBUST)) / n,
                       self.count(UNDECIDED))


# ---------------------------------------------------------------------------
# counterexample checks
# ---------------------------------------------------------------------------

def _margins(model, X, y) -> np.ndarray:
    """``z_y - max_{j != y} z_j`` of the model's own logits, float64, shape (n,)
    (no rows: none)."""
    if X.shape[0] == 0:
        return np.empty(0)
    Z = _logits(model, X).astype(np.float64)
    rows = np.arange(X.shape[0])
    own = Z[rows, y].copy()
    Z[rows, y] = -np.inf
    return own - Z.max(axis=1)


def _misclassified(model, X, y) -> np.ndarray:
    """The model's arg-max (first index on ties) differs from ``y`` (no rows: none)."""
    if X.shape[0] == 0:
        return np.zeros(0, bool)
    return _logits(model, X).argmax(axis=1) != y


def _logits(model, X) -> np.ndarray:
    """The model's logits at the rows of ``X``, a forward pass per fixed chunk of rows
    on threads (:func:`robnp.attacks._threat.chunked_logits`): the checks of candidate
    counterexamples run on every core, as the attacks and bounds around them do."""
    return chunked_logits(model, model.check_input(X))


def _in_ball(model, X0, Xc, eps, norm, bounds) -> np.ndarray:
    """Rows of ``Xc`` inside the ball around ``X0`` (and ``bounds``), checked in the
    model's dtype."""
    cast = model.dtype.type
    diff = Xc - X0                        # both in the model's dtype
    if norm == "linf":
        inside = np.abs(diff).max(axis=1) <= cast(eps)
    else:
        inside = np.sqrt(np.sum(diff * diff, axis=1, dtype=model.dtype)) <= cast(eps)
    if bounds is not None:
        inside &= np.all((Xc >= cast(bounds[0])) & (Xc <= cast(bounds[1])), axis=1)
    return inside & np.all(np.isfinite(Xc), axis=1)


def _to_candidates(model, X0, points, eps, norm, bounds):
    """Float64 points as model-dtype inputs, nudged towards ``X0`` where the cast
    left the ball; returns (candidates, inside)."""
    Xc = np.ascontiguousarray(points, dtype=model.dtype)
    if norm == "linf":
        # the verified box reaches a few ulps past the ball: pull such points back
        e = model.dtype.type(eps)
        Xc = np.clip(Xc, X0 - e, X0 + e)
    inside = _in_ball(model, X0, Xc, eps, norm, bounds)
    for _ in range(8):
        if inside.all():
            break
        out = ~inside
        Xc[out] = np.nextafter(Xc[out], X0[out])
        inside = _in_ball(model, X0, Xc, eps, norm, bounds)
    return Xc, inside


# ---------------------------------------------------------------------------
# the state of one run
# ---------------------------------------------------------------------------

class _Run:
    """Verdicts being filled in for one radius (internal; never escapes verify)."""

    def __init__(self, model, X, y, eps, norm, bounds):
        self.model, self.X, self.y = model, X, y
        self.eps, self.norm, self.bounds = eps, norm, bounds
        n, d = X.shape
        self.verdict = np.full(n, UNDECIDED, _VERDICT_DTYPE)
        self.margin = np.full(n, -np.inf)
        self.counterexample = np.full((n, d), np.nan, dtype=model.dtype)
        self.decided_by = np.full(n, "", "<U8")
        self.branches = np.zeros(n, np.int64)

    def open(self) -> np.ndarray:
        return np.flatnonzero(self.decided_by == "")

    def offer(self, rows, points, how):
        """Accept the verified counterexamples among ``points`` for ``rows``."""
        if rows.size == 0:
            return
        Xc, inside = _to_candidates(self.model, self.X[rows], points, self.eps, self.norm,
                                    self.bounds)
        wrong = np.zeros(rows.size, bool)
        if inside.any():
            wrong[inside] = _misclassified(self.model, Xc[inside], self.y[rows[inside]])
        hit = rows[wrong]
        if hit.size:
            self.verdict[hit] = NOT_ROBUST
            self.counterexample[hit] = Xc[wrong]
            self.margin[hit] = _margins(self.model, Xc[wrong], self.y[hit])
            self.decided_by[hit] = how

    def certify(self, rows, margin, how):
        self.verdict[rows] = ROBUST
        self.margin[rows] = margin
        self.decided_by[rows] = how

    def give_up(self, rows, margin, how):
        self.verdict[rows] = UNDECIDED
        self.margin[rows] = margin
        self.decided_by[rows] = how

    def result(self) -> Verification:
        decided_by = np.where(self.decided_by == "", "unsplit", self.decided_by)
        return Verification(self.eps, self.norm, self.verdict, self.margin,
                            self.counterexample, decided_by.astype("<U8"), self.branches)


# ---------------------------------------------------------------------------
# attacks
# ---------------------------------------------------------------------------

def _corner(X0, eps, bounds, code):
    """Corner number ``code`` (bit k set: +eps in coordinate k) of the L-infinity
    ball of each row, clipped to ``bounds``; (n, d) float64."""
    d = X0.shape[1]
    signs = np.array([1.0 if (code >> k) & 1 else -1.0 for k in range(d)])
    corner = X0.astype(np.float64) + eps * signs
    if bounds is not None:
        corner = np.clip(corner, bounds[0], bounds[1])
    return corner


def _attack(run, rows, restarts, seed):
    """Attack the open points ``rows``; every attack sees only points still open, and
    there may be none (all clean errors, or all broken at a smaller radius)."""
    if rows.size == 0:
        return
    model, eps, bounds = run.model, run.eps, run.bounds
    X0, y = run.X[rows], run.y[rows]
    if run.norm == "linf":
        if restarts == 0:
            run.offer(rows, pgd(model, X0, y, eps, steps=20, step_size=eps / 4,
                                loss="cw_margin", bounds=bounds), "attack")
            rows = rows[run.decided_by[rows] == ""]
            if X0.shape[1] <= _MAX_CORNER_DIM:
                for code in range(2 ** X0.shape[1]):
                    run.offer(rows, _corner(run.X[rows], eps, bounds, code), "attack")
                    rows = rows[run.decided_by[rows] == ""]
        rng = np.random.default_rng(seed)
        for _ in range(restarts):
            if rows.size == 0:
                break
            run.offer(rows, pgd(model, run.X[rows], run.y[rows], eps, steps=20,
                                step_size=eps / 4, loss="cw_margin", bounds=bounds,
                                random_start=True, seed=rng), "attack")
            rows = rows[run.decided_by[rows] == ""]
    else:
        inscribed = eps / np.sqrt(X0.shape[1])
        starts = [False] if restarts == 0 else [True] * restarts
        for r, random_start in enumerate(starts):
            if rows.size == 0:
                break
            run.offer(rows, pgd(model, run.X[rows], run.y[rows], eps, steps=20,
                                step_size=eps / 4, loss="cw_margin", bounds=bounds,
                                norm="l2", random_start=random_start, seed=[seed, r]),
                      "attack")
            rows = rows[run.decided_by[rows] == ""]
        if restarts == 0 and rows.size:
            run.offer(rows, pgd(model, run.X[rows], run.y[rows], inscribed, steps=20,
                                loss="cw_margin", bounds=bounds), "attack")


# ---------------------------------------------------------------------------
# branch and bound
# ---------------------------------------------------------------------------

def _certified(lower, y):
    """Rows whose bounds prove class ``y`` wins the arg-max everywhere: every margin
    positive, except that a zero margin to a later class is enough (the first index
    wins ties)."""
    later = np.arange(lower.shape[1])[None, :] > y[:, None]
    return np.all((lower > 0) | (later & (lower >= 0)), axis=1)


#: A box is split along its widest side whenever the side the linear bound prefers is
#: more than this many times narrower (see _split_dims).
_MAX_ASPECT = 4.0


def _split_dims(coefficients, worst_class, lo, hi):
    """The dimension to halve for each box: the largest ``|a_k| (hi_k - lo_k)`` of the
    worst margin's linear bound, unless that side is more than ``_MAX_ASPECT`` times
    narrower than the widest one, which is split instead. Without the cap a box
    whose bound has (almost) no slope along a side is never split along it: measured
    on a study model (moons, seed 123, width 128, eps 0.5), one point stayed
    undecided after 65,536 sub-boxes, and was proved robust in 18 with the cap."""
    rows = np.arange(lo.shape[0])
    width = hi - lo
    score = np.abs(coefficients[rows, worst_class]) * width
    widest = np.argmax(width, axis=1)
    chosen = np.where(score.max(axis=1) > 0, np.argmax(score, axis=1), widest)
    too_thin = width[rows, chosen] * _MAX_ASPECT < width[rows, widest]
    return np.where(too_thin, widest, chosen)


def _minimising_corner(coefficients, worst_class, lo, hi):
    a = coefficients[np.arange(lo.shape[0]), worst_class]
    return np.where(a > 0, lo, hi)


def _branch_and_bound(run, net, rows, root_lo, root_hi, root, budget, progress=None):
    """Input splitting with a best-first heap of sub-boxes per point; ``progress``,
    when given, is called with the count of decided points after each round."""
    heaps = {}
    certified_min = {}
    ambiguous = {}
    order = 0
    worst = root.lower.min(axis=1)
    worst_class = root.lower.argmin(axis=1)
    dims = _split_dims(root.coefficients, worst_class, root_lo, root_hi)
    for i, row in enumerate(rows):
        heaps[row] = [(worst[i], order, root_lo[i], root_hi[i], dims[i])]
        certified_min[row] = np.inf
        order += 1
    while heaps:
        per_point = max(1, _BATCH_BOXES // (2 * len(heaps)))
        parents, owners = [], []
        for row, heap in heaps.items():
            take = min(per_point, len(heap), max(1, (budget - run.branches[row]) // 2))
            for _ in range(take):
                parents.append(heapq.heappop(heap))
                owners.append(row)
        owners = np.array(owners)
        lo = np.array([p[2] for p in parents])
        hi = np.array([p[3] for p in parents])
        dim = np.array([p[4] for p in parents])
        box = Box(lo, hi)
        halves = (box.split(dim, 0), box.split(dim, 1))
        child_lo = np.concatenate([halves[0].lo, halves[1].lo])
        child_hi = np.concatenate([halves[0].hi, halves[1].hi])
        child_owner = np.concatenate([owners, owners])
        bounds = region_margin_bounds(net, Box(child_lo, child_hi), run.y[child_owner], "both")
        np.add.at(run.branches, child_owner, 1)
        c_worst = bounds.lower.min(axis=1)
        c_class = bounds.lower.argmin(axis=1)
        c_dims = _split_dims(bounds.coefficients, c_class, child_lo, child_hi)
        open_child = ~_certified(bounds.lower, run.y[child_owner])
        # certified children only lower the point's certified minimum
        for i in np.flatnonzero(~open_child):
            row = child_owner[i]
            certified_min[row] = min(certified_min[row], c_worst[i])
        # real counterexamples at the corners minimising the worst linear bound
        idx = np.flatnonzero(open_child)
        if idx.size:
            corner = _minimising_corner(bounds.coefficients[idx], c_class[idx],
                                        child_lo[idx], child_hi[idx])
            # one candidate per owner is enough; offer() verifies each
            run.offer(child_owner[idx], corner, "bab")
        for i in idx:
            row = child_owner[i]
            if run.decided_by[row] != "":
                continue
            if bounds.stable[i]:
                # An affine box whose minimising corner is classified correctly, yet
                # the bound is not positive: the margin there is zero to within the
                # rounding allowance, and splitting cannot help. The rest of the
                # point's boxes may still hold a counterexample.
                ambiguous[row] = min(ambiguous.get(row, np.inf), c_worst[i])
                continue
            heapq.heappush(heaps[row], (c_worst[i], order, child_lo[i], child_hi[i],
                                        c_dims[i]))
            order += 1
        for row in list(heaps):
            if run.decided_by[row] != "":
                del heaps[row]
            elif not heaps[row]:
                if row in ambiguous:
                    run.give_up(np.array([row]), ambiguous[row], "rounding")
                else:
                    run.certify(np.array([row]), certified_min[row], "bab")
                del heaps[row]
            elif run.branches[row] >= budget:
                low = min(certified_min[row], heaps[row][0][0], ambiguous.get(row, np.inf))
                run.give_up(np.array([row]), low, "budget")
                del heaps[row]
        if progress is not None:
            progress(int(np.count_nonzero(run.decided_by != "")))


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------

def _check_budget(budget) -> int:
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
        raise ConfigError(f"budget must be an integer >= 1 (sub-boxes per point), "
                          f"got {budget!r}")
    return int(budget)


def _verify(model, X, y, eps, norm, budget, bounds, seed, extra=None,
            attacks=True, progress=None) -> Verification:
    """The pipeline of :func:`verify`; ``attacks=False`` leaves counterexamples to
    branch and bound alone (a harder test of it); ``progress`` is called with the
    count of points decided so far during branch and bound."""
    run = _Run(model, X, y, eps, norm, bounds)
    all_rows = np.arange(X.shape[0])
    run.offer(all_rows, X, "clean")
    open_rows = run.open()
    if eps == 0:
        run.certify(open_rows, _margins(model, X[open_rows], y[open_rows]), "clean")
        return run.result()
    if extra is not None:
        usable = open_rows[np.all(np.isfinite(extra[open_rows]), axis=1)]
        run.offer(usable, extra[usable], "attack")
    if attacks:
        _attack(run, run.open(), 0, seed)
    open_rows = run.open()
    if open_rows.size == 0:
        return run.result()
    net = Float64Net.of(model)
    region = input_region(model, X[open_rows], eps, norm, bounds)
    root = region_margin_bounds(net, region, y[open_rows], "both")
    worst = root.lower.min(axis=1)
    good = _certified(root.lower, y[open_rows])
    run.certify(open_rows[good], worst[good], "bound")
    rest = ~good
    if attacks:
        _attack(run, open_rows[rest], 2, seed)
    still = run.decided_by[open_rows] == ""
    keep = rest & still
    if norm == "l2" or not keep.any():
        run.margin[open_rows[keep]] = worst[keep]
        return run.result()
    root_keep = type(root)(root.lower[keep], root.exact_lower[keep], root.float_error[keep],
                           root.coefficients[keep], root.stable[keep])
    _branch_and_bound(run, net, open_rows[keep], region.lo[keep], region.hi[keep],
                      root_keep, budget, progress)
    return run.result()


#: A chunk of CROWN holds at once this many times its largest per-row tensor (rows x
#: :func:`robnp.verify.bounds.row_elements` float64 values: coefficients with their
#: absolute values, positive and negative parts and error terms) and
#: _SHARED_TENSORS times the largest matrix its rows share (``2 w_k x w_{k-1}``):
#: measured with tracemalloc on full branch-and-bound rounds of 4096 boxes, 9 to 16
#: (widths 16 to 64, two and three hidden layers, 2 and 10 inputs) and the shared part
#: at width 512 (tests/test_limits.py).
_CHUNK_TENSORS = 16
_SHARED_TENSORS = 8


def verification_memory(layer_sizes, n_points: int, n_radii: int = 1,
                        n_threads: int = 1) -> _memory.MemoryEstimate:
    """Peak bytes of :func:`verify_radii` on ``n_points`` points: the float64 copy of
    the network, the per-point results of every radius (verdicts, margins,
    counterexamples, CROWN's root coefficients), one chunk of bound propagation
    (:func:`robnp.verify.bounds.chunk_rows` rows, at most
    :data:`robnp.verify.bounds._CHUNK_ELEMENTS` values per tensor) on each of
    ``n_threads`` threads, or one round of branch and bound, and the attacks' PGD on
    every point."""
    sizes = tuple(_memory.check_size("layer size", s) for s in layer_sizes)
    n_points = _memory.check_size("n_points", n_points)
    d, n_classes = sizes[0], sizes[-1]
    n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    per_point = 8 * (n_radii * (3 * d + 8) + 4 * d + 3 * n_classes * (d + 4)
                     + 6 * sum(sizes[1:]))
    # one chunk of region_margin_bounds per thread: rows x its largest per-row tensor,
    # for the points at once or the boxes of one branch-and-bound round
    per_row = row_elements(sizes)
    rows = min(max(n_points, 2 * _BATCH_BOXES), chunk_rows(sizes))
    shared = max([2 * sizes[k] * sizes[k - 1] for k in range(2, len(sizes) - 1)] or [0])
    chunk = (8 * (_CHUNK_TENSORS * rows * per_row + _SHARED_TENSORS * shared)
             * max(1, int(n_threads)))
    boxes = 8 * 2 * _BATCH_BOXES * (8 * d + 3 * n_classes * (d + 4) + 6 * sum(sizes[1:]))
    attacks = evaluation_memory(n_points=n_points, n_features=d, n_radii=1, n_attacks=1,
                                layer_sizes=sizes, itemsize=8).total
    return _memory.MemoryEstimate((
        ("per-point results", f"n_points={n_points}, layer sizes {sizes}",
         float(n_points * per_point + attacks)),
        ("bound propagation", f"layer sizes {sizes}",
         float(chunk + boxes + 6 * 8 * n_params)),
    ))


def _check_common(model, X, y, norm, budget, bounds, n_radii=1, n_threads=None):
    check_verifiable(model)
    _checks.norm("norm", norm)
    budget = _check_budget(budget)
    n_threads = check_threads(n_threads)
    n_points = np.shape(X)[0] if np.ndim(X) and hasattr(model, "layer_sizes") else 0
    if n_points:
        threads = bound_threads(model.layer_sizes, max(n_points, 2 * _BATCH_BOXES),
                                n_threads)
        _memory.check_fits(verification_memory(model.layer_sizes, n_points, n_radii,
                                               threads),
                           f"verifying {n_points} points at {n_radii} radii")
    X = model.check_input(X)
    y = model.check_labels(y, X.shape[0])
    if bounds is not None:
        from ..attacks import check_bounds

        check_bounds(bounds)
        bounds = (float(bounds[0]), float(bounds[1]))
    return X, y, budget, bounds


def _threads(n_threads):
    """``default_threads(n_threads)`` for the call when a count is given; else whatever
    is set around it (the study's 1) or the choice by the work."""
    n_threads = check_threads(n_threads)
    return nullcontext() if n_threads is None else default_threads(n_threads)


@single_blas_thread
def verify(model, X, y, eps: float, norm: str = "linf", budget: int = 4096, bounds=None,
           seed=0, n_threads=None) -> Verification:
    """Decide, point by point, whether ``model`` is robust in the eps-ball.

    Parameters
    ----------
    model : MLP
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,), int
    eps : float >= 0
        Radius; ``eps = 0`` gives clean correctness.
    norm : {"linf", "l2"}
    budget : int >= 1
        Largest number of sub-boxes branch and bound bounds for one point.
    bounds : (float, float), optional
        Data box: the ball is intersected with it (L-infinity), and counterexamples
        must lie in it.
    seed : int
        Source of the attacks' random starts.
    n_threads : int >= 1, optional
        Threads for the attacks' chunks and the bounds' chunks of points (and of
        branch and bound's boxes); the verdicts, margins and counterexamples are the
        same for any count. By default every core when a chunk holds enough work
        (:func:`robnp.attacks._threat.thread_count`), or the count
        ``default_threads`` set around the call.

    Returns
    -------
    Verification
        ``robust`` means: the model, evaluated in its dtype with any summation
        order, predicts ``y`` (arg-max, first index on ties) at every input of the
        ball (real or as checked in the model's dtype, see
        :func:`robnp.verify.bounds.input_region`). ``not_robust`` comes with a
        counterexample re-checked in the model's dtype.
    """
    eps = check_eps(eps)
    X, y, budget, bounds = _check_common(model, X, y, norm, budget, bounds,
                                         n_threads=n_threads)
    check_reach((eps,), X)
    with _threads(n_threads):
        return _verify(model, X, y, eps, norm, budget, bounds, seed)


@single_blas_thread
def verify_radii(model, X, y, epsilons, norm: str = "linf", budget: int = 4096,
                 bounds=None, seed=0, progress=None, n_threads=None) -> list[Verification]:
    """:func:`verify` at every radius, in the order given (``n_threads`` as there).

    ``progress``, when given, is called as ``progress(done, total)`` with the
    (point, radius) pairs decided so far and their total, after each radius and
    after each round of branch and bound (for a progress bar; results do not
    depend on it).

    Radii are processed from the smallest: a counterexample at one radius is offered
    again (re-checked) at every larger one, and a point proven robust at a radius
    but left undecided at a smaller one is robust there too (the smaller ball lies
    inside), so verdicts are monotone in eps.
    """
    epsilons = [check_eps(e) for e in epsilons]
    X, y, budget, bounds = _check_common(model, X, y, norm, budget, bounds,
                                         len(set(epsilons)), n_threads)
    check_reach(epsilons, X)
    with _threads(n_threads):
        results = _verify_each(model, X, y, epsilons, norm, budget, bounds, seed, progress)
    return [results[e] for e in epsilons]


def _verify_each(model, X, y, epsilons, norm, budget, bounds, seed, progress) -> dict:
    """The verdicts of :func:`verify_radii` by radius."""
    results = {}
    extra = None
    radii = sorted(set(epsilons))
    n, total = X.shape[0], X.shape[0] * len(radii)
    for i, eps in enumerate(radii):
        step = None if progress is None else (lambda decided, i=i: progress(i * n + decided,
                                                                           total))
        result = _verify(model, X, y, eps, norm, budget, bounds, seed, extra, progress=step)
        results[eps] = result
        if progress is not None:
            progress((i + 1) * n, total)
        extra = np.where(np.isfinite(result.counterexample), result.counterexample,
                         extra if extra is not None else np.nan)
    ordered = sorted(results)
    for i in range(len(ordered) - 2, -1, -1):
        small, large = results[ordered[i]], results[ordered[i + 1]]
        lift = (small.verdict == UNDECIDED) & (large.verdict == ROBUST)
        if lift.any():
            small.verdict[lift] = ROBUST
            small.margin[lift] = large.margin[lift]
            small.decided_by[lift] = "larger"
    return results


def exact_robust_accuracy(model, X, y, eps: float, norm: str = "linf", budget: int = 4096,
                          bounds=None, seed=0, n_threads=None) -> Bracket:
    """Robust accuracy at ``eps`` as a :class:`Bracket`: ``[certified, attack]``,
    with ``Bracket.exact`` the value itself when no point is undecided."""
    return verify(model, X, y, eps, norm, budget, bounds, seed, n_threads).bracket
