"""Slow, obvious NumPy references, written from the papers and independent of
robnp's kernels: an MLP forward pass (with every layer's activations) and backward
pass, every loss and its gradient, the projections, PGD with restarts and the
per-sample worst case, APGD's checkpoints and iterates, the Square attack's schedule
and loop, and the adversarial training recipes (their points, objectives and
parameter gradients).

Everything works row by row in float64 unless a dtype is given; nothing here is fast.
"""

from __future__ import annotations

import math

import numpy as np


# -- the network ---------------------------------------------------------------------

def forward(model, X):
    """Logits and the per-layer inputs/pre-activations of a ReLU MLP."""
    A = np.asarray(X, np.float64)
    cache = []
    layers = list(zip(model.coefs_, model.intercepts_))
    for index, (W, b) in enumerate(layers):
        Z = A @ np.asarray(W, np.float64) + np.asarray(b, np.float64)
        cache.append((A, Z))
        A = np.maximum(Z, 0) if index < len(layers) - 1 else Z
    return A, cache


def reference_forward(model, X):
    """Per-layer activations in float64: the input, each hidden layer's ReLU output,
    and the logits last (the kernels' and the bounds' tests compare against it)."""
    logits, cache = forward(model, X)
    return [A for A, _ in cache] + [logits]


def backward(model, cache, dZ):
    """dL/dX from dL/dlogits, by the chain rule through every layer."""
    D = np.asarray(dZ, np.float64)
    layers = list(zip(model.coefs_, model.intercepts_))
    for index in range(len(layers) - 1, -1, -1):
        W = np.asarray(layers[index][0], np.float64)
        D = D @ W.T
        if index > 0:
            D = D * (cache[index - 1][1] > 0)
    return D


# -- losses: value and gradient per row ------------------------------------------------

def _order(z):
    return sorted(range(len(z)), key=lambda j: (-z[j], j))


def row_loss(name, z, label, target=None):
    """Loss of one row of logits, and its gradient w.r.t. the logits."""
    z = np.asarray(z, np.float64)
    g = np.zeros_like(z)
    if name in ("cross_entropy", "cross_entropy_targeted"):
        c = label if name == "cross_entropy" else target
        p = np.exp(z - z.max())
        p /= p.sum()
        value = -math.log(p[c])
        g = p.copy()
        g[c] -= 1
        if name == "cross_entropy_targeted":
            return -value, -g
        return value, g
    if name in ("cw_margin", "cw_margin_targeted"):
        c = label if name == "cw_margin" else target
        others = [j for j in range(len(z)) if j != c]
        o = max(others, key=lambda j: (z[j], -j))
        g[o] += 1
        g[c] -= 1
        value = z[o] - z[c]
        if name == "cw_margin_targeted":
            return -value, -g
        return value, g
    pi = _order(z)
    if name == "dlr":
        o = pi[0] if pi[0] != label else pi[1]
        N = z[label] - z[o]
        D = z[pi[0]] - z[pi[2]] + 1e-12
        dD = np.zeros_like(z)
        dD[pi[0]] += 1
        dD[pi[2]] -= 1
    else:
        o = target
        N = z[label] - z[o]
        D = z[pi[0]] - 0.5 * (z[pi[2]] + z[pi[3]]) + 1e-12
        dD = np.zeros_like(z)
        dD[pi[0]] += 1
        dD[pi[2]] -= 0.5
        dD[pi[3]] -= 0.5
    dN = np.zeros_like(z)
    dN[label] += 1
    dN[o] -= 1
    return -N / D, -dN / D + N * dD / D ** 2


def losses_and_gradients(model, X, y, name, t=None):
    """Per-row losses, predictions and per-row input gradients (each row's own loss)."""
    Z, cache = forward(model, X)
    values = np.empty(len(y))
    dZ = np.empty_like(Z)
    for i in range(len(y)):
        values[i], dZ[i] = row_loss(name, Z[i], y[i], None if t is None else t[i])
    return values, Z.argmax(axis=1), backward(model, cache, dZ)


