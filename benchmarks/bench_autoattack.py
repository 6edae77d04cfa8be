"""AutoAttack's standard suite: robnp's ``autoattack`` against the reference code on
PyTorch, on the same weights, points and eps, both with every core.

The model: an MLP with two hidden layers of width w (default 512) on 10-class
``blobs`` (noise 0.15), its two features scaled into [0, 1] (the reference's input box,
which it hard-codes), trained by robnp in float32; the same weights are copied into a
``torch.nn.Sequential`` (float32). The points: the first ``--points`` test points.

* robnp: ``robnp.evaluate(model, X, y, eps, attacks=[("autoattack", {"bounds": (0, 1),
  "n_threads": cores})], seed=0)``;
* the reference: ``AutoAttack(model, norm="Linf", eps=eps, version="standard",
  device="cpu", seed=0).run_standard_evaluation(x, y, bs=n)`` with
  ``torch.set_num_threads(cores)``; inputs are shaped ``(n, 1, 1, d)`` (one channel, a
  1 x d image, the layout robnp's Square attack assumes) and the network flattens
  them.

Reported: wall time of each (median of ``--repeats``; robnp after a warm-up on 20
points, which loads its compiled kernels), the ratio reference / robnp, the robust
accuracy after each stage and at the end for both, and the number of points whose
final verdict differs. The two use different random numbers (starts, Square's
windows), so close agreement, not equality, is expected.

Needs ``torch`` and the reference package ``autoattack`` importable (for example a
separate virtual environment with both and robnp installed); without them it prints
why it skips and exits 0.

Run: ``python benchmarks/bench_autoattack.py [--width 512] [--points 400] [--eps 0.02]
[--repeats 1] [--json out.json]``; ``--smoke`` runs tiny sizes only.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import sys
import time

import numpy as np

import robnp
from robnp.data.synthetic import make_blobs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_engine import machine, report  # noqa: E402

N_CLASSES = 10
STAGES = ("aa-apgd-ce", "aa-apgd-t", "aa-fab-t", "aa-square")
REFERENCE_STAGES = ("apgd-ce", "apgd-t", "fab-t", "square")


def reference_available() -> str | None:
    """None when torch and the reference ``autoattack`` import, else why not."""
    try:
        import torch  # noqa: F401
    except ImportError as error:
        return f"torch is not installed ({error})"
    try:
        from autoattack import AutoAttack  # noqa: F401
    except ImportError as error:
        return f"the reference package autoattack is not installed ({error})"
    return None


def make_task(width: int, n_points: int, seed: int = 0):
    """A trained float32 MLP and ``n_points`` test points, inputs in [0, 1]."""
    X, y = make_blobs(2000 + n_points, 0.15, n_classes=N_CLASSES, seed=seed)
    lower, upper = X[:2000].min(axis=0) - 0.1, X[:2000].max(axis=0) + 0.1
    X = np.clip((X - lower) / (upper - lower), 0, 1).astype(np.float32)
    model = robnp.MLP(2, (width, width), N_CLASSES, seed=seed)
    robnp.fit(model, X[:2000], y[:2000], max_epochs=20, seed=seed)
    return model, X[2000:], y[2000:]


def torch_copy(model):
    """The same network as a ``torch.nn.Sequential`` taking (n, 1, 1, d) inputs."""
    import torch

    layers = [torch.nn.Flatten()]
    for index, (W, b) in enumerate(zip(model.coefs_, model.intercepts_)):
        linear = torch.nn.Linear(W.shape[0], W.shape[1])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
            linear.bias.copy_(torch.from_numpy(np.array(b)))
        layers.append(linear)
        if index < len(model.layer_sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers).eval()


def run_robnp(model, X, y, eps, cores):
    evaluation = robnp.evaluate(model, X, y, eps=(eps,),
                                attacks=[("autoattack", {"bounds": (0.0, 1.0),
                                                         "n_threads": cores})], seed=0)
    stages = {name: evaluation.robust_accuracy(name)[eps] for name in STAGES
              if name in evaluation.attacks}
    return ~evaluation.worst_success[0], stages, evaluation.clean_acc


def run_reference(net, X, y, eps):
    import torch
    from autoattack import AutoAttack

    x = torch.from_numpy(X.reshape(len(X), 1, 1, -1))
    labels = torch.from_numpy(y)
    adversary = AutoAttack(net, norm="Linf", eps=eps, version="standard", device="cpu",
                           seed=0, verbose=True)
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        x_adv = adversary.run_standard_evaluation(x, labels, bs=len(X))
    with torch.no_grad():
        robust = (net(x_adv).argmax(dim=1) == labels).numpy()
    stages = {}
    for line in log.getvalue().splitlines():
        found = re.search(r"robust accuracy after ([\w-]+)\s*:\s*([\d.]+)%", line,
                          re.IGNORECASE)
        if found:
            stages[found.group(1).lower()] = float(found.group(2)) / 100
    return robust, stages


def timed(fn, repeats):
    """The first call's result and the median wall time of ``repeats`` calls."""
    samples, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        samples.append(time.perf_counter() - start)
        result = value if result is None else result
    return result, float(np.median(samples))


