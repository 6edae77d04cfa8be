"""Sound lower bounds on the classification margins of an MLP over an input region.

Two methods, for the margins ``z_y - z_j`` (every class ``j != y``) of an
:class:`~robnp.model.MLP` over an L-infinity box (``x0 +- eps``, optionally
intersected with a data box) or an L2 ball:

* **IBP**, interval bound propagation (Gowal et al., 2018): an interval per neuron,
  layer by layer; the last layer is folded into the margin, so the margin
  ``h_{L-1} . (W_L[:, y] - W_L[:, j]) + b_y - b_j`` is bounded directly.
* **CROWN** (Zhang et al., 2018, "Efficient Neural Network Robustness Certification
  with General Activation Functions"): the margin specification (the matrix ``C``
  with rows ``e_y - e_j``) is propagated backwards through the network as a linear
  function; an unstable ReLU (``l < 0 < u``) is replaced by its upper line through
  ``(l, 0)`` and ``(u, u)`` (slope ``u / (u - l)``) where its coefficient is
  negative, and by the lower line ``a z`` with the adaptive slope ``a = 1`` if
  ``u >= -l`` else ``0`` where it is positive; stable neurons are exact. The
  pre-activation bounds of every hidden layer come from the same backward pass
  (started at that layer), intersected with IBP's.

What is guaranteed
------------------
Let ``R`` be the region (see :func:`input_region`) and ``z~(x)`` the logits the
model computes at ``x`` in its own dtype, with *any* order of summation in its dot
products, with or without fused multiply-adds (as BLAS computes them: sums of
products, not a fast matrix-multiplication algorithm), in IEEE round-to-nearest
arithmetic. Then for every ``x`` in ``R``, every
row ``i`` and every class ``j != y_i``::

    z~_y(x) - z~_j(x)  >=  MarginBounds.lower[i, j]        (a real-number inequality)

so ``lower[i, j] > 0`` for every ``j`` means the model as it runs predicts ``y_i``
everywhere in ``R`` (also under its first-index tie rule). ``exact_lower`` is the
same statement for the margin of the network evaluated in exact real arithmetic
(from the model's weights, which are exact in float64).

How floating point is covered
-----------------------------
Everything is computed in float64 from the model's weights. Two kinds of error are
bounded explicitly:

1. *The verifier's own rounding.* Every dot product ``s = sum_k a_k b_k`` of ``k``
   terms is computed as ``s~`` together with the error bound
   ``|s~ - s| <= gamma_k / (1 - gamma_k) * fl(sum_k |a_k| |b_k|) + k * 2**-1000``
   (Higham, "Accuracy and Stability of Numerical Algorithms", 2002, section 3.1:
   ``|s~ - s| <= gamma_k sum |a_k b_k|`` for any summation order, where
   ``gamma_k = k u / (1 - k u)`` and ``u = 2**-53``; the computed sum of
   non-negative terms is at least ``(1 - gamma_k)`` times the exact one; the last
   term covers underflow), inflated by ``1 + 1e-9`` for the rounding of the bound
   itself. A lower (upper) end is then ``s~ - err`` (``s~ + err``) moved one step
   outwards with ``np.nextafter``; every scalar addition of two bounds is likewise
   followed by one ``nextafter`` step outwards. ReLU relaxation offsets are not
   taken from formulas but as the exact minimum (maximum) of
   ``relu(z) - s z`` over the candidates ``z in {l, u, 0}``, each evaluated with an
   error term, so a rounded slope ``s`` is still a valid relaxation. A coefficient
   row rounded on its way back through a layer is charged its error bound times the
   largest magnitude of the activations it multiplies (known from the layer's
   bounds).
2. *The model's rounding as it runs* (float32 or float64). With ``u_m`` the
   model's unit roundoff (``2**-24`` or ``2**-53``) and ``gamma_m(k)`` as above,
   a layer ``z = h W + b`` (``k`` inputs, bias added after the product) evaluated
   on an already rounded ``h~`` satisfies
   ``|z~ - z| <= |h~ - h| |W| + gamma_m(k + 1) (|h~| |W| + |b|) + (k + 2) 2**-126``;
   ReLU is exact and 1-Lipschitz, so the errors carry forward layer by layer, with
   ``|h~| <= relu(u + e)`` for a pre-activation error bound ``e``, and no error at all
   for a neuron with ``u + e <= 0``. The margin's allowance is
   ``|h~ - h| . |W_y - W_j| + r_y + r_j`` (last hidden layer's error through the
   difference of the two output columns, plus the output layer's own rounding of each
   logit), and ``lower[i, j] = exact_lower[i, j] - allowance`` (rounded down).

A bound that overflows or becomes NaN is reported as ``-inf``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .. import _checks, kernels
from ..errors import ConfigError, DataError
from ..threads import single_blas_thread

__all__ = ["MarginBounds", "input_region", "margin_bounds", "box_margin_bounds",
           "ball_margin_bounds", "METHODS", "Float64Net", "Box", "Ball",
           "region_margin_bounds", "check_verifiable"]

METHODS = ("crown", "ibp", "both")

_U64 = 2.0 ** -53
_TINY = 2.0 ** -1000          # per-term allowance for float64 underflow
_TINY32 = 2.0 ** -126         # per-term allowance for the model's float32 underflow
_INF = np.inf


def _gamma(k, u) -> float:
    k = float(k)
    return k * u / (1.0 - k * u)


def _factor(k) -> float:
    """Multiplier of ``fl(sum |a||b|)`` bounding the float64 error of a k-term dot."""
    g = _gamma(k, _U64)
    return g / (1.0 - g) * (1.0 + 1e-9)


def _next(x, upward: bool):
    """``np.nextafter(x, +-inf)``, bit for bit and in the ufunc's memory layout (the
    layout of an operand decides how a later product is summed); float64 arrays in
    the compiled :func:`robnp.kernels.next_float`, which releases the GIL."""
    x = np.asarray(x)
    plain = (x.dtype == np.float64 and x.ndim
             and all(stride > 0 for stride, size in zip(x.strides, x.shape) if size > 1))
    if plain:  # (broadcast and reversed views: NumPy's own loop, whose layout differs)
        out = np.empty_like(x)
        # walk out's memory in order: its axes sorted by stride make it C-contiguous
        axes = np.argsort([-stride for stride in out.strides], kind="stable")
        target = out.transpose(axes)
        if target.flags.c_contiguous:
            source = np.ascontiguousarray(x.transpose(axes))
            kernels.next_float(source.reshape(-1), target.reshape(-1), upward)
            return out
    return np.nextafter(x, _INF if upward else -_INF)


def _down(x):
    return _next(x, False)


def _up(x):
    return _next(x, True)


def _slack(abs_product, k):
    """Error bound of a k-term dot product from the computed sum of |terms|."""
    return _up(_factor(k) * abs_product + k * _TINY)


def _add_down(a, b):
    return _down(a + b)


def _clean_lower(x):
    """NaN (from inf - inf) is no bound: -inf."""
    return np.where(np.isnan(x), -_INF, x)


# ---------------------------------------------------------------------------
# the network in float64
# ---------------------------------------------------------------------------

def check_verifiable(model) -> None:
    """A one-line error unless ``model`` is an :class:`robnp.MLP`: the bounds are
    propagated through its weights, which a model seen only through ``logits`` and
    ``input_gradient`` (the attacks' protocol) does not expose."""
    from ..model import MLP

    if not isinstance(model, MLP):
        raise ConfigError(f"the verifier needs an MLP (it bounds the network through its "
                          f"weights), got {type(model).__name__}; a model with only "
                          f"logits and input_gradient can be attacked but not verified")


@dataclass(frozen=True)
class Float64Net:
    """An MLP's weights in float64 (exact copies) and the unit roundoff it runs with:
    the network every bound propagates through (``Float64Net.of(model)``; branch and
    bound converts a model once and bounds many regions with it)."""

    Ws: tuple            # (fan_in, fan_out) float64
    bs: tuple            # (fan_out,) float64
    u_model: float

    @classmethod
    def of(cls, model) -> "Float64Net":
        if isinstance(model, Float64Net):
            return model
        check_verifiable(model)
        u = 2.0 ** -24 if model.dtype == np.float32 else 2.0 ** -53
        return cls(tuple(np.array(W, np.float64) for W in model.coefs_),
                   tuple(np.array(b, np.float64) for b in model.intercepts_), u)

    @property
    def n_layers(self) -> int:
        return len(self.Ws)

    @property
    def n_classes(self) -> int:
        return self.Ws[-1].shape[1]

    @property
    def layer_sizes(self) -> tuple:
        return (self.Ws[0].shape[0], *(W.shape[1] for W in self.Ws))

    @cached_property
    def _identity_specs(self) -> dict:
        return {}

    @cached_property
    def weight_parts(self) -> tuple:
        """``(W+, W-, -W-, |W|)`` of every layer's weights (exact, read-only), made
        once per network instead of once per chunk of rows."""
        parts = []
        for W in self.Ws:
            layer = (np.maximum(W, 0), np.minimum(W, 0), -np.minimum(W, 0), np.abs(W))
            for array in layer:
                array.flags.writeable = False
            parts.append(layer)
        return tuple(parts)

    def identity_spec(self, k: int) -> tuple:
        """What CROWN's backward pass starts from for both bounds of ``z_k`` itself,
        the same for every region: ``Lam = [W_k^T; -W_k^T]``, its error (zero: the
        rows are exact), the constant ``[b_k; -b_k]``, and ``Lam``'s positive part,
        negative part and absolute value. Made once per network (each is a
        ``2 w_k x w_{k-1}`` matrix, megabytes at width 512, which every chunk of rows
        would otherwise allocate and fill anew) and read-only."""
        spec = self._identity_specs.get(k)
        if spec is None:
            W, b = self.Ws[k - 1], self.bs[k - 1]
            Lam = np.concatenate([W.T, -W.T])
            spec = (Lam, np.zeros_like(Lam), np.concatenate([b, -b]), np.maximum(Lam, 0),
                    np.minimum(Lam, 0), np.abs(Lam))
            for array in spec:
                array.flags.writeable = False
            self._identity_specs[k] = spec
        return spec


# ---------------------------------------------------------------------------
# regions
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Box:
    """Boxes ``[lo, hi]``, arrays of shape (n, d), float64: a region of
    :func:`region_margin_bounds` (branch and bound splits them)."""

    lo: np.ndarray
    hi: np.ndarray

    def magnitude(self):
        return np.maximum(np.abs(self.lo), np.abs(self.hi))

    def affine(self, W, b):
        """Sound interval of ``x W + b`` over the box: (lo, hi) of shape (n, fan_out)."""
        return _affine_interval(self.lo, self.hi, W, b)

    def linear_min(self, A, E):
        """Lower bound of ``min_x A x - E |x|`` over the box; A, E (n, m, d) or (m, d)."""
        lo, hi = self.lo[:, :, None], self.hi[:, :, None]
        Ap, An = np.maximum(A, 0), np.minimum(A, 0)
        value = np.matmul(Ap, lo)[..., 0] + np.matmul(An, hi)[..., 0]
        mag = self.magnitude()[:, :, None]
        absA = np.abs(A)
        err = np.matmul(absA, mag)[..., 0]
        d = self.lo.shape[1]
        penalty = np.matmul(E, mag)[..., 0]
        return _down(value - _slack(err, 2 * d) - _up(penalty * (1 + 1e-9)))

    def take(self, rows):
        return Box(self.lo[rows], self.hi[rows])

    def split(self, dim, which):
        """Halves of every box along its own ``dim`` (n,): lower (which=0) or upper."""
        n = self.lo.shape[0]
        rows = np.arange(n)
        mid = 0.5 * (self.lo[rows, dim] + self.hi[rows, dim])
        lo, hi = self.lo.copy(), self.hi.copy()
        if which == 0:
            hi[rows, dim] = mid
        else:
            lo[rows, dim] = mid
        return Box(lo, hi)


@dataclass(frozen=True)
class Ball:
    """L2 balls: centres (n, d) and radii (n,), float64: a region of
    :func:`region_margin_bounds`."""

    center: np.ndarray
    radius: np.ndarray

    def magnitude(self):
        return _up(np.abs(self.center) + self.radius[:, None])

    def take(self, rows):
        return Ball(self.center[rows], self.radius[rows])

    def _norm_up(self, A):
        d = A.shape[-1]
        sq = np.sum(A * A, axis=-1)
        return _up(np.sqrt(_up(sq + _slack(sq, d + 2))) * (1 + 4 * _U64))

    def affine(self, W, b):
        value = self.center @ W + b
        err = _slack(np.abs(self.center) @ np.abs(W) + np.abs(b), W.shape[0] + 1)
        spread = _up(self.radius[:, None] * self._norm_up(W.T)[None, :] * (1 + 4 * _U64))
        return _down(value - err - spread), _up(value + err + spread)

    def linear_min(self, A, E):
        c = self.center[:, :, None]
        value = np.matmul(A, c)[..., 0]
        d = self.center.shape[1]
        err = _slack(np.matmul(np.abs(A), np.abs(c))[..., 0], d)
        shape = value.shape
        norm = np.broadcast_to(self._norm_up(A), shape)
        spread = _up(norm * self.radius[:, None] * (1 + 4 * _U64))
        penalty = _up(np.matmul(E, self.magnitude()[:, :, None])[..., 0] * (1 + 1e-9))
        return _down(value - err - spread - penalty)


def _affine_interval(lo, hi, W, b, parts=None):
    """Sound (lower, upper) of ``h W + b`` over ``lo <= h <= hi``, shape (n, fan_out);
    ``parts``: ``(W+, W-, -W-)`` when already at hand (:attr:`Float64Net.weight_parts`).

    ``lower = lo W+ + hi W- + b`` as one dot product of ``2 fan_in + 1`` terms."""
    Wp, Wn, negWn = parts or (np.maximum(W, 0), np.minimum(W, 0), -np.minimum(W, 0))
    k = 2 * W.shape[0] + 1
    low = lo @ Wp + hi @ Wn + b
    low_err = _slack(np.abs(lo) @ Wp + np.abs(hi) @ negWn + np.abs(b), k)
    high = hi @ Wp + lo @ Wn + b
    high_err = _slack(np.abs(hi) @ Wp + np.abs(lo) @ negWn + np.abs(b), k)
    return _down(low - low_err), _up(high + high_err)


# ---------------------------------------------------------------------------
# ReLU relaxation
# ---------------------------------------------------------------------------

def _relu_slopes(l, u):
    """CROWN's slopes (lower, upper) per neuron, shape of ``l``.

    Stable active (l >= 0): 1, 1. Stable inactive (u <= 0): 0, 0. Unstable: lower
    slope 1 if u >= -l else 0 (the adaptive choice of Zhang et al.), upper slope
    u / (u - l)."""
    unstable = (l < 0) & (u > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        upper = np.where(unstable, u / np.where(unstable, u - l, 1.0), (l >= 0) * 1.0)
    lower = np.where(unstable, (u >= -l) * 1.0, (l >= 0) * 1.0)
    return lower, upper


def _relu_offsets(l, u, slope):
    """Sound ``(min, max)`` of ``relu(z) - slope z`` over ``l <= z <= u``.

    The function is piecewise linear with its kink at 0, so the extremes are among
    ``z = l``, ``z = u`` and ``z = 0`` (when inside)."""
    lows, highs = [], []
    for z in (l, u):
        r = np.maximum(z, 0.0)
        p = slope * z
        v = r - p
        err = _up(4 * _U64 * (np.abs(r) + np.abs(p)) + _TINY)
        lows.append(_down(v - err))
        highs.append(_up(v + err))
    inside = (l < 0) & (u > 0)
    low = np.minimum(lows[0], lows[1])
    high = np.maximum(highs[0], highs[1])
    low = np.where(inside, np.minimum(low, 0.0), low)
    high = np.where(inside, np.maximum(high, 0.0), high)
    return low, high


# ---------------------------------------------------------------------------
# CROWN backward pass
# ---------------------------------------------------------------------------

def _backward(net, region, inter, S, s0, k):
    """Lower bound of ``S z_k + s0`` over the region, by CROWN's backward pass.

    Parameters
    ----------
    S : ndarray (m, w_k) shared by every row, or (n, m, w_k); None for
        ``[I; -I]``, i.e. lower bounds of ``z_k`` and of ``-z_k``
    s0 : ndarray (m,) or (n, m); ignored when S is None
    k : int, 1-based index of the linear layer whose output ``z_k`` S acts on
    inter : list of (l, u), bounds of ``z_1 .. z_{k-1}``, each (n, w)

    Returns
    -------
    lower : (n, m) float64, coefficients : (n, m, d) float64 (of x, before rounding
    allowances), the linear lower bound the minimum was taken of.
    """
    n = region.magnitude().shape[0]
    W, b = net.Ws[k - 1], net.bs[k - 1]
    shared = S is None or S.ndim == 2
    parts = None
    if S is None:
        # Both bounds of z_k itself: the rows of [W^T; -W^T] are exact, no product.
        Lam, E, const, *parts = net.identity_spec(k)
    else:
        # Through the linear layer k: S z_k = (S W^T) h_{k-1} + S b.
        Lam = S @ W.T
        E = _slack(np.abs(S) @ np.abs(W.T), W.shape[1])
        const = _down(S @ b - _slack(np.abs(S) @ np.abs(b), b.shape[0]))
        const = _add_down(const, s0)
    if shared:
        const = np.broadcast_to(const, (n, Lam.shape[0]))
    for layer in range(k - 1, 0, -1):
        l, u = inter[layer - 1]
        W, b = net.Ws[layer - 1], net.bs[layer - 1]
        lower_slope, upper_slope = _relu_slopes(l, u)
        g_low, _ = _relu_offsets(l, u, lower_slope)
        _, g_high = _relu_offsets(l, u, upper_slope)
        H = np.maximum(u, 0.0)                       # |h| <= relu(u)
        exact_rows = parts is not None   # E is the identity spec's zero
        Lp, Ln, absLam = parts or (np.maximum(Lam, 0), np.minimum(Lam, 0), np.abs(Lam))
        parts = None
        absW = net.weight_parts[layer - 1][3]
        if shared:
            # Lam (m, w) is one matrix; per-row slopes enter through the right factor,
            # so every row's product is one GEMM over all rows at once.
            m, w = Lam.shape
            w_prev = W.shape[0]
            Dl = (lower_slope.T[:, :, None] * W.T[:, None, :]).reshape(w, n * w_prev)
            Du = (upper_slope.T[:, :, None] * W.T[:, None, :]).reshape(w, n * w_prev)
            Dabs = (np.maximum(lower_slope, upper_slope).T[:, :, None]
                    * absW.T[:, None, :]).reshape(w, n * w_prev)
            new = (Lp @ Dl + Ln @ Du).reshape(m, n, w_prev).transpose(1, 0, 2)
            new_err = (absLam @ Dabs).reshape(m, n, w_prev).transpose(1, 0, 2)
            kappa = Lp @ g_low.T + Ln @ g_high.T                      # (m, n)
            kappa_err = absLam @ np.maximum(np.abs(g_low), np.abs(g_high)).T
            mub = Lp @ (lower_slope * b).T + Ln @ (upper_slope * b).T
            mub_err = absLam @ (np.maximum(lower_slope, upper_slope) * np.abs(b)).T
            if exact_rows and np.isfinite(H).all():
                penalty = np.zeros((n, m))            # E @ H.T, with E = 0 and H finite
            else:
                penalty = (E @ H.T).T                                 # (n, m)
            kappa, kappa_err, mub, mub_err = kappa.T, kappa_err.T, mub.T, mub_err.T
        else:
            mu = Lp * lower_slope[:, None, :] + Ln * upper_slope[:, None, :]
            smax = np.maximum(lower_slope, upper_slope)[:, None, :]
            new = mu @ W.T
            new_err = (absLam * smax) @ absW.T
            kappa = (np.matmul(Lp, g_low[:, :, None]) + np.matmul(Ln, g_high[:, :, None]))[..., 0]
            kappa_err = np.matmul(absLam, np.maximum(np.abs(g_low),
                                                          np.abs(g_high))[:, :, None])[..., 0]
            mub = mu @ b
            mub_err = (absLam * smax) @ np.abs(b)
            penalty = np.matmul(E, H[:, :, None])[..., 0]
        w = l.shape[1]
        const = _add_down(const, _down(kappa - _slack(kappa_err, 2 * w)))
        const = _add_down(const, _down(mub - _slack(mub_err, w + 1)))
        const = _down(const - _up(penalty * (1 + 1e-9)))
        Lam, E = new, _slack(new_err, w + 1)
        shared = False
    if shared:
        Lam = np.broadcast_to(Lam, (n, *Lam.shape))
        E = np.broadcast_to(E, (n, *E.shape))
    low = _add_down(const, region.linear_min(Lam, E))
    return _clean_lower(low), Lam


def _intermediate_bounds(net, region, method):
    """Bounds (l, u) of every hidden pre-activation z_1 .. z_{L-1}, each (n, w)."""
    inter = []
    l, u = region.affine(net.Ws[0], net.bs[0])
    for k in range(1, net.n_layers):
        if k > 1:
            il, iu = _affine_interval(np.maximum(inter[-1][0], 0), np.maximum(inter[-1][1], 0),
                                      net.Ws[k - 1], net.bs[k - 1], net.weight_parts[k - 1][:3])
            l, u = il, iu
            if method != "ibp":
                w = net.Ws[k - 1].shape[1]
                low, _ = _backward(net, region, inter, None, None, k)
                l = np.maximum(l, low[:, :w])
                u = np.minimum(u, -low[:, w:])
        inter.append((_clean_lower(l), np.where(np.isnan(u), _INF, u)))
    return inter


def _rounding(net, k, mag):
    """Bound on the model's fresh rounding in layer k's output, given |h~| <= mag."""
    W, b = net.Ws[k], net.bs[k]
    fan_in = W.shape[0]
    size = _up(mag @ net.weight_parts[k][3] + np.abs(b))
    size = _up(size + _slack(size, fan_in + 1))
    return _up(_gamma(fan_in + 1, net.u_model) * (1 + 1e-6) * size + (fan_in + 2) * _TINY32)


def _model_error(net, region, inter, y):
    """Allowance for the model's own rounding in every margin, (n, n_classes).

    Per hidden layer, with ``e`` the bound on ``|z~ - z|``: ``h~ = relu(z~) <=
    relu(u + e)``, and ``|h~ - h| <= min(e, relu(u + e))`` (zero for a neuron that
    stays negative even when rounded up). The margin's error is then
    ``|h~ - h| . |W_y - W_j| + r_y + r_j`` with ``r`` the last layer's fresh rounding.
    """
    mag = region.magnitude()                 # the input is exact in the model's dtype
    herr = np.zeros_like(mag)
    for k in range(net.n_layers - 1):
        absW = net.weight_parts[k][3]
        carried = herr @ absW
        carried = _up(carried + _slack(carried, absW.shape[0]))
        zerr = _up(carried + _rounding(net, k, mag))
        reach = np.maximum(_up(inter[k][1] + zerr), 0.0)
        herr = np.minimum(zerr, reach)
        mag = reach
    fresh = _rounding(net, net.n_layers - 1, mag)                       # (n, C)
    W = net.Ws[-1]
    rows = np.arange(y.shape[0])
    spread = _up(np.abs(W.T[y][:, None, :] - W.T[None, :, :]) * (1 + 4 * _U64))  # (n, C, w)
    carried = np.matmul(spread, herr[:, :, None])[..., 0]
    carried = _up(carried + _slack(carried, W.shape[0]))
    allowance = _up(_up(carried + fresh[rows, y][:, None]) + fresh)
    return np.where(np.isfinite(allowance), allowance, _INF)


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class MarginBounds:
    """Lower bounds on every margin ``z_y - z_j`` over each row's region.

    Attributes
    ----------
    lower : ndarray (n, n_classes), float64
        Bound for the model as it runs in its dtype (see the module docstring);
        ``+inf`` in the column of the row's own class.
    exact_lower : ndarray (n, n_classes), float64
        Bound for the network in exact arithmetic; ``+inf`` at the row's class.
    float_error : ndarray (n, n_classes), float64
        The allowance for the model's own rounding subtracted from ``exact_lower``
        (0 at the own class).
    coefficients : ndarray (n, n_classes, d), float64 or None
        CROWN's linear lower bound of each margin in x (zero row at the own class);
        None for IBP alone.
    stable : ndarray (n,), bool
        Every hidden neuron is stable over the region: the network is affine there.
    """

    lower: np.ndarray
    exact_lower: np.ndarray
    float_error: np.ndarray
    coefficients: np.ndarray | None
    stable: np.ndarray

    @property
    def worst(self) -> np.ndarray:
        """min over classes of ``lower``, shape (n,): > 0 means certified."""
        return self.lower.min(axis=1)


def _margin_spec(net, y):
    n = y.shape[0]
    C = net.n_classes
    S = np.zeros((n, C, C))
    rows = np.arange(n)
    S[rows, :, y] = 1.0
    S[:, np.arange(C), np.arange(C)] -= 1.0     # rows e_y - e_j; row y is zero
    return S


#: Largest per-row tensor of a chunk, in float64 values (2 MB; a chunk holds about 16
#: such tensors at once, see robnp.verify.bab._CHUNK_TENSORS).
_CHUNK_ELEMENTS = 1 << 18

#: Work (FLOPs, see :func:`row_flops`) a chunk of rows holds at most, so that rows run in
#: several chunks that threads share. A chunk also pays a fixed cost (measured at width
#: 512: about 5 ms, against 0.6-0.8 ms per row: the products with the matrices its rows
#: share, which stream megabytes), and halving this made verification slower on one
#: thread and on two (benchmarks/RESULTS.md): at width 512 (2 inputs, two hidden layers)
#: chunks of at most 106 rows, the study's 400 test points in four chunks of 100.
_CHUNK_FLOPS = 2 * 10 ** 9


def row_flops(layer_sizes) -> float:
    """FLOPs of the products of CROWN's backward passes for one row of
    :func:`region_margin_bounds` (an estimate for sizing chunks and choosing threads):
    each hidden layer ``k >= 2`` is bounded by a pass of ``2 w_k`` rows and the margins
    by one of ``n_classes`` rows, a pass of ``m`` rows through the layers below ``k``
    costing about six products of ``m x w_j x w_{j-1}`` each."""
    sizes = list(layer_sizes)
    below = np.cumsum([sizes[j] * sizes[j - 1] for j in range(1, len(sizes) - 1)])
    passes = [2 * sizes[k] * below[k - 2] for k in range(2, len(sizes) - 1)]
    return float(6 * 2 * (sum(passes) + sizes[-1] * (below[-1] if below.size else sizes[0])))


def row_elements(layer_sizes) -> int:
    """The largest per-row tensor of :func:`region_margin_bounds`, in float64 values:
    the margins' pass holds ``n_classes x w_j`` per row for every layer ``j`` (inputs
    included); the pass that bounds hidden layer ``k >= 2`` (``2 w_k`` rows) holds
    ``w_{k-1} x w_{k-2}`` (the first layer's product, per row's slopes) and then ``2 w_k
    x w_j`` for every ``j <= k - 2``."""
    sizes = list(layer_sizes)
    largest = [sizes[-1] * max(sizes[:-1])]
    for k in range(2, len(sizes) - 1):
        largest += [sizes[k - 1] * sizes[k - 2], 2 * sizes[k] * max(sizes[:k - 1])]
    return int(max(largest))


def chunk_rows(layer_sizes) -> int:
    """Rows per chunk of :func:`region_margin_bounds`: fixed by the network alone
    (never by the thread count, so that every row's bound is computed by the same
    products whatever the number of threads): at most :data:`_CHUNK_FLOPS` of work, and
    CROWN's per-row coefficient tensors (rows x outputs x inputs of a layer) within
    :data:`_CHUNK_ELEMENTS`."""
    by_memory = max(1, _CHUNK_ELEMENTS // row_elements(layer_sizes))
    by_work = max(1, int(-(-_CHUNK_FLOPS // max(1.0, row_flops(layer_sizes)))))
    return min(by_memory, by_work)


def bound_threads(layer_sizes, n_rows: int, n_threads=None) -> int:
    """Threads :func:`region_margin_bounds` uses on ``n_rows`` rows (see
    :func:`robnp.attacks._threat.thread_count`: ``n_threads``, else the count
    ``default_threads`` set, else every core when a chunk holds enough work; never
    more than the chunks)."""
    from ..attacks._threat import thread_count

    return thread_count(n_threads, n_rows, row_flops(layer_sizes), chunk_rows(layer_sizes))


def region_margin_bounds(net, region, y, method, n_threads=None):
    """:class:`MarginBounds` of every row of ``region`` (a :class:`Box` or
    :class:`Ball` with one row per label of ``y``, int64) through ``net`` (a
    :class:`Float64Net`), by ``method`` (one of :data:`METHODS`).

    The public functions check their inputs and call this; branch and bound calls it
    directly on the boxes it splits. Rows run in fixed chunks of :func:`chunk_rows`
    (bounded work, and per-row coefficient tensors that stay in memory), shared by up
    to :func:`bound_threads` threads (NumPy's products and element-wise loops release
    the GIL); a row's bound does not depend on the number of threads."""
    if method not in METHODS:
        raise ConfigError(f"method must be one of {METHODS}, got {method!r}")
    from ..attacks._threat import chunk_bounds, over_chunks

    sizes = net.layer_sizes
    chunk = chunk_rows(sizes)
    n = y.shape[0]
    if n <= chunk:
        return _bounds_chunk(net, region, y, method)
    index = {start: c for c, (start, _) in enumerate(chunk_bounds(n, chunk))}
    parts = [None] * len(index)

    def work(start, stop):
        parts[index[start]] = _bounds_chunk(net, region.take(slice(start, stop)),
                                            y[start:stop], method)

    over_chunks(work, n, n_threads, row_flops(sizes), chunk_rows=chunk)
    return MarginBounds(*(None if getattr(parts[0], f) is None
                          else np.concatenate([getattr(p, f) for p in parts])
                          for f in ("lower", "exact_lower", "float_error", "coefficients",
                                    "stable")))


def _bounds_chunk(net, region, y, method):
    n = y.shape[0]
    rows = np.arange(n)
    inter_method = "ibp" if method == "ibp" else "crown"
    with np.errstate(invalid="ignore", over="ignore"):
        inter = _intermediate_bounds(net, region, inter_method)
        S = _margin_spec(net, y)
        coefficients = None
        lowers = []
        if method in ("ibp", "both"):
            W, b = net.Ws[-1], net.bs[-1]
            # fold the last layer into the margin: h . (W_y - W_j) + b_y - b_j
            Wf = W.T[y][:, None, :] - W.T[None, :, :]                  # (n, C, w)
            Wf_err = _slack(np.abs(W.T[y])[:, None, :] + np.abs(W.T)[None, :, :], 2)
            bf = b[y][:, None] - b[None, :]
            if net.n_layers == 1:
                low = _ibp_first_layer_margin(region, Wf, Wf_err, bf)
            else:
                hl = np.maximum(inter[-1][0], 0)
                hu = np.maximum(inter[-1][1], 0)
                Fp, Fn = np.maximum(Wf, 0), np.minimum(Wf, 0)
                val = (np.matmul(Fp, hl[:, :, None]) + np.matmul(Fn, hu[:, :, None]))[..., 0]
                err = np.matmul(np.abs(Wf), hu[:, :, None])[..., 0]
                pen = np.matmul(Wf_err, hu[:, :, None])[..., 0]
                w = hl.shape[1]
                low = _down(val - _slack(err, 2 * w) - _up(pen * (1 + 1e-9)))
                low = _down(_add_down(low, _down(bf - _up(4 * _U64 * np.abs(bf)))))
            lowers.append(_clean_lower(low))
        if method in ("crown", "both"):
            low, coefficients = _backward(net, region, inter, S, np.zeros((n, net.n_classes)),
                                          net.n_layers)
            lowers.append(low)
        exact = lowers[0] if len(lowers) == 1 else np.maximum(lowers[0], lowers[1])
        float_error = _model_error(net, region, inter, y)
        lower = _clean_lower(_down(exact - float_error))
    exact = exact.copy()
    exact[rows, y] = _INF
    lower[rows, y] = _INF
    float_error[rows, y] = 0.0
    if coefficients is not None:
        coefficients = np.array(coefficients)
        coefficients[rows, y] = 0.0
    stable = np.ones(n, bool)
    for l, u in inter:
        stable &= np.all((l >= 0) | (u <= 0), axis=1)
    return MarginBounds(lower, exact, float_error, coefficients, stable)


def _ibp_first_layer_margin(region, Wf, Wf_err, bf):
    """A network without hidden layer: the margin is affine in x; its minimum."""
    low = region.linear_min(Wf, np.broadcast_to(Wf_err, Wf.shape))
    return _down(_add_down(low, _down(bf - _up(4 * _U64 * np.abs(bf)))))


def _check_labels(net, y, n):
    y = np.asarray(y)
    if y.shape != (n,) or y.dtype.kind not in "iu":
        raise DataError(f"y must be integer labels of shape ({n},), got {y.dtype} {y.shape}")
    if n and (y.min() < 0 or y.max() >= net.n_classes):
        raise DataError(f"labels must be in [0, {net.n_classes - 1}], got values in "
                        f"[{y.min()}, {y.max()}]")
    return y.astype(np.int64)


@single_blas_thread
def box_margin_bounds(model, lo, hi, y, method: str = "crown") -> MarginBounds:
    """Margin bounds over explicit boxes ``lo <= x <= hi``.

    Parameters
    ----------
    model : MLP
    lo, hi : array-like of shape (n, n_features), float64, ``lo <= hi``
    y : array-like of shape (n,), int
    method : {"crown", "ibp", "both"}
        ``"both"`` takes the larger of the two bounds (each is sound; neither is
        always tighter).
    """
    net = Float64Net.of(model)
    lo = np.ascontiguousarray(lo, np.float64)
    hi = np.ascontiguousarray(hi, np.float64)
    d = net.Ws[0].shape[0]
    if lo.ndim != 2 or lo.shape[1] != d or hi.shape != lo.shape:
        raise DataError(f"lo and hi must have shape (n, {d}), got {lo.shape} and {hi.shape}")
    if np.any(~(lo <= hi)):
        raise DataError("every box must satisfy lo <= hi (and hold no NaN)")
    return region_margin_bounds(net, Box(lo, hi), _check_labels(net, y, lo.shape[0]), method)


@single_blas_thread
def ball_margin_bounds(model, center, radius, y, method: str = "crown") -> MarginBounds:
    """Margin bounds over L2 balls ``||x - center||_2 <= radius`` (via the dual norm:
    a linear function ``a x`` is at least ``a center - radius ||a||_2`` there)."""
    net = Float64Net.of(model)
    center = np.ascontiguousarray(center, np.float64)
    radius = np.broadcast_to(np.asarray(radius, np.float64), (center.shape[0],)).copy()
    if np.any(~(radius >= 0)):
        raise DataError("every radius must be >= 0")
    return region_margin_bounds(net, Ball(center, radius), _check_labels(net, y, center.shape[0]), method)


def _acceptance_radius(eps: float, dtype, norm: str, d: int) -> float:
    """A radius (float64) covering every point the model-dtype ball check accepts.

    ``fl(|x' - x|) <= fl(eps)`` in a dtype with unit roundoff ``u`` implies
    ``|x' - x| <= fl(eps) / (1 - u)`` (subtraction of floats is exact when the
    result is subnormal); for L2 the norm's own rounding adds ``gamma(d + 2)``."""
    u = 2.0 ** -24 if np.dtype(dtype) == np.float32 else 2.0 ** -53
    e = max(float(np.dtype(dtype).type(eps)), float(eps))
    if e == 0:
        return 0.0
    factor = 1.0 / (1.0 - u) if norm == "linf" else (1.0 + _gamma(d + 3, u)) / (1.0 - u)
    return float(_up(_up(e * factor) * (1 + 4 * _U64)))


def input_region(model, X, eps: float, norm: str = "linf", bounds=None):
    """The region a verdict is about, for every row of ``X``.

    For ``norm="linf"``: the box ``[x - r, x + r]`` intersected with
    ``[lower, upper]`` when ``bounds`` is given, where ``r >= eps`` also covers
    every point that passes the ball check ``|x' - x| <= eps`` evaluated in the
    model's dtype (see :func:`_acceptance_radius`); the data box is widened in
    the same way to its ends cast to the model's dtype. For ``norm="l2"``: the ball
    of radius ``r`` (``bounds`` only make it smaller, so they are ignored here,
    which is sound). ``X`` is first cast to the model's dtype, as the model sees it.

    Returns a :class:`Box` or a :class:`Ball`, for :func:`region_margin_bounds`.
    """
    check_verifiable(model)
    X64 = np.asarray(model.check_input(X), np.float64)
    _checks.norm("norm", norm)
    r = _acceptance_radius(eps, model.dtype, norm, X64.shape[1])
    if norm == "l2":
        return Ball(X64, np.full(X64.shape[0], r))
    lo, hi = _down(X64 - r), _up(X64 + r)
    if bounds is not None:
        b_lo, b_hi = (float(v) for v in bounds)
        cast = model.dtype.type
        b_lo = min(b_lo, float(cast(b_lo)))
        b_hi = max(b_hi, float(cast(b_hi)))
        lo, hi = np.maximum(lo, b_lo), np.minimum(hi, b_hi)
        if np.any(lo > hi):
            bad = int(np.flatnonzero(np.any(lo > hi, axis=1))[0])
            raise DataError(f"the eps-ball of row {bad} does not meet bounds {bounds!r}")
    return Box(lo, hi)


@single_blas_thread
def margin_bounds(model, X, y, eps: float, *, norm: str = "linf", bounds=None,
                  method: str = "crown") -> MarginBounds:
    """Sound lower bounds on every margin ``z_y - z_j`` over each point's eps-ball.

    Parameters
    ----------
    model : MLP
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,), int
    eps : float >= 0
    norm : {"linf", "l2"}
    bounds : (float, float), optional
        Data box intersected with an L-infinity ball.
    method : {"crown", "ibp", "both"}

    Returns
    -------
    MarginBounds
        See the module docstring for exactly what ``lower`` guarantees.
    """
    from ..attacks import check_eps

    eps = check_eps(eps)
    region = input_region(model, X, eps, norm, bounds)
    y = model.check_labels(y, region.magnitude().shape[0])
    return region_margin_bounds(Float64Net.of(model), region, y, method)
