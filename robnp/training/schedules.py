"""Learning-rate schedules, stepped once per minibatch.

A schedule is a frozen dataclass with ``lr_at(step, total_steps=None) -> float``: the
step size of minibatch ``step`` (counted from 0) of a run of ``total_steps``
minibatches. Nothing is stateful, so a resumed or replayed run asks for the same step
and gets the same value. Schedules that end somewhere (cosine, one-cycle) need
``total_steps``; constant and step decay do not.

``OneCycle`` is ``torch.optim.lr_scheduler.OneCycleLR`` with cosine annealing and two
phases; its defaults are the scaling-law paper's "cosinew" schedule (Bartoldson et al.,
2024, Section 3.1, after Wang et al., 2023: ``pct_start=0.025``, ``div_factor=25``,
``final_div_factor=1e4``). PyTorch's value after ``k`` scheduler steps is the value
here at ``step=k``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import _checks
from ..errors import ConfigError

__all__ = ["Constant", "StepDecay", "Cosine", "OneCycle", "SCHEDULES", "make_schedule"]


def _check_position(name: str, step, total_steps, needs_total: bool) -> tuple[int, int | None]:
    if total_steps is None:
        if needs_total:
            raise ConfigError(f"the {name} schedule needs total_steps (the run's number of "
                              f"minibatches), got None")
        return _checks.integer("step", step, 0), None
    total_steps = _checks.integer("total_steps", total_steps, 1)
    return _checks.integer("step", step, 0, total_steps - 1), total_steps


def _cosine(start: float, end: float, fraction: float) -> float:
    """From ``start`` at ``fraction`` 0 to ``end`` at 1 along half a cosine wave."""
    return end + (start - end) / 2.0 * (math.cos(math.pi * fraction) + 1)


@dataclass(frozen=True)
class Constant:
    """``lr`` at every step."""

    lr: float = 1e-3

    def __post_init__(self):
        object.__setattr__(self, "lr", _checks.real("lr", self.lr, 0, low_open=True))

    def lr_at(self, step: int, total_steps: int | None = None) -> float:
        _check_position("constant", step, total_steps, False)
        return self.lr


@dataclass(frozen=True)
class StepDecay:
    """``lr * gamma ** (step // every)``: multiplied by ``gamma`` every ``every``
    steps (``torch.optim.lr_scheduler.StepLR`` stepped per minibatch)."""

    lr: float = 1e-1
    gamma: float = 0.1
    every: int = 1000

    def __post_init__(self):
        object.__setattr__(self, "lr", _checks.real("lr", self.lr, 0, low_open=True))
        object.__setattr__(self, "gamma", _checks.real("gamma", self.gamma, 0, 1,
                                                       low_open=True))
        object.__setattr__(self, "every", _checks.integer("every", self.every, 1))

    def lr_at(self, step: int, total_steps: int | None = None) -> float:
        step, _ = _check_position("step", step, total_steps, False)
        return self.lr * self.gamma ** (step // self.every)


@dataclass(frozen=True)
class Cosine:
    """Cosine annealing (Loshchilov and Hutter, 2017, without restarts) from ``lr`` at
    step 0 to ``floor`` at the last step ``total_steps - 1``:
    ``floor + (lr - floor) (1 + cos(pi step / (total_steps - 1))) / 2``; a one-step
    run uses ``lr``."""

    lr: float = 1e-1
    floor: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "lr", _checks.real("lr", self.lr, 0, low_open=True))
        object.__setattr__(self, "floor", _checks.real("floor", self.floor, 0, self.lr))

    def lr_at(self, step: int, total_steps: int | None = None) -> float:
        step, total_steps = _check_position("cosine", step, total_steps, True)
        if total_steps == 1:
            return self.lr
        return _cosine(self.lr, self.floor, step / (total_steps - 1))


@dataclass(frozen=True)
class OneCycle:
    """The one-cycle policy (Smith and Topin, 2019) exactly as PyTorch's ``OneCycleLR``
    computes it with ``anneal_strategy="cos"`` and ``three_phase=False``.

    With ``T = total_steps``, ``initial = max_lr / div_factor`` and
    ``final = initial / final_div_factor``, the warm-up phase ends at the (fractional)
    step ``e = pct_start T - 1`` and the annealing phase at ``T - 1``:

    * ``step <= e``: ``cos_anneal(initial, max_lr, step / e)``;
    * otherwise: ``cos_anneal(max_lr, final, (step - e) / (T - 1 - e))``,

    with ``cos_anneal(a, b, f) = b + (a - b) (cos(pi f) + 1) / 2``. So step 0 is at
    ``initial`` (unless ``e < 0``, when the warm-up holds no step), the last step at
    exactly ``final``. Where ``e`` is exactly 0 PyTorch divides 0 by 0 at step 0 and
    raises; this schedule takes the warm-up's start, ``initial``, there.

    PyTorch also cycles an SGD optimizer's momentum inversely to the step size by
    default (``cycle_momentum=True``), from ``max_momentum`` down to ``base_momentum``
    and back along the same phases; :meth:`momentum_at` gives that value, which a
    training loop may apply or ignore.

    The defaults are the scaling-law paper's "cosinew" schedule.
    """

    max_lr: float = 0.3
    pct_start: float = 0.025
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    base_momentum: float = 0.85
    max_momentum: float = 0.95

    def __post_init__(self):
        object.__setattr__(self, "max_lr", _checks.real("max_lr", self.max_lr, 0,
                                                        low_open=True))
        object.__setattr__(self, "pct_start", _checks.real(
            "pct_start", self.pct_start, 0, 1, low_open=True, high_open=True))
        object.__setattr__(self, "div_factor", _checks.real("div_factor", self.div_factor,
                                                            0, low_open=True))
        object.__setattr__(self, "final_div_factor", _checks.real(
            "final_div_factor", self.final_div_factor, 0, low_open=True))
        object.__setattr__(self, "base_momentum", _checks.real(
            "base_momentum", self.base_momentum, 0, 1, high_open=True))
        object.__setattr__(self, "max_momentum", _checks.real(
            "max_momentum", self.max_momentum, self.base_momentum, 1, high_open=True))

    @property
    def initial_lr(self) -> float:
        return self.max_lr / self.div_factor

    @property
    def final_lr(self) -> float:
        return self.initial_lr / self.final_div_factor

    def _phase(self, step, total_steps) -> tuple[bool, float]:
        """(in the warm-up, fraction of that phase done) at ``step``."""
        step, total_steps = _check_position("one-cycle", step, total_steps, True)
        warm_end = float(self.pct_start * total_steps) - 1
        last = total_steps - 1
        if step <= warm_end:
            return True, (step / warm_end if warm_end > 0 else 0.0)
        return False, (step - warm_end) / (last - warm_end)

    def lr_at(self, step: int, total_steps: int | None = None) -> float:
        warm, fraction = self._phase(step, total_steps)
        if warm:
            return _cosine(self.initial_lr, self.max_lr, fraction)
        return _cosine(self.max_lr, self.final_lr, fraction)

    def momentum_at(self, step: int, total_steps: int | None = None) -> float:
        """The momentum PyTorch's ``OneCycleLR`` sets with ``cycle_momentum=True``."""
        warm, fraction = self._phase(step, total_steps)
        if warm:
            return _cosine(self.max_momentum, self.base_momentum, fraction)
        return _cosine(self.base_momentum, self.max_momentum, fraction)


#: Schedule names as configuration files spell them.
SCHEDULES = {"constant": Constant, "step": StepDecay, "cosine": Cosine,
             "onecycle": OneCycle}


def make_schedule(name: str, **options):
    """The schedule called ``name`` in :data:`SCHEDULES`, built from ``options``."""
    _checks.choice("schedule", name, SCHEDULES, "schedule")
    try:
        return SCHEDULES[name](**options)
    except TypeError as error:
        raise ConfigError(f"bad options for the {name} schedule: {error}") from None
