"""Learning-rate schedules: the one-cycle schedule against a transcription of PyTorch's
OneCycleLR formulas, the others against their closed forms."""

import math

import numpy as np
import pytest

from robnp.errors import ConfigError
from robnp.training.schedules import (Constant, Cosine, OneCycle, StepDecay, make_schedule)


def pytorch_one_cycle(step, total_steps, max_lr, pct_start, div_factor, final_div_factor):
    """OneCycleLR.get_lr for one group, cos annealing, two phases, written out: a list of
    phases (end step, start value, end value), the first whose end is not before the
    step (or the last) is used, its fraction measured from the previous phase's end."""
    initial = max_lr / div_factor
    phases = [(float(pct_start * total_steps) - 1, initial, max_lr),
              (total_steps - 1, max_lr, initial / final_div_factor)]
    start_step = 0.0
    for i, (end_step, start_lr, end_lr) in enumerate(phases):
        if step <= end_step or i == len(phases) - 1:
            pct = (step - start_step) / (end_step - start_step)
            return end_lr + (start_lr - end_lr) / 2.0 * (math.cos(math.pi * pct) + 1)
        start_step = end_step


@pytest.mark.parametrize("total_steps", [1, 2, 3, 39, 41, 100, 400, 1000, 12345])
@pytest.mark.parametrize("pct_start,div,final_div", [(0.025, 25.0, 1e4), (0.3, 25.0, 1e4),
                                                     (0.5, 10.0, 100.0), (0.9, 3.0, 7.0)])
def test_one_cycle_matches_pytorch_at_every_step(total_steps, pct_start, div, final_div):
    schedule = OneCycle(max_lr=0.2, pct_start=pct_start, div_factor=div,
                        final_div_factor=final_div)
    for step in range(total_steps):
        if step == 0 and pct_start * total_steps == 1:
            # PyTorch divides 0 by 0 here (see the next test)
            assert schedule.lr_at(0, total_steps) == pytest.approx(0.2 / div, rel=1e-15)
            continue
        expected = pytorch_one_cycle(step, total_steps, 0.2, pct_start, div, final_div)
        assert schedule.lr_at(step, total_steps) == pytest.approx(expected, rel=1e-14,
                                                                  abs=0), step
    # the last step is exactly the final step size
    assert schedule.lr_at(total_steps - 1, total_steps) == 0.2 / div / final_div


def test_one_cycle_by_hand_at_the_phase_boundaries():
    """T = 100, pct_start 0.025: the warm-up ends at step 0.025 * 100 - 1 = 1.5."""
    s = OneCycle(max_lr=0.3)
    initial, final = 0.3 / 25, 0.3 / 25 / 1e4
    assert s.lr_at(0, 100) == pytest.approx(initial, rel=1e-15)
    # step 1: 2/3 of the warm-up, cos(2 pi / 3) = -1/2
    assert s.lr_at(1, 100) == pytest.approx(0.3 + (initial - 0.3) / 4, rel=1e-14)
    # step 2: 0.5 / 97.5 into the annealing
    f = 0.5 / 97.5
    assert s.lr_at(2, 100) == pytest.approx(final + (0.3 - final) / 2 * (math.cos(math.pi * f)
                                                                          + 1), rel=1e-14)
    assert s.lr_at(99, 100) == final
    # T = 400: the warm-up ends exactly at step 9, the peak
    assert s.lr_at(9, 400) == pytest.approx(0.3, rel=1e-15)
    assert s.lr_at(8, 400) < s.lr_at(9, 400) > s.lr_at(10, 400)


def test_one_cycle_rises_then_falls_and_cycles_momentum_the_other_way():
    s = OneCycle(max_lr=0.1, pct_start=0.25)
    lrs = np.array([s.lr_at(k, 200) for k in range(200)])
    moms = np.array([s.momentum_at(k, 200) for k in range(200)])
    peak = int(np.argmax(lrs))
    assert peak == 49  # 0.25 * 200 - 1
    assert np.all(np.diff(lrs[:peak + 1]) > 0) and np.all(np.diff(lrs[peak:]) < 0)
    assert np.argmin(moms) == peak and moms[0] == pytest.approx(0.95)
    assert moms[peak] == pytest.approx(0.85) and moms[-1] == pytest.approx(0.95)


def test_one_cycle_where_pytorch_divides_zero_by_zero():
    """pct_start * T = 1 puts the warm-up's end at step 0: PyTorch raises
    ZeroDivisionError; here step 0 takes the warm-up's start."""
    with pytest.raises(ZeroDivisionError):
        pytorch_one_cycle(0, 40, 0.3, 0.025, 25.0, 1e4)
    s = OneCycle(max_lr=0.3)
    assert s.lr_at(0, 40) == pytest.approx(0.3 / 25, rel=1e-15)
    for step in range(1, 40):
        assert s.lr_at(step, 40) == pytest.approx(
            pytorch_one_cycle(step, 40, 0.3, 0.025, 25.0, 1e4), rel=1e-14)


def test_constant_step_and_cosine_closed_forms():
    assert [Constant(0.5).lr_at(k) for k in (0, 7, 10**6)] == [0.5] * 3
    step = StepDecay(lr=1.0, gamma=0.5, every=3)
    assert [step.lr_at(k) for k in range(7)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    cos = Cosine(lr=1.0, floor=0.1)
    assert cos.lr_at(0, 11) == 1.0
    assert cos.lr_at(5, 11) == pytest.approx(0.55, rel=1e-15)
    assert cos.lr_at(10, 11) == pytest.approx(0.1, rel=1e-15)
    for k in range(11):
        assert cos.lr_at(k, 11) == pytest.approx(
            0.1 + 0.9 * (1 + math.cos(math.pi * k / 10)) / 2, rel=1e-14)
    assert Cosine(lr=0.3).lr_at(0, 1) == 0.3
    assert make_schedule("onecycle", max_lr=0.2) == OneCycle(max_lr=0.2)


@pytest.mark.parametrize("make,message", [
    (lambda: OneCycle(pct_start=0.0), r"pct_start must be a finite number in \(0, 1\), got 0.0"),
    (lambda: OneCycle(pct_start=1.0), r"pct_start must be a finite number in \(0, 1\), got 1.0"),
    (lambda: OneCycle(div_factor=0), r"div_factor must be a finite number > 0"),
    (lambda: OneCycle().lr_at(3), r"the one-cycle schedule needs total_steps"),
    (lambda: Cosine().lr_at(3), r"the cosine schedule needs total_steps"),
    (lambda: OneCycle().lr_at(10, 10), r"step must be an integer in \[0, 9\], got 10"),
    (lambda: OneCycle().lr_at(-1, 10), r"step must be an integer in \[0, 9\], got -1"),
    (lambda: OneCycle().lr_at(0, 0), r"total_steps must be an integer >= 1, got 0"),
    (lambda: StepDecay(gamma=1.5), r"gamma must be a finite number in \(0, 1\]"),
    (lambda: StepDecay(every=0), r"every must be an integer >= 1, got 0"),
    (lambda: Cosine(lr=0.1, floor=0.2), r"floor must be a finite number in \[0, 0.1\]"),
    (lambda: Constant(lr=-1), r"lr must be a finite number > 0, got -1"),
    (lambda: make_schedule("linear"), r"unknown schedule 'linear'; known: constant"),
    (lambda: make_schedule("cosine", warmup=3), r"bad options for the cosine schedule"),
])
def test_bad_input_is_a_one_line_config_error(make, message):
    with pytest.raises(ConfigError, match=message) as info:
        make()
    assert "\n" not in str(info.value)