# -- projections ---------------------------------------------------------------------

def project_linf(x, v, eps, bounds=None):
    """Coordinate by coordinate: the nearest point of [x - eps, x + eps] (intersected
    with the box when it meets it, else the end of the interval nearest the box).

    The ball is written as ``x + clip(v - x, -eps, eps)``, rounding as the kernels do:
    APGD compares losses of successive iterates, and an iterate one ulp away from
    another can flip such a comparison."""
    v = np.asarray(v, np.float64)
    out = np.empty_like(v)
    for k in range(len(x)):
        value = x[k] + min(max(v[k] - x[k], -eps), eps)
        if bounds is not None:
            boxed = min(max(value, bounds[0]), bounds[1])
            if abs(boxed - x[k]) <= eps:
                value = boxed
            else:  # the box misses the interval: its end nearest the box
                value = x[k] - eps if boxed < x[k] else x[k] + eps
        out[k] = value
    return out


def project_l2_ball(x, v, eps):
    delta = np.asarray(v, np.float64) - x
    norm = np.linalg.norm(delta)
    return x + delta * (eps / norm if norm > eps else 1.0)


def project_l2_box(x, v, eps, bounds, tol=1e-14, max_iterations=200_000):
    """Projection onto ball and box by Dykstra's alternating projections (Boyle and
    Dykstra, 1986), which converge to the projection onto an intersection; iterated
    until a sweep moves the point by less than ``tol``."""
    z = np.asarray(v, np.float64).copy()
    p = np.zeros_like(z)
    q = np.zeros_like(z)
    for _ in range(max_iterations):
        a = np.clip(z + p, bounds[0], bounds[1])
        p = z + p - a
        previous = z
        z = project_l2_ball(x, a + q, eps)
        q = a + q - z
        if np.abs(z - previous).max() < tol and np.abs(z - a).max() < tol:
            break
    return z


def project_l2_lagrange(x, v, eps, bounds):
    """Projection onto ball and box from the Lagrangian: the minimiser of
    ||z - v||^2 + lam ||z - x||^2 over the box is clip((v + lam x) / (1 + lam)); the
    smallest lam >= 0 putting it in the ball, by bisection on lam. Assumes the box
    meets the ball."""
    x = np.asarray(x, np.float64)
    v = np.asarray(v, np.float64)

    def z(lam):
        return np.clip((v + lam * x) / (1 + lam), bounds[0], bounds[1])

    if np.linalg.norm(z(0.0) - x) <= eps:
        return z(0.0)
    lo, hi = 0.0, 1.0
    while np.linalg.norm(z(hi) - x) > eps:
        lo, hi = hi, 2 * hi
    for _ in range(200):
        mid = (lo + hi) / 2
        if np.linalg.norm(z(mid) - x) > eps:
            lo = mid
        else:
            hi = mid
    return z(hi)


def project(x, v, eps, norm, bounds):
    if norm == "linf":
        return project_linf(x, v, eps, bounds)
    if bounds is None:
        return project_l2_ball(x, v, eps)
    return project_l2_lagrange(x, v, eps, bounds)


# -- PGD -------------------------------------------------------------------------------

