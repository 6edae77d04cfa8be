"""Projected gradient descent on the negative loss (Madry et al., 2018).

``steps`` steepest-ascent steps of ``step_size`` (default ``eps / 4``), each followed
by projection onto the ``eps``-ball around the clean input (and into ``bounds`` when
given), on the analytic input gradient.

The study's PGD (L-infinity, from the clean point, cross-entropy or CW margin, the
final iterate) runs the compiled kernel :func:`robnp.kernels.pgd_linf`, unchanged, so
the study's numbers stay what they were. Everything else is opt-in and runs
:func:`robnp.kernels.pgd_rows` on rows that carry their own radius (radii and restarts
stacked as rows, split into fixed chunks over threads): random starts, restarts on the
points still robust, the per-sample worst case ``use_best`` (the name of the MadryLab
``robustness`` library), targets, the L2 ball with its exact projection onto ball and
box, and the DLR losses (Croce and Hein, 2020). Carlini et al. (2019, "On evaluating
adversarial robustness") ask for exactly these: restarts, per-sample worst cases,
several losses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _checks, kernels
from .._checks import Coerced, Flag, Integer, Optional, Real, Satisfies
from ..errors import ConfigError
from ..gradients import input_gradient
from ..losses import check_loss_classes, loss_code, targeted_loss
from ..threads import single_blas_thread
from ._registry import AttackOptions
from ._threat import (AttackedModel, as_generator, check_bounds, check_eps, check_norm,
                      check_threads, gradient_sign, over_chunks, top_wrong_class)

__all__ = ["pgd", "PGDOptions", "PGDCWOptions", "run", "pgd_general", "random_start_points"]


@dataclass(frozen=True)
class PGDOptions(AttackOptions):
    """Options of PGD; the defaults are the robustness-scaling study's (10 steps of
    eps/4 on the cross-entropy from the clean point, the final iterate).

    Attributes
    ----------
    steps : int >= 0
        Steepest-ascent steps.
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

    constraints = {"steps": Integer(0),
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

    def passes(self) -> float:
        """``steps`` gradient steps per restart, then the evaluation."""
        return self.n_restarts * self.GRADIENT_PASSES * self.steps + 1

    @property
    def randomized(self) -> bool:
        return self.random_start

    @property
    def study_default(self) -> bool:
        """True when these options run exactly the study's PGD kernel."""
        return (self.norm == "linf" and self.n_restarts == 1 and not self.use_best
                and not self.targeted and self.loss in ("cross_entropy", "cw_margin"))

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
        bounds=None, start_gradient=None, norm: str = "linf", n_restarts: int = 1,
        use_best: bool = False, y_target=None, n_threads=None) -> np.ndarray:
    """Projected gradient descent on the negative loss (Madry et al., 2018).

    Parameters
    ----------
    model : MLP, or any model of the attack protocol (see :mod:`robnp.attacks`)
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    eps : float >= 0
        Radius of the ball. ``eps = 0`` returns a copy of ``X``.
    steps : int >= 0
        Number of steps.
    step_size : float, optional
        Size of each step; default ``eps / 4`` (the study's choice).
    random_start : bool
        Start from a point drawn uniformly in the ball (Madry et al.) instead of ``X``
        (L2: a Gaussian direction and radius ``eps U^(1/d)``).
    seed : int, numpy.random.Generator or None
        Source of the random start.
    loss : {"cross_entropy", "cw_margin", "dlr"}
    bounds : (float, float), optional
        Also keep every coordinate in ``[lower, upper]`` after each step. The ball
        comes first: a clean coordinate more than ``eps`` outside the box moves only
        as far as the ball allows towards it.
    start_gradient : array of shape (n_samples, n_features), optional
        The gradient of ``loss`` at ``X`` (from :func:`robnp.input_gradient`), used
        for the first step instead of recomputing it. It does not depend on
        ``eps``, so a sweep over radii computes it once (as
        :func:`robnp.robust_accuracy` does); the result is identical. Only with the
        study's options (L-infinity, one run, final iterate, untargeted, an MLP); not
        with ``random_start``, whose first step is not taken at ``X``.
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
    steps = _checks.integer("steps", steps, 0)
    step_size = eps / 4 if step_size is None else _checks.real("step_size", step_size, 0)
    lower, upper, use_bounds = check_bounds(bounds)
    code = loss_code(loss)
    check_norm(norm)
    n_restarts = _checks.integer("n_restarts", n_restarts, 1)
    use_best = _checks.flag("use_best", use_best)
    n_threads = check_threads(n_threads)
    target = AttackedModel(model)
    X = target.check_input(X)
    y = target.check_labels(y, X)
    study = (target.fast and norm == "linf" and n_restarts == 1 and not use_best
             and y_target is None and code in (0, 1))
    if start_gradient is not None and not study:
        raise ConfigError("start_gradient is only used with the study's options "
                          "(norm='linf', n_restarts=1, use_best=False, no y_target, "
                          "cross_entropy or cw_margin, an MLP)")
    if y_target is not None:
        y_target = target.check_labels(y_target, X)
    rng = as_generator(seed)
    if not study:
        if eps == 0:
            return X.copy()
        return pgd_general(target, X, y, (eps,), steps=steps, step_sizes=(step_size,),
                           loss=loss, bounds=bounds, norm=norm, random_start=random_start,
                           n_restarts=n_restarts, use_best=use_best, y_target=y_target,
                           rng=rng, n_threads=n_threads)[0]
    # The first step uses only the gradient's sign; the kernel overwrites dX, so the
    # caller's array is never touched.
    dX = np.empty_like(X)
    if start_gradient is not None:
        if random_start:
            raise ConfigError("start_gradient is the gradient at X; it cannot be used with "
                              "random_start")
        dX = gradient_sign("start_gradient", start_gradient, X, "f")
    if eps == 0:
        return X.copy()
    X_adv = X.copy()
    if random_start:
        X_adv += rng.uniform(-eps, eps, size=X.shape).astype(X.dtype)
        kernels.project_linf(X, X_adv, X.dtype.type(eps), X.dtype.type(lower),
                             X.dtype.type(upper), use_bounds)
    cast = X.dtype.type
    if n_threads is not None and n_threads > 1:
        # The same arithmetic as pgd_linf, row by row, at the whole batch's 1/n scale.
        return pgd_general(target, X, y, (eps,), steps=steps, step_sizes=(step_size,),
                           loss=loss, bounds=bounds, norm="linf", random_start=False,
                           n_restarts=1, use_best=False, y_target=None, rng=rng,
                           n_threads=n_threads, start=X_adv,
                           start_sign=dX if start_gradient is not None else None,
                           scale=1.0 / X.shape[0])[0]
    model = target.model
    ws = model.workspace(X.shape[0])
    kernels.pgd_linf(model.params, model.sizes, X, y, X_adv, cast(eps), cast(step_size),
                     int(steps), code, cast(lower), cast(upper), use_bounds,
                     dX, ws.acts, ws.dZ, ws.d0, ws.d1, start_gradient is not None)
    return X_adv


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
    """PGD over the protocol: the loop of :func:`robnp.kernels.pgd_rows`, with the
    model's own ``logits`` and ``input_gradient``."""
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
    """PGD on an MLP: :func:`robnp.kernels.pgd_rows` over fixed chunks of rows."""
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
            # The study's first step, along a given gradient sign, then the rest.
            kernels.steepest_step(X_adv[lo:hi], start_sign[lo:hi], step_rows[lo:hi],
                                  NORM_CODES[norm])
            kernels.project_rows(X[lo:hi], X_adv[lo:hi], eps_rows[lo:hi], NORM_CODES[norm],
                                 cast(lower), cast(upper), use_bounds)
            kernels.pgd_rows(*args, steps - 1, code, NORM_CODES[norm], *tail)
        else:
            kernels.pgd_rows(*args, steps, code, NORM_CODES[norm], *tail)

    over_chunks(work, n, n_threads)
    return X_best, found, best_loss


