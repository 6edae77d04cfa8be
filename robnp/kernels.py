"""Numba-compiled kernels: the whole numerical core of robnp.

Everything here works on C-contiguous arrays of one floating dtype (float32 or
float64; Numba compiles one specialisation per dtype) and never allocates inside a
hot loop.  The public modules (:mod:`robnp.model`, :mod:`robnp.gradients`,
:mod:`robnp.training.fit`, :mod:`robnp.attacks`) coerce dtypes and shapes at the boundary,
allocate the workspaces and call these functions; user code should not need to.

Contents
--------
In this order, each a section of the file:

 1. Layout of the parameters and workspaces: ``param_offsets``, ``act_offsets``
 2. Dense layers: ``dense_forward``, ``dense_backward_input``, ``dense_backward_params``
 3. The network, forward and backward: ``forward``, ``backward_input``,
    ``backward_params``, ``count_correct``
 4. Losses on the logits: ``loss_grad_logits``, ``loss_grad_logits_targeted``,
    ``logit_stats``, ``smoothed_ce_grad_logits``, ``log_softmax_rows``,
    ``kl_grad_logits``
 5. Losses through the network: ``scaled_input_grad``, ``loss_and_input_grad``,
    ``loss_and_param_grad``, ``per_example_loss``, ``smoothed_per_example_loss``
 6. Optimizers and weight averaging: ``adam_update``, ``adamw_update``, ``sgd_update``,
    ``ema_update``
 7. Training epochs: ``AdamState``, ``EpochBuffers``, ``train_epoch``, ``train_epochs``,
    ``ce_training_step``
 8. Attack steps and projections: ``project_linf``, ``sign_step``, ``project_l2``,
    ``project_rows``, ``steepest_step``
 9. PGD: ``pgd_linf``, ``pgd_linf_radii``, ``attack_eval``, ``track_best``,
    ``pgd_finish``, ``pgd_rows``
10. APGD: ``apgd_step``, ``apgd_record``, ``apgd_checkpoint``, ``apgd_rows``
11. The Square attack: ``margins``, ``square_propose``, ``square_accept``,
    ``square_rows``
12. Adversarial training, one chunk of a recipe's step: ``uniform_start``,
    ``pgd_at_gradient``, ``n_fgsm_gradient``, ``trades_gradient``
13. Densities: ``mixture_log_and_grad``; the diffusion sampler: ``edm_denoise``,
    ``heun_trajectory``
14. FAB: ``hyperplane_row``, ``fab_rows``
15. Directed rounding: ``next_float``

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

from typing import NamedTuple

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
LOSS_DLR = 2
# Targeted losses need a target class per row as well as the label
# (:func:`loss_grad_logits_targeted`).
LOSS_CE_TARGETED = 3
LOSS_CW_TARGETED = 4
LOSS_DLR_TARGETED = 5


# error_model="numpy": a float division by zero gives inf/nan instead of raising; the
# Python-style check it replaces blocks vectorisation of every loop with "/".
_OPTIONS = dict(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)


def _kernel(function):
    return njit(**_OPTIONS)(function)


def _row_helper(function):
    # A few lines a kernel runs once per row, inlined into each caller: at 2 to 10
    # classes a call per row costs more than the row's arithmetic.
    return njit(inline="always", **_OPTIONS)(function)


# ---------------------------------------------------------------------------
# layout of the parameters and workspaces
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
# the network, forward and backward
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
def count_correct(params, sizes, X, y, acts):
    """Number of rows whose arg-max logit equals the label (first index on ties)."""
    Z = forward(params, sizes, X, acts)
    correct = 0
    for i in range(Z.shape[0]):
        if _row_argmax(Z, i) == y[i]:
            correct += 1
    return correct


# ---------------------------------------------------------------------------
# losses on the logits
# ---------------------------------------------------------------------------
#
# Each loss is written once per row (``_untargeted_row``, ``_dlr_row``, ``_loss_row``);
# the kernels over a batch loop over those rows.

@_row_helper
def _row_argmax(Z, i):
    """Class of the largest logit of row ``i``, the first on ties (a NaN never wins,
    unless it is the first): the prediction, and the softmax's shift."""
    top_j = 0
    for j in range(1, Z.shape[1]):
        if Z[i, j] > Z[i, top_j]:
            top_j = j
    return top_j


@_row_helper
def _softmax_numerators(Z, i, dZ, skip_top):
    """``dZ[i, j] = exp(Z[i, j] - top)`` for row ``i``, ``top = max_j Z[i, j]``; returns
    ``top`` and the row's sum (the softmax's shift and denominator; the log-sum-exp is
    ``top + log(sum)``).

    The sum comes in one of two orders, which round differently; each caller keeps
    the one its numbers were computed in. ``skip_top`` (the cross-entropy): start
    from the top class's exact 1 and add the other classes in order, one exponential
    fewer per row. Otherwise (log-softmax, TRADES's KL): add every class in order,
    starting from 0.
    """
    n_classes = Z.shape[1]
    top_j = _row_argmax(Z, i)
    top = Z[i, top_j]
    denom = 1.0 if skip_top else 0.0
    for j in range(n_classes):
        if j != top_j or not skip_top:
            e = np.exp(Z[i, j] - top)
            dZ[i, j] = e
            denom += e
    if skip_top:
        dZ[i, top_j] = 1
    return top, denom


