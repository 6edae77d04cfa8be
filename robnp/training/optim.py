"""Optimizers over a flat parameter vector.

Each optimizer holds its state (moments, momentum buffer, step count) for one flat
parameter vector of a fixed length and dtype, and ``step(params, grad, lr=None,
momentum=None)`` updates ``params`` in place with a compiled kernel from
:mod:`robnp.kernels`. ``lr`` and ``momentum`` given to ``step`` override the configured
step size and momentum (SGD's ``momentum``, Adam's ``beta1``) for that step only, which
is how a schedule (:mod:`robnp.training.schedules`) drives an optimizer. These classes
are the one place the updates are written: the training loop
(:mod:`robnp.training.fit`) steps them as they are.

The update rules are PyTorch's (``torch.optim.Adam``, ``AdamW``, ``SGD``) written out in
each class's docstring, so a run here and a run there take the same steps up to
rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import _checks, kernels
from ..errors import ConfigError
from ..model import check_dtype

__all__ = ["Adam", "AdamW", "SGD", "check_adam_hyperparameters", "check_sgd_hyperparameters"]


def _check_step(n_params: int, params: np.ndarray, grad: np.ndarray, lr,
                momentum=None, name: str = "momentum") -> np.ndarray:
    if params.shape != (n_params,) or grad.shape != (n_params,):
        raise ConfigError(f"params and grad must have shape ({n_params},)")
    # A float in range passes at once: a schedule gives one every step, and its step
    # size may reach 0 at the end (cosine annealing to a floor of 0), a step that
    # does not move.
    if lr is not None and not (isinstance(lr, float) and 0 <= lr < math.inf):
        _checks.real("lr", lr, 0, low_open=True)
    if momentum is not None and not (isinstance(momentum, float) and 0 <= momentum < 1):
        _checks.real(name, momentum, 0, 1, high_open=True)
    return np.ascontiguousarray(grad, dtype=params.dtype)


@dataclass
class Adam:
    """Adam (Kingma and Ba, 2015) with PyTorch's defaults and update arrangement.

    ``step(params, grad)`` updates ``params`` in place: with ``weight_decay``, first
    ``g = g + weight_decay p`` (L2 regularisation, as ``torch.optim.Adam`` does it: the
    moments carry the decay; :class:`AdamW` decouples it instead), then
    ``m = beta1 m + (1 - beta1) g``, ``v = beta2 v + (1 - beta2) g^2``,
    ``params -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + adam_eps)``.

    Parameters
    ----------
    n_params : int
        Length of the flat parameter vector.
    dtype : float32 or float64
        dtype of the parameters and of the moments.
    lr : float > 0
    beta1, beta2 : float in [0, 1)
    adam_eps : float > 0
    weight_decay : float >= 0
        L2 regularisation added to the gradient (0: none, PyTorch's default).
    """

    n_params: int
    dtype: np.dtype = np.dtype(np.float32)
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    adam_eps: float = 1e-8
    weight_decay: float = 0.0

    def __post_init__(self):
        check_adam_hyperparameters(self.lr, self.beta1, self.beta2, self.adam_eps)
        self.weight_decay = _checks.real("weight_decay", self.weight_decay, 0)
        self.n_params = _checks.integer("n_params", self.n_params, 1)
        self.dtype = check_dtype(self.dtype)
        self.m = np.zeros(self.n_params, self.dtype)
        self.v = np.zeros(self.n_params, self.dtype)
        self.t = 0
        self._decayed = None  # g + weight_decay p, made on the first step that needs it

    def step(self, params: np.ndarray, grad: np.ndarray, lr: float | None = None,
             momentum: float | None = None) -> None:
        """One update of ``params`` (shape ``(n_params,)``, this optimizer's dtype) in
        place from ``grad`` (same shape, left as it is); ``momentum``, when given,
        is this step's ``beta1`` (one-cycle cycles it)."""
        grad = _check_step(self.n_params, params, grad, lr, momentum, "beta1")
        if self.weight_decay:
            grad = self._l2_gradient(params, grad)
        self.t += 1
        kernels.adam_update(params, grad, self.m, self.v, self.t,
                            self.lr if lr is None else float(lr),
                            self.beta1 if momentum is None else float(momentum), self.beta2,
                            self.adam_eps)

    def _l2_gradient(self, params: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """``grad + weight_decay * params`` in a buffer of its own, so that the
        caller's gradient is not changed."""
        if self._decayed is None:
            self._decayed = np.empty(self.n_params, self.dtype)
        np.multiply(params, self.dtype.type(self.weight_decay), out=self._decayed)
        self._decayed += grad
        return self._decayed


@dataclass
class AdamW(Adam):
    """AdamW (Loshchilov and Hutter, 2019): Adam with decoupled weight decay, as
    ``torch.optim.AdamW`` does it.

    Each step first shrinks the parameters, ``p *= 1 - lr * weight_decay``, then takes
    the :class:`Adam` step; the decay never enters the moments. PyTorch's default
    ``weight_decay`` is 0.01.
    """

    weight_decay: float = 1e-2

    def step(self, params: np.ndarray, grad: np.ndarray, lr: float | None = None,
             momentum: float | None = None) -> None:
        grad = _check_step(self.n_params, params, grad, lr, momentum, "beta1")
        self.t += 1
        kernels.adamw_update(params, grad, self.m, self.v, self.t,
                             self.lr if lr is None else float(lr),
                             self.beta1 if momentum is None else float(momentum), self.beta2,
                             self.adam_eps, self.weight_decay)


@dataclass
class SGD:
    """Stochastic gradient descent with momentum, Nesterov momentum (Nesterov, 1983;
    in the form of Sutskever et al., 2013) and L2 weight decay, with
    ``torch.optim.SGD``'s rules.

    Per step, with ``g`` the gradient:

    * ``g = g + weight_decay p`` (the decay is added to the gradient, so momentum
      carries it);
    * with ``momentum > 0``: ``b = g`` on the first step, afterwards
      ``b = momentum b + (1 - dampening) g``; then ``g = g + momentum b`` with
      ``nesterov``, else ``g = b``;
    * ``p = p - lr g``.

    The scaling-law paper (Bartoldson et al., 2024, Section 3.1) trains with
    ``momentum=0.9, nesterov=True, weight_decay=5e-4``.

    Parameters
    ----------
    n_params : int
        Length of the flat parameter vector.
    dtype : float32 or float64
        dtype of the parameters and of the momentum buffer.
    lr : float > 0
    momentum : float in [0, 1)
    dampening : float in [0, 1); must be 0 with ``nesterov``
    weight_decay : float >= 0
    nesterov : bool; needs ``momentum > 0``
    """

    n_params: int
    dtype: np.dtype = np.dtype(np.float32)
    lr: float = 1e-2
    momentum: float = 0.0
    dampening: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False

    def __post_init__(self):
        (self.lr, self.momentum, self.dampening, self.weight_decay,
         self.nesterov) = check_sgd_hyperparameters(self.lr, self.momentum, self.dampening,
                                                    self.weight_decay, self.nesterov)
        self.n_params = _checks.integer("n_params", self.n_params, 1)
        self.dtype = check_dtype(self.dtype)
        self.buf = np.zeros(self.n_params if self.momentum else 0, self.dtype)
        self.t = 0

    def step(self, params: np.ndarray, grad: np.ndarray, lr: float | None = None,
             momentum: float | None = None) -> None:
        """One update of ``params`` (shape ``(n_params,)``, this optimizer's dtype) in
        place from ``grad`` (same shape); ``momentum``, when given, is this step's
        momentum (one-cycle cycles it; the optimizer must have been made with
        ``momentum > 0``, so that its buffer exists)."""
        grad = _check_step(self.n_params, params, grad, lr, momentum)
        if momentum and not self.momentum:
            raise ConfigError(f"a step's momentum > 0 needs an SGD made with momentum > 0 "
                              f"(its buffer), got momentum {momentum!r} for one made with 0")
        kernels.sgd_update(params, grad, self.buf, self.t == 0,
                           self.lr if lr is None else float(lr),
                           self.momentum if momentum is None else float(momentum),
                           self.dampening, self.weight_decay, self.nesterov)
        self.t += 1


def check_adam_hyperparameters(lr, beta1, beta2, adam_eps) -> tuple[float, float, float, float]:
    """Adam's step size, moment decays and constant as floats, each checked."""
    return (_checks.real("lr", lr, 0, low_open=True),
            _checks.real("beta1", beta1, 0, 1, high_open=True),
            _checks.real("beta2", beta2, 0, 1, high_open=True),
            _checks.real("adam_eps", adam_eps, 0, low_open=True))


def check_sgd_hyperparameters(lr, momentum, dampening, weight_decay, nesterov
                              ) -> tuple[float, float, float, float, bool]:
    """SGD's step size, momentum, dampening, weight decay and Nesterov flag, checked."""
    checked = (_checks.real("lr", lr, 0, low_open=True),
               _checks.real("momentum", momentum, 0, 1, high_open=True),
               _checks.real("dampening", dampening, 0, 1, high_open=True),
               _checks.real("weight_decay", weight_decay, 0),
               _checks.flag("nesterov", nesterov))
    if checked[4] and (checked[1] == 0 or checked[2] != 0):
        raise ConfigError(f"nesterov needs momentum > 0 and dampening 0, got momentum "
                          f"{momentum!r} and dampening {dampening!r}")
    return checked