@single_blas_thread
def pgd_general(target, X, y, radii, *, steps, step_sizes, loss, bounds, norm,
                random_start, n_restarts, use_best, y_target, rng, n_threads,
                start=None, start_sign=None, scale=1.0) -> list[np.ndarray]:
    """PGD at every radius of ``radii`` (with ``step_sizes`` in the same order), the
    radii stacked as rows of one batch, with restarts on the points still robust.

    ``target`` is a :class:`~robnp.attacks._threat.AttackedModel`; ``X``, ``y`` (and
    ``y_target``) are already checked. ``start`` (one radius only) replaces the
    clean or random start of the first run, ``start_sign`` the gradient sign of its
    first step; ``scale`` multiplies every gradient (only the study's 1/n uses it).
    Returns one array per radius.
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
        if restart == 0 and start is not None:
            first = np.ascontiguousarray(start, dtype=X.dtype)
        elif random_start:
            first = random_start_points(rng, Xs, eps_rows, norm, bounds)
        else:
            first = Xs.copy()
        ys, ts = np.ascontiguousarray(y[rows]), np.ascontiguousarray(t[rows])
        if target.fast:
            sign = start_sign if restart == 0 else None
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


@single_blas_thread
def _study_radii(model, X, y, radii, options: PGDOptions) -> list[np.ndarray]:
    """The study's PGD at every radius in one compiled call: exactly what
    :func:`pgd` with ``start_gradient`` does radius by radius (the same products on
    the same rows), without a Python round trip per radius."""
    lower, upper, use_bounds = check_bounds(options.bounds)
    cast = X.dtype.type
    sign = gradient_sign("dL_dX", input_gradient(model, X, y, loss=options.loss), X, "f")
    X_advs = np.repeat(X[None], len(radii), axis=0)
    ws = model.workspace(X.shape[0])
    kernels.pgd_linf_radii(model.params, model.sizes, X, y, X_advs,
                           np.array(radii, X.dtype),
                           np.array([options.step_for(eps) for eps in radii], X.dtype),
                           options.steps, loss_code(options.loss), cast(lower), cast(upper),
                           use_bounds, sign, np.empty_like(X), ws.acts, ws.dZ, ws.d0, ws.d1)
    return list(X_advs)


def clean_targets(target, X, y) -> np.ndarray:
    """The registry's target rule: the most likely wrong class at the clean point."""
    return top_wrong_class(target.logits(X), y, 1)


