"""Optimizers over a flat parameter vector."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _checks, kernels
from .errors import ConfigError
from .model import check_dtype

__all__ = ["Adam"]


@dataclass
class Adam:
    """Adam (Kingma and Ba, 2015) with PyTorch's defaults and update arrangement.

    ``step(params, grad)`` updates ``params`` in place:
    ``m = beta1 m + (1 - beta1) g``, ``v = beta2 v + (1 - beta2) g^2``,
    ``params -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + adam_eps)``.
    """

    n_params: int
    dtype: np.dtype = np.dtype(np.float32)
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    adam_eps: float = 1e-8

    def __post_init__(self):
        check_adam_hyperparameters(self.lr, self.beta1, self.beta2, self.adam_eps)
        self.n_params = _checks.integer("n_params", self.n_params, 1)
        self.dtype = check_dtype(self.dtype)
        self.m = np.zeros(self.n_params, self.dtype)
        self.v = np.zeros(self.n_params, self.dtype)
        self.t = 0

    def step(self, params: np.ndarray, grad: np.ndarray) -> None:
        if params.shape != (self.n_params,) or grad.shape != (self.n_params,):
            raise ConfigError(f"params and grad must have shape ({self.n_params},)")
        self.t += 1
        kernels.adam_update(params, np.ascontiguousarray(grad, dtype=params.dtype),
                            self.m, self.v, self.t, self.lr, self.beta1, self.beta2,
                            self.adam_eps)


def check_adam_hyperparameters(lr, beta1, beta2, adam_eps) -> tuple[float, float, float, float]:
    """Adam's step size, moment decays and constant as floats, each checked."""
    return (_checks.real("lr", lr, 0, low_open=True),
            _checks.real("beta1", beta1, 0, 1, high_open=True),
            _checks.real("beta2", beta2, 0, 1, high_open=True),
            _checks.real("adam_eps", adam_eps, 0, low_open=True))
