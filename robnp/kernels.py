"""Numba-compiled kernels: the whole numerical core of robnp.

Everything here works on C-contiguous arrays of one floating dtype (float32 or
float64; Numba compiles one specialisation per dtype) and never allocates inside a
hot loop.  The public modules (:mod:`robnp.model`, :mod:`robnp.gradients`,
:mod:`robnp.train`, :mod:`robnp.attacks`) coerce dtypes and shapes at the boundary,
allocate the workspaces and call these functions; user code should not need to.

Parameter layout
----------------
An MLP with layer sizes ``sizes = [n_features, h_1, ..., h_{L-1}, n_classes]`` keeps
all its parameters in one flat vector ``params``: for each layer ``l`` in order, the
weight matrix ``W_l`` of shape ``(sizes[l], sizes[l+1])`` in row-major order, then the
bias ``b_l`` of shape ``(sizes[l+1],)``.  Every hidden layer is followed by a ReLU; the
last layer produces logits.

Workspaces
----------
Kernels that need the activations of a forward pass take one flat buffer ``acts``
of length at least ``n_rows * sum(sizes[1:])``: the post-ReLU activations of each
hidden layer, then the logits, each block ``(n_rows, sizes[l])`` row-major.  The
backward pass uses two "delta" buffers ``d0``/``d1`` of at least
``n_rows * max(sizes)`` elements, used in turn.

Every matrix product goes to BLAS (``np.dot`` with an output array): measured on the
target machine, single-threaded OpenBLAS beats hand-written loops even for a
400 x 16 x 16 product. Run kernels with BLAS limited to one thread
(:func:`robnp.threads.blas_threads`); its threaded path costs far more than it
gains at these sizes. The kernels themselves only add what BLAS cannot do: biases,
ReLU and its derivative, the loss, the optimizer and the attack steps.

All kernels are valid Python: ``NUMBA_DISABLE_JIT=1`` runs them unchanged.
"""

import numpy as np
from numba import njit

# Strict IEEE arithmetic. Fast-math flags were measured to buy nothing here (BLAS does
# the heavy work; the elementwise loops vectorise without them), and 'contract' and
# 'reassoc' let LLVM round differently depending on how a kernel was inlined: the same
# task then gave results differing in the last bit between a process that compiled
# the kernels and one that loaded them from the cache. Never 'nnan'/'ninf' either:
# NaN must propagate so that a diverging loss is detected.
FASTMATH = False

# Loss codes understood by :func:`loss_grad_logits`.
LOSS_CROSS_ENTROPY = 0
LOSS_CW_MARGIN = 1


def _kernel(function):
    # error_model="numpy": a float division by zero gives inf/nan instead of raising;
    # the Python-style check it replaces blocks vectorisation of every loop with "/".
    return njit(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)(function)


# ---------------------------------------------------------------------------
# layout helpers
# ---------------------------------------------------------------------------

@_kernel
def param_offsets(sizes):
    """Start of each layer's weight block and bias block in the flat vector."""
    n_layers = sizes.shape[0] - 1
    w_off = np.empty(n_layers, np.int64)
    b_off = np.empty(n_layers, np.int64)
    offset = 0
    for layer in range(n_layers):
        w_off[layer] = offset
        offset += sizes[layer] * sizes[layer + 1]
        b_off[layer] = offset
        offset += sizes[layer + 1]
    return w_off, b_off


@_kernel
def act_offsets(sizes):
    """Start of each layer's activation block in ``acts``, per row of input."""
    n_layers = sizes.shape[0] - 1
    offsets = np.empty(n_layers, np.int64)
    offset = 0
    for layer in range(n_layers):
        offsets[layer] = offset
        offset += sizes[layer + 1]
    return offsets


@_kernel
def _weights(params, sizes, w_off, layer):
    fan_in = sizes[layer]
    fan_out = sizes[layer + 1]
    start = w_off[layer]
    return params[start:start + fan_in * fan_out].reshape((fan_in, fan_out))


@_kernel
def _bias(params, sizes, b_off, layer):
    start = b_off[layer]
    return params[start:start + sizes[layer + 1]]