@_kernel
def _untargeted_row(loss_kind, Z, i, label, dZ, scale, want_loss):
    """Row ``i`` of :func:`loss_grad_logits`: its loss (0 for cross-entropy and CW
    margin unless ``want_loss``) and ``scale`` times its gradient into ``dZ[i]``."""
    n_classes = Z.shape[1]
    if loss_kind == LOSS_CROSS_ENTROPY:
        top, denom = _softmax_numerators(Z, i, dZ, True)
        value = 0.0
        if want_loss:
            value = np.log(denom) + top - Z[i, label]
        inv = scale / denom
        for j in range(n_classes):
            dZ[i, j] *= inv
        dZ[i, label] -= scale
        return value
    if loss_kind == LOSS_CW_MARGIN:
        other = -1
        for j in range(n_classes):
            if j != label and (other < 0 or Z[i, j] > Z[i, other]):
                other = j
        value = 0.0
        if want_loss:
            value = Z[i, other] - Z[i, label]
        for j in range(n_classes):
            dZ[i, j] = 0
        dZ[i, other] = scale
        dZ[i, label] = -scale
        return value
    return _dlr_row(Z, i, label, label, False, dZ, scale)


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

    DLR (Croce and Hein, 2020, difference of logits ratio; ``n_classes >= 3``):
    ``loss_i = -(Z_iy - max_{j != y} Z_ij) / (Z_i,pi1 - Z_i,pi3 + 1e-12)`` with
    ``pi`` the classes sorted by decreasing logit (see :func:`_dlr_row`); its value
    is always computed.
    """
    total = 0.0
    for i in range(Z.shape[0]):
        total += _untargeted_row(loss_kind, Z, i, y[i], dZ, scale, want_loss)
    return total


@_kernel
def _top_classes(Z, i):
    """The four largest logits' classes of row ``i`` in decreasing order (the lower
    index first on ties); -1 where there are fewer classes."""
    t0 = t1 = t2 = t3 = -1
    for j in range(Z.shape[1]):
        z = Z[i, j]
        if t0 < 0 or z > Z[i, t0]:
            t0, t1, t2, t3 = j, t0, t1, t2
        elif t1 < 0 or z > Z[i, t1]:
            t1, t2, t3 = j, t1, t2
        elif t2 < 0 or z > Z[i, t2]:
            t2, t3 = j, t2
        elif t3 < 0 or z > Z[i, t3]:
            t3 = j
    return t0, t1, t2, t3


@_kernel
def _dlr_row(Z, i, label, target, targeted, dZ, scale):
    """DLR loss of row ``i`` of the logits and ``scale`` times its gradient into
    ``dZ[i]`` (Croce and Hein, 2020).

    untargeted: ``-(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3 + 1e-12)``;
    targeted: ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12)``, with ``pi``
    the classes by decreasing logit. The quotient rule gives
    ``dL = -dN / D + N dD / D^2`` for ``L = -N / D``.
    """
    t0, t1, t2, t3 = _top_classes(Z, i)
    if targeted:
        other = target
        denom = Z[i, t0] - 0.5 * (Z[i, t2] + Z[i, t3]) + 1e-12
    else:
        other = t0 if t0 != label else t1
        denom = Z[i, t0] - Z[i, t2] + 1e-12
    numer = Z[i, label] - Z[i, other]
    for j in range(Z.shape[1]):
        dZ[i, j] = 0
    dZ[i, label] += -scale / denom
    dZ[i, other] += scale / denom
    ratio = scale * numer / (denom * denom)
    dZ[i, t0] += ratio
    if targeted:
        dZ[i, t2] -= 0.5 * ratio
        dZ[i, t3] -= 0.5 * ratio
    else:
        dZ[i, t2] -= ratio
    return -numer / denom


@_kernel
def _loss_row(loss_kind, Z, i, label, target, dZ, scale, want_loss):
    """Row ``i`` of :func:`loss_grad_logits_targeted`."""
    if loss_kind < LOSS_CE_TARGETED:
        return _untargeted_row(loss_kind, Z, i, label, dZ, scale, want_loss)
    if loss_kind == LOSS_DLR_TARGETED:
        return _dlr_row(Z, i, label, target, True, dZ, scale)
    base = LOSS_CROSS_ENTROPY if loss_kind == LOSS_CE_TARGETED else LOSS_CW_MARGIN
    return -_untargeted_row(base, Z, i, target, dZ, -scale, want_loss)


@_kernel
def loss_grad_logits_targeted(loss_kind, Z, y, t, dZ, scale, want_loss):
    """:func:`loss_grad_logits` for every loss code, targeted ones included: ``t``
    holds a target class per row (ignored by the untargeted codes).

    targeted cross-entropy: ``-(logsumexp(Z_i) - Z_i[t_i])`` (ascending it moves
    towards ``t``); targeted CW margin: ``Z_i[t_i] - max_{j != t_i} Z_ij``;
    targeted DLR: see :func:`_dlr_row` (``n_classes >= 4``).
    """
    total = 0.0
    for i in range(Z.shape[0]):
        total += _loss_row(loss_kind, Z, i, y[i], t[i], dZ, scale, want_loss)
    return total


@_kernel
def logit_stats(loss_kind, Z, y, t, dZ, row_loss, pred, scale=1.0):
    """Per-row loss (into ``row_loss``) and ``scale`` times its gradient w.r.t. the
    logits (into ``dZ``), and the arg-max class (first index on ties) into ``pred``."""
    for i in range(Z.shape[0]):
        row_loss[i] = _loss_row(loss_kind, Z, i, y[i], t[i], dZ, scale, True)
        pred[i] = _row_argmax(Z, i)


@_kernel
def smoothed_ce_grad_logits(Z, y, smoothing, dZ, scale, want_loss):
    """Cross-entropy against smoothed targets (Szegedy et al., 2016), summed over rows,
    and ``scale`` times its gradient w.r.t. the logits into ``dZ``.

    With ``K`` classes and ``q = (1 - s) onehot(y) + s / K``:
    ``loss_i = logsumexp(Z_i) - sum_j q_j Z_ij`` (``-sum_j q_j log softmax(Z_i)_j``,
    since ``q`` sums to 1), ``d loss_i / d Z_i = softmax(Z_i) - q``. ``s = 0`` is the
    plain cross-entropy. The loss is 0 unless ``want_loss``.
    """
    n, n_classes = Z.shape
    uniform = smoothing / n_classes
    total = 0.0
    for i in range(n):
        top, denom = _softmax_numerators(Z, i, dZ, True)
        if want_loss:
            row_sum = 0.0
            for j in range(n_classes):
                row_sum += Z[i, j]
            total += (np.log(denom) + top - (1.0 - smoothing) * Z[i, y[i]]
                      - uniform * row_sum)
        inv = scale / denom
        for j in range(n_classes):
            dZ[i, j] = dZ[i, j] * inv - scale * uniform
        dZ[i, y[i]] -= scale * (1.0 - smoothing)
    return total


@_kernel
def log_softmax_rows(Z, logP, P):
    """``logP = log softmax(Z)`` row by row, written stably (``z - max - log sum
    exp(z - max)``, never ``log`` of a rounded-to-zero probability), and ``P =
    exp(logP)``."""
    n, n_classes = Z.shape
    for i in range(n):
        top, total = _softmax_numerators(Z, i, logP, False)  # logP as scratch
        shift = top + np.log(total)
        for j in range(n_classes):
            logP[i, j] = Z[i, j] - shift
            P[i, j] = np.exp(logP[i, j])


@_kernel
def kl_grad_logits(P, logP, Za, dZa, dZp, scale, want_loss, want_clean):
    """TRADES's divergence (Zhang et al., 2019) ``KL(p || q)`` per row, ``p`` a clean
    distribution (``P``, ``logP`` from :func:`log_softmax_rows` of the clean logits),
    ``q = softmax(Za)``; returns the sum over rows (0 unless ``want_loss`` or
    ``want_clean``).

    ``KL_i = sum_j p_j (log p_j - log q_j)``, ``log q`` as ``z - max - log sum
    exp(z - max)``; terms with ``p_j = 0`` are 0 (their limit).
    ``dZa`` receives ``scale (q - p)``, the gradient w.r.t. the adversarial logits;
    when ``want_clean``, ``dZp`` receives the gradient w.r.t. the clean logits through
    ``p = softmax(z_clean)``: ``scale p_k (r_k - KL_i)`` with ``r = log p - log q``
    (from ``d p_j / d z_k = p_j (delta_jk - p_k)``).
    """
    n, n_classes = Za.shape
    need_value = want_loss or want_clean
    total = 0.0
    for i in range(n):
        top, denom = _softmax_numerators(Za, i, dZa, False)
        log_denom = np.log(denom) if need_value else 0.0
        inv = 1.0 / denom
        row = 0.0
        for j in range(n_classes):
            p = P[i, j]
            dZa[i, j] = scale * (dZa[i, j] * inv - p)
            if need_value:
                r = logP[i, j] - (Za[i, j] - top - log_denom)
                # "!= 0", not "> 0": a NaN probability must reach the result
                if p != 0:
                    row += p * r
                if want_clean:
                    dZp[i, j] = r
        if want_clean:
            for j in range(n_classes):
                p = P[i, j]
                if p != 0:
                    dZp[i, j] = scale * p * (dZp[i, j] - row)
                else:
                    dZp[i, j] = 0
        total += row
    return total


# ---------------------------------------------------------------------------
# losses through the network
# ---------------------------------------------------------------------------

@_kernel
def scaled_input_grad(params, sizes, X, y, loss_kind, scale, dX, acts, dZ, d0, d1, want_loss):
    """Sum of the loss over the rows of ``X`` (0 unless ``want_loss``) and ``scale``
    times each row's gradient w.r.t. its input (into ``dX``). With ``scale = 1/n`` for
    the ``n`` rows of a whole batch, a chunk of its rows gets the rows of the batch's
    mean-loss gradient."""
    n = X.shape[0]
    Z = forward(params, sizes, X, acts)
    dZ = dZ[:n]  # the workspace may hold more rows than this (short) batch
    total = loss_grad_logits(loss_kind, Z, y, dZ, scale, want_loss)
    backward_input(params, sizes, X, acts, dZ, dX, d0, d1)
    return total


@_kernel
def loss_and_input_grad(params, sizes, X, y, loss_kind, dX, acts, dZ, d0, d1, want_loss):
    """Mean loss over the rows of ``X`` (0 unless ``want_loss``) and its gradient
    w.r.t. ``X`` (into ``dX``)."""
    n = X.shape[0]
    return scaled_input_grad(params, sizes, X, y, loss_kind, 1.0 / n, dX, acts, dZ, d0, d1,
                             want_loss) / n


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


@_kernel
def smoothed_per_example_loss(params, sizes, X, y, smoothing, acts, out):
    """Smoothed cross-entropy of every row separately (no gradient), into ``out``."""
    n = X.shape[0]
    Z = forward(params, sizes, X, acts)
    scratch = np.empty((1, Z.shape[1]), Z.dtype)
    for i in range(n):
        out[i] = smoothed_ce_grad_logits(Z[i:i + 1], y[i:i + 1], smoothing, scratch, 1.0,
                                         True)


# ---------------------------------------------------------------------------
# optimizers and weight averaging
# ---------------------------------------------------------------------------
#
# Each update works in place on a flat vector in its own dtype, hyperparameters cast
# to that dtype once, as PyTorch's single-tensor loops do.

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
def adamw_update(params, grad, m, v, step, lr, beta1, beta2, adam_eps, weight_decay):
    """One AdamW step in place (Loshchilov and Hutter, 2019), PyTorch's arrangement:
    ``p *= 1 - lr * weight_decay`` (decoupled decay, before the moments see the
    gradient), then exactly :func:`adam_update`."""
    factor = params.dtype.type(1.0 - lr * weight_decay)
    for i in range(params.shape[0]):
        params[i] *= factor
    adam_update(params, grad, m, v, step, lr, beta1, beta2, adam_eps)


@_kernel
def sgd_update(params, grad, buf, first, lr, momentum, dampening, weight_decay, nesterov):
    """One SGD step in place, with ``torch.optim.SGD``'s rules.

    ``g = grad + weight_decay p`` (L2 in the gradient); with ``momentum > 0`` the
    buffer becomes ``b = g`` on the ``first`` step and ``b = momentum b + (1 -
    dampening) g`` after; Nesterov then takes ``g = g + momentum b``, plain momentum
    ``g = b``; finally ``p -= lr g``. ``buf`` is unused without momentum.
    """
    dt = params.dtype.type
    lr_ = dt(lr)
    mu = dt(momentum)
    keep = dt(1.0 - dampening)
    wd = dt(weight_decay)
    use_wd = weight_decay != 0
    use_momentum = momentum != 0
    for i in range(params.shape[0]):
        g = grad[i]
        if use_wd:
            g = g + wd * params[i]
        if use_momentum:
            if first:
                b = g
            else:
                b = mu * buf[i] + keep * g
            buf[i] = b
            if nesterov:
                g = g + mu * b
            else:
                g = b
        params[i] -= lr_ * g


@_kernel
def ema_update(shadow, params, decay):
    """``shadow = decay shadow + (1 - decay) params`` in place (``decay = 0``
    copies)."""
    d = shadow.dtype.type(decay)
    keep = shadow.dtype.type(1.0 - decay)
    for i in range(shadow.shape[0]):
        shadow[i] = d * shadow[i] + keep * params[i]


# ---------------------------------------------------------------------------
# training epochs
# ---------------------------------------------------------------------------

class AdamState(NamedTuple):
    """Adam's moments and hyperparameters, as the fused epoch kernels take them."""

    m: np.ndarray
    v: np.ndarray
    lr: float
    beta1: float
    beta2: float
    adam_eps: float