def run(width, n_points, eps, repeats) -> dict:
    import torch

    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    model, X, y = make_task(width, n_points)
    net = torch_copy(model)
    with torch.no_grad():
        same_logits = float(np.abs(net(torch.from_numpy(X.reshape(len(X), 1, 1, -1))).numpy()
                                   - model.logits(X)).max())
    run_robnp(model, X[:20], y[:20], eps, cores)  # warm-up: Numba's cache, thread pool
    (ours, ours_stages, clean), robnp_s = timed(lambda: run_robnp(model, X, y, eps, cores),
                                                repeats)
    (theirs, their_stages), reference_s = timed(lambda: run_reference(net, X, y, eps),
                                                repeats)
    return {"machine": machine(), "torch": torch.__version__, "cores": cores,
            "width": width, "points": len(y), "eps": eps, "repeats": repeats,
            "clean_acc": clean, "logit_difference": same_logits,
            "robnp_s": robnp_s, "reference_s": reference_s, "speedup": reference_s / robnp_s,
            "robnp_robust": float(ours.mean()), "reference_robust": float(theirs.mean()),
            "robnp_stages": ours_stages, "reference_stages": their_stages,
            "disagree": int(np.sum(ours != theirs))}


def markdown(r: dict) -> str:
    stages = " / ".join(f"{r['robnp_stages'].get(a, float('nan')):.4f}" for a in STAGES)
    theirs = " / ".join(f"{r['reference_stages'].get(a, float('nan')):.4f}"
                        for a in REFERENCE_STAGES)
    return "\n".join([
        f"Width {r['width']}, 10-class blobs in [0, 1], {r['points']} points, eps "
        f"{r['eps']}, L-infinity, {r['cores']} cores each (torch {r['torch']}), median of "
        f"{r['repeats']} after a warm-up; largest logit difference between the two "
        f"networks {r['logit_difference']:.1e}; clean accuracy {r['clean_acc']:.4f}.", "",
        "| | wall s | robust accuracy | after apgd-ce / apgd-t / fab-t / square |",
        "|---|---|---|---|",
        f"| robnp `autoattack` | {r['robnp_s']:.2f} | {r['robnp_robust']:.4f} | {stages} |",
        f"| reference on PyTorch | {r['reference_s']:.2f} | {r['reference_robust']:.4f} | "
        f"{theirs} |", "",
        f"Reference / robnp wall time: x{r['speedup']:.2f}; points whose final verdict "
        f"differs: {r['disagree']} of {r['points']}."])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--points", type=int, default=400)
    parser.add_argument("--eps", type=float, default=0.02)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check it runs")
    parser.add_argument("--json", help="also write the raw numbers here")
    args = parser.parse_args()
    missing = reference_available()
    if missing:
        print(f"bench_autoattack skipped: {missing}. Install torch and the reference "
              "AutoAttack package (fra31/auto-attack) beside robnp to run it.")
        return
    if args.smoke:
        args.width, args.points, args.repeats = 16, 40, 1
    result = run(args.width, args.points, args.eps, args.repeats)
    report(result, markdown(result), args.json)


if __name__ == "__main__":
    main()