@_kernel
def _block(buffer, n_rows, offset_per_row, width):
    start = n_rows * offset_per_row
    return buffer[start:start + n_rows * width].reshape((n_rows, width))


# ---------------------------------------------------------------------------
# dense layers
# ---------------------------------------------------------------------------

@_kernel
def dense_forward(A, W, b, out, relu):
    """``out = A @ W + b``, followed by ReLU when ``relu``.

    ``A`` is ``(n, fan_in)``, ``W`` ``(fan_in, fan_out)``, ``b`` ``(fan_out,)``,
    ``out`` ``(n, fan_out)``; ``out`` must not alias ``A``.
    """
    n = A.shape[0]
    fan_out = W.shape[1]
    np.dot(A, W, out)
    flat = out.reshape(n * fan_out)
    # One pass over contiguous memory adds the bias and applies ReLU; written so
    # that LLVM vectorises it and NaN passes through unchanged ("< 0", not "> 0").
    for i in range(n):
        row = flat[i * fan_out:(i + 1) * fan_out]
        for j in range(fan_out):
            z = row[j] + b[j]
            if relu and z < 0:
                z = 0
            row[j] = z


@_kernel
def dense_backward_input(D, W, A_in, dA_in, relu_in):
    """Carry a delta one layer down: ``dA_in = D @ W.T``, masked by ReLU.

    ``D`` is dL/d(pre-activation) of this layer ``(n, fan_out)``. When ``relu_in``,
    ``A_in`` holds the post-ReLU activations feeding this layer and the result is
    multiplied by ``A_in > 0`` (the ReLU derivative, taken as 0 at the kink as
    PyTorch does), giving dL/d(pre-activation) of the layer below.
    """
    n = D.shape[0]
    fan_in = W.shape[0]
    np.dot(D, W.T, dA_in)
    if relu_in:
        grad = dA_in.reshape(n * fan_in)
        act = A_in.reshape(n * fan_in)
        for i in range(n * fan_in):
            if not act[i] > 0:
                grad[i] = 0


@_kernel
def dense_backward_params(A_in, D, dW, db):
    """Weight and bias gradients of one layer: ``dW = A_in.T @ D``, ``db = D.sum(0)``."""
    n = A_in.shape[0]
    fan_out = D.shape[1]
    np.dot(A_in.T, D, dW)
    for j in range(fan_out):
        db[j] = 0
    for i in range(n):
        row = D[i]
        for j in range(fan_out):
            db[j] += row[j]


# ---------------------------------------------------------------------------
# whole network
# ---------------------------------------------------------------------------

@_kernel
def forward(params, sizes, X, acts):
    """Forward pass of the whole MLP; returns the logits block of ``acts``.

    Every layer's output is kept in ``acts`` for a backward pass.
    """
    n = X.shape[0]
    n_layers = sizes.shape[0] - 1
    w_off, b_off = param_offsets(sizes)
    a_off = act_offsets(sizes)
    A = X
    for layer in range(n_layers):
        out = _block(acts, n, a_off[layer], sizes[layer + 1])
        dense_forward(A, _weights(params, sizes, w_off, layer),
                      _bias(params, sizes, b_off, layer), out, layer < n_layers - 1)
        A = out
    return A


