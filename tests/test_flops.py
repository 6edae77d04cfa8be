"""Exact FLOP counts: a tiny net counted by hand, the matrix products the kernels run,
and the paper's forward-pass convention as the limit of wide nets."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from robnp.errors import ConfigError
from robnp.flops import (attack_step_flops, cross_entropy_flops, forward_flops,
                         input_backward_flops, layer_counts, optimizer_flops,
                         training_backward_flops)
from robnp.training.recipes import paper_forward_passes, recipe_flops

# The 2-3-2 net by hand: W1 is 2x3, b1 has 3, W2 is 3x2, b2 has 2.
#   weights P_W = 6 + 6 = 12, biases P_b = 3 + 2 = 5, hidden units H = 3.
#   forward: x W1 (2*6 = 12) + b1 (3) + ReLU (3) + h W2 (2*6 = 12) + b2 (2) = 32
#   training backward: dW2 = h^T d (12), db2 (2), d W2^T to the hidden layer (12),
#     ReLU mask (3), dW1 = x^T d1 (12), db1 (3) = 44 (no delta to the input)
#   input backward: d W2^T (12), mask (3), d1 W1^T to the input (12) = 27
#   cross-entropy, K = 2: 5 * 2 + 4 = 14 (gradient only: 11)
TINY = (2, 3, 2)


def test_the_tiny_net_counted_by_hand():
    assert layer_counts(TINY) == (12, 5, 3)
    assert forward_flops(TINY) == 32
    assert training_backward_flops(TINY) == 44
    assert input_backward_flops(TINY) == 27
    assert cross_entropy_flops(2) == 14 and cross_entropy_flops(2, value=False) == 11
    assert attack_step_flops(2) == 14


def test_the_tiny_net_recipes_counted_by_hand():
    standard = 32 + 14 + 44                                        # 90
    start = 2 + 4 * 2                                              # noise + projection
    attack_step = 32 + 11 + 27 + 14                                # 84
    assert recipe_flops(TINY, "standard").flops == standard
    assert recipe_flops(TINY, "pgd-at", 1).flops == start + attack_step + standard
    assert recipe_flops(TINY, "pgd-at", 3).flops == start + 3 * attack_step + standard
    assert recipe_flops(TINY, "fgsm-rs").flops == start + attack_step + standard
    assert recipe_flops(TINY, "n-fgsm").flops == 2 + 32 + 11 + 27 + 3 * 2 + standard
    # TRADES: clean forward and softmax (32 + 10); each step forward, KL gradient
    # (softmax 10 + subtraction 2), input backward, step; two forwards; CE 14; KL in the
    # loss (softmax 10, value 8, gradient 2, to the clean logits 6); two backwards
    trades_step = 32 + 12 + 27 + 14
    assert recipe_flops(TINY, "trades", 2).flops == (42 + start + 2 * trades_step + 64 + 14
                                                     + 26 + 88)
    # the optimizer's share: Nesterov SGD with weight decay, 9 FLOPs per parameter
    assert optimizer_flops("sgd", momentum=True, nesterov=True, weight_decay=True) == 9
    assert recipe_flops(TINY, batch_size=17).flops == standard + 9 * 17 / 17
    assert optimizer_flops("sgd") == 2 and optimizer_flops("adam") == 13


def test_the_paper_convention():
    assert [paper_forward_passes("standard"), paper_forward_passes("pgd-at", 10),
            paper_forward_passes("trades", 10), paper_forward_passes("fgsm-rs"),
            paper_forward_passes("n-fgsm")] == [3, 23, 27, 5, 5]
    assert recipe_flops((2, 64, 64, 2), "trades", 10).paper_k == 54


@pytest.mark.parametrize("recipe,steps", [("standard", None), ("pgd-at", 10), ("trades", 10),
                                          ("fgsm-rs", None), ("n-fgsm", None)])
def test_wide_nets_approach_the_paper_convention(recipe, steps):
    """The convention's approximations (the backward pass costs two forwards, the input
    gradient one, a forward 2N FLOPs) hold up to terms linear in the width, which vanish
    relative to the quadratic ones."""
    counts = [recipe_flops((2, w, w, 2), recipe, steps) for w in (64, 512, 4096)]
    errors = [abs(c.forward_passes / c.paper_forward_passes - 1) for c in counts]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-3
    assert abs(counts[2].k / counts[2].paper_k - 1) < 1e-3
    assert all(c.forward_passes < c.paper_forward_passes for c in counts)


COUNT_GEMMS = textwrap.dedent("""
    import json, sys, types
    import numpy as real_np
    import robnp.kernels as K

    calls = []
    def dot(a, b, out=None):
        calls.append(2 * a.shape[0] * a.shape[1] * b.shape[1])
        return real_np.dot(a, b, out)
    proxy = types.SimpleNamespace(**{n: getattr(real_np, n) for n in dir(real_np)
                                     if not n.startswith("__")})
    proxy.dot = dot
    K.np = proxy                   # the kernels run as Python: their np.dot is counted

    sizes = real_np.array(json.loads(sys.argv[1]), real_np.int64)
    n = int(sys.argv[2])
    rng = real_np.random.default_rng(0)
    n_params = int(sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:])))
    params = rng.normal(size=n_params)
    X = rng.normal(size=(n, int(sizes[0])))
    acts = real_np.empty(n * int(sizes[1:].sum()))
    d0 = real_np.empty(n * int(sizes.max()))
    d1 = real_np.empty_like(d0)
    dZ = rng.normal(size=(n, int(sizes[-1])))
    result = {}
    K.forward(params, sizes, X, acts)
    result["forward"] = sum(calls); calls.clear()
    K.backward_params(params, sizes, X, acts, dZ, real_np.empty(n_params), d0, d1)
    result["backward_params"] = sum(calls); calls.clear()
    K.backward_input(params, sizes, X, acts, dZ, real_np.empty_like(X), d0, d1)
    result["backward_input"] = sum(calls)
    print(json.dumps(result))