def pgd(model, X, y, eps, step, steps, start, *, loss="cross_entropy", norm="linf",
        bounds=None, use_best=False, t=None):
    """PGD one row at a time from ``start``; returns (points, success, loss)."""
    X = np.asarray(X, np.float64)
    name = loss if t is None else loss + "_targeted"
    out, success, best = [], [], []
    for i in range(X.shape[0]):
        x = X[i]
        point = np.asarray(start[i], np.float64).copy()
        kept, kept_loss, kept_ok = None, -np.inf, False
        for s in range(steps + 1):
            values, pred, grad = losses_and_gradients(model, point[None], y[i:i + 1], name,
                                                      None if t is None else t[i:i + 1])
            ok = pred[0] == t[i] if t is not None else pred[0] != y[i]
            if use_best and not kept_ok and (ok or values[0] > kept_loss):
                kept, kept_loss, kept_ok = point.copy(), values[0], ok
            if s == steps:
                if not use_best:
                    kept, kept_loss, kept_ok = point.copy(), values[0], ok
                break
            g = grad[0]
            if norm == "linf":
                point = point + step * np.sign(g)
            elif np.linalg.norm(g) > 0:
                point = point + step * g / np.linalg.norm(g)
            point = project(x, point, eps, norm, bounds)
        out.append(kept)
        success.append(kept_ok)
        best.append(kept_loss)
    return np.array(out), np.array(success), np.array(best)


def pgd_restarts(model, X, y, eps, step, steps, starts_for, n_restarts, **kwargs):
    """Restarts: run 1 on every point, each later run on the points not yet successful;
    a point keeps a later run that succeeds or reaches a higher loss.
    ``starts_for(rows)`` gives the start points of a run on those rows."""
    n = X.shape[0]
    result = np.array(X, np.float64)
    success = np.zeros(n, bool)
    best = np.full(n, -np.inf)
    for restart in range(n_restarts):
        rows = np.flatnonzero(~success)
        if rows.size == 0:
            break
        kw = dict(kwargs)
        if kw.get("t") is not None:
            kw["t"] = kw["t"][rows]
        points, ok, values = pgd(model, X[rows], y[rows], eps, step, steps, starts_for(rows),
                                 **kw)
        for q, r in enumerate(rows):
            if restart == 0 or ok[q] or values[q] > best[r]:
                result[r], success[r], best[r] = points[q], ok[q], values[q]
    return result, success, best


# -- APGD ------------------------------------------------------------------------------

def apgd_checkpoints(n_iter):
    """The paper's checkpoints w_j, as iteration counts: p_0 = 0, p_1 = 0.22,
    p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), each interval floored in
    iterations (and at least 1) as the reference code floors them."""
    first = max(math.floor(0.22 * n_iter), 1)
    shrink = max(math.floor(0.03 * n_iter), 1)
    shortest = max(math.floor(0.06 * n_iter), 1)
    points = []
    interval = first
    total = interval
    while total <= n_iter:
        points.append(total)
        interval = max(interval - shrink, shortest)
        total += interval
    return points