@_kernel
def loss_grad_logits(loss_kind, Z, y, dZ, scale, want_loss):
    """Sum over rows of the per-example loss, and its gradient w.r.t. the logits.

    ``dZ`` receives ``scale`` times d(loss_i)/d(Z_i) for every row ``i`` (use
    ``scale = 1/n`` for the gradient of the mean). When ``want_loss`` is False the
    returned sum is not computed (0 is returned), which saves a logarithm per row
    for callers that only need the gradient.

    cross-entropy: ``loss_i = logsumexp(Z_i) - Z_i[y_i]``,
    ``d loss_i / d Z_i = softmax(Z_i) - onehot(y_i)``.

    CW margin (Carlini and Wagner, 2017, the untargeted margin they call f6 with
    kappa = 0): ``loss_i = max_{j != y_i} Z_ij - Z_i[y_i]``; its gradient is +1 at
    the strongest wrong class and -1 at the true class.
    """
    n, n_classes = Z.shape
    total = 0.0
    for i in range(n):
        label = y[i]
        if loss_kind == LOSS_CROSS_ENTROPY:
            top_j = 0
            for j in range(1, n_classes):
                if Z[i, j] > Z[i, top_j]:
                    top_j = j
            top = Z[i, top_j]
            # exp(Z - top) is exactly 1 at the top class: one exponential fewer per row
            denom = 1.0
            for j in range(n_classes):
                if j != top_j:
                    e = np.exp(Z[i, j] - top)
                    dZ[i, j] = e
                    denom += e
            dZ[i, top_j] = 1
            if want_loss:
                total += np.log(denom) + top - Z[i, label]
            inv = scale / denom
            for j in range(n_classes):
                dZ[i, j] *= inv
            dZ[i, label] -= scale
        else:
            other = -1
            for j in range(n_classes):
                if j != label and (other < 0 or Z[i, j] > Z[i, other]):
                    other = j
            if want_loss:
                total += Z[i, other] - Z[i, label]
            for j in range(n_classes):
                dZ[i, j] = 0
            dZ[i, other] = scale
            dZ[i, label] = -scale
    return total


@_kernel
def backward_input(params, sizes, X, acts, dZ, dX, d0, d1):
    """Backpropagate ``dZ`` (dL/dlogits) through every layer down to ``dX``.

    This is the input gradient: the ordinary backward pass carried one step
    further, through the first layer's weights to the input, without forming
    any weight gradient.
    """
    n = X.shape[0]
    n_layers = sizes.shape[0] - 1
    w_off, _ = param_offsets(sizes)
    a_off = act_offsets(sizes)
    D = dZ
    for layer in range(n_layers - 1, -1, -1):
        W = _weights(params, sizes, w_off, layer)
        if layer == 0:
            dense_backward_input(D, W, X, dX, False)
        else:
            A_in = _block(acts, n, a_off[layer - 1], sizes[layer])
            buffer = d0 if (n_layers - layer) % 2 == 1 else d1
            D_in = _block(buffer, n, 0, sizes[layer])
            dense_backward_input(D, W, A_in, D_in, True)
            D = D_in


@_kernel
def backward_params(params, sizes, X, acts, dZ, grad, d0, d1):
    """Gradients of every weight and bias, written into ``grad`` (same layout as
    ``params``), from ``dZ`` = dL/dlogits. The input gradient is not formed."""
    n = X.shape[0]
    n_layers = sizes.shape[0] - 1
    w_off, b_off = param_offsets(sizes)
    a_off = act_offsets(sizes)
    D = dZ
    for layer in range(n_layers - 1, -1, -1):
        if layer == 0:
            A_in = X
        else:
            A_in = _block(acts, n, a_off[layer - 1], sizes[layer])
        dense_backward_params(A_in, D, _weights(grad, sizes, w_off, layer),
                              _bias(grad, sizes, b_off, layer))
        if layer > 0:
            buffer = d0 if (n_layers - layer) % 2 == 1 else d1
            D_in = _block(buffer, n, 0, sizes[layer])
            dense_backward_input(D, _weights(params, sizes, w_off, layer), A_in, D_in, True)
            D = D_in


@_kernel
def loss_and_input_grad(params, sizes, X, y, loss_kind, dX, acts, dZ, d0, d1, want_loss):
    """Mean loss over the rows of ``X`` (0 unless ``want_loss``) and its gradient
    w.r.t. ``X`` (into ``dX``)."""
    n = X.shape[0]
    Z = forward(params, sizes, X, acts)
    dZ = dZ[:n]  # the workspace may hold more rows than this (short) batch
    total = loss_grad_logits(loss_kind, Z, y, dZ, 1.0 / n, want_loss)
    backward_input(params, sizes, X, acts, dZ, dX, d0, d1)
    return total / n


@_kernel
def loss_and_param_grad(params, sizes, X, y, loss_kind, grad, acts, dZ, d0, d1):
    """Mean loss over the rows of ``X`` and its gradient w.r.t. ``params``."""
    n = X.shape[0]
    Z = forward(params, sizes, X, acts)
    dZ = dZ[:n]
    total = loss_grad_logits(loss_kind, Z, y, dZ, 1.0 / n, True)
    backward_params(params, sizes, X, acts, dZ, grad, d0, d1)
    return total / n