class EpochBuffers(NamedTuple):
    """Scratch of the fused epoch kernels for minibatches of at most ``rows`` rows:
    the gradient ``(n_params,)``, the gathered batch ``(rows, n_features)`` and its
    labels ``(rows,)`` int64, and the model's workspace (``acts``, ``dZ``, ``d0``,
    ``d1``; see :meth:`robnp.MLP.workspace`)."""

    grad: np.ndarray
    batch_X: np.ndarray
    batch_y: np.ndarray
    acts: np.ndarray
    dZ: np.ndarray
    d0: np.ndarray
    d1: np.ndarray


@_kernel
def train_epoch(params, sizes, X, y, perm, batch_size, loss_kind, adam, step, buffers):
    """One epoch of minibatch Adam over the rows of ``X`` in the order ``perm``.

    Every minibatch (the last may be short) is the mean loss over its rows;
    parameters are updated after each. ``adam`` is an :class:`AdamState` (its moments
    are updated in place), ``buffers`` an :class:`EpochBuffers` for ``batch_size``
    rows. Returns ``(sum of batch losses, number of batches, Adam step counter after
    the epoch)``.
    """
    n, n_features = X.shape
    batch_X = buffers.batch_X
    batch_y = buffers.batch_y
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
        total += loss_and_param_grad(params, sizes, bX, by, loss_kind, buffers.grad,
                                     buffers.acts, buffers.dZ, buffers.d0, buffers.d1)
        step += 1
        adam_update(params, buffers.grad, adam.m, adam.v, step, adam.lr, adam.beta1,
                    adam.beta2, adam.adam_eps)
        n_batches += 1
    return total, n_batches, step


@_kernel
def train_epochs(params, sizes, X, y, perms, batch_size, loss_kind, adam, step, buffers,
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
                                             loss_kind, adam, step, buffers)
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


@_kernel
def ce_training_step(params, sizes, X, y, smoothing, grad, acts, dZ, d0, d1, scale):
    """The training step on fixed points (the standard recipe on one chunk of a
    minibatch, and every adversarial recipe at its attack's points): ``grad`` becomes ``scale`` times
    the sum over the rows of ``X`` of the gradient of each row's cross-entropy (with
    label smoothing ``smoothing``, :func:`smoothed_ce_grad_logits`, when it is not 0)
    w.r.t. ``params``; returns ``scale`` times the sum of the rows' losses. Workspaces
    must hold ``X.shape[0]`` rows."""
    n = X.shape[0]
    Z = forward(params, sizes, X, acts)
    dZ = dZ[:n]
    if smoothing == 0.0:
        total = loss_grad_logits(LOSS_CROSS_ENTROPY, Z, y, dZ, scale, True)
    else:
        total = smoothed_ce_grad_logits(Z, y, smoothing, dZ, scale, True)
    backward_params(params, sizes, X, acts, dZ, grad, d0, d1)
    return scale * total


# ---------------------------------------------------------------------------
# attack steps and projections
# ---------------------------------------------------------------------------
#
# Every attack kernel from here to the Square attack takes rows that each carry their
# own radius and step (``eps_rows``, ``step_rows``) and treats them independently: a
# row's result depends only on that row (losses are per example, times ``scale``), so
# a batch may be split into chunks of rows without changing any row. The step and
# bookkeeping kernels are shared by the compiled loops (for an MLP) and by the NumPy
# loops over any model with ``logits`` and ``input_gradient`` (robnp.attacks), so each
# update rule is written once. The exceptions are the study's PGD (``pgd_linf``,
# ``pgd_linf_radii``), one radius for the whole batch and the gradient of the batch's
# mean loss, and its pieces ``project_linf`` and ``sign_step``.

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
        x_adv[i] += step_size * (int(g > 0) - int(g < 0))


NORM_LINF = 0
NORM_L2 = 1