def apgd(model, X, y, eps, n_iter, start, *, loss="cross_entropy", t=None, bounds=None,
         rho=0.75, dtype=np.float64, norm="linf", tie_tol=1e-12):
    """APGD (Croce and Hein, 2020), written as the reference code's loop one row at a
    time (L-infinity: signed steps; L2: steps along g / ||g|| and the exact projection);
    returns every evaluated iterate (n_iter + 1, n, d), the final (x_best,
    x_best_adv, robust, loss_best), and per row the first trace index that a near tie
    can change (``n_iter + 1`` when none can).

    A near tie is a comparison of two losses within ``tie_tol`` (relative; 1e-14
    absolute for losses near zero) of each other: another implementation's rounding may decide it the other way. One that
    decides the step size at a checkpoint matters when flipping it flips the
    halving; one that decides the best iterate matters from the next halving on,
    which restarts from it. Up to that index the trajectory is determined by
    decisions with a margin, so any correct implementation follows it."""
    X = np.asarray(X, dtype)
    n, d = X.shape
    name = loss if t is None else loss + "_targeted"
    checks = apgd_checkpoints(n_iter)
    trace = np.empty((n_iter + 1, n, d), dtype)
    outputs, determined = [], []

    def near(a, b):
        return abs(a - b) <= tie_tol * max(abs(a), abs(b)) + 1e-14

    def tied(j):
        """Whether history[j] > history[j - 1] is a near tie between two different
        iterates (one iterate repeated gives the same loss in any implementation)."""
        a, b = history[j % n_iter], history[(j - 1) % n_iter]
        return near(a, b) and j >= 1 and not np.array_equal(trace[j + 1, r], trace[j, r])

    for r in range(n):
        x = X[r]
        t_r = None if t is None else t[r:r + 1]

        def evaluate(point):
            v, p, g = losses_and_gradients(model, point[None], y[r:r + 1], name, t_r)
            return v[0], p[0], g[0]

        def P(v):
            return project(x, v, eps, norm, bounds).astype(dtype)

        def direction(g):
            if norm == "linf":
                return np.sign(g)
            length = np.linalg.norm(g)
            return g / length if length > 0 else 0 * g

        point = np.asarray(start[r], dtype).copy()
        value, pred, grad = evaluate(point)
        trace[0, r] = point
        robust = pred == y[r]
        best_loss, x_best, grad_best, x_best_adv = value, point.copy(), grad.copy(), point.copy()
        step = 2 * eps
        old = point.copy()
        history = [0.0] * n_iter  # the reference's zero-initialised loss record
        last_check, reduced_last, best_at_last = 0, True, best_loss
        settled = n_iter + 1  # first trace index a near tie can change
        best_tied = False  # the best iterate since the last halving was a near tie
        for i in range(n_iter):
            a = 1.0 if i == 0 else 0.75
            move = point - old
            old = point.copy()
            z = P(point + step * direction(grad))
            point = P(point + (z - point) * a + move * (1 - a))
            value, pred, grad = evaluate(point)
            trace[i + 1, r] = point
            history[i] = value
            if pred != y[r]:
                robust = False
                x_best_adv = point.copy()
            best_tied |= (near(value, best_loss)
                          and np.max(np.abs(point - x_best)) > tie_tol)
            if value > best_loss:
                best_loss, x_best, grad_best = value, point.copy(), grad.copy()
            if i + 1 in checks:
                k = i + 1 - last_check
                pairs = [(history[(i - c) % n_iter], history[(i - c - 1) % n_iter], tied(i - c))
                         for c in range(k)]
                increases = sum(a > b for a, b, _ in pairs)
                stalled = not reduced_last and best_at_last >= best_loss
                halve = increases <= k * rho or stalled
                # Every way the near ties could fall must give the same halving.
                low = sum(a > b and not tie for a, b, tie in pairs)
                high = sum(a > b or tie for a, b, tie in pairs)
                stall_options = ({True, False} if not reduced_last and near(best_at_last, best_loss)
                                 else {stalled})
                if len({count <= k * rho or s for count in (low, high)
                        for s in stall_options}) > 1:
                    settled = min(settled, i + 2)
                reduced_last, best_at_last, last_check = halve, best_loss, i + 1
                if halve:
                    if best_tied:
                        settled = min(settled, i + 2)
                    step = step / 2
                    point, grad = x_best.copy(), grad_best.copy()
                    best_tied = False
        outputs.append((x_best, x_best_adv, robust, best_loss))
        determined.append(settled)
    x_best, x_best_adv, robust, best = (np.array(v) for v in zip(*outputs))
    return trace, x_best, x_best_adv, robust, best, np.array(determined)


# -- Square ----------------------------------------------------------------------------

def square_p(i, n_queries, p_init):
    """p at iteration i: the paper's schedule on 10,000 iterations, read off its table
    of halvings after iterations 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000."""
    it = int(i / n_queries * 10000)
    table = [(10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64),
             (6000, 128), (8000, 256)]
    for limit, divisor in table:
        if it <= limit:
            return p_init / divisor
    return p_init / 512