@_kernel
def per_example_loss(params, sizes, X, y, loss_kind, acts, out):
    """Loss of every row separately (no gradient), into ``out``."""
    n = X.shape[0]
    Z = forward(params, sizes, X, acts)
    scratch = np.empty((1, Z.shape[1]), Z.dtype)
    for i in range(n):
        out[i] = loss_grad_logits(loss_kind, Z[i:i + 1], y[i:i + 1], scratch, 1.0, True)


# ---------------------------------------------------------------------------
# optimisation
# ---------------------------------------------------------------------------

@_kernel
def adam_update(params, grad, m, v, step, lr, beta1, beta2, adam_eps):
    """One Adam step in place (Kingma and Ba, 2015), in PyTorch's arrangement.

    ``m = beta1 m + (1 - beta1) g``; ``v = beta2 v + (1 - beta2) g^2``;
    ``p -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + adam_eps)``,
    with ``t = step`` counted from 1.

    Moments smaller in magnitude than the dtype's smallest normal number are stored
    as exactly 0. A unit whose gradient is 0 (a dead ReLU) sees ``m`` decay by
    ``beta1`` per step into subnormal numbers after about 700 steps, and subnormal
    arithmetic made this kernel 50% slower. The update such an ``m`` would make is
    below 1e-30, far under half an ulp of any parameter, so flushing it changes no
    parameter value.
    """
    step_size = lr / (1.0 - beta1 ** step)
    inv_sqrt_bc2 = 1.0 / np.sqrt(1.0 - beta2 ** step)
    one = params.dtype.type(1)
    zero = params.dtype.type(0)
    tiny = params.dtype.type(np.finfo(params.dtype).tiny)
    b1 = params.dtype.type(beta1)
    b2 = params.dtype.type(beta2)
    ss = params.dtype.type(step_size)
    ibc = params.dtype.type(inv_sqrt_bc2)
    ae = params.dtype.type(adam_eps)
    for i in range(params.shape[0]):
        g = grad[i]
        mi = b1 * m[i] + (one - b1) * g
        vi = b2 * v[i] + (one - b2) * g * g
        # written as "< tiny" so that NaN fails the test and propagates
        if abs(mi) < tiny:
            mi = zero
        if vi < tiny:
            vi = zero
        m[i] = mi
        v[i] = vi
        params[i] -= ss * mi / (np.sqrt(vi) * ibc + ae)


@_kernel
def train_epoch(params, sizes, X, y, perm, batch_size, loss_kind, m, v, step,
                lr, beta1, beta2, adam_eps,
                grad, batch_X, batch_y, acts, dZ, d0, d1):
    """One epoch of minibatch Adam over the rows of ``X`` in the order ``perm``.

    Every minibatch (the last may be short) is the mean loss over its rows;
    parameters are updated after each. Returns ``(sum of batch losses,
    number of batches, Adam step counter after the epoch)``; workspaces must hold
    ``batch_size`` rows.
    """
    n, n_features = X.shape
    total = 0.0
    n_batches = 0
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        rows = stop - start
        bX = batch_X[:rows]
        by = batch_y[:rows]
        for r in range(rows):
            src = perm[start + r]
            by[r] = y[src]
            for k in range(n_features):
                bX[r, k] = X[src, k]
        total += loss_and_param_grad(params, sizes, bX, by, loss_kind, grad,
                                     acts, dZ, d0, d1)
        step += 1
        adam_update(params, grad, m, v, step, lr, beta1, beta2, adam_eps)
        n_batches += 1
    return total, n_batches, step