""")


@pytest.mark.parametrize("sizes", [(2, 3, 2), (5, 7, 4, 3), (3, 9, 9, 9, 2)])
def test_the_counts_are_the_matrix_products_the_kernels_run(sizes):
    """Run the kernels as plain Python (NUMBA_DISABLE_JIT) with np.dot counting the
    multiply-adds of every product it is given; the counts' matrix-product terms must
    be exactly that work."""
    n = 6
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    out = subprocess.run([sys.executable, "-c", COUNT_GEMMS, json.dumps(sizes), str(n)],
                         capture_output=True, text=True, env=env, check=True)
    measured = json.loads(out.stdout)
    weights, biases, hidden = layer_counts(sizes)
    # the counts minus their elementwise terms (bias adds, bias gradients, ReLU, masks)
    assert measured["forward"] == n * (forward_flops(sizes) - biases - hidden)
    assert measured["backward_params"] == n * (training_backward_flops(sizes) - biases
                                               - hidden)
    assert measured["backward_input"] == n * (input_backward_flops(sizes) - hidden)


@pytest.mark.parametrize("call,message", [
    (lambda: recipe_flops(TINY, "trades"), r"steps must be an integer >= 1, got None"),
    (lambda: recipe_flops(TINY, "standard", 3), r"the standard recipe takes no steps"),
    (lambda: recipe_flops(TINY, "mart", 3), r"unknown recipe 'mart'; known: standard"),
    (lambda: recipe_flops((2, 0, 2)), r"layer sizes must hold integers >= 1"),
    (lambda: recipe_flops((2, 3, 1)), r"n_classes must be >= 2, got 1"),
    (lambda: recipe_flops(TINY, batch_size=0), r"batch_size must be an integer >= 1"),
    (lambda: optimizer_flops("sgd", nesterov=True), r"nesterov needs momentum"),
])
def test_bad_input_is_a_one_line_config_error(call, message):
    with pytest.raises(ConfigError, match=message):
        call()
