"""Exponential moving average of the weights (weight averaging).

The scaling-law paper (Bartoldson et al., 2024, Section 3.1) evaluates an average of
the weights with decay rate ``tau = 0.995`` (Izmailov et al., 2018), kept as Gowal et
al. (2020) and Wang et al. (2023) keep it: after every optimizer step ``s`` (counted
from 1),

* while ``s < warmup_steps`` the average is a copy of the live weights;
* afterwards, with ``t = s - warmup_steps``, ``shadow = d shadow + (1 - d) params`` with
  ``d = min(tau, (1 + t) / (10 + t))`` (``d = tau`` when ``dynamic`` is False).

The dynamic decay lets the average forget its start quickly (``d = 0.1`` at ``t = 0``)
and reaches ``tau`` at ``t = (10 tau - 1) / (1 - tau)`` (1790 steps for 0.995). Wang et
al. take ``warmup_steps`` as 2.5% of the run, the one-cycle schedule's warm-up.
"""

from __future__ import annotations

import numpy as np

from .. import _checks, kernels
from ..errors import ConfigError

__all__ = ["EMA", "ema_decay"]


def ema_decay(step: int, decay: float = 0.995, warmup_steps: float = 0.0,
              dynamic: bool = True) -> float:
    """The decay applied after optimizer step ``step`` (from 1): 0 before the warm-up
    ends, then ``min(decay, (1 + t) / (10 + t))`` with ``t = step - warmup_steps``."""
    if step < warmup_steps:
        return 0.0
    if not dynamic:
        return decay
    t = step - warmup_steps
    return min(decay, (1.0 + t) / (10.0 + t))


class EMA:
    """A shadow copy of a flat parameter vector, averaged after every optimizer step.

    Parameters
    ----------
    params : ndarray of shape (n_params,), float32 or float64
        The live weights at the start; the shadow starts as a copy (same dtype).
    decay : float in [0, 1)
        ``tau``, the largest decay used.
    warmup_steps : float >= 0
        Steps during which the shadow just copies the live weights (may be
        fractional, as 2.5% of a run is).
    dynamic : bool
        Use ``min(tau, (1 + t) / (10 + t))`` rather than ``tau`` throughout.

    Attributes
    ----------
    shadow : ndarray of shape (n_params,)
        The averaged weights.
    step : int
        Number of :meth:`update` calls so far.
    """

    def __init__(self, params: np.ndarray, decay: float = 0.995, warmup_steps: float = 0.0,
                 dynamic: bool = True):
        self.decay = _checks.real("decay", decay, 0, 1, high_open=True)
        self.warmup_steps = _checks.real("warmup_steps", warmup_steps, 0)
        self.dynamic = _checks.flag("dynamic", dynamic)
        params = np.asarray(params)
        if params.ndim != 1 or params.size == 0 or params.dtype not in (np.float32,
                                                                         np.float64):
            raise ConfigError(f"params must be a non-empty flat float32 or float64 vector, "
                              f"got shape {params.shape} and dtype {params.dtype}")
        self.shadow = params.copy()
        self.step = 0

    def update(self, params: np.ndarray) -> float:
        """Fold the live weights ``params`` (the shadow's shape and dtype) into the
        average after one optimizer step; returns the decay used."""
        if params.shape != self.shadow.shape or params.dtype != self.shadow.dtype:
            raise ConfigError(f"params must have shape {self.shadow.shape} and dtype "
                              f"{self.shadow.dtype}, got {params.shape} and {params.dtype}")
        self.step += 1
        decay = ema_decay(self.step, self.decay, self.warmup_steps, self.dynamic)
        kernels.ema_update(self.shadow, np.ascontiguousarray(params), decay)
        return decay
