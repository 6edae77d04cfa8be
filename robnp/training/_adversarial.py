"""What the adversarial recipes share: their workspaces and the check of ``eps``.

A workspace is a NamedTuple of arrays, passed to the recipe's kernel as one argument
(Numba types it by its fields and caches the kernel like any other signature). Each
buffer holds ``rows`` rows, or twice that where TRADES stacks clean and adversarial
rows; a chunk of ``n <= rows`` rows uses the first ``n`` of each, so ``X_adv[:n]``
holds the adversarial points of the last call.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from functools import partial

from .. import _checks
from .._checks import Coerced, Integer, Real
from ..errors import ConfigError
from ..losses import check_smoothing

__all__ = ["AttackWorkspace", "TradesWorkspace", "check_training_eps", "attack_workspace",
           "trades_workspace", "eps_constraint", "ATTACK_STEPS", "STEP_FRACTION",
           "SMOOTHING"]


class AttackWorkspace(NamedTuple):
    """Buffers of PGD-AT, FGSM-RS and N-FGSM for ``rows`` rows.

    Attributes
    ----------
    X_adv, dX : ndarray of shape (rows, n_features)
        The attack's points (the last call's result) and their input gradient.
    acts, dZ, d0, d1 : ndarray
        The model's forward/backward buffers (:meth:`robnp.MLP.workspace`).
    """

    X_adv: np.ndarray
    dX: np.ndarray
    acts: np.ndarray
    dZ: np.ndarray
    d0: np.ndarray
    d1: np.ndarray


class TradesWorkspace(NamedTuple):
    """Buffers of TRADES for ``rows`` rows.

    Attributes
    ----------
    X_adv, dX : ndarray of shape (rows, n_features)
    X_pair : ndarray of shape (2 rows, n_features)
        Clean rows, then adversarial rows, for the training step's one forward and one
        backward pass over both.
    P, logP, dZc : ndarray of shape (rows, n_classes)
        The clean distribution, its logarithm, and the KL term's gradient w.r.t. the
        clean logits.
    acts, dZ, d0, d1 : ndarray
        The model's buffers for ``2 rows`` rows.
    """

    X_adv: np.ndarray
    dX: np.ndarray
    X_pair: np.ndarray
    P: np.ndarray
    logP: np.ndarray
    dZc: np.ndarray
    acts: np.ndarray
    dZ: np.ndarray
    d0: np.ndarray
    d1: np.ndarray


def _rows(rows) -> int:
    return _checks.integer("rows", rows, 1)


def attack_workspace(model, rows: int) -> AttackWorkspace:
    """Fresh buffers of a one-attack recipe for chunks of at most ``rows`` rows."""
    rows = _rows(rows)
    base = model.workspace(rows)
    shape = (rows, model.n_features)
    return AttackWorkspace(np.zeros(shape, model.dtype), np.zeros(shape, model.dtype),
                           base.acts, base.dZ, base.d0, base.d1)


def trades_workspace(model, rows: int) -> TradesWorkspace:
    """Fresh buffers of TRADES for chunks of at most ``rows`` rows."""
    rows = _rows(rows)
    base = model.workspace(2 * rows)
    shape = (rows, model.n_features)
    classes = (rows, model.n_classes)
    return TradesWorkspace(np.zeros(shape, model.dtype), np.zeros(shape, model.dtype),
                           np.zeros((2 * rows, model.n_features), model.dtype),
                           np.zeros(classes, model.dtype), np.zeros(classes, model.dtype),
                           np.zeros(classes, model.dtype),
                           base.acts, base.dZ, base.d0, base.d1)


def check_training_eps(recipe: str, eps) -> float:
    """The radius of an adversarial recipe as a float; a ConfigError unless it is a
    finite number > 0 (eps 0 is the recipe 'standard')."""
    if eps is None:
        raise ConfigError(f"recipe {recipe!r} needs eps, a finite number > 0")
    try:
        return _checks.real("eps", eps, 0, low_open=True)
    except ConfigError as error:
        if _checks.is_real(eps) and float(eps) == 0:
            raise ConfigError(f"{error}; use recipe 'standard' for eps 0") from None
        raise


def eps_constraint(recipe: str) -> Coerced:
    """The constraint of the ``eps`` option of the adversarial recipe ``recipe``
    (:func:`check_training_eps`, whose messages name the recipe)."""
    return Coerced(partial(check_training_eps, recipe))


# Constraints of the options the adversarial recipes share, declared once.
#: ``steps``: attack steps, at least one.
ATTACK_STEPS = Integer(1)
#: ``step_fraction``: the attack's step as a fraction of ``eps``, > 0.
STEP_FRACTION = Real(0, low_open=True)
#: ``smoothing``: label smoothing of the training cross-entropy, in [0, 1).
SMOOTHING = Coerced(check_smoothing)