@_kernel
def project_l2(x, v, eps, lower, upper, use_bounds):
    """Project the row ``v`` in place onto the L2 ball of radius ``eps`` around the row
    ``x``, and when ``use_bounds`` onto its intersection with the box.

    Without a box: ``x + (v - x) min(1, eps / ||v - x||)``. With one, the KKT
    conditions of ``min ||z - v||^2`` over ball and box give
    ``z(s) = clip(x + s (v - x), lower, upper)`` for the largest ``s`` in ``[0, 1]``
    with ``||z(s) - x|| <= eps``; ``||z(s) - x||`` grows with ``s``, so ``s`` is found
    by bisection (to float64 resolution). When the box lies farther than ``eps`` from
    ``x`` the intersection is empty and the result is the point of the ball nearest the
    box, ``x + eps u`` with ``u`` the unit vector from ``x`` to its box projection:
    the ball always holds.
    """
    d = x.shape[0]
    if not use_bounds:
        norm = 0.0
        for k in range(d):
            norm += (v[k] - x[k]) * (v[k] - x[k])
        norm = np.sqrt(norm)
        if norm > eps:
            factor = eps / norm
            for k in range(d):
                v[k] = x[k] + (v[k] - x[k]) * factor
        return
    dist0 = 0.0
    for k in range(d):
        c = min(max(np.float64(x[k]), lower), upper)
        dist0 += (c - x[k]) ** 2
    dist0 = np.sqrt(dist0)
    if dist0 > eps:
        for k in range(d):
            c = min(max(np.float64(x[k]), lower), upper)
            v[k] = x[k] + eps * (c - x[k]) / dist0
        return
    lo = 0.0
    hi = 1.0
    full = 0.0
    for k in range(d):
        c = min(max(np.float64(v[k]), lower), upper)
        full += (c - x[k]) ** 2
    if np.sqrt(full) > eps:
        for _ in range(64):
            mid = 0.5 * (lo + hi)
            dist = 0.0
            for k in range(d):
                c = min(max(x[k] + mid * (np.float64(v[k]) - x[k]), lower), upper)
                dist += (c - x[k]) ** 2
            if np.sqrt(dist) <= eps:
                lo = mid
            else:
                hi = mid
    else:
        lo = 1.0
    for k in range(d):
        v[k] = min(max(x[k] + lo * (np.float64(v[k]) - x[k]), lower), upper)


@_kernel
def project_rows(X, X_adv, eps_rows, norm, lower, upper, use_bounds):
    """Project every row of ``X_adv`` onto its own ball (radius ``eps_rows[i]`` around
    ``X[i]``, norm ``NORM_LINF`` or ``NORM_L2``) intersected with the box."""
    n, d = X.shape
    for i in range(n):
        if norm != NORM_LINF:
            project_l2(X[i], X_adv[i], eps_rows[i], lower, upper, use_bounds)
            continue
        eps = eps_rows[i]
        # project_linf's arithmetic, element by element with this row's radius
        for k in range(d):
            x = X[i, k]
            value = x + min(max(X_adv[i, k] - x, -eps), eps)
            if use_bounds:
                boxed = min(max(value, lower), upper)
                if abs(boxed - x) <= eps:
                    value = boxed
                else:
                    value = x + min(max(boxed - x, -eps), eps)
            X_adv[i, k] = value


@_kernel
def steepest_step(X_adv, dX, step_rows, norm):
    """One steepest-ascent step per row: ``+ step * sign(g)`` (L-infinity) or
    ``+ step * g / ||g||`` (L2; a zero gradient does not move the row)."""
    n, d = X_adv.shape
    for i in range(n):
        step = step_rows[i]
        if norm == NORM_LINF:
            for k in range(d):  # sign_step's arithmetic
                g = dX[i, k]
                X_adv[i, k] += step * (int(g > 0) - int(g < 0))
        else:
            total = 0.0
            for k in range(d):
                total += np.float64(dX[i, k]) * dX[i, k]
            if total > 0:
                factor = step / np.sqrt(total)
                for k in range(d):
                    X_adv[i, k] += factor * dX[i, k]


# ---------------------------------------------------------------------------
# PGD
# ---------------------------------------------------------------------------

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
def pgd_linf_radii(params, sizes, X, y, X_advs, eps_list, step_list, steps, loss_kind,
                   lower, upper, use_bounds, first_sign, dX, acts, dZ, d0, d1):
    """:func:`pgd_linf` from the clean points at every radius in one call, each radius
    on the same rows (so every product has the shape it has radius by radius), the
    first step along ``first_sign`` (the sign of the gradient at ``X``, the same for
    every radius). ``X_advs[r]`` must hold ``X`` on entry; a radius of 0 is left so."""
    for r in range(eps_list.shape[0]):
        if eps_list[r] == 0:
            continue
        for i in range(X.shape[0]):
            for k in range(X.shape[1]):
                dX[i, k] = first_sign[i, k]
        pgd_linf(params, sizes, X, y, X_advs[r], eps_list[r], step_list[r], steps, loss_kind,
                 lower, upper, use_bounds, dX, acts, dZ, d0, d1, True)


@_kernel
def attack_eval(params, sizes, X, y, t, loss_kind, dX, acts, dZ, d0, d1, row_loss, pred,
                want_grad, scale=1.0):
    """At the rows of ``X``: per-row loss, predicted class and (when ``want_grad``)
    ``scale`` times the gradient of each row's own loss w.r.t. that row, into ``dX``."""
    n = X.shape[0]
    Z = forward(params, sizes, X, acts)
    dZ = dZ[:n]
    logit_stats(loss_kind, Z, y, t, dZ, row_loss, pred, scale)
    if want_grad:
        backward_input(params, sizes, X, acts, dZ, dX, d0, d1)


@_kernel
def track_best(X_adv, row_loss, pred, y, t, targeted, X_best, best_loss, found):
    """Per-sample worst case: a row not yet ``found`` takes the current point when it
    succeeds (misclassified, or at its target when ``targeted``), which freezes it, or
    when its loss beats ``best_loss``."""
    n, d = X_adv.shape
    for i in range(n):
        if found[i]:
            continue
        success = pred[i] == t[i] if targeted else pred[i] != y[i]
        if success or row_loss[i] > best_loss[i]:
            best_loss[i] = row_loss[i]
            found[i] = success
            for k in range(d):
                X_best[i, k] = X_adv[i, k]


@_kernel
def pgd_finish(X_adv, row_loss, pred, y, t, targeted, use_best, X_best, best_loss, found):
    """After PGD's last step: with ``use_best`` the last iterate is one more candidate
    for :func:`track_best`; otherwise it is the result."""
    if use_best:
        track_best(X_adv, row_loss, pred, y, t, targeted, X_best, best_loss, found)
        return
    n, d = X_adv.shape
    for i in range(n):
        best_loss[i] = row_loss[i]
        found[i] = pred[i] == t[i] if targeted else pred[i] != y[i]
        for k in range(d):
            X_best[i, k] = X_adv[i, k]


@_kernel
def pgd_rows(params, sizes, X, y, t, X_adv, eps_rows, step_rows, steps, loss_kind, norm,
             lower, upper, use_bounds, targeted, use_best, X_best, best_loss, found,
             dX, acts, dZ, d0, d1, row_loss, pred, scale):
    """PGD on rows that may each have their own radius and step (Madry et al., 2018).

    ``steps`` times: per-row loss and gradient (times ``scale``) at ``X_adv``, then
    :func:`steepest_step` and :func:`project_rows`. With ``use_best`` every iterate,
    the start and the last included, goes through :func:`track_best` (``best_loss``
    and ``found`` must start at -inf and False); otherwise ``X_best``, ``best_loss``
    and ``found`` describe the last iterate. ``X_adv`` holds the start on entry and the
    last iterate on exit.
    """
    for step in range(steps):
        attack_eval(params, sizes, X_adv, y, t, loss_kind, dX, acts, dZ, d0, d1,
                    row_loss, pred, True, scale)
        if use_best:
            track_best(X_adv, row_loss, pred, y, t, targeted, X_best, best_loss, found)
        steepest_step(X_adv, dX, step_rows, norm)
        project_rows(X, X_adv, eps_rows, norm, lower, upper, use_bounds)
    attack_eval(params, sizes, X_adv, y, t, loss_kind, dX, acts, dZ, d0, d1, row_loss,
                pred, False, scale)
    pgd_finish(X_adv, row_loss, pred, y, t, targeted, use_best, X_best, best_loss, found)


# ---------------------------------------------------------------------------
# APGD
# ---------------------------------------------------------------------------

@_kernel
def _copy_rows(source, target):
    n, d = source.shape
    for i in range(n):
        for k in range(d):
            target[i, k] = source[i, k]


