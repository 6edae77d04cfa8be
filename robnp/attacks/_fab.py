"""FAB, the fast adaptive boundary attack (Croce and Hein, 2020, "Minimally distorted
adversarial examples with a fast adaptive boundary attack", ICML), untargeted
(``fab``) and targeted (``fab-t``), as the AutoAttack reference code runs it.

FAB looks for the *smallest* perturbation that changes the prediction, in the
L-infinity, L2 or L1 norm, so one run gives robust accuracy at every radius: a
point is robust at ``eps`` against FAB exactly when the perturbation found for it is
larger than ``eps``.

One run, per point ``x`` (label ``y``), from ``x^(0) = x`` (or a random start):

1. Linearise at the iterate ``x^(k)`` the logit differences ``f_j - f_y``: the
   boundary with class ``j`` becomes the hyperplane ``g_j . (z - x^(k)) + f_j = 0``
   (``g_j`` the gradient of ``f_j - f_y``). Untargeted FAB takes the class whose
   hyperplane is nearest in the chosen norm, ``|f_j| / ||g_j||_*`` (``*`` the dual
   norm); targeted FAB takes its target class.
2. Project both ``x^(k)`` and the original ``x`` onto that hyperplane inside the
   input box (:func:`robnp.attacks._projections.hyperplane_step`: the smallest steps
   ``d_k`` and ``d_0``).
3. Move to ``(1 - a)(x^(k) + eta d_k) + a (x + eta d_0)``, clipped into the box,
   with ``a = min(||d_k|| / (||d_k|| + ||d_0||), alpha_max)`` (both norms at least
   1e-8): mostly the step from the iterate, biased towards the original point, and
   overshooting the linearised boundary by ``eta``.
4. If the new point is misclassified, keep it when it is the smallest perturbation
   so far, then step back towards the original point:
   ``x^(k+1) = x + beta (x^(k+1) - x)``.

After ``n_iter`` iterations the run returns the smallest misclassified point found.
Defaults are the reference's: ``alpha_max = 0.1``, ``eta = 1.05``, ``beta = 0.9``,
100 iterations. Only points classified correctly when clean are attacked; the others
have a perturbation of size 0 (they are adversarial already).

Restarts and targets
--------------------
Run ``r > 0`` starts from a random point around ``x`` at radius ``0.5 min(eps,
best)`` (``best``: the smallest perturbation found for that point so far;
L-infinity: a uniform vector scaled to max-norm, L2: a Gaussian one scaled to that
Euclidean length, L1: a Gaussian one scaled to that L1 length), clipped into the box,
as in the reference. ``fab-t`` runs once per target, the ``n_target_classes`` most
likely wrong classes at the clean point (never more than ``n_classes - 1``); success
means any misclassification, not reaching the target, as in the reference.

At a fixed radius ``eps`` (the registry's ``run``, or ``fab(..., eps=eps)``), every
run after the first attacks only the points not yet broken within ``eps``, as the
reference's ``perturb`` does; with ``eps=None``, :func:`fab` runs every stage on
every point and keeps the smallest perturbation (restarts are then drawn at half the
smallest perturbation found; a point not yet broken is not restarted, since a
restart from the clean point would repeat the first run exactly).

Where this differs from the reference
-------------------------------------
* The input box is ``bounds`` (any box, or none) instead of ``[0, 1]``. A clean
  point outside the box is clipped into it for the projection of the original point
  and the step back; distances are always measured from the clean point.
* Restarts with targets: the reference runs, per target, all its restarts; here
  each restart runs over all targets. AutoAttack's standard ``fab-t`` has one
  restart, where both orders are the same; with more, the later restarts only
  attack what all targets left, so a point broken by the first restart keeps its
  point whatever ``n_restarts`` is.
* Several radii are attacked together: a run on a point is shared by every radius
  at which the point is still robust (the first run does not depend on the radius;
  random restarts are drawn per radius, as the reference would).
* The iterates are float64, and the model sees each rounded to its own dtype (the
  reference keeps them in float32, the model's precision). With float32 iterates an
  iterate can come to rest within rounding of the boundary: the step it computes is
  below the spacing of float32 numbers, the point never moves again and FAB stops
  improving. Measured with FAB-T on three 5-class blobs models (200 test points
  each, against FAB-T on the models converted to float64): float32 iterates left 5 to
  7 points per model more than 1% above the float64 result (up to 23%); steps along a
  float64 copy of the model, with the float32 model checking each point, left 0 to 1
  (up to 1.3%); float64 iterates seen by the float32 model leave none (largest ratio
  1.0000, ``tests/test_attacks_fab.py``), and each step is one pass of the model in
  its own dtype, half the cost of a float64 one.
* The projections treat a gradient coordinate as zero only when it is exactly zero
  (the reference's L2 and L1 projections drop coordinates below 1e-8 in absolute
  value, a threshold tied to images in [0, 1]).
* The reference's per-class gradients are ``n_classes`` backward passes through
  autograd, and each iteration a second forward pass checks the new point. For an
  MLP the whole run is one compiled call per chunk of rows
  (:func:`robnp.kernels.fab_rows`): targeted runs need one backward pass (the
  gradient of ``f_t - f_y`` directly), and the check's forward pass is the next
  iteration's except on the rows stepped back after a success. Other models run the
  NumPy loop of :func:`fab_single_run`, their gradients from
  :mod:`robnp.attacks._jacobian`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .._checks import Coerced, Integer, Real, Satisfies
from ..errors import ConfigError
from .. import kernels
from ..threads import single_blas_thread
from ._jacobian import margin_gradients
from ._projections import HYPERPLANE_NORMS, dual_norm, hyperplane_step, row_norm
from ._registry import AttackOptions
from ._threat import (AttackedModel, as_generator, check_bounds, check_eps, check_threads,
                      over_chunks, row_flops, top_wrong_class)

__all__ = ["fab", "FABOptions", "FABTOptions", "MinimalPerturbation", "PointsPerRadius",
           "run", "fab_single_run", "fab_start_points"]


#: The kernels' codes of FAB's norms.
FAB_NORM_CODES = {"linf": kernels.NORM_LINF, "l2": kernels.NORM_L2, "l1": kernels.NORM_L1}


def check_fab_norm(norm) -> str:
    """``norm`` if FAB measures perturbations in it (L-infinity, L2 or L1)."""
    if norm not in HYPERPLANE_NORMS:
        raise ConfigError(f"norm must be one of {', '.join(HYPERPLANE_NORMS)}, got {norm!r}")
    return norm


@dataclass(frozen=True)
class FABOptions(AttackOptions):
    """Options of FAB (untargeted); defaults are AutoAttack's.

    Attributes
    ----------
    norm : {"linf", "l2", "l1"}
        The norm the perturbation is smallest in (and the ball of the radii).
    n_iter : int >= 1
        Iterations per run. 0 is refused: it would run no step and break nothing,
        reporting clean accuracy as robust.
    n_restarts : int >= 1
        Runs per point (per target for ``fab-t``); the ones after the first start
        from random points (see the module docstring).
    alpha_max : float in (0, 1]
        The largest weight of the step from the original point.
    eta : float >= 1
        Overshoot past the linearised boundary.
    beta : float in (0, 1)
        Step back towards the original point after a success.
    bounds : (float, float) or None
    n_threads : int >= 1 or None
        Threads over fixed chunks of rows; never changes a result.
    """

    norm: str = "linf"
    n_iter: int = 100
    n_restarts: int = 1
    alpha_max: float = 0.1
    eta: float = 1.05
    beta: float = 0.9
    bounds: tuple[float, float] | None = None
    n_threads: int | None = None

    #: Targeted runs (``fab-t``) are the subclass's.
    targeted = False

    constraints = {"norm": Satisfies(check_fab_norm),
                   "n_iter": Integer(1),
                   "n_restarts": Integer(1),
                   "alpha_max": Real(0, 1, low_open=True),
                   "eta": Real(1),
                   "beta": Real(0, 1, low_open=True, high_open=True),
                   "bounds": Satisfies(check_bounds),
                   "n_threads": Coerced(check_threads)}
    budget = "n_iter"

    def passes(self, n_classes: int | None = None) -> float:
        """Per run (and target, for ``fab-t``), ``n_iter`` steps, each a forward pass,
        a backward pass per gradient it needs (every class but the label for ``fab``,
        the target's margin for ``fab-t``; a backward pass is about two forward ones)
        and the success check's forward pass, then the evaluation."""
        if self.targeted:
            targets = self.target_count if n_classes is None else min(self.target_count,
                                                                       n_classes - 1)
            runs, backward = self.n_restarts * targets, 1
        else:
            runs, backward = self.n_restarts, (10 if n_classes is None else n_classes) - 1
        return runs * (2.0 + 2.0 * backward) * self.n_iter + 1

    @property
    def randomized(self) -> bool:
        return self.n_restarts > 1

    @property
    def target_count(self) -> int:
        return 0


@dataclass(frozen=True)
class FABTOptions(FABOptions):
    """Options of targeted FAB (``fab-t``): one run per target among the
    ``n_target_classes`` most likely wrong classes at the clean point (at most
    ``n_classes - 1`` are used)."""

    n_target_classes: int = 9

    targeted = True

    constraints = {"n_target_classes": Integer(1)}

    @property
    def target_count(self) -> int:
        return self.n_target_classes


class MinimalPerturbation(NamedTuple):
    """What :func:`fab` found per point.

    Attributes
    ----------
    points : ndarray of shape (n, d), the model's dtype
        The misclassified point nearest the clean one that FAB found; the clean point
        where none was found (or where the clean point is already misclassified).
    norms : ndarray of shape (n,), float64
        ``||points - X||`` in FAB's norm: 0 for clean points already misclassified,
        ``inf`` where nothing was found.
    """

    points: np.ndarray
    norms: np.ndarray

    def robust_accuracy(self, eps) -> float:
        """The fraction of points FAB did not break within ``eps``."""
        return float(np.mean(self.norms > check_eps(eps)))


def fab_start_points(rng, X, radius, norm, bounds) -> np.ndarray:
    """Random starts at distance ``radius`` (per row) from ``X`` in ``norm``, clipped
    into the box: the reference's restarts (see the module docstring)."""
    if norm == "linf":
        u = 2 * rng.random(X.shape) - 1
        length = np.abs(u).max(axis=1, keepdims=True)
    else:
        u = rng.standard_normal(X.shape)
        length = row_norm(u, norm)[:, None]
    start = X.astype(np.float64) + radius[:, None] * u / length
    if bounds is not None:
        start = np.clip(start, *bounds)
    return np.ascontiguousarray(start, dtype=X.dtype)


def fab_single_run(target, X, y, t, start, *, norm, n_iter, alpha_max, eta, beta, bounds,
                   trace=None):
    """One FAB run on rows ``X`` (all classified correctly when clean) from ``start``.

    The iterates are float64; the model sees each rounded to its dtype, and a point
    counts, and is kept, when the model misclassifies it there (see the module
    docstring). An MLP runs the compiled loop :func:`robnp.kernels.fab_rows`, any
    other model this NumPy loop; the steps are the same.

    Parameters
    ----------
    target : AttackedModel
    X, start : ndarray of shape (n, d), the model's dtype
    y : ndarray of shape (n,), int64
    t : ndarray of shape (n,), int64, or None
        Targets (``fab-t``), or None for the untargeted choice of class.
    trace : list, optional
        Receives every iterate (the point each step starts from), float64.

    Returns
    -------
    points : ndarray of shape (n, d), the model's dtype
        The smallest misclassified iterate per row (``X`` where none was).
    norms : ndarray of shape (n,), float64 (``inf`` where none was)
    """
    if target.fast:
        return _compiled_run(target, X, y, t, start, norm=norm, n_iter=n_iter,
                             alpha_max=alpha_max, eta=eta, beta=beta, bounds=bounds,
                             trace=trace)
    n, d = X.shape
    rows = np.arange(n)
    x0 = X.astype(np.float64)
    origin = x0 if bounds is None else np.clip(x0, *bounds)
    x1 = np.array(start, dtype=np.float64, order="C")
    best = np.full(n, np.inf)
    points = X.copy()
    for _ in range(n_iter):
        if trace is not None:
            trace.append(x1.copy())
        Z, G = margin_gradients(target, np.ascontiguousarray(x1, dtype=X.dtype), y, t)
        if t is None:
            df = Z - Z[rows, y][:, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                distance = np.abs(df) / (1e-12 + row_norm(G, dual_norm(norm)))
            distance[rows, y] = np.inf
            j = np.argmin(distance, axis=1)
            w, f = G[rows, j], df[rows, j]
        else:
            w, f = G[:, 0], Z[rows, t] - Z[rows, y]
        b = np.einsum("ij,ij->i", w, x1) - f
        d1, _ = hyperplane_step(x1, w, b, norm, bounds)
        d0, _ = hyperplane_step(origin, w, b, norm, bounds)
        a1 = np.maximum(row_norm(d1, norm), 1e-8)
        a0 = np.maximum(row_norm(d0, norm), 1e-8)
        alpha = np.minimum(a1 / (a1 + a0), alpha_max)[:, None]
        x1 = (x1 + eta * d1) * (1 - alpha) + (origin + eta * d0) * alpha
        if bounds is not None:
            x1 = np.clip(x1, *bounds)
        # the point as the model sees it; it counts only if the model misclassifies it
        seen = np.ascontiguousarray(x1, dtype=X.dtype)
        crossed = target.logits(seen).argmax(axis=1) != y
        if crossed.any():
            where = np.flatnonzero(crossed)
            size = row_norm(seen[where].astype(np.float64) - x0[where], norm)
            smaller = size < best[where]
            best[where[smaller]] = size[smaller]
            points[where[smaller]] = seen[where[smaller]]
        x1[crossed] = origin[crossed] + beta * (x1[crossed] - origin[crossed])
    return points, best


def _compiled_run(target, X, y, t, start, *, norm, n_iter, alpha_max, eta, beta, bounds,
                  trace):
    """:func:`fab_single_run` for an MLP: one call of :func:`robnp.kernels.fab_rows`."""
    n, d = X.shape
    lower, upper, use_bounds = check_bounds(bounds)
    record = np.empty((n_iter if trace is not None else 0, n, d))
    points = np.empty_like(X)
    best = np.empty(n)
    targets = np.zeros(n, np.int64) if t is None else np.ascontiguousarray(t, np.int64)
    model = target.model
    kernels.fab_rows(model.params, model.sizes, X, np.ascontiguousarray(y, np.int64),
                     targets, t is not None, np.ascontiguousarray(start, X.dtype),
                     FAB_NORM_CODES[norm], n_iter, float(alpha_max), float(eta),
                     float(beta), float(lower), float(upper), use_bounds, points, best,
                     record)
    if trace is not None:
        trace.extend(record)
    # the reported norm is row_norm's, to the last bit (the kernel sums in its own order)
    found = np.isfinite(best)
    best[found] = row_norm(points[found].astype(np.float64) - X[found], norm)
    return points, best


def _run_rows(target, X, y, t, start, options, n_threads):
    """:func:`fab_single_run` over fixed chunks of rows (rows never interact)."""
    n = X.shape[0]
    points = np.empty_like(X)
    norms = np.empty(n)
    kwargs = dict(norm=options.norm, n_iter=options.n_iter, alpha_max=options.alpha_max,
                  eta=options.eta, beta=options.beta, bounds=options.bounds)

    def work(lo, hi):
        points[lo:hi], norms[lo:hi] = fab_single_run(
            target, X[lo:hi], y[lo:hi], None if t is None else t[lo:hi], start[lo:hi],
            **kwargs)

    over_chunks(work, n, n_threads, row_flops(target, 4 * options.n_iter))
    return points, norms


@single_blas_thread
def fab_search(target, X, y, radii, options: FABOptions, rng):
    """FAB at every radius of ``radii`` (``None``: no radius, the smallest
    perturbation over every run), with the runs shared as the module docstring says.

    Returns ``(points, norms)`` of shapes (R, n, d) and (R, n): per radius the
    smallest misclassified point found (norm 0 for clean misclassified points,
    ``inf`` and the clean point where nothing was found)."""
    n, d = X.shape
    clean = target.logits(X)
    correct = clean.argmax(axis=1) == y
    n_classes = clean.shape[1]
    R = len(radii)
    limit = np.array([np.inf if r is None else r for r in radii])
    minimal = np.array([r is None for r in radii])
    norms = np.where(correct, np.inf, 0.0)[None].repeat(R, axis=0)
    points = X[None].repeat(R, axis=0)
    ranks = (range(1, min(options.target_count, n_classes - 1) + 1) if options.targeted
             else [0])
    targets = {rank: top_wrong_class(clean, y, rank) for rank in ranks if rank}

    def keep(which, rows, new_points, new_norms):
        better = new_norms < norms[which, rows]
        norms[which[better], rows[better]] = new_norms[better]
        points[which[better], rows[better]] = new_points[better]

    for restart in range(options.n_restarts):
        for rank in ranks:
            alive = correct[None] & (minimal[:, None] | (norms > limit[:, None]))
            t = targets.get(rank)
            if restart == 0:
                rows = np.flatnonzero(alive.any(axis=0))
                if rows.size == 0:
                    continue
                Xs = np.ascontiguousarray(X[rows])
                new_points, new_norms = _run_rows(
                    target, Xs, np.ascontiguousarray(y[rows]),
                    None if t is None else np.ascontiguousarray(t[rows]), Xs, options,
                    options.n_threads)
                for r in range(R):
                    on = alive[r, rows]
                    keep(np.full(on.sum(), r), rows[on], new_points[on], new_norms[on])
                continue
            which, rows = np.nonzero(alive)
            radius = 0.5 * np.minimum(limit[which], norms[which, rows])
            drawn = np.isfinite(radius)
            which, rows, radius = which[drawn], rows[drawn], radius[drawn]
            if rows.size == 0:
                continue
            Xs = np.ascontiguousarray(X[rows])
            start = fab_start_points(rng, Xs, radius, options.norm, options.bounds)
            new_points, new_norms = _run_rows(
                target, Xs, np.ascontiguousarray(y[rows]),
                None if t is None else np.ascontiguousarray(t[rows]), start, options,
                options.n_threads)
            keep(which, rows, new_points, new_norms)
    return points, norms


def fab(model, X, y, eps=None, *, norm: str = "linf", n_iter: int = 100,
        n_restarts: int = 1, alpha_max: float = 0.1, eta: float = 1.05, beta: float = 0.9,
        targeted: bool = False, n_target_classes: int = 9, bounds=None, seed=None,
        n_threads=None) -> MinimalPerturbation:
    """The smallest adversarial perturbation FAB finds per point (Croce and Hein,
    2020); see the module docstring.

    Parameters
    ----------
    model : MLP, or any model of the attack protocol (see :mod:`robnp.attacks`);
        FAB uses ``logit_jacobian(X)`` when the model has it, else ``input_gradient``
        once per class.
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    eps : float >= 0 or None
        None: every run attacks every point and the smallest perturbation is kept.
        A radius: runs after the first attack only points not yet broken within it,
        and random restarts start at half of it, as the reference does at its
        ``eps``.
    norm, n_iter, n_restarts, alpha_max, eta, beta, bounds, n_threads
        See :class:`FABOptions`.
    targeted : bool
        ``fab-t``: one run per target among the ``n_target_classes`` most likely
        wrong classes.
    seed : int, numpy.random.Generator or None
        Source of the random restarts.

    Returns
    -------
    MinimalPerturbation
        ``(points, norms)``; ``norms > eps`` is robustness against FAB at any ``eps``.
    """
    if eps is not None:
        eps = check_eps(eps)
    common = dict(norm=norm, n_iter=n_iter, n_restarts=n_restarts, alpha_max=alpha_max,
                  eta=eta, beta=beta, bounds=bounds, n_threads=n_threads)
    if not isinstance(targeted, (bool, np.bool_)):
        raise ConfigError(f"targeted must be true or false, got {targeted!r}")
    options = (FABTOptions(n_target_classes=n_target_classes, **common) if targeted
               else FABOptions(**common))
    target = AttackedModel(model)
    X = target.check_input(X)
    y = target.check_labels(y, X)
    points, norms = fab_search(target, X, y, (eps,), options, as_generator(seed))
    return MinimalPerturbation(np.ascontiguousarray(points[0]), norms[0])


class PointsPerRadius(list):
    """What :func:`run` returns: the registry's list of points, one array per radius,
    which also carries ``minimal``, the :class:`MinimalPerturbation` of the search (per
    point the smallest over every radius's runs, beyond the radii too), or None when no
    radius is positive. :meth:`robnp.attacks.Evaluation.minimal_perturbation` reads
    it; everything else sees a list."""

    minimal: MinimalPerturbation | None = None


def run(model, X, y, radii, options: FABOptions, rng) -> list[np.ndarray]:
    """Registry entry for ``fab`` and ``fab-t``: per radius, the smallest misclassified
    point found where it lies within the radius, else the clean point (a
    :class:`PointsPerRadius`, carrying the minimal perturbation found)."""
    target = AttackedModel(model)
    live = [eps for eps in radii if eps > 0]
    if not live:
        return PointsPerRadius(X.copy() for _ in radii)
    points, norms = fab_search(target, X, y, tuple(live), options, rng)
    best = np.argmin(norms, axis=0)
    rows = np.arange(X.shape[0])
    out, k = PointsPerRadius(), 0
    out.minimal = MinimalPerturbation(np.ascontiguousarray(points[best, rows]),
                                      norms[best, rows])
    for eps in radii:
        if eps > 0:
            inside = norms[k] <= eps
            out.append(np.ascontiguousarray(np.where(inside[:, None], points[k], X)))
            k += 1
        else:
            out.append(X.copy())
    return out
