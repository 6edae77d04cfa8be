"""Loss names, the kernel codes they select, and the checks of their settings.

Every layer selects a loss by name (training, input gradients, attacks); the
kernels take an integer code. This module is the one map between the two. It sits
below the model, so that :meth:`robnp.MLP.input_gradient` and
:mod:`robnp.gradients` can resolve a loss name without importing
:mod:`robnp.losses` (which takes models, and so sits above them). Every name here
is also importable from :mod:`robnp.losses`.
"""

from __future__ import annotations

from . import _checks, kernels
from .errors import ConfigError

__all__ = ["LOSSES", "TARGETED_LOSSES", "MIN_CLASSES", "loss_code", "targeted_loss",
           "check_loss_classes", "check_smoothing"]

LOSSES = {
    "cross_entropy": kernels.LOSS_CROSS_ENTROPY,
    "cw_margin": kernels.LOSS_CW_MARGIN,
    "dlr": kernels.LOSS_DLR,
}

#: Losses that move towards a target class; each is the targeted form of a loss in
#: :data:`LOSSES` (see :func:`targeted_loss`).
TARGETED_LOSSES = {
    "cross_entropy_targeted": kernels.LOSS_CE_TARGETED,
    "cw_margin_targeted": kernels.LOSS_CW_TARGETED,
    "dlr_targeted": kernels.LOSS_DLR_TARGETED,
}

#: The fewest classes a loss is defined for (2 when not listed).
MIN_CLASSES = {"dlr": 3, "dlr_targeted": 4}


def loss_code(name: str, targeted_ok: bool = False) -> int:
    """The kernel code of the loss ``name`` (targeted names only when
    ``targeted_ok``)."""
    known = {**LOSSES, **TARGETED_LOSSES} if targeted_ok else LOSSES
    try:
        return known[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown loss {name!r}; known losses: {', '.join(sorted(known))}") from None


def targeted_loss(name: str) -> str:
    """The targeted form of the loss ``name`` (``"dlr"`` -> ``"dlr_targeted"``)."""
    loss_code(name)
    return f"{name}_targeted"


def check_loss_classes(loss: str, n_classes: int) -> None:
    """A ConfigError when ``loss`` is not defined for ``n_classes`` classes."""
    needed = MIN_CLASSES.get(loss, 2)
    if n_classes < needed:
        raise ConfigError(f"loss {loss!r} needs at least {needed} classes, the model has "
                          f"{n_classes}")


def check_smoothing(smoothing) -> float:
    """The label smoothing ``s`` as a float; a ConfigError unless ``0 <= s < 1``."""
    return _checks.real("smoothing", smoothing, 0, 1, high_open=True)