@_kernel
def apgd_step(X, X_adv, X_old, dX, step_rows, momentum, eps_rows, norm, lower, upper,
              use_bounds, scratch):
    """APGD's momentum step (Croce and Hein, 2020, eq. 2), per row:
    ``z = P(x + eta sign(g))``, ``x_new = P(x + a (z - x) + (1 - a) (x - x_old))``;
    ``X_old`` receives the current point."""
    n, d = X_adv.shape
    for i in range(n):
        for k in range(d):
            scratch[i, k] = X_adv[i, k]
    steepest_step(scratch, dX, step_rows, norm)
    project_rows(X, scratch, eps_rows, norm, lower, upper, use_bounds)
    a = X_adv.dtype.type(momentum)
    b = X_adv.dtype.type(1.0 - momentum)
    for i in range(n):
        for k in range(d):
            current = X_adv[i, k]
            previous = X_old[i, k]
            X_old[i, k] = current
            X_adv[i, k] = current + (scratch[i, k] - current) * a + (current - previous) * b
    project_rows(X, X_adv, eps_rows, norm, lower, upper, use_bounds)


@_kernel
def apgd_record(i, X_adv, dX, row_loss, pred, y, robust, X_best_adv, X_best, grad_best,
                loss_best, loss_steps):
    """APGD's bookkeeping after the gradient at iterate ``i + 1``: the last
    misclassified point, the highest-loss point and its gradient, the loss history."""
    n, d = X_adv.shape
    for r in range(n):
        loss_steps[i, r] = row_loss[r]
        if pred[r] != y[r]:
            robust[r] = False
            for k in range(d):
                X_best_adv[r, k] = X_adv[r, k]
        if row_loss[r] > loss_best[r]:
            loss_best[r] = row_loss[r]
            for k in range(d):
                X_best[r, k] = X_adv[r, k]
                grad_best[r, k] = dX[r, k]


@_kernel
def apgd_checkpoint(i, k, rho, loss_steps, loss_best, loss_best_last, reduced_last,
                    step_rows, X_adv, dX, X_best, grad_best):
    """The checkpoint after iteration ``i`` (0-based) ending an interval of ``k``:
    halve the step and restart from the best point where (1) at most ``rho k`` of the
    interval's steps increased the loss, or (2) the step was not halved at the last
    checkpoint and the best loss has not grown since. As in the reference code, the
    loss history is a zero-initialised ring, so the first comparison of the first
    interval is against 0."""
    n_iter, n = loss_steps.shape
    d = X_adv.shape[1]
    for r in range(n):
        increases = 0
        for c in range(k):
            if loss_steps[(i - c) % n_iter, r] > loss_steps[(i - c - 1) % n_iter, r]:
                increases += 1
        reduce = increases <= k * rho
        if not reduced_last[r] and loss_best_last[r] >= loss_best[r]:
            reduce = True
        reduced_last[r] = reduce
        loss_best_last[r] = loss_best[r]
        if reduce:
            step_rows[r] /= 2
            for q in range(d):
                X_adv[r, q] = X_best[r, q]
                dX[r, q] = grad_best[r, q]


@_kernel
def apgd_rows(params, sizes, X, y, t, X_adv, eps_rows, step_rows, loss_kind, norm, lower,
              upper, use_bounds, checks, rho, momentum, X_best, X_best_adv, robust,
              loss_best, dX, acts, dZ, d0, d1, row_loss, pred, trace):
    """APGD (Croce and Hein, 2020) on every row from the start ``X_adv``, as the
    reference implementation runs it; ``checks[i]`` is the length of the interval
    ending after iteration ``i`` (0 where there is no checkpoint). ``trace``, when it
    has rows, receives every evaluated iterate (``n_iter + 1`` of them)."""
    n, d = X.shape
    n_iter = checks.shape[0]
    attack_eval(params, sizes, X_adv, y, t, loss_kind, dX, acts, dZ, d0, d1, row_loss,
                pred, True)
    grad_best = dX.copy()
    X_old = X_adv.copy()
    scratch = np.empty_like(X_adv)
    loss_steps = np.zeros((n_iter, n))
    loss_best_last = np.empty(n)
    reduced_last = np.ones(n, np.bool_)
    for r in range(n):
        robust[r] = pred[r] == y[r]
        loss_best[r] = row_loss[r]
        loss_best_last[r] = row_loss[r]
        for q in range(d):
            X_best[r, q] = X_adv[r, q]
            X_best_adv[r, q] = X_adv[r, q]
    if trace.shape[0] > 0:
        _copy_rows(X_adv, trace[0])
    for i in range(n_iter):
        apgd_step(X, X_adv, X_old, dX, step_rows, 1.0 if i == 0 else momentum, eps_rows,
                  norm, lower, upper, use_bounds, scratch)
        attack_eval(params, sizes, X_adv, y, t, loss_kind, dX, acts, dZ, d0, d1,
                    row_loss, pred, True)
        if trace.shape[0] > 0:
            _copy_rows(X_adv, trace[i + 1])
        apgd_record(i, X_adv, dX, row_loss, pred, y, robust, X_best_adv, X_best,
                    grad_best, loss_best, loss_steps)
        if checks[i] > 0:
            apgd_checkpoint(i, checks[i], rho, loss_steps, loss_best, loss_best_last,
                            reduced_last, step_rows, X_adv, dX, X_best, grad_best)


# ---------------------------------------------------------------------------
# the Square attack
# ---------------------------------------------------------------------------

@_kernel
def margins(Z, y, out):
    """``Z_iy - max_{j != y} Z_ij`` per row (negative: misclassified)."""
    n, n_classes = Z.shape
    for i in range(n):
        other = -np.inf
        for j in range(n_classes):
            if j != y[i] and Z[i, j] > other:
                other = Z[i, j]
        out[i] = Z[i, y[i]] - other


@_kernel
def square_propose(X, X_best, X_new, rows, start, width, sign, eps, lower, upper,
                   use_bounds):
    """Square attack's proposal for the listed rows: the window ``[start, start +
    width)`` of each set to ``x + sign eps`` (the best point plus ``2 eps sign``,
    projected), the rest copied from the best point."""
    d = X.shape[1]
    for q in range(rows.shape[0]):
        r = rows[q]
        for k in range(d):
            X_new[q, k] = X_best[r, k]
        for k in range(start, start + width):
            X_new[q, k] = X_best[r, k] + 2 * eps * sign
        project_linf(X[r:r + 1], X_new[q:q + 1], eps, lower, upper, use_bounds)


@_kernel
def square_accept(X_new, rows, margin_new, X_best, margin_best):
    """Keep a proposal where its margin is lower, or where it misclassifies."""
    d = X_new.shape[1]
    for q in range(rows.shape[0]):
        r = rows[q]
        if margin_new[q] < margin_best[r] or margin_new[q] <= 0:
            margin_best[r] = margin_new[q]
            for k in range(d):
                X_best[r, k] = X_new[q, k]


@_kernel
def square_rows(params, sizes, X, y, X_best, margin_best, starts, widths, signs, eps,
                lower, upper, use_bounds, acts, queries):
    """The Square attack's loop (Andriushchenko et al., 2020) for an MLP: iteration
    ``i`` proposes the window ``starts[i], widths[i]`` with sign ``signs[i]`` to every
    row whose margin is still positive; stops when none is. ``queries[r]`` counts the
    model evaluations spent on row ``r`` (the start included)."""
    n, d = X.shape
    rows = np.empty(n, np.int64)
    X_new = np.empty_like(X)
    margin_new = np.empty(n, X.dtype)
    y_buffer = np.empty(n, np.int64)
    for i in range(starts.shape[0]):
        m = 0
        for r in range(n):
            if margin_best[r] > 0:
                rows[m] = r
                m += 1
        if m == 0:
            break
        active = rows[:m]
        y_sub = y_buffer[:m]
        square_propose(X, X_best, X_new[:m], active, starts[i], widths[i], signs[i], eps,
                       lower, upper, use_bounds)
        for q in range(m):
            y_sub[q] = y[active[q]]
        Z = forward(params, sizes, X_new[:m], acts)
        margins(Z, y_sub, margin_new[:m])
        square_accept(X_new[:m], active, margin_new[:m], X_best, margin_best)
        for q in range(m):
            queries[active[q]] += 1


