"""Projected gradient descent on the negative loss (Madry et al., 2018).

``steps`` steepest-ascent steps of ``step_size`` (default ``eps / 4``), each followed
by projection onto the ``eps``-ball around the clean input (and into ``bounds`` when
given), on the analytic input gradient.

One path, :func:`pgd_general`, serves :func:`pgd` and the registry. The study's PGD
(L-infinity, from the clean point, cross-entropy or CW margin, the final iterate)
takes every radius's first step along the one gradient at the clean points and runs
all radii in the compiled kernel :func:`robnp.kernels.pgd_linf_radii`. Everything
else is opt-in and runs :func:`robnp.kernels.pgd_rows` (on an MLP) or its NumPy loop
(on any model of the protocol) on rows that carry their own radius (radii and
restarts stacked as rows, split into fixed chunks over threads): random starts,
restarts on the points still robust, the per-sample worst case ``use_best`` (the name
of the MadryLab ``robustness`` library), targets, the L2 ball with its exact
projection onto ball and box, and the DLR losses (Croce and Hein, 2020). Carlini et
al. (2019, "On evaluating adversarial robustness") ask for exactly these: restarts,
per-sample worst cases, several losses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _checks, kernels
from .._checks import Coerced, Flag, Integer, Optional, Real, Satisfies
from ..losses import check_loss_classes, loss_code, targeted_loss
from ..threads import single_blas_thread
from ._clean import CleanPoints
from ._registry import AttackOptions
from ._threat import (AttackedModel, as_generator, check_bounds, check_eps, check_norm,
                      check_threads, gradient_sign, over_chunks, row_flops, thread_count,
                      top_wrong_class)

__all__ = ["pgd", "PGDOptions", "PGDCWOptions", "run", "pgd_general", "random_start_points"]


@dataclass(frozen=True)
class PGDOptions(AttackOptions):
    """Options of PGD; the defaults are the robustness-scaling study's (10 steps of
    eps/4 on the cross-entropy from the clean point, the final iterate).

    Attributes
    ----------
    steps : int >= 1
        Steepest-ascent steps (zero steps would be no attack: refused).
    step_fraction : float > 0
        Step size as a fraction of eps (0.25: the study's eps/4).
    step_size : float >= 0 or None
        An absolute step size, the same at every radius; overrides ``step_fraction``.
    random_start : bool
        Start from a point drawn uniformly in the ball instead of the clean input.
    loss : {"cross_entropy", "cw_margin", "dlr"}
    bounds : (float, float) or None
        Keep every iterate in this box as far as the ball allows.
    norm : {"linf", "l2"}
        The ball: L-infinity (signed-gradient steps) or L2 (steps along the
        normalised gradient, exact projection onto ball and box).
    n_restarts : int >= 1
        Runs; each after the first attacks only the points still robust and keeps a
        point's result when it succeeds or reaches a higher loss (random starts make
        restarts differ).
    use_best : bool
        Per-sample worst case over the iterates (start and last included): the first
        misclassified one, else the one of highest loss. Off: the final iterate.
    targeted : bool
        Move towards a target class, the most likely wrong class at the clean point
        (arg max over ``j != y`` of the clean logits), ascending the targeted form of
        ``loss``; success then means reaching the target.
    n_threads : int >= 1 or None
        Threads over fixed chunks of rows (see
        :func:`robnp.attacks._threat.thread_count`); never changes a result.
    """

    steps: int = 10
    step_fraction: float = 0.25
    step_size: float | None = None
    random_start: bool = False
    loss: str = "cross_entropy"
    bounds: tuple[float, float] | None = None
    norm: str = "linf"
    n_restarts: int = 1
    use_best: bool = False
    targeted: bool = False
    n_threads: int | None = None

    constraints = {"steps": Integer(1),
                   "step_fraction": Real(0, low_open=True),
                   "step_size": Optional(Real(0)),
                   "random_start": Flag(),
                   "loss": Satisfies(loss_code),
                   "bounds": Satisfies(check_bounds),
                   "norm": Coerced(check_norm),
                   "n_restarts": Integer(1),
                   "use_best": Flag(),
                   "targeted": Flag(),
                   "n_threads": Coerced(check_threads)}
    budget = "steps"

    def passes(self, n_classes: int | None = None) -> float:
        """``steps`` gradient steps per restart, then the evaluation."""
        return self.n_restarts * self.GRADIENT_PASSES * self.steps + 1

    @property
    def randomized(self) -> bool:
        return self.random_start

    def step_for(self, eps: float) -> float:
        return self.step_fraction * eps if self.step_size is None else self.step_size


@dataclass(frozen=True)
class PGDCWOptions(PGDOptions):
    """The evaluation of Bartoldson et al. (2024, "Adversarial robustness limits via
    scaling-law and human-alignment studies", Section 3.1, "Evaluation"): 40 PGD steps
    on the CW loss. The paper gives neither step nor start; this preset takes eps/4
    from a uniform random start, and keeps the per-sample worst iterate (``use_best``
    on), so the reported accuracy is that of the worst point found per example."""

    steps: int = 40
    random_start: bool = True
    loss: str = "cw_margin"
    use_best: bool = True


@single_blas_thread
def pgd(model, X, y, eps: float, steps: int = 10, step_size: float | None = None, *,
        random_start: bool = False, seed=None, loss: str = "cross_entropy",
        bounds=None, norm: str = "linf", n_restarts: int = 1,
        use_best: bool = False, y_target=None, n_threads=None) -> np.ndarray:
    """Projected gradient descent on the negative loss (Madry et al., 2018).

    Parameters
    ----------
    model : MLP, or any model of the attack protocol (see :mod:`robnp.attacks`)
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    eps : float >= 0
        Radius of the ball. ``eps = 0`` returns a copy of ``X``.
    steps : int >= 1
        Number of steps.
    step_size : float, optional
        Size of each step; default ``eps / 4`` (the study's choice).
    random_start : bool
        Start from a point drawn uniformly in the ball (Madry et al.) instead of ``X``
        (see :func:`random_start_points`).
    seed : int, numpy.random.Generator or None
        Source of the random start.
    loss : {"cross_entropy", "cw_margin", "dlr"}
    bounds : (float, float), optional
        Also keep every coordinate in ``[lower, upper]`` after each step. The ball
        comes first: a clean coordinate more than ``eps`` outside the box moves only
        as far as the ball allows towards it.
    norm : {"linf", "l2"}
        L-infinity: signed-gradient steps; L2: steps along ``g / ||g||`` and the exact
        projection onto the ball (with ``bounds``, onto ball and box).
    n_restarts : int >= 1
        Runs; later runs attack only points still robust, and a point keeps the run
        that succeeded or reached the higher loss.
    use_best : bool
        Return, per point, the first successful iterate, else the highest-loss one
        (start and final iterate included), instead of the final iterate.
    y_target : array-like of shape (n_samples,), optional
        Target classes: ascend the targeted form of ``loss`` (see
        :data:`robnp.losses.TARGETED_LOSSES`); success means reaching the target.
    n_threads : int >= 1, optional
        Threads over fixed chunks of rows; results do not depend on it. By default
        one thread below 1024 rows and every core above; the study's options run on
        one thread unless ``n_threads > 1`` is given.

    Returns
    -------
    X_adv : ndarray of shape (n_samples, n_features), in the model's dtype, inside
        the ball up to the dtype's rounding.
    """
    eps = check_eps(eps)
    steps = _checks.integer("steps", steps, 1)
    step_size = eps / 4 if step_size is None else _checks.real("step_size", step_size, 0)
    check_bounds(bounds)
    loss_code(loss)
    check_norm(norm)
    n_restarts = _checks.integer("n_restarts", n_restarts, 1)
    use_best = _checks.flag("use_best", use_best)
    n_threads = check_threads(n_threads)
    target = AttackedModel(model)
    X = target.check_input(X)
    y = target.check_labels(y, X)
    if y_target is not None:
        y_target = target.check_labels(y_target, X)
    if eps == 0:
        return X.copy()
    return pgd_general(target, X, y, (eps,), steps=steps, step_sizes=(step_size,), loss=loss,
                       bounds=bounds, norm=norm, random_start=random_start,
                       n_restarts=n_restarts, use_best=use_best, y_target=y_target,
                       rng=as_generator(seed), n_threads=n_threads)[0]


def random_start_points(rng: np.random.Generator, X: np.ndarray, eps_rows: np.ndarray,
                        norm: str, bounds) -> np.ndarray:
    """Points drawn uniformly in each row's ball (radius ``eps_rows[i]``), then
    projected into ``bounds``: L-infinity, uniform coordinates in ``[-eps, eps]``;
    L2, a Gaussian direction normalised to length ``eps U^(1/d)``."""
    lower, upper, use_bounds = check_bounds(bounds)
    n, d = X.shape
    radius = eps_rows.astype(np.float64)[:, None]
    if norm == "linf":
        delta = rng.uniform(-1.0, 1.0, size=(n, d)) * radius
    else:
        direction = rng.standard_normal((n, d))
        length = np.linalg.norm(direction, axis=1, keepdims=True)
        length[length == 0] = 1
        delta = direction / length * radius * rng.random((n, 1)) ** (1.0 / d)
    start = np.ascontiguousarray(X + delta.astype(X.dtype))
    kernels.project_rows(X, start, eps_rows, NORM_CODES[norm], X.dtype.type(lower),
                         X.dtype.type(upper), use_bounds)
    return start


NORM_CODES = {"linf": kernels.NORM_LINF, "l2": kernels.NORM_L2}


def _pgd_numpy(target, X, y, t, start, eps_rows, step_rows, steps, loss, norm, bounds,
               targeted, use_best):
    """One PGD run over the protocol: the loop of :func:`robnp.kernels.pgd_rows`, with
    the model's own ``logits`` and ``input_gradient``."""
    lower, upper, use_bounds = check_bounds(bounds)
    cast = X.dtype.type
    X_adv = start.copy()
    X_best = start.copy()
    best_loss = np.full(X.shape[0], -np.inf)
    found = np.zeros(X.shape[0], bool)
    for _ in range(steps):
        row_loss, pred, grad = target.evaluate(X_adv, y, t, loss)
        if use_best:
            kernels.track_best(X_adv, row_loss, pred, y, t, targeted, X_best, best_loss, found)
        kernels.steepest_step(X_adv, grad, step_rows, NORM_CODES[norm])
        kernels.project_rows(X, X_adv, eps_rows, NORM_CODES[norm], cast(lower), cast(upper),
                             use_bounds)
    row_loss, pred, _ = target.evaluate(X_adv, y, t, loss, want_grad=False)
    kernels.pgd_finish(X_adv, row_loss, pred, y, t, targeted, use_best, X_best, best_loss,
                       found)
    return X_best, found, best_loss


def _pgd_compiled(target, X, y, t, start, eps_rows, step_rows, steps, code, norm, bounds,
                  targeted, use_best, n_threads, scale, start_sign):
    """One PGD run on an MLP: :func:`robnp.kernels.pgd_rows` over fixed chunks of rows;
    with ``start_sign`` the first step goes along it."""
    lower, upper, use_bounds = check_bounds(bounds)
    cast = X.dtype.type
    model = target.model
    n = X.shape[0]
    X_adv = start.copy()
    X_best = start.copy()
    best_loss = np.full(n, -np.inf)
    found = np.zeros(n, bool)

    def work(lo, hi):
        ws = model.workspace(hi - lo)
        dX = np.empty((hi - lo, X.shape[1]), X.dtype)
        row_loss = np.empty(hi - lo)
        pred = np.empty(hi - lo, np.int64)
        args = (model.params, model.sizes, X[lo:hi], y[lo:hi], t[lo:hi], X_adv[lo:hi],
                eps_rows[lo:hi], step_rows[lo:hi])
        tail = (cast(lower), cast(upper), use_bounds, targeted, use_best, X_best[lo:hi],
                best_loss[lo:hi], found[lo:hi], dX, ws.acts, ws.dZ, ws.d0, ws.d1, row_loss,
                pred, scale)
        if start_sign is not None and steps > 0:
            kernels.steepest_step(X_adv[lo:hi], start_sign[lo:hi], step_rows[lo:hi],
                                  NORM_CODES[norm])
            kernels.project_rows(X[lo:hi], X_adv[lo:hi], eps_rows[lo:hi], NORM_CODES[norm],
                                 cast(lower), cast(upper), use_bounds)
            kernels.pgd_rows(*args, steps - 1, code, NORM_CODES[norm], *tail)
        else:
            kernels.pgd_rows(*args, steps, code, NORM_CODES[norm], *tail)

    over_chunks(work, n, n_threads, row_flops(target, 3 * steps))
    return X_best, found, best_loss


def _clean_sign(target, X, y, loss, clean) -> np.ndarray:
    """The sign of the gradient of ``loss`` at the clean points: ``clean``'s (the
    evaluation's, computed once for every attack), else computed here."""
    clean = clean if clean is not None else CleanPoints(target, X, y)
    return gradient_sign("dL_dX", clean.gradient(loss), X, "f")


@single_blas_thread
def pgd_general(target, X, y, radii, *, steps, step_sizes, loss, bounds, norm,
                random_start, n_restarts, use_best, y_target, rng, n_threads,
                clean=None) -> list[np.ndarray]:
    """PGD at every radius of ``radii`` (with ``step_sizes`` in the same order): what
    :func:`pgd` and the registry run.

    ``target`` is a :class:`~robnp.attacks._threat.AttackedModel`; ``X``, ``y`` (and
    ``y_target``) are already checked; ``clean`` (optional) is the evaluation's
    :class:`~robnp.attacks._clean.CleanPoints` of ``X``. Returns one array per
    radius.

    The study's options on an MLP (L-infinity, one run, the final iterate,
    untargeted, cross-entropy or CW margin) ascend the gradient of the batch's mean
    loss (each row's gradient times ``1 / n``, as the study always has); from the
    clean points every radius's first step goes along the one gradient at ``X``, and
    on one thread every radius runs in the compiled study kernel
    (:func:`robnp.kernels.pgd_linf_radii`). Everything else stacks the radii as rows
    of one batch, each row with its own radius and step, and restarts on the points
    still robust; each run is compiled for an MLP (:func:`_pgd_compiled`) and a NumPy
    loop over the protocol otherwise (:func:`_pgd_numpy`).
    """
    n, d = X.shape
    targeted = y_target is not None
    name = targeted_loss(loss) if targeted else loss
    check_loss_classes(name, target.n_classes(X))
    code = loss_code(name, targeted_ok=True)
    t = y_target if targeted else y
    results = [X.copy() for _ in radii]
    live = [r for r, eps in enumerate(radii) if eps > 0]
    if not live:
        return results
    study = (target.fast and norm == "linf" and n_restarts == 1 and not use_best
             and not targeted and code in (kernels.LOSS_CROSS_ENTROPY, kernels.LOSS_CW_MARGIN))
    scale = 1.0 / n if study else 1.0
    first_sign = None
    if study and not random_start:
        first_sign = _clean_sign(target, X, y, loss, clean)
        # one thread: every radius in the study's kernel (the same numbers as the rows)
        if thread_count(n_threads, len(radii) * n, row_flops(target, 3 * steps)) == 1:
            lower, upper, use_bounds = check_bounds(bounds)
            cast = X.dtype.type
            X_advs = np.repeat(X[None], len(radii), axis=0)
            ws = target.model.workspace(n)
            kernels.pgd_linf_radii(target.model.params, target.model.sizes, X, y, X_advs,
                                   np.array(radii, X.dtype), np.array(step_sizes, X.dtype),
                                   steps, code, cast(lower), cast(upper), use_bounds,
                                   first_sign, np.empty_like(X), ws.acts, ws.dZ, ws.d0, ws.d1)
            return list(X_advs)
    result = np.repeat(X[None], len(radii), axis=0)
    found = np.zeros((len(radii), n), bool)
    best = np.full((len(radii), n), -np.inf)
    for restart in range(n_restarts):
        which, rows = np.nonzero(~found[live])
        which = np.asarray(live)[which]
        if rows.size == 0:
            break
        Xs = np.ascontiguousarray(X[rows])
        eps_rows = np.array([radii[r] for r in which], X.dtype)
        step_rows = np.array([step_sizes[r] for r in which], X.dtype)
        first = (random_start_points(rng, Xs, eps_rows, norm, bounds) if random_start
                 else Xs.copy())
        ys, ts = np.ascontiguousarray(y[rows]), np.ascontiguousarray(t[rows])
        if target.fast:
            sign = np.ascontiguousarray(first_sign[rows]) if first_sign is not None else None
            X_new, found_new, loss_new = _pgd_compiled(
                target, Xs, ys, ts, first, eps_rows, step_rows, steps, code, norm, bounds,
                targeted, use_best, n_threads, scale, sign)
        else:
            X_new, found_new, loss_new = _pgd_numpy(
                target, Xs, ys, ts, first, eps_rows, step_rows, steps, name, norm, bounds,
                targeted, use_best)
        better = found_new | (loss_new > best[which, rows]) if restart else np.ones(rows.size, bool)
        result[which[better], rows[better]] = X_new[better]
        found[which[better], rows[better]] = found_new[better]
        best[which[better], rows[better]] = loss_new[better]
    return [np.ascontiguousarray(result[r]) for r in range(len(radii))]


def clean_targets(target, X, y) -> np.ndarray:
    """The registry's target rule: the most likely wrong class at the clean point."""
    return top_wrong_class(target.logits(X), y, 1)


def run(model, X, y, radii, options: PGDOptions, rng, clean=None) -> list[np.ndarray]:
    """Registry entry: PGD at every radius (:func:`pgd_general`)."""
    target = AttackedModel(model)
    y_target = clean_targets(target, X, y) if options.targeted else None
    return pgd_general(target, X, y, radii, steps=options.steps,
                       step_sizes=[options.step_for(eps) for eps in radii],
                       loss=options.loss, bounds=options.bounds, norm=options.norm,
                       random_start=options.random_start, n_restarts=options.n_restarts,
                       use_best=options.use_best, y_target=y_target, rng=rng,
                       n_threads=options.n_threads, clean=clean)
