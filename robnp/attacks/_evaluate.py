"""Clean and robust accuracy."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from .. import kernels
from ..errors import ConfigError
from ..threads import single_blas_thread
from ._registry import get_attack
from ._threat import check_radii

__all__ = ["accuracy", "robust_accuracy", "as_generator"]


def as_generator(seed) -> np.random.Generator:
    """``seed`` itself when it is a Generator, else a new one seeded by it."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


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
    X = model.check_input(X)
    y = model.check_labels(y, X.shape[0])
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