# ---------------------------------------------------------------------------
# adversarial training, one chunk of a recipe's step
# ---------------------------------------------------------------------------
#
# One call per chunk runs a recipe's whole inner attack and its training gradient
# (robnp/training/_<name>.py). The attacks are the evaluation's own pieces: pgd_linf
# (PGD from a given start), loss_and_input_grad, sign_step and project_linf. The points
# are held fixed in the training gradient (Danskin's theorem: the gradient of the inner
# maximum at its maximiser is the gradient of the loss at that point). ``ws`` is a
# recipe workspace, a NamedTuple of arrays (robnp.training._adversarial); a chunk of
# ``n`` rows uses the first ``n`` rows of each buffer. A kernel writes ``scale`` times
# the sum over rows of each row's parameter gradient into ``grad`` and returns
# ``scale`` times the sum of the rows' objectives.

@_kernel
def uniform_start(X, noise, radius, X_adv):
    """``X_adv = X + radius * noise`` (``noise`` of U(-1, 1) draws: a uniform start in
    the L-infinity ball of radius ``radius``)."""
    n, d = X.shape
    for i in range(n):
        for k in range(d):
            X_adv[i, k] = X[i, k] + radius * noise[i, k]


@_kernel
def pgd_at_gradient(params, sizes, X, y, noise, eps, step_size, steps, smoothing, ws, grad,
                    scale):
    """PGD adversarial training (Madry et al., 2018) on one chunk: the uniform start
    ``X + eps noise`` (projected), ``steps`` iterations of :func:`pgd_linf` on the
    cross-entropy (signed steps of ``step_size``, projection onto the ``eps``-ball),
    then :func:`ce_training_step` at the result, left in ``ws.X_adv[:n]``. With
    ``steps = 1`` and ``step_size = alpha eps`` this is FGSM with a random start (Wong
    et al., 2020)."""
    n = X.shape[0]
    X_adv = ws.X_adv[:n]
    dX = ws.dX[:n]
    uniform_start(X, noise, eps, X_adv)
    project_linf(X, X_adv, eps, 0.0, 0.0, False)
    pgd_linf(params, sizes, X, y, X_adv, eps, step_size, steps, LOSS_CROSS_ENTROPY,
             0.0, 0.0, False, dX, ws.acts, ws.dZ, ws.d0, ws.d1, False)
    return ce_training_step(params, sizes, X_adv, y, smoothing, grad, ws.acts, ws.dZ, ws.d0,
                            ws.d1, scale)


@_kernel
def n_fgsm_gradient(params, sizes, X, y, noise, noise_radius, step_size, smoothing, ws, grad,
                    scale):
    """N-FGSM (de Jorge et al., 2022) on one chunk: ``X + noise_radius noise``, one
    signed step of ``step_size`` on the cross-entropy from there, no projection, then
    :func:`ce_training_step` at the result (left in ``ws.X_adv[:n]``)."""
    n = X.shape[0]
    X_adv = ws.X_adv[:n]
    dX = ws.dX[:n]
    uniform_start(X, noise, noise_radius, X_adv)
    loss_and_input_grad(params, sizes, X_adv, y, LOSS_CROSS_ENTROPY, dX, ws.acts, ws.dZ,
                        ws.d0, ws.d1, False)
    sign_step(X_adv, dX, step_size)
    return ce_training_step(params, sizes, X_adv, y, smoothing, grad, ws.acts, ws.dZ, ws.d0,
                            ws.d1, scale)


@_kernel
def trades_gradient(params, sizes, X, y, noise, eps, step_size, steps, beta, smoothing, ws,
                    grad, scale):
    """TRADES (Zhang et al., 2019) on one chunk, as the scaling-law paper runs it.

    1. the clean distribution ``p = softmax(f(X))``, one forward pass, held fixed
       during the attack;
    2. from the uniform start ``X + eps noise`` (projected), ``steps`` signed steps of
       ``step_size`` ascending ``KL(p || softmax(f(x')))``, each projected onto the
       ``eps``-ball; the result is left in ``ws.X_adv[:n]``;
    3. the objective ``LS-CE(f(X), y) + beta KL(softmax(f(X)) || softmax(f(X_adv)))``
       per row, its gradient flowing through the clean logits (both terms) and the
       adversarial ones: clean and adversarial rows are stacked into ``ws.X_pair``,
       so the two forward passes and the two backward passes are one each over ``2n``
       rows (the buffers of ``ws`` hold twice the chunk's rows).
    """
    n, d = X.shape
    X_adv = ws.X_adv[:n]
    dX = ws.dX[:n]
    P = ws.P[:n]
    logP = ws.logP[:n]
    dZc = ws.dZc[:n]
    dZa = ws.dZ[:n]
    Z = forward(params, sizes, X, ws.acts)
    log_softmax_rows(Z, logP, P)
    uniform_start(X, noise, eps, X_adv)
    project_linf(X, X_adv, eps, 0.0, 0.0, False)
    for step in range(steps):
        Z = forward(params, sizes, X_adv, ws.acts)
        kl_grad_logits(P, logP, Z, dZa, dZc, 1.0, False, False)
        backward_input(params, sizes, X_adv, ws.acts, dZa, dX, ws.d0, ws.d1)
        sign_step(X_adv, dX, step_size)
        project_linf(X, X_adv, eps, 0.0, 0.0, False)
    pair = ws.X_pair[:2 * n]
    for i in range(n):
        for k in range(d):
            pair[i, k] = X[i, k]
            pair[n + i, k] = X_adv[i, k]
    Z = forward(params, sizes, pair, ws.acts)
    dZ = ws.dZ[:2 * n]
    Zc = Z[:n]
    # p again from these clean logits, so that the gradient is exactly that of the
    # value returned (the same numbers as step 1 up to the rounding of a larger product)
    log_softmax_rows(Zc, logP, P)
    ce = smoothed_ce_grad_logits(Zc, y, smoothing, dZ[:n], scale, True)
    kl = kl_grad_logits(P, logP, Z[n:], dZ[n:], dZc, beta * scale, True, True)
    for i in range(n):
        for j in range(Z.shape[1]):
            dZ[i, j] += dZc[i, j]
    backward_params(params, sizes, pair, ws.acts, dZ, grad, ws.d0, ws.d1)
    return scale * (ce + beta * kl)


# ---------------------------------------------------------------------------
# densities
# ---------------------------------------------------------------------------

@_kernel
def mixture_log_and_grad(X2, centres, inv_two_var, logits, log_out, grad_out, want_grad):
    """``log sum_j exp(-|x - c_j|^2 inv_two_var)`` for every row of ``X2`` (n, 2) over
    the centres (m, 2), and, when ``want_grad``, its gradient in ``x``: the
    responsibility-weighted mean of ``2 inv_two_var (c_j - x)``. ``logits`` is an (m,)
    scratch row. Max-shifted, so no term overflows and the largest never underflows;
    the caller adds the mixture's normalising constants."""
    m = centres.shape[0]
    for i in range(X2.shape[0]):
        x0 = X2[i, 0]
        x1 = X2[i, 1]
        top = -np.inf
        for j in range(m):
            d0 = centres[j, 0] - x0
            d1 = centres[j, 1] - x1
            value = -(d0 * d0 + d1 * d1) * inv_two_var
            logits[j] = value
            if value > top:
                top = value
        total = 0.0
        g0 = 0.0
        g1 = 0.0
        for j in range(m):
            w = np.exp(logits[j] - top)
            total += w
            if want_grad:
                g0 += w * (centres[j, 0] - x0)
                g1 += w * (centres[j, 1] - x1)
        log_out[i] = top + np.log(total)
        if want_grad:
            scale = 2.0 * inv_two_var / total
            grad_out[i, 0] = g0 * scale
            grad_out[i, 1] = g1 * scale


# ---------------------------------------------------------------------------
# the diffusion sampler (robnp.data.diffusion)
# ---------------------------------------------------------------------------