def square(model, X, y, eps, signs0, starts, widths, signs, bounds=None):
    """The Square attack's loop on a 1 x d image, one row at a time, given its random
    numbers: start signs per coordinate, then per iteration the window and its sign."""
    X = np.asarray(X, np.float64)
    out = []
    for r in range(X.shape[0]):
        x = X[r]

        def margin(point):
            z = forward(model, point[None])[0][0]
            return z[y[r]] - max(z[j] for j in range(len(z)) if j != y[r])

        if margin(x) <= 0:
            out.append(x.copy())
            continue
        best = project_linf(x, x + eps * signs0[r], eps, bounds)
        m = margin(best)
        for i in range(len(starts)):
            if m <= 0:
                break
            new = best.copy()
            new[starts[i]:starts[i] + widths[i]] += 2 * eps * signs[i]
            new = project_linf(x, new, eps, bounds)
            m_new = margin(new)
            if m_new < m or m_new <= 0:
                best, m = new, m_new
        out.append(best)
    return np.array(out)


# -- training recipes ----------------------------------------------------------------

def log_softmax(z):
    z = np.asarray(z, np.float64)
    shifted = z - z.max()
    return shifted - math.log(np.exp(shifted).sum())


def smoothed_ce_row(z, label, smoothing):
    """Cross-entropy of one row against ``(1 - s) onehot + s / K``, and its gradient."""
    z = np.asarray(z, np.float64)
    target = np.full(len(z), smoothing / len(z))
    target[label] += 1 - smoothing
    logp = log_softmax(z)
    return -(target * logp).sum(), np.exp(logp) - target


def kl_row(z_clean, z_adv):
    """``KL(softmax(z_clean) || softmax(z_adv))``."""
    logp, logq = log_softmax(z_clean), log_softmax(z_adv)
    return float((np.exp(logp) * (logp - logq)).sum())


def kl_row_gradients(z_clean, z_adv):
    """Gradients of :func:`kl_row` w.r.t. both logit rows: through ``p`` by the
    softmax Jacobian ``diag(p) - p p^T`` applied to ``dKL/dp = log p - log q + 1``;
    w.r.t. the adversarial logits ``q - p``."""
    logp, logq = log_softmax(z_clean), log_softmax(z_adv)
    p, q = np.exp(logp), np.exp(logq)
    jacobian = np.diag(p) - np.outer(p, p)
    return jacobian.T @ (logp - logq + 1), q - p


def param_gradient(model, X, dZ):
    """Gradient w.r.t. the flat parameters (each layer's weights row-major, then its
    bias) of ``sum_i dZ_i . logits_i``, by the chain rule layer by layer."""
    _, cache = forward(model, X)
    D = np.asarray(dZ, np.float64)
    layers = list(zip(model.coefs_, model.intercepts_))
    blocks = [None] * len(layers)
    for index in range(len(layers) - 1, -1, -1):
        A_in = cache[index][0]
        blocks[index] = np.concatenate([(A_in.T @ D).ravel(), D.sum(axis=0)])
        if index > 0:
            D = (D @ np.asarray(layers[index][0], np.float64).T) * (cache[index - 1][1] > 0)
    return np.concatenate(blocks)


def uniform_start(X, noise, eps):
    """``x + eps u`` projected onto the ball, row by row."""
    X = np.asarray(X, np.float64)
    return np.array([project_linf(X[i], X[i] + eps * np.asarray(noise[i], np.float64), eps)
                     for i in range(X.shape[0])])


def pgd_at_points(model, X, y, noise, eps, step, steps):
    """PGD-AT's (and, with one step, FGSM-RS's) points: :func:`pgd` from the uniform
    start."""
    return pgd(model, X, y, eps, step, steps, uniform_start(X, noise, eps))[0]


def n_fgsm_points(model, X, y, noise, noise_radius, step):
    """N-FGSM's points: ``x + r u``, then one signed step, no projection."""
    start = np.asarray(X, np.float64) + noise_radius * np.asarray(noise, np.float64)
    _, _, grad = losses_and_gradients(model, start, y, "cross_entropy")
    return start + step * np.sign(grad)


