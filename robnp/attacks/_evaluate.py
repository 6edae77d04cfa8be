"""Clean and robust accuracy."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from .. import _checks, kernels
from ..errors import ConfigError, DataError
from ..threads import single_blas_thread
from ..model import MLP
from ._autoattack import SuiteOptions, run_stages
from ._clean import CleanPoints
from ._fab import MinimalPerturbation
from ._projections import row_norm
from ._registry import get_attack
from ..flops import forward_flops
from ._threat import (AttackedModel, as_generator, check_evaluation_fits, check_radii,
                      check_reach, chunk_bounds, chunked_logits, forward_chunks, over_chunks,
                      refuse_nan, thread_count)

__all__ = ["accuracy", "robust_accuracy", "evaluate", "Evaluation",
           "AttackResult", "predict"]


@single_blas_thread
def accuracy(model, X, y) -> float:
    """Fraction of rows whose arg-max logit is the label (the first index on ties)."""
    if not isinstance(model, MLP):
        X, y = _inputs(model, X, y)
        # A plain float on both paths (NumPy's count would make this np.float64).
        return int(np.count_nonzero(predict(model, X) == y)) / X.shape[0]
    X = model.check_input(X)
    y = model.check_labels(y, X.shape[0])
    # in the chunks of chunked_logits, so that a point counts as the evaluation's
    # checks (predict) count it, to the last bit of a near tie
    counts = {}

    def work(lo, hi):
        counts[lo] = kernels.count_correct(model.params, model.sizes, X[lo:hi], y[lo:hi],
                                           model.workspace(hi - lo).acts)

    over_chunks(work, X.shape[0], None, forward_flops(model.layer_sizes))
    return sum(counts.values()) / X.shape[0]


@single_blas_thread
def robust_accuracy(model, X, y, attack="pgd", eps: Iterable[float] = (0.01, 0.05, 0.1, 0.2, 0.5),
                    **attack_options) -> dict[float, float]:
    """Accuracy on adversarial examples, for every radius in ``eps``.

    Parameters
    ----------
    model : MLP
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    attack : str or callable
        A registered attack (see :func:`robnp.attacks.attack_names`), or any
        ``attack(model, X, y, eps, **options)`` returning adversarial inputs.
    eps : float or iterable of float
        Radii; the result keeps their order.
    **attack_options
        The attack's options (e.g. ``steps=20``, ``bounds=(0, 1)``; see its options
        dataclass), and ``seed`` (default 0) for attacks that draw random numbers.

    Returns
    -------
    dict mapping each eps (float) to the robust accuracy (float in [0, 1]).
    """
    radii = check_radii(eps)
    check_evaluation_fits(model, X, len(radii), 1)
    X, y = _inputs(model, X, y)
    check_reach(radii, X)
    if isinstance(attack, str):
        spec = get_attack(attack)
        seed = attack_options.pop("seed", 0)
        adversarial = spec.run(model, X, y, radii, spec.make_options(attack_options),
                               as_generator(seed))
    elif callable(attack):
        adversarial = [attack(model, X, y, e, **attack_options) for e in radii]
    else:
        raise ConfigError(f"attack must be a name or a callable, got {attack!r}")
    return {e: accuracy(model, X_adv, y) for e, X_adv in zip(radii, adversarial)}


# ---------------------------------------------------------------------------
# evaluate: several attacks, per-sample worst case, sanity checks
# ---------------------------------------------------------------------------

def _inputs(model, X, y):
    """``X`` and ``y`` checked through the attack protocol (:class:`AttackedModel`): by the
    model itself for an MLP, against its declared sizes otherwise."""
    target = AttackedModel(model)
    X = target.check_input(X)
    if not np.all(np.isfinite(X)):
        row = int(np.flatnonzero(~np.all(np.isfinite(X), axis=1))[0])
        raise DataError(f"X holds NaN or infinite values (first in row {row})")
    return X, target.check_labels(y, X)


def _logits(model, X) -> np.ndarray:
    """``model.logits(X)`` as an array; NaN refused (:func:`refuse_nan`). An MLP's are
    computed in the fixed chunks of :func:`chunked_logits`, on threads: the same chunks
    :func:`accuracy` counts in, so a batch gets the same verdicts from both. (The last
    bits of a row's logits depend on the rows it is computed with, as BLAS blocks a
    product; :meth:`robnp.MLP.logits` computes the whole batch at once, and at a margin
    within a few units in the last place of zero may disagree with these.)"""
    if isinstance(model, MLP):
        return refuse_nan(chunked_logits(model, model.check_input(X)), "model.logits")
    return refuse_nan(np.asarray(model.logits(X)), "model.logits")


def _misclassified(model, points, attacked, y) -> np.ndarray:
    """``success[k, i]``: whether ``points[k, i]``, what an attack found for point ``i``
    at radius ``k``, is misclassified, where ``attacked[k, i]`` (False elsewhere). Each
    radius's attacked points are one batch, checked as :func:`predict` (and
    :func:`accuracy`) would check them; on an MLP the chunks of every radius go to the
    threads at once (:func:`forward_chunks`)."""
    success = np.zeros(attacked.shape, bool)
    if not isinstance(model, MLP):
        for k, mask in enumerate(attacked):
            rows = np.flatnonzero(mask)
            if rows.size:
                success[k, rows] = predict(model, points[k, rows]) != y[rows]
        return success
    # every point attacked (the usual case): a slice, no index array held
    per_radius = [slice(None) if mask.all() else np.flatnonzero(mask) for mask in attacked]
    for k, rows in enumerate(per_radius):
        if not np.isfinite(points[k, rows]).all():
            model.check_input(points[k, rows])  # says which point is not finite
    chunks = [(k, lo, hi) for k, rows in enumerate(per_radius)
              for lo, hi in chunk_bounds(attacked.shape[1] if isinstance(rows, slice)
                                         else rows.size)]

    def chunk_rows(k, lo, hi):
        rows = per_radius[k]
        return slice(lo, hi) if isinstance(rows, slice) else rows[lo:hi]

    def take(k, lo, hi):
        return np.ascontiguousarray(points[k, chunk_rows(k, lo, hi)], dtype=model.dtype)

    def use(k, lo, hi, Z):
        refuse_nan(Z, "model.logits")
        rows = chunk_rows(k, lo, hi)
        success[k, rows] = Z.argmax(axis=1) != y[rows]

    forward_chunks(model, chunks, take, use,
                   thread_count(None, int(attacked.sum()), forward_flops(model.layer_sizes)))
    return success


def predict(model, X) -> np.ndarray:
    """Arg-max class of every row (the first index on ties, as the kernels count).
    Logits holding NaN are a :class:`~robnp.errors.DataError`."""
    return _logits(model, X).argmax(axis=1)


def _attack_list(attacks) -> list[tuple[str, object]]:
    """``attacks`` as ``[(name, options)]``: names, ``(name, options)`` pairs with an
    options object or a mapping of option values, or a mapping name -> options."""
    if isinstance(attacks, str):
        attacks = [attacks]
    if isinstance(attacks, dict):
        attacks = list(attacks.items())
    chosen = []
    for entry in attacks:
        name, options = (entry, None) if isinstance(entry, str) else entry
        spec = get_attack(name)
        if options is None or isinstance(options, dict):
            options = spec.make_options(options)
        elif not isinstance(options, spec.options):
            raise ConfigError(f"options of attack {name!r} must be a "
                              f"{spec.options.__name__} or a mapping, got {options!r}")
        chosen.append((name, options))
    names = [name for name, _ in chosen]
    if not names:
        raise ConfigError("attacks must name at least one attack")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"attacks has duplicate names: {', '.join(repeated)}")
    return chosen


def _attack_seed(seed, name: str) -> np.random.Generator:
    """A generator for one attack, derived from the evaluation's seed and the attack's
    name, so adding or reordering attacks changes no other attack's numbers."""
    if isinstance(seed, np.random.Generator):
        return seed
    base = 0 if seed is None else _checks.integer("seed", seed, 0)
    return np.random.default_rng([base, *name.encode()])