@_kernel
def edm_denoise(params, sizes, x, sigma, sd, inp, acts, out):
    """EDM's preconditioned denoiser at one noise level for every row of ``x``
    (float64, ``(n, d)``): ``out = c_skip x + c_out F([c_in x, c_noise])``, the
    network ``F`` run in its own dtype on ``inp`` (``(n, d + 1)``)."""
    n, d = x.shape
    total = sigma * sigma + sd * sd
    c_skip = sd * sd / total
    c_out = sigma * sd / np.sqrt(total)
    c_in = 1.0 / np.sqrt(total)
    c_noise = np.log(sigma) / 4
    for i in range(n):
        for j in range(d):
            inp[i, j] = c_in * x[i, j]
        inp[i, d] = c_noise
    F = forward(params, sizes, inp, acts)
    for i in range(n):
        for j in range(d):
            out[i, j] = c_skip * x[i, j] + c_out * F[i, j]


@_kernel
def heun_trajectory(params, sizes, x, sigmas, sd, inp, acts, den, x_next, slope):
    """EDM's deterministic Heun sampler (Karras et al. 2022, Algorithm 1 without
    churn) from ``x`` (float64, overwritten with the result) down the noise levels
    ``sigmas`` (the last 0): per level an Euler step, corrected by the trapezoid rule
    except into 0. Rows are independent, so any split of the rows gives the same
    numbers."""
    n, d = x.shape
    for k in range(sigmas.shape[0] - 1):
        s = sigmas[k]
        s_next = sigmas[k + 1]
        edm_denoise(params, sizes, x, s, sd, inp, acts, den)
        for i in range(n):
            for j in range(d):
                slope[i, j] = (x[i, j] - den[i, j]) / s
                x_next[i, j] = x[i, j] + (s_next - s) * slope[i, j]
        if s_next > 0:
            edm_denoise(params, sizes, x_next, s_next, sd, inp, acts, den)
            half = (s_next - s) * 0.5
            for i in range(n):
                for j in range(d):
                    x_next[i, j] = x[i, j] + half * (
                        slope[i, j] + (x_next[i, j] - den[i, j]) / s_next)
        for i in range(n):
            for j in range(d):
                x[i, j] = x_next[i, j]


# ---------------------------------------------------------------------------
# FAB
# ---------------------------------------------------------------------------
#
# FAB (Croce and Hein, 2020) for an MLP, one call per chunk of rows: the loop of
# robnp/attacks/_fab.py's ``fab_single_run`` with the box-constrained hyperplane
# projection of robnp/attacks/_projections.py written per row. The NumPy versions stay
# the readable reference (and the path of models that are not MLPs); the tests hold
# this section to them and to tests/naive.py.

NORM_L1 = 2


@_row_helper
def _row_norm(v, norm):
    """``||v||`` in ``NORM_LINF``, ``NORM_L2`` or ``NORM_L1``, float64."""
    total = 0.0
    for k in range(v.shape[0]):
        a = abs(np.float64(v[k]))
        if norm == NORM_LINF:
            total = max(total, a)
        elif norm == NORM_L2:
            total += a * a
        else:
            total += a
    return np.sqrt(total) if norm == NORM_L2 else total


@_row_helper
def _stable_order(values, descending, order):
    """The indices of ``values`` sorted (ties in index order) into ``order``: an
    insertion sort for the few features of a tabular input, where it is several times
    faster than ``np.argsort`` (which allocates), else a stable ``np.argsort``."""
    d = values.shape[0]
    if d > 16:
        found = np.argsort(-values if descending else values, kind="mergesort")
        for k in range(d):
            order[k] = found[k]
        return
    for k in range(d):
        order[k] = k
        j = k
        while j > 0:
            a = values[order[j - 1]]
            b = values[k]
            if (b > a) if descending else (b < a):
                order[j] = order[j - 1]
                j -= 1
            else:
                break
        order[j] = k


@_row_helper
def _level_row(scratch, r, order):
    """``_projections._level`` for one row: the level ``s >= 0`` at which
    ``sum_{breaks_i <= s} gains_i + s sum_{breaks_i > s} slopes_i`` reaches ``r``, and
    whether any level does; ``gains``, ``breaks`` and ``slopes`` are rows 3, 4 and 5 of
    ``scratch``, rows 6 and 7 (``d + 1`` long) are its working space."""
    d = order.shape[0]
    _stable_order(scratch[4, :d], False, order)
    scratch[6, 0] = 0.0                                    # gain of the coordinates before k
    for k in range(d):
        scratch[6, k + 1] = scratch[6, k] + scratch[3, order[k]]
    scratch[7, d] = 0.0                                    # slopes from k on
    for k in range(d - 1, -1, -1):
        scratch[7, k] = scratch[7, k + 1] + scratch[5, order[k]]
    below = 0
    for k in range(d):
        after = scratch[7, k]
        h = scratch[6, k] + scratch[4, order[k]] * after if after > 0 else scratch[6, k]
        if h < r:
            below += 1
    kk = min(below, d - 1)
    level = (r - scratch[6, kk]) / scratch[7, kk] if scratch[7, kk] > 0 else 0.0
    return max(level, 0.0), below < d


@_row_helper
def hyperplane_row(t, w, b, norm, lower, upper, use_bounds, D, scratch, order):
    """The smallest step ``D`` (``norm``: ``NORM_LINF``, ``NORM_L2`` or ``NORM_L1``)
    from the row ``t`` onto ``w . z = b`` inside the box, as
    ``robnp.attacks._projections.hyperplane_step`` computes it for one row (an
    unreachable hyperplane: every coordinate with ``w_i != 0`` to its bound towards
    it). ``scratch`` is float64 of shape (8, d + 1), ``order`` int64 of shape (d,).
    Returns whether the hyperplane was reachable."""
    d = t.shape[0]
    dot = 0.0
    for i in range(d):
        dot += w[i] * t[i]
    r = b - dot
    flip = -1.0 if r < 0 else 1.0
    r = r * flip
    # rows of scratch: 0 sign(w), 1 |w|, 2 the room to the box, 3 gains, 4 breaks,
    # 5 slopes
    for i in range(d):
        wi = w[i] * flip
        scratch[0, i] = 1.0 if wi > 0 else (-1.0 if wi < 0 else 0.0)
        a = abs(wi)
        scratch[1, i] = a
        if a > 0:
            if use_bounds:
                c = upper - t[i] if wi > 0 else t[i] - lower
                c = max(c, 0.0)
            else:
                c = np.inf
            scratch[3, i] = a * c
        else:
            c = 0.0
            scratch[3, i] = 0.0
        scratch[2, i] = c
    if norm == NORM_L1:
        # the coordinates of largest |w_i| first, each to its bound, the last partly
        _stable_order(scratch[1, :d], True, order)
        running = 0.0
        filled = 0.0
        below = 0
        for k in range(d):
            running += scratch[3, order[k]]
            if running < r:
                below += 1
                filled = running
        for k in range(d):
            i = order[k]
            D[i] = scratch[0, i] * (scratch[2, i] if k < below and scratch[1, i] > 0
                                    else 0.0)
        reachable = below < d
        if reachable:
            pivot = order[below]
            a = scratch[1, pivot]
            partial = (r - filled) / a if a > 0 else 0.0
            D[pivot] = scratch[0, pivot] * (min(partial, scratch[2, pivot]) if a > 0
                                            else 0.0)
    else:
        for i in range(d):
            a = scratch[1, i]
            if norm == NORM_LINF:
                scratch[4, i] = scratch[2, i]
                scratch[5, i] = a
            else:
                scratch[4, i] = scratch[2, i] / a if a > 0 else np.inf
                scratch[5, i] = a * a
        level, reachable = _level_row(scratch, r, order)
        for i in range(d):
            a = scratch[1, i]
            if not reachable:
                D[i] = scratch[0, i] * (scratch[2, i] if a > 0 else 0.0)
                continue
            amount = min(level, scratch[4, i])
            if norm == NORM_L2:
                amount = amount * a
            D[i] = scratch[0, i] * (amount if a > 0 else 0.0)
    if use_bounds:
        # the step lands in the box up to rounding; make it exact
        for i in range(d):
            D[i] = min(max(t[i] + D[i], lower), upper) - t[i]
    return reachable