def run(model, X, y, radii, options: PGDOptions, rng) -> list[np.ndarray]:
    """Registry entry: PGD at every radius. With the study's options every radius takes
    its first step from ``X`` along the same gradient, computed once here; otherwise
    the radii run stacked as one batch (:func:`pgd_general`)."""
    target = AttackedModel(model)
    if options.study_default and target.fast and options.n_threads in (None, 1):
        common = dict(steps=options.steps, loss=options.loss, bounds=options.bounds)
        if options.random_start:
            return [pgd(model, X, y, eps, step_size=options.step_for(eps), random_start=True,
                        seed=rng, **common) for eps in radii]
        return _study_radii(model, X, y, radii, options)
    if options.study_default and target.fast:
        common = dict(steps=options.steps, loss=options.loss, bounds=options.bounds,
                      random_start=options.random_start, n_threads=options.n_threads)
        return [pgd(model, X, y, eps, step_size=options.step_for(eps), seed=rng, **common)
                for eps in radii]
    y_target = clean_targets(target, X, y) if options.targeted else None
    return pgd_general(target, X, y, radii, steps=options.steps,
                       step_sizes=[options.step_for(eps) for eps in radii],
                       loss=options.loss, bounds=options.bounds, norm=options.norm,
                       random_start=options.random_start, n_restarts=options.n_restarts,
                       use_best=options.use_best, y_target=y_target, rng=rng,
                       n_threads=options.n_threads)
