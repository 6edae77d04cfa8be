"""Clean and robust accuracy."""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from .threads import single_blas_thread
from . import kernels
from .attacks import check_eps, fgsm, fgsm_from_gradient, pgd
from .errors import ConfigError
from .gradients import input_gradient

__all__ = ["accuracy", "robust_accuracy", "ATTACKS"]

ATTACKS: dict[str, Callable] = {"fgsm": fgsm, "pgd": pgd}

# The options robust_accuracy passes on when every radius shares the gradient at X.
_SHARED_GRADIENT_OPTIONS = {
    fgsm: ("FGSM", {"loss", "bounds"}),
    pgd: ("PGD", {"loss", "bounds", "steps", "step_size", "seed", "random_start"}),
}


@single_blas_thread
def accuracy(model, X, y) -> float:
    """Fraction of rows whose arg-max logit is the label."""
    X = model.check_input(X)
    y = model.check_labels(y, X.shape[0])
    acts = model.workspace(X.shape[0]).acts
    return kernels.count_correct(model.params, model._sizes, X, y, acts) / X.shape[0]


@single_blas_thread
def robust_accuracy(model, X, y, attack="pgd", eps: Iterable[float] = (0.01, 0.05, 0.1, 0.2, 0.5),
                    **attack_options) -> dict[float, float]:
    """Accuracy on adversarial examples, for every radius in ``eps``.

    Parameters
    ----------
    model : MLP
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    attack : {"fgsm", "pgd"} or callable
        A name from :data:`ATTACKS`, or any ``attack(model, X, y, eps, **options)``
        returning adversarial inputs.
    eps : iterable of float
        Radii; the result keeps their order.
    **attack_options
        Passed to the attack (e.g. ``steps=20``, ``bounds=(0, 1)``).

    Returns
    -------
    dict mapping each eps (float) to the robust accuracy (float in [0, 1]).
    """
    if isinstance(attack, str):
        if attack not in ATTACKS:
            raise ConfigError(f"unknown attack {attack!r}; known attacks: {', '.join(ATTACKS)}")
        attack_fn = ATTACKS[attack]
    elif callable(attack):
        attack_fn = attack
    else:
        raise ConfigError(f"attack must be a name or a callable, got {attack!r}")
    if hasattr(eps, "__iter__") and not isinstance(eps, (str, bytes, np.ndarray)):
        eps = list(eps)
    if np.ndim(eps) == 0:
        eps = [eps]
    elif np.ndim(eps) != 1:
        raise ConfigError(f"eps must be a number or a list of numbers, got {eps!r}")
    radii = [check_eps(e) for e in eps]
    if not radii:
        raise ConfigError("eps must list at least one radius")
    X = model.check_input(X)
    y = model.check_labels(y, X.shape[0])

    if attack_fn is fgsm or (attack_fn is pgd and not attack_options.get("random_start", False)):
        name, allowed = _SHARED_GRADIENT_OPTIONS[attack_fn]
        unknown = set(attack_options) - allowed
        if unknown:
            raise ConfigError(f"unknown {name} option(s): {', '.join(sorted(unknown))}")
        # The gradient at X is the same for every radius: FGSM's step and PGD's first.
        dL_dX = input_gradient(model, X, y, loss=attack_options.get("loss", "cross_entropy"))
        if attack_fn is fgsm:
            bounds = attack_options.get("bounds")
            make = lambda e: fgsm_from_gradient(X, dL_dX, e, bounds)  # noqa: E731
        else:
            make = lambda e: pgd(  # noqa: E731
                model, X, y, e, start_gradient=dL_dX, **attack_options)
    else:
        make = lambda e: attack_fn(model, X, y, e, **attack_options)  # noqa: E731
    return {e: accuracy(model, make(e), y) for e in radii}