@_kernel
def _scatter_rows(source, m, target, n, sizes, rows):
    """Copy the activations of ``m`` compact rows (``source``, as :func:`forward`
    lays them out for ``m`` rows) to rows ``rows`` of ``target`` (laid out for ``n``)."""
    a_off = act_offsets(sizes)
    for layer in range(sizes.shape[0] - 1):
        width = sizes[layer + 1]
        src = _block(source, m, a_off[layer], width)
        dst = _block(target, n, a_off[layer], width)
        for q in range(m):
            for k in range(width):
                dst[rows[q], k] = src[q, k]


@_kernel
def fab_rows(params, sizes, X, y, t, targeted, start, norm, n_iter, alpha_max, eta, beta,
             lower, upper, use_bounds, points, best, trace):
    """FAB (Croce and Hein, 2020) on rows ``X`` (classified correctly when clean) from
    ``start``, as ``robnp.attacks._fab.fab_single_run`` runs it: the iterates are
    float64, the network sees them rounded to its dtype.

    Per iteration: a backward pass for a target (the gradient of ``z_t - z_y``) or one
    per class, the two projections and the combined step per row, the forward pass
    that checks the new points, and a forward pass over only the rows stepped back
    after a success: the other rows' next forward pass is the check's. ``points``
    (``X``'s dtype) and ``best`` (float64) receive the smallest misclassified iterate
    per row and its norm (``X`` and inf where none was); ``trace``, when it has rows,
    every iterate. Returns the number of rows the extra forward passes covered."""
    n, d = X.shape
    K = sizes[sizes.shape[0] - 1]
    width = 0
    widest = sizes[0]
    for layer in range(1, sizes.shape[0]):
        width += sizes[layer]
        widest = max(widest, sizes[layer])
    x0 = np.empty((n, d))
    origin = np.empty((n, d))
    x1 = np.empty((n, d))
    seen = np.empty_like(X)                   # the iterate as the network sees it
    for i in range(n):
        best[i] = np.inf
        for k in range(d):
            x0[i, k] = X[i, k]
            origin[i, k] = min(max(x0[i, k], lower), upper) if use_bounds else x0[i, k]
            x1[i, k] = start[i, k]
            seen[i, k] = x1[i, k]
            points[i, k] = X[i, k]
    acts = np.empty(n * width, X.dtype)
    acts_back = np.empty(n * width, X.dtype)
    d0 = np.empty(n * widest, X.dtype)
    d1 = np.empty(n * widest, X.dtype)
    dZ = np.zeros((n, K), X.dtype)
    dX = np.empty((n, d), X.dtype)
    J = np.empty((n, 1 if targeted else K, d))
    back = np.empty((n, d), X.dtype)
    rows = np.empty(n, np.int64)
    w = np.empty(d)
    step1 = np.empty(d)
    step0 = np.empty(d)
    scratch = np.empty((8, d + 1))
    order = np.empty(d, np.int64)
    dual = NORM_L1 if norm == NORM_LINF else (NORM_L2 if norm == NORM_L2 else NORM_LINF)
    stepped_back = 0
    Z = forward(params, sizes, seen, acts)
    for it in range(n_iter):
        if trace.shape[0] > 0:
            for i in range(n):
                for k in range(d):
                    trace[it, i, k] = x1[i, k]
        if targeted:
            for i in range(n):
                dZ[i, t[i]] += 1
                dZ[i, y[i]] -= 1
            backward_input(params, sizes, seen, acts, dZ, dX, d0, d1)
            for i in range(n):
                dZ[i, t[i]] = 0
                dZ[i, y[i]] = 0
                for k in range(d):
                    J[i, 0, k] = dX[i, k]
        else:
            for c in range(K):
                for i in range(n):
                    dZ[i, c] = 1
                backward_input(params, sizes, seen, acts, dZ, dX, d0, d1)
                for i in range(n):
                    dZ[i, c] = 0
                    for k in range(d):
                        J[i, c, k] = dX[i, k]
        for i in range(n):
            label = y[i]
            if targeted:
                for k in range(d):
                    w[k] = J[i, 0, k]
                f = np.float64(Z[i, t[i]]) - Z[i, label]
            else:
                # the class whose linearised boundary is nearest in the norm
                nearest = -1
                shortest = np.inf
                for c in range(K):
                    if c == label:
                        continue
                    for k in range(d):
                        w[k] = J[i, c, k] - J[i, label, k]
                    gap = np.float64(Z[i, c]) - Z[i, label]
                    distance = abs(gap) / (1e-12 + _row_norm(w, dual))
                    if nearest < 0 or distance < shortest:
                        nearest = c
                        shortest = distance
                for k in range(d):
                    w[k] = J[i, nearest, k] - J[i, label, k]
                f = np.float64(Z[i, nearest]) - Z[i, label]
            b = 0.0
            for k in range(d):
                b += w[k] * x1[i, k]
            b = b - f
            hyperplane_row(x1[i], w, b, norm, lower, upper, use_bounds, step1, scratch,
                           order)
            hyperplane_row(origin[i], w, b, norm, lower, upper, use_bounds, step0, scratch,
                           order)
            a1 = max(_row_norm(step1, norm), 1e-8)
            a0 = max(_row_norm(step0, norm), 1e-8)
            alpha = min(a1 / (a1 + a0), alpha_max)
            for k in range(d):
                value = ((x1[i, k] + eta * step1[k]) * (1 - alpha)
                         + (origin[i, k] + eta * step0[k]) * alpha)
                if use_bounds:
                    value = min(max(value, lower), upper)
                x1[i, k] = value
                seen[i, k] = value
        # the check: a point counts when the network misclassifies it
        Z = forward(params, sizes, seen, acts)
        m = 0
        for i in range(n):
            if _row_argmax(Z, i) == y[i]:
                continue
            for k in range(d):
                step1[k] = np.float64(seen[i, k]) - x0[i, k]
            size = _row_norm(step1, norm)
            if size < best[i]:
                best[i] = size
                for k in range(d):
                    points[i, k] = seen[i, k]
            # a success: step back towards the original point
            for k in range(d):
                x1[i, k] = origin[i, k] + beta * (x1[i, k] - origin[i, k])
                seen[i, k] = x1[i, k]
                back[m, k] = seen[i, k]
            rows[m] = i
            m += 1
        if m > 0 and it < n_iter - 1:
            # the next forward pass: the check's for the rows that stayed, these anew
            # (all rows when most stepped back: one product, no copies)
            if 2 * m > n:
                Z = forward(params, sizes, seen, acts)
                stepped_back += n
            else:
                forward(params, sizes, back[:m], acts_back)
                _scatter_rows(acts_back, m, acts, n, sizes, rows[:m])
                stepped_back += m
    return stepped_back


# ---------------------------------------------------------------------------
# directed rounding
# ---------------------------------------------------------------------------

@_kernel
def next_float(x, out, upward):
    """``out[i] = nextafter(x[i], +inf if upward else -inf)`` for flat float64 arrays,
    bit for bit NumPy's: the neighbouring double, by one step of the bit pattern
    (zero of either sign steps to the smallest subnormal of the direction's sign; the
    infinity of the direction stays, and NaN stays NaN). The verifier's outward rounding steps
    every bound this way, NumPy's ufunc costing some 10 ns an element."""
    bits = x.view(np.int64)
    out_bits = out.view(np.int64)
    step = 1 if upward else -1
    end = np.inf if upward else -np.inf
    for i in range(x.shape[0]):
        v = x[i]
        if v != v:
            out[i] = v + end  # NaN, quieted (a signalling NaN's payload kept), as NumPy
        elif v == end:
            out[i] = v
        elif v == 0.0:
            out_bits[i] = 1 if upward else np.int64(-9223372036854775807)  # -2^-1074
        elif v > 0.0:
            out_bits[i] = bits[i] + step
        else:
            out_bits[i] = bits[i] - step