def trades_points(model, X, noise, eps, step, steps):
    """TRADES's attack one row at a time: signed steps on ``KL(p || softmax(f(x')))``
    from the uniform start, ``p`` the clean softmax held fixed, projected every step."""
    X = np.asarray(X, np.float64)
    Zc = forward(model, X)[0]
    points = uniform_start(X, noise, eps)
    out = []
    for i in range(X.shape[0]):
        point = points[i]
        for _ in range(steps):
            Za, cache = forward(model, point[None])
            _, dZa = kl_row_gradients(Zc[i], Za[0])
            g = backward(model, cache, dZa[None])[0]
            point = project_linf(X[i], point + step * np.sign(g), eps)
        out.append(point)
    return np.array(out)


def ce_objective(model, X_adv, y, smoothing):
    """Per-row smoothed cross-entropy at fixed points, and the parameter gradient of
    its sum."""
    Z = forward(model, X_adv)[0]
    rows = [smoothed_ce_row(Z[i], y[i], smoothing) for i in range(len(y))]
    values = np.array([v for v, _ in rows])
    return values, param_gradient(model, X_adv, np.array([g for _, g in rows]))


def trades_objective(model, X, X_adv, y, beta, smoothing):
    """Per-row ``LS-CE(f(x)) + beta KL(softmax f(x) || softmax f(x_adv))`` at fixed
    adversarial points, and the parameter gradient of its sum (through both)."""
    Zc = forward(model, X)[0]
    Za = forward(model, X_adv)[0]
    values = np.empty(len(y))
    dZc = np.empty_like(Zc)
    dZa = np.empty_like(Za)
    for i in range(len(y)):
        ce, g_ce = smoothed_ce_row(Zc[i], y[i], smoothing)
        g_clean, g_adv = kl_row_gradients(Zc[i], Za[i])
        values[i] = ce + beta * kl_row(Zc[i], Za[i])
        dZc[i] = g_ce + beta * g_clean
        dZa[i] = beta * g_adv
    return values, param_gradient(model, X, dZc) + param_gradient(model, X_adv, dZa)


# -- FAB ---------------------------------------------------------------------------------

def _norm(v, norm):
    v = np.abs(np.asarray(v, np.float64))
    return v.max() if norm == "linf" else math.sqrt((v * v).sum()) if norm == "l2" else v.sum()


def hyperplane_step(t, w, b, norm, bounds=None):
    """The smallest step ``d`` (in ``norm``) with ``w . (t + d) = b`` and ``t + d`` in the
    box, for one point, walking the coordinates one at a time; when the box misses the
    hyperplane, every coordinate with ``w_i != 0`` goes to its bound towards it.
    Returns ``(d, reachable)``."""
    t = np.asarray(t, np.float64)
    w = np.asarray(w, np.float64).copy()
    r = float(b - w @ t)
    if r < 0:
        w, r = -w, -r
    lo, hi = bounds if bounds is not None else (-math.inf, math.inf)
    moving = [i for i in range(len(t)) if w[i] != 0]
    cap = {i: max(hi - t[i], 0.0) if w[i] > 0 else max(t[i] - lo, 0.0) for i in moving}
    d = np.zeros_like(t)
    if sum(abs(w[i]) * cap[i] for i in moving) < r:
        for i in moving:
            d[i] = math.copysign(cap[i], w[i])
        return d, False
    if norm == "l1":
        for i in sorted(moving, key=lambda i: -abs(w[i])):
            step = min(cap[i], r / abs(w[i]))
            d[i] = math.copysign(step, w[i])
            r -= abs(w[i]) * step
            if r <= 0:
                break
        return d, True
    # L-infinity moves coordinate i by min(s, cap_i), L2 by |w_i| min(s, cap_i / |w_i|):
    # walk the level s from 0 through the points where coordinates reach the box.
    if norm == "linf":
        stop = {i: cap[i] for i in moving}
        rate = {i: abs(w[i]) for i in moving}
    else:
        stop = {i: cap[i] / abs(w[i]) for i in moving}
        rate = {i: w[i] ** 2 for i in moving}
    level, reached, slope = 0.0, 0.0, sum(rate.values())
    for i in sorted(moving, key=lambda i: stop[i]):
        if reached + slope * (stop[i] - level) >= r:
            break
        reached += slope * (stop[i] - level)
        level = stop[i]
        slope -= rate[i]
    if slope > 0:
        level += (r - reached) / slope
    for i in moving:
        amount = min(level, stop[i])
        d[i] = math.copysign(amount * (abs(w[i]) if norm == "l2" else 1.0), w[i])
    return d, True