@_kernel
def train_epochs(params, sizes, X, y, perms, batch_size, loss_kind, m, v, step,
                 lr, beta1, beta2, adam_eps,
                 grad, batch_X, batch_y, acts, dZ, d0, d1,
                 epoch_losses, best, stale, patience, min_delta):
    """Up to ``perms.shape[0]`` epochs of :func:`train_epoch`, one per row of ``perms``,
    with the early-stopping rule applied after each.

    An epoch's loss (the mean of its batch losses) goes to ``epoch_losses``; it
    improves when below ``best - min_delta``, which resets ``stale``; otherwise
    ``stale`` grows, and reaching ``patience`` stops. A non-finite loss also stops.
    Returns ``(epochs run, Adam step, best, stale, stopped)``, ``stopped`` being True
    when the rule or a non-finite loss ended the run (possibly at the last row of
    ``perms``). Running many epochs per call spares small networks a Python round
    trip per epoch.
    """
    n_epochs = perms.shape[0]
    for epoch in range(n_epochs):
        total, n_batches, step = train_epoch(params, sizes, X, y, perms[epoch], batch_size,
                                             loss_kind, m, v, step, lr, beta1, beta2,
                                             adam_eps, grad, batch_X, batch_y, acts, dZ,
                                             d0, d1)
        loss = total / n_batches
        epoch_losses[epoch] = loss
        if not np.isfinite(loss):
            return epoch + 1, step, best, stale, True
        if loss < best - min_delta:
            best = loss
            stale = 0
        else:
            stale += 1
            if stale >= patience:
                return epoch + 1, step, best, stale, True
    return n_epochs, step, best, stale, False


# ---------------------------------------------------------------------------
# attacks
# ---------------------------------------------------------------------------

@_kernel
def project_linf(X, X_adv, eps, lower, upper, use_bounds):
    """Project ``X_adv`` in place onto the L-infinity ball of radius ``eps`` around
    ``X`` (as ``X + clip(X_adv - X, -eps, eps)``), and when ``use_bounds`` onto its
    intersection with the box ``[lower, upper]``.

    The ball always holds. Where a clean coordinate lies more than ``eps`` outside
    the box the intersection is empty; that coordinate goes to the point of the ball
    nearest the box (``x - eps`` or ``x + eps``).
    """
    size = X.shape[0] * X.shape[1]
    x = X.reshape(size)
    x_adv = X_adv.reshape(size)
    for i in range(size):
        value = x[i] + min(max(x_adv[i] - x[i], -eps), eps)
        if use_bounds:
            boxed = min(max(value, lower), upper)
            if abs(boxed - x[i]) <= eps:
                value = boxed
            else:
                value = x[i] + min(max(boxed - x[i], -eps), eps)
        x_adv[i] = value


@_kernel
def sign_step(X_adv, dX, step_size):
    """``X_adv += step_size * sign(dX)`` in place (sign(0) = 0)."""
    size = X_adv.shape[0] * X_adv.shape[1]
    x_adv = X_adv.reshape(size)
    grad = dX.reshape(size)
    for i in range(size):
        g = grad[i]
        x_adv[i] += step_size * ((g > 0) - (g < 0))


@_kernel
def pgd_linf(params, sizes, X, y, X_adv, eps, step_size, steps, loss_kind,
             lower, upper, use_bounds, dX, acts, dZ, d0, d1, first_grad_given):
    """Projected gradient ascent on the loss in the L-infinity ball (Madry et al.,
    2018): ``steps`` times, a signed-gradient step of ``step_size`` from the
    current ``X_adv`` followed by the projection. ``X_adv`` holds the start point
    on entry and the result on exit.

    When ``first_grad_given``, ``dX`` already holds the gradient at the start point
    and the first step uses it instead of recomputing it: a sweep over radii that
    all start from the clean ``X`` computes that gradient once.
    """
    for step in range(steps):
        if step > 0 or not first_grad_given:
            loss_and_input_grad(params, sizes, X_adv, y, loss_kind, dX, acts, dZ, d0, d1,
                                False)
        sign_step(X_adv, dX, step_size)
        project_linf(X, X_adv, eps, lower, upper, use_bounds)


@_kernel
def count_correct(params, sizes, X, y, acts):
    """Number of rows whose arg-max logit equals the label (first index on ties)."""
    Z = forward(params, sizes, X, acts)
    n, n_classes = Z.shape
    correct = 0
    for i in range(n):
        best = 0
        for j in range(1, n_classes):
            if Z[i, j] > Z[i, best]:
                best = j
        if best == y[i]:
            correct += 1
    return correct
