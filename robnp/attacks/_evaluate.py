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
from ._clean import CleanPoints
from ._registry import get_attack
from ._threat import AttackedModel, as_generator, check_evaluation_fits, check_radii

__all__ = ["accuracy", "robust_accuracy", "evaluate", "Evaluation",
           "AttackResult", "predict"]


@single_blas_thread
def accuracy(model, X, y) -> float:
    """Fraction of rows whose arg-max logit is the label (the first index on ties)."""
    if not isinstance(model, MLP):
        X, y = _inputs(model, X, y)
        return np.count_nonzero(predict(model, X) == y) / X.shape[0]
    X = model.check_input(X)
    y = model.check_labels(y, X.shape[0])
    acts = model.workspace(X.shape[0]).acts
    return kernels.count_correct(model.params, model.sizes, X, y, acts) / X.shape[0]


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
        dataclass), and ``seed`` for attacks that draw random numbers.

    Returns
    -------
    dict mapping each eps (float) to the robust accuracy (float in [0, 1]).
    """
    radii = check_radii(eps)
    check_evaluation_fits(model, X, len(radii), 1)
    X, y = _inputs(model, X, y)
    if isinstance(attack, str):
        spec = get_attack(attack)
        seed = attack_options.pop("seed", None)
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


def predict(model, X) -> np.ndarray:
    """Arg-max class of every row (the first index on ties, as the kernels count)."""
    return np.asarray(model.logits(X)).argmax(axis=1)


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
    """

    name: str
    options: object
    success: np.ndarray
    attacked: np.ndarray
    adversarial: np.ndarray
    robust_acc: np.ndarray


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

    @property
    def clean_acc(self) -> float:
        return float(self.clean_correct.mean())

    def robust_accuracy(self, attack: str | None = None) -> dict[float, float]:
        """eps -> robust accuracy of one attack, or of the worst case when None."""
        values = self.worst_robust_acc if attack is None else self.attacks[attack].robust_acc
        return {e: float(v) for e, v in zip(self.eps, values)}

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
        }


@single_blas_thread
def evaluate(model, X, y, eps=(0.01, 0.05, 0.1, 0.2, 0.5), attacks=("fgsm", "pgd"), *,
             seed=0, cascade: bool = False, check_convergence: bool = False) -> Evaluation:
    """Run several attacks at every radius and score the per-sample worst case.

    Parameters
    ----------
    model : MLP, or any object with ``logits(X)`` and ``input_gradient(X, y, loss)``
    X : array-like of shape (n_points, n_features)
    y : array-like of shape (n_points,)
    eps : float or iterable of float
    attacks : iterable
        Registered attack names, ``(name, options)`` pairs (options an options
        object or a mapping), or a mapping name -> options; run in this order.
    seed : int or numpy.random.Generator
        Each attack draws from a generator derived from ``seed`` and its name.
    cascade : bool
        False (default): every attack runs on every point, so each attack's robust
        accuracy is its own (the study's numbers). True: as AutoAttack scores, each
        attack runs only on the points still robust at that radius (clean errors
        are never attacked), so an attack's number is the robust accuracy after it
        and every attack before it; cheaper, same worst case in distribution.
    check_convergence : bool
        Also rerun every attack with twice its budget (the option its options name in
        ``budget``: ``steps``, ``n_iter``, ``n_queries``) on the points it left robust,
        and warn where that breaks more.

    Returns
    -------
    Evaluation
        Clean errors count as non-robust in the worst case. ``warnings`` lists
        the sanity checks (Carlini et al. 2019, "On evaluating adversarial
        robustness") that failed: FGSM breaking points an iterative attack left
        robust; robust accuracy rising with eps; a black-box attack breaking points
        every white-box attack failed on (gradient masking); input gradients that
        are exactly zero; accuracy above the majority share where the largest ball
        covers the data's bounding box; twice the steps still changing the answer.
    """
    radii = check_radii(eps)
    chosen = _attack_list(attacks)
    check_evaluation_fits(model, X, len(radii), len(chosen) * (2 if check_convergence else 1))
    X, y = _inputs(model, X, y)
    logits = np.asarray(model.logits(X))
    for _, options in chosen:
        options.check_classes(logits.shape[1])
    clean_correct = logits.argmax(axis=1) == y
    n_eps, n_points = len(radii), X.shape[0]
    worst = np.repeat(~clean_correct[None, :], n_eps, axis=0)
    worst_points = np.repeat(X[None], n_eps, axis=0)
    clean = CleanPoints(AttackedModel(model), X, y)
    results = {}
    for name, options in chosen:
        spec = get_attack(name)
        rng = _attack_seed(seed, name)
        adversarial = np.repeat(X[None], n_eps, axis=0)
        attacked = np.zeros((n_eps, n_points), bool)
        success = np.zeros((n_eps, n_points), bool)
        if cascade:
            for k, radius in enumerate(radii):
                rows = np.flatnonzero(~worst[k])
                if rows.size:
                    adversarial[k, rows] = spec.run(model, X[rows], y[rows], (radius,),
                                                    options, rng)[0]
                    attacked[k, rows] = True
        else:
            adversarial[:] = np.stack(_run_on_clean(spec, model, X, y, radii, options, rng,
                                                    clean))
            attacked[:] = True
        for k in range(n_eps):
            rows = np.flatnonzero(attacked[k])
            if rows.size:
                success[k, rows] = predict(model, adversarial[k, rows]) != y[rows]
            new = success[k] & ~worst[k]
            worst_points[k, new] = adversarial[k, new]
            worst[k] |= success[k]
        # Counted, then divided: the same float as accuracy() gives for these points.
        broken = worst if cascade else success
        robust_acc = np.count_nonzero(~broken, axis=1) / n_points
        results[name] = AttackResult(name, options, success, attacked, adversarial, robust_acc)
    gradient = clean.gradient("cross_entropy")
    zero_share = float(np.mean(~np.any(gradient != 0, axis=1)))
    evaluation = Evaluation(radii, clean_correct, results, worst,
                            np.count_nonzero(~worst, axis=1) / n_points, worst_points,
                            zero_share, bool(cascade), ())
    found = _sanity_warnings(evaluation, X, y)
    if check_convergence:
        found += _convergence_warnings(model, X, y, evaluation, seed)
    return dataclasses.replace(evaluation, warnings=tuple(found))


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
    white = [r for r in results.values() if not _is_black_box(r.options)]
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


def _convergence_warnings(model, X, y, evaluation: Evaluation, seed) -> list[str]:
    """Rerun every attack whose options name a ``budget`` (PGD's steps, APGD's
    iterations, Square's queries) with twice that budget on the points it attacked and
    left robust; each point it now breaks means it had not converged."""
    found = []
    for name, result in evaluation.attacks.items():
        options = result.options
        budget = options.budget
        if budget is None or getattr(options, budget) == 0:
            continue
        doubled = dataclasses.replace(options, **{budget: 2 * getattr(options, budget)})
        spec, rng = get_attack(name), _attack_seed(seed, f"{name}/doubled")
        for k, radius in enumerate(evaluation.eps):
            rows = np.flatnonzero(result.attacked[k] & ~result.success[k])
            if not rows.size:
                continue
            X_adv = spec.run(model, X[rows], y[rows], (radius,), doubled, rng)[0]
            broken = int(np.sum(predict(model, X_adv) != y[rows]))
            if broken:
                found.append(f"{name} with {budget} {getattr(doubled, budget)} instead of "
                             f"{getattr(options, budget)} breaks {broken} more point(s) at "
                             f"eps={radius:g}: not converged")
    return found
