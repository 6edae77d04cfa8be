"""The compiled attacks against the slow references of tests/naive.py: losses,
projections, PGD (L-infinity, L2, box, restarts, per-sample worst case, targets), APGD's
checkpoints and iterates, the Square attack's schedule and loop."""

import os

import numpy as np
import pytest

import naive
import robnp
from robnp import kernels
from robnp.gradcheck import relative_error, sample_away_from_kinks
from robnp.attacks import _apgd, _square
from robnp.attacks._pgd import random_start_points
from robnp.attacks._threat import AttackedModel, top_wrong_class
from robnp.errors import ConfigError
from robnp.losses import LOSSES, TARGETED_LOSSES, loss_and_grad_logits

ALL_LOSSES = sorted(LOSSES) + sorted(TARGETED_LOSSES)


@pytest.mark.parametrize("loss", ALL_LOSSES)
def test_every_loss_and_its_logit_gradient_match_the_reference(loss):
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(9, 5)) * 3
    y = rng.integers(0, 5, 9)
    t = (y + rng.integers(1, 5, 9)) % 5
    targeted = loss in TARGETED_LOSSES
    value, dZ = loss_and_grad_logits(Z, y, loss, y_target=t if targeted else None)
    rows = [naive.row_loss(loss, Z[i], y[i], t[i]) for i in range(9)]
    assert value == pytest.approx(np.mean([v for v, _ in rows]), rel=1e-10)
    np.testing.assert_allclose(dZ, np.array([g for _, g in rows]) / 9, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("loss", ALL_LOSSES)
def test_every_loss_gradient_matches_finite_differences_through_the_network(loss):
    """The per-row input gradient the attacks use, against central differences of
    each row's loss (float64, inputs kept away from ReLU kinks and logit ties)."""
    rng = np.random.default_rng(2)
    model = robnp.MLP(3, (9, 9), 5, dtype=np.float64, seed=2)
    X, y = sample_away_from_kinks(model, 8, rng, 1e-3, "dlr")
    t = (y + 1 + rng.integers(0, 4, 8)) % 5
    code = TARGETED_LOSSES.get(loss, LOSSES.get(loss))
    ws = model.workspace(8)
    dX = np.empty_like(X)
    values, pred = np.empty(8), np.empty(8, np.int64)
    kernels.attack_eval(model.params, model.sizes, X, y, t, code, dX, ws.acts, ws.dZ,
                        ws.d0, ws.d1, values, pred, True, 1.0)

    def row_values(points):
        Z = model.logits(points)
        out = np.empty(8)
        kernels.logit_stats(code, Z, y, t, np.empty_like(Z), out, np.empty(8, np.int64), 1.0)
        return out

    h = 1e-6
    numeric = np.empty_like(X)
    for k in range(3):
        up, down = X.copy(), X.copy()
        up[:, k] += h
        down[:, k] -= h
        numeric[:, k] = (row_values(up) - row_values(down)) / (2 * h)
    assert relative_error(dX, numeric) < 1e-6
    np.testing.assert_allclose(values, row_values(X), rtol=1e-12)


def test_dlr_needs_three_classes_and_targeted_dlr_four():
    with pytest.raises(ConfigError, match="'dlr' needs at least 3 classes"):
        loss_and_grad_logits(np.zeros((2, 2)), [0, 1], "dlr")
    with pytest.raises(ConfigError, match="'dlr_targeted' needs at least 4 classes"):
        loss_and_grad_logits(np.zeros((2, 3)), [0, 1], "dlr_targeted", y_target=[1, 2])
    model = robnp.MLP(2, (4,), 3, seed=0)
    X, y = np.zeros((2, 2)), np.array([0, 1])
    with pytest.raises(ConfigError, match="at least 4 classes"):
        robnp.robust_accuracy(model, X, y, "apgd-t", eps=[0.1])
    with pytest.raises(ConfigError, match="at least 3 classes"):
        robnp.pgd(robnp.MLP(2, (4,), 2, seed=0), X, y, 0.1, loss="dlr")
    with pytest.raises(ConfigError, match="y_target is required"):
        loss_and_grad_logits(np.zeros((2, 4)), [0, 1], "dlr_targeted")


def test_l2_projection_onto_ball_and_box_is_the_exact_projection():
    """Bisection against Dykstra's alternating projections, for clean points inside
    the box, outside it within eps, and farther than eps (the ball's point nearest
    the box)."""
    rng = np.random.default_rng(3)
    bounds = (-1.0, 1.0)
    for case in range(24):
        d = 1 + case % 5
        x = rng.uniform(-1, 1, d) if case < 16 else rng.uniform(-1, 1, d) + 1.3
        eps = rng.uniform(0.1, 1.5)
        v = x + rng.normal(size=d) * 2
        out = v.copy()
        kernels.project_l2(x, out, eps, bounds[0], bounds[1], True)
        assert np.linalg.norm(out - x) <= eps * (1 + 1e-12)
        distance = np.linalg.norm(np.clip(x, *bounds) - x)
        if distance <= eps:
            assert out.min() >= -1 and out.max() <= 1
            np.testing.assert_allclose(out, naive.project_l2_lagrange(x, v, eps, bounds),
                                       atol=1e-9)
            np.testing.assert_allclose(out, naive.project_l2_box(x, v, eps, bounds), atol=1e-6)
        else:
            np.testing.assert_allclose(out, x + eps * (np.clip(x, *bounds) - x) / distance)
    x, v = np.zeros(3), np.array([3.0, 4.0, 0.0])
    kernels.project_l2(x, v, 1.0, 0.0, 0.0, False)
    np.testing.assert_allclose(v, [0.6, 0.8, 0.0])


@pytest.mark.parametrize("options", [
    {},
    {"loss": "cw_margin", "bounds": (-2.0, 2.0)},
    {"norm": "l2"},
    {"norm": "l2", "bounds": (-2.0, 2.0), "loss": "dlr"},
    {"use_best": True},
    {"use_best": True, "norm": "l2", "loss": "cw_margin"},
], ids=str)
def test_pgd_matches_the_reference_from_the_clean_point(blobs_model, options):
    model, X, y = blobs_model
    X = np.clip(X[:15], -2.0, 2.0)  # clean points in the box, so ball and box meet
    y = y[:15]
    eps = 0.4
    got = robnp.pgd(model, X, y, eps, steps=6, step_size=0.15, **options)
    kw = {k: v for k, v in options.items()}
    expected, _, _ = naive.pgd(model, X, y, eps, 0.15, 6, X, **kw)
    np.testing.assert_allclose(got, expected, atol=1e-9)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_restarts_and_random_starts_match_the_reference(blobs_model, norm):
    """Random starts drawn by the same helper in the same order; the restart rule
    (attack the points still robust, keep success or a higher loss) from the
    reference."""
    model, X, y = blobs_model
    X, y = np.clip(X[:20], -3.0, 3.0), y[:20]
    eps, bounds = 0.6, (-3.0, 3.0)
    got = robnp.pgd(model, X, y, eps, steps=4, step_size=0.2, norm=norm, bounds=bounds,
                    random_start=True, n_restarts=3, use_best=True, seed=11)
    rng = np.random.default_rng(11)

    def starts_for(rows):
        return random_start_points(rng, np.ascontiguousarray(X[rows]),
                                   np.full(rows.size, eps), norm, bounds)

    expected, success, _ = naive.pgd_restarts(model, X, y, eps, 0.2, 4, starts_for, 3,
                                              norm=norm, bounds=bounds, use_best=True)
    np.testing.assert_allclose(got, expected, atol=1e-9)
    assert np.array_equal(model.predict(got) != y, success)


def test_targeted_pgd_matches_the_reference_and_reaches_targets(blobs_model):
    model, X, y = blobs_model
    X, y = X[:15], y[:15]
    t = top_wrong_class(model.logits(X), y)
    got = robnp.pgd(model, X, y, 1.0, steps=8, step_size=0.3, y_target=t, use_best=True)
    expected, reached, _ = naive.pgd(model, X, y, 1.0, 0.3, 8, X, t=t, use_best=True)
    np.testing.assert_allclose(got, expected, atol=1e-9)
    assert np.array_equal(model.predict(got) == t, reached) and reached.any()


def test_apgd_checkpoints_are_the_reference_schedule():
    assert robnp.attacks.checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    for n_iter in (1, 2, 5, 10, 17, 33, 100, 250, 1000):
        assert robnp.attacks.checkpoints(n_iter) == naive.apgd_checkpoints(n_iter)
    intervals = _apgd.check_intervals(100)
    assert list(np.flatnonzero(intervals) + 1) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert list(intervals[intervals > 0]) == [22, 19, 16, 13, 10, 7, 6, 6]


@pytest.mark.parametrize("loss,targeted", [("cross_entropy", False), ("dlr", False),
                                           ("dlr", True)])
@pytest.mark.parametrize("path", ["compiled", "protocol"])
def test_apgd_iterates_match_the_reference_one_by_one(blobs_model, loss, targeted, path):
    """Each point runs as a batch of its own, so the arithmetic is close to the
    reference's; yet APGD's step size follows comparisons of successive losses, and
    two losses within rounding of each other (a coordinate pinned at the ball's edge
    repeats an iterate) are decided by the last bit, which depends on the CPU and the
    BLAS. So the iterates are compared, in float64, up to the first point at which
    such a near tie in the reference could change the trajectory
    (``naive.apgd``'s ``settled`` index); the rest of the run is held to what holds
    on any machine: the ball, the returned points' consistency, and a best loss no
    lower than any loss on the compared part of the trajectory."""
    model, X, y = blobs_model
    X, y = np.ascontiguousarray(X[:12]), y[:12]
    eps, n_iter = 0.3, 30
    rng = np.random.default_rng(4)
    eps_rows = np.full(12, eps)
    start = _apgd.start_points(rng, X, eps_rows, "linf", None)
    t = top_wrong_class(model.logits(X), y) if targeted else y
    name = "dlr_targeted" if targeted else loss
    target = AttackedModel(model if path == "compiled" else Wrapped(model))
    trace_ref, *final_ref, settled = naive.apgd(model, X, y, eps, n_iter, start, loss=loss,
                                                t=t if targeted else None)
    halved = compared = 0
    for r in range(12):
        rows = slice(r, r + 1)
        trace = np.empty((n_iter + 1, 1, 4))
        x_best, x_best_adv, robust, best = _apgd.apgd_single_run(
            target, X[rows], y[rows], t[rows], start[rows], eps_rows[rows], n_iter, name,
            "linf", None, 0.75, trace=trace)
        upto = settled[r]
        np.testing.assert_allclose(trace[:upto, 0], trace_ref[:upto, r], rtol=0, atol=1e-9)
        assert np.all(np.abs(trace[:, 0] - X[r]) <= eps + 1e-12)
        assert np.all(np.abs(np.asarray(x_best)[0] - X[r]) <= eps + 1e-12)
        if not robust[0]:
            assert model.predict(np.asarray(x_best_adv, np.float64))[0] != y[r]
        losses = naive.losses_and_gradients(model, trace_ref[:upto, r], np.repeat(y[rows], upto),
                                            name, None if not targeted else np.repeat(t[rows], upto))[0]
        assert float(np.asarray(best)[0]) >= losses.max() - 1e-9 * max(1.0, abs(losses.max()))
        compared += upto
        if upto == n_iter + 1:  # no near tie: the whole run is the reference's
            for a, b in zip((x_best, x_best_adv, robust, best), final_ref):
                np.testing.assert_allclose(np.asarray(a, np.float64)[0],
                                           np.asarray(b, np.float64)[r], rtol=0, atol=1e-9)
        moves = np.abs(np.diff(trace[:upto, 0], axis=0)).max(axis=1)
        halved += moves.size > 1 and moves[-1] < 0.5 * moves[0]
    # Not vacuous: most iterates are compared, and the step schedule was exercised.
    assert compared >= 0.6 * 12 * (n_iter + 1)
    assert halved > 0


def test_l2_apgd_iterates_match_the_reference(blobs_model):
    model, X, y = blobs_model
    X, y = np.ascontiguousarray(X[:8]), y[:8]
    eps, n_iter = 0.5, 20
    eps_rows = np.full(8, eps)
    start = _apgd.start_points(np.random.default_rng(5), X, eps_rows, "l2", None)
    np.testing.assert_allclose(np.linalg.norm(start - X, axis=1), eps)  # on the sphere
    trace_ref, *_, settled = naive.apgd(model, X, y, eps, n_iter, start, norm="l2")
    assert settled.sum() >= 0.6 * 8 * (n_iter + 1)  # not vacuous: most iterates compared
    for r in range(8):
        rows = slice(r, r + 1)
        trace = np.empty((n_iter + 1, 1, 4))
        _apgd.apgd_single_run(AttackedModel(model), X[rows], y[rows], y[rows], start[rows],
                              eps_rows[rows], n_iter, "cross_entropy", "l2", None, 0.75,
                              trace=trace)
        upto = settled[r]  # up to the first near tie (see the L-inf test)
        np.testing.assert_allclose(trace[:upto, 0], trace_ref[:upto, r], rtol=0, atol=1e-9)
        assert np.all(np.linalg.norm(trace[:, 0] - X[r], axis=1) <= eps * (1 + 1e-9))


def test_default_thread_count_follows_the_work():
    from robnp.attacks._threat import (ATTACK_CHUNK_ROWS, MIN_FLOPS_PER_CHUNK, available_cores,
                                       thread_count)

    light = MIN_FLOPS_PER_CHUNK / ATTACK_CHUNK_ROWS / 2  # a chunk below the threshold
    heavy = 2 * MIN_FLOPS_PER_CHUNK / ATTACK_CHUNK_ROWS
    assert thread_count(None, 100 * ATTACK_CHUNK_ROWS, light) == 1
    assert thread_count(None, 100 * ATTACK_CHUNK_ROWS, heavy) == min(100, available_cores())
    assert thread_count(None, 2 * ATTACK_CHUNK_ROWS, heavy) == min(2, available_cores())
    assert thread_count(8, ATTACK_CHUNK_ROWS) == 1  # never more threads than chunks
    assert thread_count(2, 3 * ATTACK_CHUNK_ROWS) == 2


def test_square_schedule_matches_the_paper():
    for n_queries in (100, 1000, 5000, 10000):
        for i in range(0, n_queries, max(1, n_queries // 500)):
            assert _square.p_schedule(i, n_queries, 0.8) == naive.square_p(i, n_queries, 0.8)
    assert _square.p_schedule(0, 10000, 0.8) == 0.8
    assert _square.p_schedule(11, 10000, 0.8) == 0.4
    assert _square.p_schedule(9999, 10000, 0.8) == 0.8 / 512
    assert _square.window_width(0.8, 4) == 2  # round(sqrt(3.2))
    assert _square.window_width(0.001, 4) == 1
    assert _square.window_width(1.0, 9) == 3


@pytest.mark.parametrize("path", ["compiled", "protocol"])
def test_square_loop_matches_the_reference(blobs_model, path):
    model, X, y = blobs_model
    X, y = X[:25], y[:25]
    eps, n_queries = 0.5, 120
    got = robnp.attacks.square(model if path == "compiled" else Wrapped(model), X, y, eps,
                               n_queries=n_queries, seed=9)
    correct = np.flatnonzero(model.predict(X) == y)
    rng = np.random.default_rng(9)
    signs0 = np.where(rng.random((correct.size, 4)) < 0.5, -1.0, 1.0)
    starts, widths, signs = _square._schedule(rng, n_queries, 0.8, 4)
    expected = X.copy()
    expected[correct] = naive.square(model, X[correct], y[correct], eps, signs0, starts,
                                     widths, signs)
    np.testing.assert_allclose(got, expected, atol=1e-12)


class Wrapped:
    """A model of the attack protocol that hides an MLP: logits and input gradients by
    the reference forward and backward passes, losses from robnp.losses."""

    def __init__(self, model):
        self._model = model
        self.dtype = model.dtype

    def logits(self, X):
        return naive.forward(self._model, X)[0]

    def input_gradient(self, X, y, loss, y_target=None):
        Z, cache = naive.forward(self._model, X)
        _, dZ = loss_and_grad_logits(Z, y, loss, y_target=y_target)
        return naive.backward(self._model, cache, dZ)
