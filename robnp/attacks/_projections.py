"""The smallest step onto a hyperplane inside a box, for the L-infinity, L2 and L1
norms, vectorised over rows: the projection FAB takes at every iteration (Croce and
Hein, 2020, "Minimally distorted adversarial examples with a fast adaptive boundary
attack", Section 3.1, where the box is the image domain [0, 1]^d).

For a point ``t``, a hyperplane ``w . z = b`` and a box ``lower <= z <= upper``
(``t`` inside it), :func:`hyperplane_step` returns the ``d`` of smallest p-norm with

    w . (t + d) = b   and   lower <= t + d <= upper.

Write ``r = b - w . t`` and flip the signs of ``w`` and ``r`` so that ``r >= 0``: the
step must raise ``w . d`` by ``r``. Coordinate ``i`` can raise it by at most
``|w_i| c_i``, where ``c_i`` is how far ``t_i`` may move in the direction of ``w_i``'s
sign before leaving the box (``upper - t_i`` or ``t_i - lower``; infinite without a
box). Each norm fills the deficit ``r`` in its own way:

* L-infinity: every useful coordinate moves by ``min(tau, c_i)`` (the same level
  ``tau`` wherever the box allows);
* L2: coordinate ``i`` moves by ``min(lam |w_i|, c_i)`` (the Euclidean projection,
  clipped: the KKT conditions of the box-constrained problem);
* L1: the coordinates of largest ``|w_i|`` first, each to its bound, the last one
  partly.

The first two solve for one scalar level on a nondecreasing piecewise-linear
function, whose breakpoints are where coordinates reach the box: sorting them and
a cumulative sum find the segment holding ``r`` (the reference code bisects over
the same sorted breakpoints). Without a box the results are the closed forms
``r sign(w) / ||w||_1``, ``r w / ||w||_2^2`` and ``r / w_k e_k`` (``k`` the arg-max
of ``|w|``).

**Unreachable hyperplanes.** When the box does not meet the hyperplane (``sum_i |w_i|
c_i < r``, which includes ``w = 0`` with ``r > 0``), the step goes as far as the box
allows towards it: every coordinate with ``w_i != 0`` moves to its bound in the
direction of ``w_i``'s sign, the others stay. This is the point of the box nearest the
hyperplane along ``w`` with the smallest step, and it is what the reference code
returns there too. :func:`hyperplane_step` reports which rows were reachable.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

__all__ = ["hyperplane_step", "HYPERPLANE_NORMS", "dual_norm", "row_norm"]

#: Norms FAB measures perturbations in.
HYPERPLANE_NORMS = ("linf", "l2", "l1")


def row_norm(D: np.ndarray, norm: str) -> np.ndarray:
    """The ``norm`` of every row of ``D`` (last axis), float64."""
    D = np.abs(np.asarray(D, np.float64))
    if norm == "linf":
        return D.max(axis=-1)
    if norm == "l2":
        return np.sqrt(np.einsum("...i,...i->...", D, D))
    return D.sum(axis=-1)


def dual_norm(norm: str) -> str:
    """The dual of ``norm``: the norm of ``w`` that turns ``|w . x - b|`` into the
    ``norm``-distance of ``x`` to the hyperplane ``w . z = b``."""
    return {"linf": "l1", "l2": "l2", "l1": "linf"}[norm]


def _level(breaks, gains, slopes, r):
    """Per row, the level ``s >= 0`` at which ``h(s) = sum_{breaks_i <= s} gains_i +
    s sum_{breaks_i > s} slopes_i`` equals ``r``, and whether any level reaches it.

    ``h`` is nondecreasing, continuous and linear between the sorted breakpoints: at
    the ``k``-th smallest it is the gain of the ``k`` coordinates before it plus the
    breakpoint times the slopes from it on. The segment holding ``r`` starts after
    the last breakpoint where ``h < r``."""
    n, d = breaks.shape
    order = np.argsort(breaks, axis=1, kind="stable")
    b_sorted = np.take_along_axis(breaks, order, axis=1)
    g_sorted = np.take_along_axis(gains, order, axis=1)
    s_sorted = np.take_along_axis(slopes, order, axis=1)
    before = np.zeros((n, d + 1))
    np.cumsum(g_sorted, axis=1, out=before[:, 1:])          # gain of coordinates before k
    after = np.zeros((n, d + 1))
    after[:, :d] = np.cumsum(s_sorted[:, ::-1], axis=1)[:, ::-1]   # slopes from k on
    with np.errstate(invalid="ignore"):
        h = before[:, :d] + b_sorted * after[:, :d]
    h = np.where(after[:, :d] > 0, h, before[:, :d])         # inf * 0 where nothing moves
    k = np.count_nonzero(h < r[:, None], axis=1)
    reachable = k < d
    kk = np.minimum(k, d - 1)[:, None]
    gain = np.take_along_axis(before, kk, axis=1)[:, 0]
    slope = np.take_along_axis(after, kk, axis=1)[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.where(slope > 0, (r - gain) / slope, 0.0)
    return np.maximum(level, 0.0), reachable


def hyperplane_step(T, W, b, norm: str, bounds=None):
    """The smallest step from each row of ``T`` onto its hyperplane inside the box.

    Parameters
    ----------
    T : ndarray of shape (n, d)
        Points, inside ``bounds`` when given.
    W : ndarray of shape (n, d)
        Normals of the hyperplanes, one per row.
    b : ndarray of shape (n,)
        Offsets: row ``i``'s hyperplane is ``W[i] . z = b[i]``.
    norm : {"linf", "l2", "l1"}
        The norm the step is smallest in.
    bounds : (float, float) or None
        The box; one side may be infinite. None: no box.

    Returns
    -------
    D : ndarray of shape (n, d), float64
        The step: ``T + D`` is on the hyperplane and in the box where the row is
        reachable; elsewhere it is the box point closest to the hyperplane along
        ``W`` reached with the smallest step (see the module docstring).
    reachable : ndarray of shape (n,), bool
    """
    if norm not in HYPERPLANE_NORMS:
        raise ConfigError(f"norm must be one of {', '.join(HYPERPLANE_NORMS)}, got {norm!r}")
    T = np.asarray(T, np.float64)
    W = np.asarray(W, np.float64)
    b = np.asarray(b, np.float64)
    n, d = T.shape
    r = b - np.einsum("ij,ij->i", W, T)
    flip = np.where(r < 0, -1.0, 1.0)
    r = r * flip
    W = W * flip[:, None]
    sign = np.sign(W)
    a = np.abs(W)
    useful = a > 0
    if bounds is None:
        cap = np.where(useful, np.inf, 0.0)
    else:
        lower, upper = bounds
        cap = np.where(W > 0, upper - T, T - lower)
        cap = np.where(useful, np.maximum(cap, 0.0), 0.0)
    with np.errstate(invalid="ignore"):
        gains = np.where(useful, a * cap, 0.0)            # 0 * inf where w_i = 0
    if norm == "l1":
        D, reachable = _l1_step(a, sign, cap, gains, r)
    else:
        if norm == "linf":
            breaks, slopes = cap, a
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                breaks = np.where(useful, cap / a, np.inf)
            slopes = a * a
        level, reachable = _level(breaks, gains, slopes, r)
        amount = np.minimum(level[:, None], breaks)
        if norm == "l2":
            amount = amount * a
        D = sign * np.where(useful, amount, 0.0)
        D = np.where(reachable[:, None], D, sign * np.where(useful, cap, 0.0))
    if bounds is not None:
        # the step lands in the box up to rounding; make it exact
        D = np.clip(T + D, bounds[0], bounds[1]) - T
    return D, reachable


def _l1_step(a, sign, cap, gains, r):
    """L1: coordinates by decreasing ``|w_i|`` (the cheapest rise of ``w . d`` per unit
    of step), each to its bound, until the next one can finish the rise."""
    n, d = a.shape
    order = np.argsort(-a, axis=1, kind="stable")
    g_sorted = np.take_along_axis(gains, order, axis=1)
    total = np.cumsum(g_sorted, axis=1)
    k = np.count_nonzero(total < r[:, None], axis=1)      # coordinates filled to the bound
    reachable = k < d
    kk = np.minimum(k, d - 1)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(d)[None, :].repeat(n, axis=0), axis=1)
    rows = np.arange(n)
    before = np.where(kk > 0, total[rows, np.maximum(kk - 1, 0)], 0.0)
    pivot = order[rows, kk]
    amount = np.where(rank < k[:, None], cap, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        partial = np.where(a[rows, pivot] > 0, (r - before) / a[rows, pivot], 0.0)
    amount[rows[reachable], pivot[reachable]] = np.minimum(
        partial[reachable], cap[rows[reachable], pivot[reachable]])
    amount = np.where(a > 0, amount, 0.0)
    return sign * amount, reachable
