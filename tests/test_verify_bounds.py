"""Margin bounds are sound for the model as it runs: checked by sampling every box."""

import numpy as np
import pytest

import robnp
from robnp.errors import ConfigError, DataError
from robnp.verify import ball_margin_bounds, box_margin_bounds, margin_bounds

from naive import reference_forward

N_SAMPLES = 100_000
CONFIGS = [(dtype, hidden, n_classes)
           for dtype in (np.float32, np.float64)
           for hidden, n_classes in (((2,), 2), ((16,), 3), ((7, 5), 2), ((16, 16), 3),
                                     ((4, 9, 3), 2), ((12, 8, 16), 3))]


def _net(dtype, hidden, n_classes, seed, d=2):
    return robnp.MLP(d, hidden, n_classes, dtype=dtype, seed=seed)


def _box_samples(lo, hi, rng, n=N_SAMPLES):
    """n points of the box [lo, hi] (d,): every corner, points on every face, the rest
    uniform inside."""
    d = lo.shape[0]
    corners = np.array([[hi[k] if (c >> k) & 1 else lo[k] for k in range(d)]
                        for c in range(2 ** d)])
    faces = rng.uniform(lo, hi, size=(n // 4, d))
    dims = rng.integers(0, d, n // 4)
    side = rng.integers(0, 2, n // 4)
    faces[np.arange(n // 4), dims] = np.where(side == 1, hi[dims], lo[dims])
    inside = rng.uniform(lo, hi, size=(n - len(corners) - len(faces), d))
    return np.concatenate([corners, faces, inside])


def _run_margins(model, points, label):
    """Margins z_y - z_j of the logits the model itself computes, in float64."""
    Z = model.logits(points).astype(np.float64)
    return Z[:, [label]] - Z


def _exact_margins(model, points, label):
    Z = reference_forward(model, points)[-1]
    return Z[:, [label]] - Z


@pytest.mark.parametrize("dtype,hidden,n_classes", CONFIGS)
def test_no_sampled_margin_falls_below_its_bound(dtype, hidden, n_classes):
    model = _net(dtype, hidden, n_classes, seed=len(hidden) * 17 + hidden[0])
    rng = np.random.default_rng(hidden[0] + n_classes)
    centers = rng.normal(size=(2, 2))
    labels = rng.integers(0, n_classes, 2)
    for eps in (0.05, 0.4):
        # box ends representable in the model's dtype, so the samples cast to it stay inside
        lo = (centers - eps).astype(dtype).astype(np.float64)
        hi = (centers + eps).astype(dtype).astype(np.float64)
        per_method = {m: box_margin_bounds(model, lo, hi, labels, method=m)
                      for m in ("ibp", "crown", "both")}
        for i in range(2):
            points = np.clip(_box_samples(lo[i], hi[i], rng).astype(dtype), lo[i].astype(dtype),
                             hi[i].astype(dtype))
            run_all = _run_margins(model, points, labels[i])
            exact_all = _exact_margins(model, points, labels[i])
            # the model's rounding at every sample stays inside the allowance
            allowance = per_method["crown"].float_error[i] + 1e-12 * (1 + np.abs(exact_all))
            assert np.all(np.abs(run_all - exact_all) <= allowance)
            run, exact = run_all.min(axis=0), exact_all.min(axis=0)
            for method, bounds in per_method.items():
                lower = bounds.lower[i]
                finite = np.isfinite(lower)
                assert np.all(run[finite] >= lower[finite]), (method, eps, run, lower)
                # float64 reference, itself rounded: a relative slack far below the bounds' gaps
                slack = 1e-12 * (1 + np.abs(exact))
                assert np.all(exact[finite] + slack[finite] >= bounds.exact_lower[i][finite])
            both = per_method["both"].exact_lower[i]
            np.testing.assert_array_equal(
                both, np.maximum(per_method["ibp"].exact_lower[i],
                                 per_method["crown"].exact_lower[i]))


def test_the_own_class_column_is_infinite_and_worst_is_the_row_minimum():
    model = _net(np.float32, (6,), 3, seed=1)
    X = np.array([[0.1, 0.2], [0.3, -0.5]])
    y = np.array([2, 0])
    b = margin_bounds(model, X, y, 0.1)
    assert b.lower.shape == (2, 3)
    assert np.isinf(b.lower[0, 2]) and np.isinf(b.lower[1, 0])
    np.testing.assert_array_equal(b.worst, b.lower.min(axis=1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_l2_bounds_are_sound_on_the_ball_and_its_surface(dtype):
    model = _net(dtype, (10, 10), 3, seed=3)
    rng = np.random.default_rng(3)
    center = rng.normal(size=(1, 2))
    label = np.array([1])
    for eps in (0.05, 0.5):
        bounds = ball_margin_bounds(model, center, eps, label)
        direction = rng.normal(size=(N_SAMPLES, 2))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        radius = eps * np.sqrt(rng.uniform(0, 1, (N_SAMPLES, 1)))
        radius[: N_SAMPLES // 4] = eps                       # a quarter on the sphere
        points = center + direction * radius
        run = _run_margins(model, points.astype(dtype), 1).min(axis=0)
        finite = np.isfinite(bounds.lower[0])
        assert np.all(run[finite] >= bounds.lower[0][finite])


def test_a_data_box_intersected_with_the_ball_is_covered():
    model = _net(np.float32, (12, 12), 2, seed=8)
    rng = np.random.default_rng(8)
    X = np.array([[0.9, -0.95]])
    y = np.array([0])
    bounds = margin_bounds(model, X, y, 0.3, bounds=(-1.0, 1.0))
    unclipped = margin_bounds(model, X, y, 0.3)
    points = _box_samples(np.array([0.6, -1.0]), np.array([1.0, -0.65]), rng)
    run = _run_margins(model, points.astype(np.float32), 0).min(axis=0)
    assert run[1] >= bounds.lower[0, 1]
    assert bounds.exact_lower[0, 1] >= unclipped.exact_lower[0, 1]   # a smaller region


def test_crown_is_tighter_than_ibp_on_average():
    """Not row by row (neither method dominates), but over many boxes."""
    gains = []
    rng = np.random.default_rng(11)
    for seed, hidden in enumerate([(16,), (8, 8), (16, 16), (6, 10, 6)]):
        model = _net(np.float64, hidden, 2, seed=seed)
        X = rng.normal(size=(200, 2))
        y = rng.integers(0, 2, 200)
        ibp = margin_bounds(model, X, y, 0.2, method="ibp").exact_lower
        crown = margin_bounds(model, X, y, 0.2, method="crown").exact_lower
        finite = np.isfinite(ibp) & np.isfinite(crown)
        gains.append(np.mean(crown[finite] - ibp[finite]))
    assert min(gains) > 0, gains


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_at_eps_zero_the_bound_is_the_margin_up_to_the_rounding_allowance(dtype):
    model = _net(dtype, (16, 16), 3, seed=5)
    rng = np.random.default_rng(5)
    X = rng.normal(size=(50, 2)).astype(dtype)
    y = rng.integers(0, 3, 50)
    b = margin_bounds(model, X, y, 0.0)
    Z = model.logits(X).astype(np.float64)
    margins = Z[np.arange(50), y][:, None] - Z
    other = np.isfinite(b.lower)
    assert np.all(margins[other] >= b.lower[other])
    # the whole gap is the two rounding allowances, plus a relative hair for float64
    gap = margins[other] - b.lower[other]
    assert np.all(gap <= 2 * b.float_error[other] + 1e-12 * (1 + np.abs(margins[other])))
    unit = 2.0 ** -24 if dtype == np.float32 else 2.0 ** -53
    assert np.all(b.float_error[other] > 0)
    assert np.all(b.float_error[other] < 1e4 * unit * (1 + np.abs(Z).max()))


def test_stable_means_every_neuron_keeps_its_sign():
    model = _net(np.float64, (8, 8), 2, seed=2)
    rng = np.random.default_rng(2)
    X = rng.normal(size=(30, 2))
    y = np.zeros(30, np.int64)
    tiny = margin_bounds(model, X, y, 1e-9)
    assert tiny.stable.mean() > 0.9                     # tiny boxes cross few kinks
    huge = margin_bounds(model, X, y, 50.0)
    assert not huge.stable.any()


def test_bad_input_is_a_clear_error():
    model = _net(np.float32, (4,), 2, seed=0)
    X = np.zeros((2, 2))
    with pytest.raises(ConfigError, match="eps"):
        margin_bounds(model, X, [0, 1], -0.1)
    with pytest.raises(ConfigError, match="method"):
        margin_bounds(model, X, [0, 1], 0.1, method="lp")
    with pytest.raises(ConfigError, match="norm"):
        margin_bounds(model, X, [0, 1], 0.1, norm="l1")
    with pytest.raises(DataError, match="lo <= hi"):
        box_margin_bounds(model, X + 1, X, [0, 1])
    with pytest.raises(DataError, match="does not meet"):
        margin_bounds(model, X + 5, [0, 1], 0.1, bounds=(-1, 1))


def test_bounds_computed_in_chunks_are_the_same(monkeypatch):
    """Large batches are cut into chunks to bound memory; the cut changes nothing but
    the last bits (BLAS may sum in another order for another shape)."""
    import robnp.verify.bounds as bounds_module

    model = _net(np.float64, (16, 16, 16), 3, seed=4)
    rng = np.random.default_rng(4)
    X = rng.normal(size=(100, 2))
    y = rng.integers(0, 3, 100)
    whole = margin_bounds(model, X, y, 0.2)
    monkeypatch.setattr(bounds_module, "_CHUNK_ELEMENTS", 3000)      # 5-row chunks
    parts = margin_bounds(model, X, y, 0.2)
    np.testing.assert_array_equal(parts.stable, whole.stable)
    for field in ("lower", "exact_lower", "float_error", "coefficients"):
        np.testing.assert_allclose(getattr(parts, field), getattr(whole, field),
                                   rtol=1e-9, atol=1e-12)


def test_the_compiled_outward_step_is_numpy_nextafter_bit_for_bit():
    from robnp.verify.bounds import _down, _up

    rng = np.random.default_rng(0)
    big = np.finfo(np.float64).max
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, big, -big,
                        np.finfo(np.float64).tiny, -np.finfo(np.float64).tiny, 1.0, -1.0])
    special = np.concatenate([special, np.array(  # signalling and quiet NaNs with payloads
        [0x7FF0000000000001, 0xFFF0000000000002, 0x7FF8000000000003, 0x7FF4000000000000],
        np.uint64).view(np.float64)])
    spread = rng.normal(size=20000) * 10.0 ** rng.integers(-320, 300, 20000)
    with np.errstate(over="ignore", invalid="ignore"):
        for x in (special, spread, spread.reshape(100, 200)):
            for ours, direction in ((_up, np.inf), (_down, -np.inf)):
                got, want = ours(x), np.nextafter(x, direction)
                np.testing.assert_array_equal(got.view(np.int64), want.view(np.int64))


@pytest.mark.parametrize("make", [lambda a: a, lambda a: a.T, lambda a: a.transpose(1, 0, 2),
                                  lambda a: a[:, ::2], lambda a: a[::-1],
                                  lambda a: np.broadcast_to(a[:1], a.shape)])
def test_the_outward_step_keeps_numpy_memory_layout(make):
    """A later product sums in an order that depends on its operands' layout: the step
    must hand back NumPy's layout as well as its values."""
    from robnp.verify.bounds import _up

    x = make(np.random.default_rng(1).normal(size=(6, 5, 4)))
    got, want = _up(x), np.nextafter(x, np.inf)
    assert got.strides == want.strides
    np.testing.assert_array_equal(got, want)


def test_the_network_parts_every_chunk_shares_are_made_once_and_read_only():
    from robnp.verify.bounds import Float64Net

    net = Float64Net.of(_net(np.float32, (8, 8), 2, seed=1))
    assert net.identity_spec(2) is net.identity_spec(2)
    Lam, E, const, Lp, Ln, absLam = net.identity_spec(2)
    W = net.Ws[1]
    np.testing.assert_array_equal(Lam, np.concatenate([W.T, -W.T]))
    np.testing.assert_array_equal(Lp - Ln, absLam)
    assert not E.any()
    for layer, W in zip(net.weight_parts, net.Ws):
        np.testing.assert_array_equal(layer[0] + layer[1], W)
        np.testing.assert_array_equal(layer[3], np.abs(W))
    for array in (Lam, E, const, Lp, *net.weight_parts[0]):
        with pytest.raises(ValueError):
            array[...] = 0