def fab(model, X, y, start, n_iter, *, norm="linf", t=None, bounds=None, alpha_max=0.1,
        eta=1.05, beta=0.9, tie_tol=1e-9):
    """One FAB run (Croce and Hein, 2020) one row at a time, from the paper's steps:
    linearise ``f_j - f_y`` at the iterate, take the nearest boundary (or the target's),
    project the iterate and the original point onto it inside the box, combine with
    ``alpha = min(|d_k| / (|d_k| + |d_0|), alpha_max)``, overshoot by ``eta``; on
    success keep the point if smallest and step back by ``beta``. Returns every
    iterate (n_iter, n, d), the smallest misclassified points, their norms, and per
    row the first trace index that a near tie can change (``n_iter`` when none can).

    A near tie is a decision taken on two numbers within ``tie_tol`` (relative, and
    absolute near zero) of each other: the two nearest boundaries, the label's logit
    against the largest other one at a new point, a new norm against the smallest
    so far. Another implementation's rounding may decide it the other way, and from
    the next iterate on the trajectories part."""
    X = np.asarray(X, np.float64)
    n, d = X.shape
    dual = {"linf": "l1", "l2": "l2", "l1": "linf"}[norm]
    trace = np.empty((n_iter, n, d))
    points, norms = X.copy(), np.full(n, np.inf)
    settled = np.full(n, n_iter)

    def near(a, b):
        return abs(a - b) <= tie_tol * max(abs(a), abs(b), 1.0)

    for r in range(n):
        x = X[r]
        origin = x if bounds is None else np.clip(x, *bounds)
        point = np.asarray(start[r], np.float64).copy()
        for k in range(n_iter):
            trace[k, r] = point
            z, cache = forward(model, point[None])
            z = z[0]
            K = len(z)
            grads = [backward(model, cache, np.eye(K)[c][None])[0] for c in range(K)]
            if t is None:
                dists = {j: abs(z[j] - z[y[r]]) / (1e-12 + _norm(grads[j] - grads[y[r]], dual))
                         for j in range(K) if j != y[r]}
                j = min(dists, key=lambda c: (dists[c], c))
                if any(near(dists[c], dists[j]) for c in dists if c != j):
                    settled[r] = min(settled[r], k + 1)
            else:
                j = t[r]
            w = grads[j] - grads[y[r]]
            b = w @ point - (z[j] - z[y[r]])
            d1, _ = hyperplane_step(point, w, b, norm, bounds)
            d0, _ = hyperplane_step(origin, w, b, norm, bounds)
            a1, a0 = max(_norm(d1, norm), 1e-8), max(_norm(d0, norm), 1e-8)
            alpha = min(a1 / (a1 + a0), alpha_max)
            point = (point + eta * d1) * (1 - alpha) + (origin + eta * d0) * alpha
            if bounds is not None:
                point = np.clip(point, *bounds)
            z_new = forward(model, point[None])[0][0]
            if near(z_new[y[r]], max(z_new[c] for c in range(len(z_new)) if c != y[r])):
                settled[r] = min(settled[r], k + 1)
            if z_new.argmax() != y[r]:
                size = _norm(point - x, norm)
                if math.isfinite(norms[r]) and near(size, norms[r]):
                    settled[r] = min(settled[r], k + 1)
                if size < norms[r]:
                    norms[r], points[r] = size, point.copy()
                point = origin + beta * (point - origin)
    return trace, points, norms, settled