@dataclass(frozen=True)
class AttackResult:
    """One attack over every radius.

    Attributes
    ----------
    name : str
    options : AttackOptions
    success : ndarray of shape (n_eps, n_points), bool
        The attack's point at that radius is misclassified.
    attacked : ndarray of shape (n_eps, n_points), bool
        The attack ran on that point (every point, unless the evaluation cascades).
    adversarial : ndarray of shape (n_eps, n_points, n_features)
        The attack's point (the clean point where it did not run).
    robust_acc : ndarray of shape (n_eps,), float64
        Share of points not successfully attacked.
    minimal : MinimalPerturbation or None
        For attacks whose run reports the smallest perturbation it found per point
        (FAB's), that perturbation, beyond the radii too (``inf`` where none was found
        or the attack did not run); None for the others.
    """

    name: str
    options: object
    success: np.ndarray
    attacked: np.ndarray
    adversarial: np.ndarray
    robust_acc: np.ndarray
    minimal: MinimalPerturbation | None = None


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate` found.

    Attributes
    ----------
    eps : tuple of float
    clean_correct : ndarray of shape (n_points,), bool
    attacks : dict of str to AttackResult, in the order run
    worst_success : ndarray of shape (n_eps, n_points), bool
        Clean errors, or points some attack broke at that radius.
    worst_robust_acc : ndarray of shape (n_eps,), float64
    worst_points : ndarray of shape (n_eps, n_points, n_features)
        For each broken point the first attack's winning point (the clean point
        for clean errors); for robust points the clean point.
    zero_gradient_share : float
        Share of points whose cross-entropy input gradient is exactly zero.
    cascade : bool
    warnings : tuple of str
        The sanity checks that failed (see :func:`evaluate`).
    notices : tuple of str
        What a suite (``autoattack``) replaced or skipped on this model, and why.
    """

    eps: tuple
    clean_correct: np.ndarray
    attacks: dict
    worst_success: np.ndarray
    worst_robust_acc: np.ndarray
    worst_points: np.ndarray
    zero_gradient_share: float
    cascade: bool
    warnings: tuple
    notices: tuple = ()

    @property
    def clean_acc(self) -> float:
        return float(self.clean_correct.mean())

    def robust_accuracy(self, attack: str | None = None) -> dict[float, float]:
        """eps -> robust accuracy of one attack, or of the worst case when None."""
        values = self.worst_robust_acc if attack is None else self.attacks[attack].robust_acc
        return {e: float(v) for e, v in zip(self.eps, values)}

    def minimal_perturbation(self, X, attack: str | None = None) -> MinimalPerturbation:
        """Per point the smallest perturbation an attack found, in the attacks' norm.

        For an attack whose run reports its minimal perturbation (FAB's,
        :attr:`AttackResult.minimal`), that one; for the others the nearest of their
        successful points over the radii (its distance, and never more than the
        radius it broke at); clean errors 0; ``inf`` where nothing was found. With
        ``attack=None`` the smallest over every attack (all must share one norm).

        Parameters
        ----------
        X : array-like of shape (n_points, n_features)
            The points evaluated (the evaluation does not keep them).
        attack : str, optional

        Returns
        -------
        MinimalPerturbation
            ``points`` in X's dtype (the clean point where none was found), ``norms``
            float64; ``norms > eps`` is robustness against these attacks at any eps.
        """
        names = list(self.attacks) if attack is None else [attack]
        if attack is not None and attack not in self.attacks:
            raise ConfigError(f"attack must be one of {', '.join(self.attacks)}, "
                              f"got {attack!r}")
        norms = sorted({self.attacks[name].options.norm for name in names})
        if len(norms) > 1:
            raise ConfigError(f"the attacks measure in different norms ({', '.join(norms)}); "
                              f"name one attack")
        X = np.asarray(X)
        if X.shape[0] != self.clean_correct.size:
            raise DataError(f"X has {X.shape[0]} rows but {self.clean_correct.size} points "
                            f"were evaluated")
        best = np.where(self.clean_correct, np.inf, 0.0)
        points = X.copy()
        for name in names:
            _nearest_success(self.attacks[name], X, self.eps, norms[0], best, points)
        return MinimalPerturbation(points, best)

    def minimal_radius(self, X, attack: str | None = None) -> np.ndarray:
        """The norms of :meth:`minimal_perturbation`: shape (n_points,), float64."""
        return self.minimal_perturbation(X, attack).norms

    def records(self) -> list[dict]:
        """Long-form records: one per (attack, eps), with the attack's norm, its robust
        accuracy and the count of points it attacked successfully."""
        n_points = int(self.clean_correct.size)
        return [{"attack": name, "norm": result.options.norm, "epsilon": float(eps),
                 "robust_acc": float(result.robust_acc[k]),
                 "n_success": int(result.success[k].sum()), "n_points": n_points}
                for name, result in self.attacks.items() for k, eps in enumerate(self.eps)]

    def to_dict(self) -> dict:
        """JSON-ready summary (no per-point arrays but the success counts)."""
        return {
            "eps": list(self.eps),
            "n_points": int(self.clean_correct.size),
            "clean_acc": self.clean_acc,
            "cascade": self.cascade,
            "attacks": {name: {"options": result.options.to_dict(),
                               "norm": result.options.norm,
                               "robust_acc": [float(v) for v in result.robust_acc],
                               "n_success": [int(v) for v in result.success.sum(axis=1)],
                               "n_attacked": [int(v) for v in result.attacked.sum(axis=1)]}
                        for name, result in self.attacks.items()},
            "worst_case": {"robust_acc": [float(v) for v in self.worst_robust_acc],
                           "n_success": [int(v) for v in self.worst_success.sum(axis=1)]},
            "zero_gradient_share": self.zero_gradient_share,
            "warnings": list(self.warnings),
            **({"notices": list(self.notices)} if self.notices else {}),
        }


def _nearest_success(result: AttackResult, X, radii, norm, best, points) -> None:
    """Lower ``best`` (and set ``points``) in place to ``result``'s nearest successful
    points: its reported minimal perturbation, and each success at each radius."""
    if result.minimal is not None:
        smaller = result.minimal.norms < best
        best[smaller] = result.minimal.norms[smaller]
        points[smaller] = result.minimal.points[smaller]
    X64 = X.astype(np.float64)
    for k, radius in enumerate(radii):
        rows = np.flatnonzero(result.success[k])
        if rows.size == 0:
            continue
        size = np.minimum(row_norm(result.adversarial[k, rows] - X64[rows], norm), radius)
        smaller = size < best[rows]
        best[rows[smaller]] = size[smaller]
        points[rows[smaller]] = result.adversarial[k, rows[smaller]]


def _found_minimal(found, minimal, rows, X):
    """``minimal`` (a MinimalPerturbation over all points, or None) updated with what a
    run on ``rows`` reported (its ``minimal`` attribute), keeping the smaller."""
    reported = getattr(found, "minimal", None)
    if reported is None:
        return minimal
    if minimal is None:
        minimal = MinimalPerturbation(X.copy(), np.full(X.shape[0], np.inf))
    smaller = reported.norms < minimal.norms[rows]
    minimal.norms[rows[smaller]] = reported.norms[smaller]
    minimal.points[rows[smaller]] = reported.points[smaller]
    return minimal


@single_blas_thread
def evaluate(model, X, y, eps=(0.01, 0.05, 0.1, 0.2, 0.5), attacks=("fgsm", "pgd"), *,
             seed=0, cascade: bool = False, check_convergence: bool = False,
             progress=None) -> Evaluation:
    """Run several attacks at every radius and score the per-sample worst case.

    Parameters
    ----------
    model : MLP, or any object with ``logits(X)`` and ``input_gradient(X, y, loss)``
    X : array-like of shape (n_points, n_features)
    y : array-like of shape (n_points,)
    eps : float or iterable of float
    attacks : iterable
        Registered attack names, ``(name, options)`` pairs (options an options
        object or a mapping), or a mapping name -> options; run in this order. A
        suite (``autoattack``) runs its stages in cascade among themselves; each
        stage is reported as an attack (``aa-apgd-ce``, ...: the robust accuracy
        after it and the stages before it) and the suite under its own name (its
        worst case, the last stage's number); ``notices`` says what it replaced or
        skipped on this model.
    seed : int or numpy.random.Generator
        Each attack draws from a generator derived from ``seed`` and its name.
    cascade : bool
        False (default): every attack runs on every point, so each attack's robust
        accuracy is its own (the study's numbers). True: as AutoAttack scores, each
        attack runs only on the points still robust at that radius (clean errors
        are never attacked), so an attack's number is the robust accuracy after it
        and every attack before it; cheaper, same worst case in distribution.
    check_convergence : bool
        Also rerun every attack on the points it left robust, once with twice its
        budget (the option its options name in ``budget``: ``steps``, ``n_iter``,
        ``n_queries``) and once with twice its random restarts, and warn where that
        breaks more, naming the rerun that broke more (a suite's stages are rerun on
        the points the suite left robust).
    progress : callable, optional
        Called as ``progress(done, total)`` after each attack (each attack and radius
        with ``cascade``; each rerun in the convergence check), both in forward-pass
        equivalents of the whole evaluation (:meth:`AttackOptions.passes` per point
        and radius), for a progress bar; results do not depend on it.

    Returns
    -------
    Evaluation
        Clean errors count as non-robust in the worst case. ``warnings`` lists
        the sanity checks (Carlini et al. 2019, "On evaluating adversarial
        robustness") that failed: FGSM breaking points an iterative attack left
        robust; robust accuracy rising with eps; a black-box attack breaking points
        every white-box attack failed on (gradient masking); input gradients that
        are exactly zero; accuracy above the majority share where the largest ball
        covers the data's bounding box; twice the steps, or twice the restarts,
        still changing the answer.
    """
    radii = check_radii(eps)
    chosen = _attack_list(attacks)
    check_evaluation_fits(model, X, len(radii), len(chosen) * (2 if check_convergence else 1))
    X, y = _inputs(model, X, y)
    check_reach(radii, X)
    logits = _logits(model, X)
    for _, options in chosen:
        options.check_classes(logits.shape[1])
    clean_correct = logits.argmax(axis=1) == y
    names = [name for name, _ in chosen]
    for name, options in chosen:
        if isinstance(options, SuiteOptions):
            stages = [stage.name for stage in options.stages(logits.shape[1])]
            clash = sorted(set(stages) & set(names))
            if clash:
                raise ConfigError(f"attacks: {', '.join(clash)} is a stage of suite "
                                  f"{name!r}; run one or the other")
            names += stages
    n_eps, n_points = len(radii), X.shape[0]
    worst = np.repeat(~clean_correct[None, :], n_eps, axis=0)
    worst_points = np.repeat(X[None], n_eps, axis=0)
    clean = CleanPoints(AttackedModel(model), X, y)
    results = {}
    notices = []
    # Work per radius of each attack, in forward passes per point: the progress units.
    work = {name: _passes(options, logits.shape[1]) if progress is not None else 1.0
            for name, options in chosen}
    total = (2.0 if check_convergence else 1.0) * n_eps * sum(work.values())
    done = 0.0

    def advance(amount):
        nonlocal done
        done += amount
        if progress is not None:
            progress(min(done, total), total)
    for name, options in chosen:
        spec = get_attack(name)
        rng = _attack_seed(seed, name)
        adversarial = np.repeat(X[None], n_eps, axis=0)
        attacked = np.zeros((n_eps, n_points), bool)
        minimal = None
        if isinstance(options, SuiteOptions):
            # the suite runs on every point it is handed, as any attack does
            attacked[:] = ~worst if cascade else True
            stage_results, adversarial = _run_suite(model, X, y, radii, options, rng,
                                                    ~attacked | ~clean_correct,
                                                    logits.shape[1])
            results.update(stage_results)
            notices += [n for n in options.notices(logits.shape[1]) if n not in notices]
            advance(n_eps * work[name])
        elif cascade:
            for k, radius in enumerate(radii):
                rows = np.flatnonzero(~worst[k])
                if rows.size:
                    found = spec.run(model, X[rows], y[rows], (radius,), options, rng)
                    adversarial[k, rows] = found[0]
                    attacked[k, rows] = True
                    minimal = _found_minimal(found, minimal, rows, X)
                advance(work[name])
        else:
            found = _run_on_clean(spec, model, X, y, radii, options, rng, clean)
            adversarial[:] = np.stack(found)
            attacked[:] = True
            minimal = _found_minimal(found, minimal, np.arange(n_points), X)
            advance(n_eps * work[name])
        success = _misclassified(model, adversarial, attacked, y)
        for k in range(n_eps):
            new = success[k] & ~worst[k]
            worst_points[k, new] = adversarial[k, new]
            worst[k] |= success[k]
        # Counted, then divided: the same float as accuracy() gives for these points.
        broken = worst if cascade else success
        robust_acc = np.count_nonzero(~broken, axis=1) / n_points
        results[name] = AttackResult(name, options, success, attacked, adversarial, robust_acc,
                                     minimal)
    gradient = clean.gradient("cross_entropy")
    zero_share = float(np.mean(~np.any(gradient != 0, axis=1)))
    evaluation = Evaluation(radii, clean_correct, results, worst,
                            np.count_nonzero(~worst, axis=1) / n_points, worst_points,
                            zero_share, bool(cascade), (), tuple(notices))
    found = _sanity_warnings(evaluation, X, y)
    if check_convergence:
        share = n_eps * sum(work.values())  # the reruns' part of the total
        found += _convergence_warnings(model, X, y, evaluation, seed, logits.shape[1],
                                       lambda fraction: advance(fraction * share))
    return dataclasses.replace(evaluation, warnings=tuple(found))


def _passes(options, n_classes: int) -> float:
    """An attack's work per point and radius for the progress callback; 1 for an
    attack whose options do not say (``passes`` is required only of the study's)."""
    try:
        return float(options.passes(n_classes))
    except NotImplementedError:
        return 1.0


def _run_suite(model, X, y, radii, options, rng, not_robust, n_classes):
    """A suite's stages in cascade (:func:`robnp.attacks._autoattack.run_stages`) on
    the points not in ``not_robust`` (clean errors, and in a cascading evaluation the
    points earlier attacks broke): each stage's :class:`AttackResult` scored as a
    cascade (robust accuracy after it and the stages before it), and the suite's own
    points: each point's first successful stage's, else the clean point (as the
    reference returns)."""
    n_eps, n_points = not_robust.shape
    runs = run_stages(model, X, y, radii, options.stages(n_classes), rng, not_robust)
    stage_results = {}
    points = np.repeat(X[None], n_eps, axis=0)
    for stage_run in runs:
        stage = stage_run.stage
        robust_acc = np.count_nonzero(~stage_run.broken, axis=1) / n_points
        stage_results[stage.name] = AttackResult(stage.name, stage.options, stage_run.success,
                                                 stage_run.attacked, stage_run.adversarial,
                                                 robust_acc)
        points[stage_run.success] = stage_run.adversarial[stage_run.success]
    return stage_results, points


def _run_on_clean(spec, model, X, y, radii, options, rng, clean):
    """``spec.run`` on the evaluation's clean points, handed ``clean`` (their gradients,
    computed once for every attack) when it takes a ``clean`` keyword."""
    if "clean" in inspect.signature(spec.run).parameters:
        return spec.run(model, X, y, radii, options, rng, clean=clean)
    return spec.run(model, X, y, radii, options, rng)


def _is_black_box(options) -> bool:
    return bool(options.black_box)


def _sanity_warnings(evaluation: Evaluation, X, y) -> list[str]:
    found = []
    eps = evaluation.eps
    order = np.argsort(eps, kind="stable")
    results = evaluation.attacks
    # FGSM is one step of what every iterative L-inf attack starts with.
    if "fgsm" in results:
        weak = results["fgsm"]
        for name, strong in results.items():
            if name == "fgsm" or _is_black_box(strong.options) or strong.options.norm != "linf":
                continue
            missed = weak.success & strong.attacked & ~strong.success
            for k in np.flatnonzero(missed.any(axis=1)):
                found.append(f"FGSM breaks {int(missed[k].sum())} point(s) that {name} leaves "
                             f"robust at eps={eps[k]:g}: {name} is not converging")
    if not evaluation.cascade:
        for name, result in results.items():
            values = result.robust_acc[order]
            for a, b in zip(range(len(order)), range(1, len(order))):
                if values[b] > values[a]:
                    found.append(f"{name}: robust accuracy rises from {values[a]:.4f} at "
                                 f"eps={eps[order[a]]:g} to {values[b]:.4f} at "
                                 f"eps={eps[order[b]]:g}")
    # a suite's own result holds its black-box stage's successes: not a white-box one
    white = [r for r in results.values()
             if not _is_black_box(r.options) and not isinstance(r.options, SuiteOptions)]
    for black in (r for r in results.values() if _is_black_box(r.options)):
        if not white:
            break
        all_failed = np.logical_and.reduce([r.attacked & ~r.success for r in white])
        masked = black.success & all_failed
        for k in np.flatnonzero(masked.any(axis=1)):
            found.append(f"black-box {black.name} breaks {int(masked[k].sum())} point(s) every "
                         f"white-box attack left robust at eps={eps[k]:g}: a sign of "
                         f"gradient masking")
    if evaluation.zero_gradient_share > 0:
        found.append(f"{evaluation.zero_gradient_share:.1%} of the points have an input "
                     f"gradient of exactly zero: gradient attacks cannot move them")
    # A ball that reaches every corner of the data's box can move any point anywhere
    # in it; no classifier keeps more than the majority class there.
    largest = int(order[-1])
    half_range = float(np.max(X.max(axis=0) - X.min(axis=0))) / 2
    majority = np.bincount(y).max() / y.size
    if eps[largest] >= half_range and evaluation.worst_robust_acc[largest] > majority + 1e-12:
        found.append(f"robust accuracy {evaluation.worst_robust_acc[largest]:.4f} at "
                     f"eps={eps[largest]:g} (a ball covering the data's range) is above the "
                     f"majority share {majority:.4f}: the attacks are too weak")
    return found


#: What an attack's budget option counts, in the convergence check's advice.
_BUDGET_NOUNS = {"steps": "steps", "n_iter": "iterations", "n_queries": "queries"}


def _convergence_reruns(evaluation: Evaluation, n_classes: int):
    """``(name, registered attack, options, rows)`` of every attack the convergence
    check reruns, ``rows`` the (n_eps, n_points) points it left robust. A suite's
    stages are rerun on the points the whole suite left robust, since only those
    can change its answer."""
    suites = {name: result for name, result in evaluation.attacks.items()
              if isinstance(result.options, SuiteOptions)}
    staged = {stage.name for result in suites.values()
              for stage in result.options.stages(n_classes)}
    for name, result in evaluation.attacks.items():
        left = result.attacked & ~result.success
        if name in suites:
            for stage in result.options.stages(n_classes):
                yield stage.name, stage.attack, stage.options, left
        elif name not in staged:
            yield name, name, result.options, left


def _convergence_warnings(model, X, y, evaluation: Evaluation, seed,
                          n_classes: int, advance=None) -> list[str]:
    """Carlini et al. (2019, "On evaluating adversarial robustness")'s checklist: rerun
    every attack on the points it left robust with twice its budget (the option its
    options name in ``budget``: PGD's steps, APGD's and FAB's iterations, Square's
    queries) and, separately, with twice its random restarts (the same extra work),
    both from the same first random start (one adds iterations to it, the other new
    starts); each point a rerun breaks means the attack had not converged, and the
    warning names the rerun that broke more. Attacks whose runs do not start at random (the
    study's PGD) have no restarts to add, and the warning says so. ``advance`` is
    called with the share of the reruns done (adding up to 1) after each attack."""
    found = []
    entries = list(_convergence_reruns(evaluation, n_classes))
    for name, attack, options, left in entries:
        if advance is not None:
            advance(1.0 / len(entries))  # before the work: a progress bar, not a meter
        budget = options.budget
        if budget is not None and getattr(options, budget) == 0:
            continue
        reruns = {}
        if budget is not None:
            reruns["budget"] = dataclasses.replace(options,
                                                   **{budget: 2 * getattr(options, budget)})
        has_restarts = "n_restarts" in options.field_names()
        if has_restarts:
            more = dataclasses.replace(options, n_restarts=2 * options.n_restarts)
            if more.randomized:
                reruns["restarts"] = more
        if not reruns:
            continue
        spec, rng = get_attack(attack), _attack_seed(seed, f"{name}/rerun")
        noun = _BUDGET_NOUNS.get(budget, budget)
        for k, radius in enumerate(evaluation.eps):
            rows = np.flatnonzero(left[k])
            if not rows.size:
                continue
            # Both reruns draw from one state: their first random start is the same,
            # so one adds iterations to it and the other adds new starts.
            shared = int(rng.integers(2 ** 63))
            broken = {}
            for kind, rerun in reruns.items():
                X_adv = spec.run(model, X[rows], y[rows], (radius,), rerun,
                                 np.random.default_rng(shared))[0]
                broken[kind] = int(np.sum(predict(model, X_adv) != y[rows]))
            if not any(broken.values()):
                continue
            parts = []
            if "restarts" in broken:
                parts.append(f"{broken['restarts']} more point(s) broken with "
                             f"{reruns['restarts'].n_restarts} restarts")
            if "budget" in broken:
                count = f"{broken['budget']}" if parts else \
                    f"{broken['budget']} more point(s) broken"
                parts.append(f"{count} with {getattr(reruns['budget'], budget)} {noun}")
            if len(broken) == 1 and "budget" in broken:
                why = ("its runs start from the clean point, so restarts would repeat them"
                       if has_restarts else "it has no random restarts")
                advice = f"add {noun} ({budget}); {why}"
            elif len(broken) == 1 or broken["restarts"] > broken["budget"]:
                advice = "add restarts (n_restarts)"
            elif broken["budget"] > broken["restarts"]:
                advice = f"add {noun} ({budget})"
            else:
                advice = f"add {noun} ({budget}) or restarts (n_restarts), as many either way"
            where = (f"reruns on the {rows.size} point(s) it left robust, from one new "
                     f"random start" if "restarts" in broken else
                     f"a rerun on the {rows.size} point(s) it left robust")
            found.append(f"{name}: {', '.join(parts)} at eps={radius:g} ({where}): not "
                         f"converged, {advice}")
    return found
