"""Weight averaging: the decay rule and the average, step by step against the formula."""

import numpy as np
import pytest

from robnp.errors import ConfigError
from robnp.training.ema import EMA, ema_decay


def test_the_decay_rule_by_hand():
    # warm-up of 3 steps: steps 1 and 2 copy; t counts from step 3
    assert [ema_decay(s, 0.995, 3) for s in (1, 2)] == [0.0, 0.0]
    assert ema_decay(3, 0.995, 3) == pytest.approx(1 / 10)
    assert ema_decay(4, 0.995, 3) == pytest.approx(2 / 11)
    assert ema_decay(103, 0.995, 3) == pytest.approx(101 / 110)
    # (1 + t) / (10 + t) reaches 0.995 at t = 1790, and the cap holds from there
    assert ema_decay(1790, 0.995, 0) == pytest.approx(0.995, abs=1e-15)
    assert ema_decay(1789, 0.995, 0) < 0.995
    assert ema_decay(10**7, 0.995, 0) == 0.995
    # a fractional warm-up (2.5% of a run): step 2 < 2.5 copies, step 3 has t = 0.5
    assert ema_decay(2, 0.995, 2.5) == 0.0
    assert ema_decay(3, 0.995, 2.5) == pytest.approx(1.5 / 10.5)
    assert ema_decay(5, 0.9, 0, dynamic=False) == 0.9


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("warmup", [0.0, 4.0, 6.5])
def test_the_average_follows_the_formula_step_by_step(warmup, dtype):
    rng = np.random.default_rng(1)
    live = rng.normal(size=25).astype(dtype)
    ema = EMA(live, decay=0.995, warmup_steps=warmup)
    expected = live.astype(np.float64)
    for step in range(1, 301):
        live = (live + rng.normal(scale=0.1, size=25)).astype(dtype)
        used = ema.update(live)
        d = 0.0 if step < warmup else min(0.995, (1 + step - warmup) / (10 + step - warmup))
        assert used == pytest.approx(d, rel=1e-15, abs=0)
        expected = d * expected + (1 - d) * live.astype(np.float64)
        if step < warmup:
            np.testing.assert_array_equal(ema.shadow, live)  # a copy, bit for bit
        tol = 1e-5 if dtype == np.float32 else 1e-13
        np.testing.assert_allclose(ema.shadow, expected, rtol=tol, atol=tol)
    assert ema.step == 300 and ema.shadow.dtype == dtype


def test_the_start_is_a_copy_and_the_live_weights_are_untouched():
    live = np.array([1.0, 2.0])
    ema = EMA(live, warmup_steps=0)
    live[0] = 5.0
    assert ema.shadow[0] == 1.0
    before = live.copy()
    ema.update(live)        # t = 1: d = 2/11
    np.testing.assert_array_equal(live, before)
    np.testing.assert_allclose(ema.shadow, [2 / 11 * 1 + 9 / 11 * 5, 2.0], rtol=1e-15)


@pytest.mark.parametrize("make,message", [
    (lambda: EMA(np.zeros(3), decay=1.0), r"decay must be a finite number in \[0, 1\)"),
    (lambda: EMA(np.zeros(3), warmup_steps=-1), r"warmup_steps must be a finite number >= 0"),
    (lambda: EMA(np.zeros((2, 2))), r"params must be a non-empty flat float32 or float64"),
    (lambda: EMA(np.zeros(3)).update(np.zeros(4)), r"params must have shape \(3,\)"),
    (lambda: EMA(np.zeros(3)).update(np.zeros(3, np.float32)), r"and dtype float64"),
])
def test_bad_input_is_a_one_line_config_error(make, message):
    with pytest.raises(ConfigError, match=message):
        make()
