"""A checkpoint's evaluation: the paper's TRADES test loss against a written-out
reference, and the accuracies and invalid shares against their definitions."""

import math

import numpy as np
import pytest

from robnp import MLP
from robnp.attacks import evaluate
from robnp.scaling.checkpoint import ATTACK, checkpoint_metrics, trades_test_loss
from robnp.scaling.study import ScalingConfig, true_test_sample, truth_source


def reference_loss(Zc, Za, y, beta):
    """Point by point, with Python floats: CE(softmax(zc), y) + beta KL(p || q)."""
    total_ce = total_kl = 0.0
    for zc, za, label in zip(Zc.tolist(), Za.tolist(), y.tolist()):
        mc, ma = max(zc), max(za)
        sc = sum(math.exp(v - mc) for v in zc)
        sa = sum(math.exp(v - ma) for v in za)
        p = [math.exp(v - mc) / sc for v in zc]
        log_p = [v - mc - math.log(sc) for v in zc]
        log_q = [v - ma - math.log(sa) for v in za]
        total_ce -= log_p[label]
        total_kl += sum(pi * (lp - lq) for pi, lp, lq in zip(p, log_p, log_q))
    n = len(y)
    return total_ce / n + beta * total_kl / n, total_ce / n, total_kl / n


@pytest.mark.parametrize("k", [2, 5])
def test_trades_test_loss_matches_the_written_out_reference(k):
    rng = np.random.default_rng(k)
    Zc = rng.normal(0, 3, (200, k)).astype(np.float32)
    Za = (Zc + rng.normal(0, 1, Zc.shape)).astype(np.float32)
    y = rng.integers(0, k, 200)
    for beta in (0.0, 5.0):
        got = trades_test_loss(Zc, Za, y, beta)
        want = reference_loss(Zc.astype(np.float64), Za.astype(np.float64), y, beta)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)
    # the KL term vanishes when the attack did not move the logits
    assert trades_test_loss(Zc, Zc, y, 5.0)[2] == pytest.approx(0.0, abs=1e-12)


@pytest.fixture(scope="module")
def checkpoint():
    config = ScalingConfig(widths=(16,), data_sizes=(1024,), n_test=300, eval_steps=5)
    task = config.data_task()
    X, y = true_test_sample(task, config.n_test, config.test_seed)
    model = MLP(config.input_dim, (16, 16), config.n_classes, seed=1)
    return config, model, X, y, truth_source(task)


def test_metrics_follow_their_definitions(checkpoint):
    config, model, X, y, truth = checkpoint
    got = checkpoint_metrics(model, X, y, config.eps, beta=5.0, steps=5, source=truth, seed=4)
    # recompute from the same attack run (same seed: the same points)
    from robnp.attacks import get_attack

    options = get_attack(ATTACK).make_options({"steps": 5})
    evaluation = evaluate(model, X, y, [config.eps], [(ATTACK, options)], seed=4)
    X_adv = evaluation.attacks[ATTACK].adversarial[0]
    loss, ce, kl = reference_loss(model.logits(X).astype(np.float64),
                                  model.logits(X_adv).astype(np.float64), y, 5.0)
    assert got["loss"] == pytest.approx(loss, rel=1e-9)
    assert got["cross_entropy"] == pytest.approx(ce, rel=1e-9)
    clean = model.predict(X) == y
    robust = clean & (model.predict(X_adv) == y)
    assert got["clean_acc"] == clean.mean() and got["robust_acc"] == robust.mean()
    broken = clean & ~robust
    bayes_adv = truth.label(np.asarray(X_adv, dtype=np.float64))
    bayes_clean = truth.label(np.asarray(X, dtype=np.float64))
    if broken.any():
        assert got["invalid_share"] == pytest.approx((bayes_adv[broken] != y[broken]).mean())
    else:
        assert got["invalid_share"] is None
    at = np.where(broken, bayes_adv, bayes_clean)
    assert got["invalid_error_share"] == pytest.approx((at[~robust] != y[~robust]).mean())


def test_without_a_truth_the_shares_are_none_and_eps_zero_breaks_nothing(checkpoint):
    config, model, X, y, _ = checkpoint
    got = checkpoint_metrics(model, X, y, 0.0, beta=5.0, steps=3, source=None, seed=0)
    assert got["invalid_share"] is None and got["invalid_error_share"] is None
    assert got["robust_acc"] == got["clean_acc"]
    assert got["kl"] == pytest.approx(0.0, abs=1e-12)
