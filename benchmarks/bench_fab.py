"""FAB benchmark: FAB-T-100 (and untargeted FAB-100) against their FLOP floor.

The workload: ``blobs`` with 10 classes (noise 0.15, 2 features), an MLP with two
hidden layers of width w (float32, as robnp trains), 400 test points; FAB-T with
AutoAttack's parameters (100 iterations, 1 restart, 9 target classes), L-infinity,
every target run on every point classified correctly (``robnp.attacks.fab(...,
targeted=True)``, the smallest perturbation, no radius), on one thread.

The floor, counted exactly per run, per row and per iteration:

* FAB-T: one forward pass and one backward pass to the input (the gradient of
  ``z_t - z_y``): ``2 sum_l fan_in_l fan_out_l`` multiply-add FLOPs each, so
  ``4 sum_l fan_in_l fan_out_l``;
* FAB: one forward pass and one backward pass per class (every class's gradient, to
  choose the nearest boundary): ``2 (1 + K) sum_l fan_in_l fan_out_l``;
* the two box-constrained hyperplane projections per row (the iterate's and the
  original point's): a sort of the ``d`` breakpoints and about ``20 d`` further
  operations each, under 1e-4 of the products at d = 2; counted in the FLOPs, not in
  the timed floor.

Rows are attacked in the kernels' fixed chunks of ``ATTACK_CHUNK_ROWS``; the floor's
time is every matrix product of those passes at its own shape (rows per chunk), in the
model's dtype (float32), timed alone on one BLAS thread through the BLAS the kernels
call. Each repeat times the attack and then the floor's products, so both see the same
machine, in CPU seconds of the process (on a shared machine a one-thread run's CPU time
moves far less than its wall time); the ratio reported is the median over repeats of
time / floor. What the
attack does beyond the floor: a forward pass over the rows stepped back after a success
(the other rows' next forward pass is the check's; the extra passes per row and
iteration, ``extra``, are reported: FAB's iterates cross the boundary on most
iterations, so the algorithm itself needs about ``1 + extra`` forward passes per
iteration, and the last column counts them in the floor; when most rows of a chunk
stepped back, the kernel passes the whole chunk forward), the elementwise work of
the passes (bias, ReLU, its mask) and the projections.

Threads: FAB-T at the widest width with ``n_threads=1`` and with every core, and
whether the two results are bit-identical.

Run: ``python benchmarks/bench_fab.py [--repeats 3] [--widths 128 256 512]
[--points 400] [--json out.json]``; ``--smoke`` runs tiny sizes only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from numba import njit

import robnp
from robnp import kernels
from robnp.attacks import fab
from robnp.attacks._threat import ATTACK_CHUNK_ROWS
from robnp.data.synthetic import make_blobs
from robnp.threads import blas_threads

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_engine import machine, median_time, report  # noqa: E402

N_CLASSES = 10
N_ITER = 100
N_TARGETS = 9


@njit(cache=False)
def _dots(a, b, c, n):
    for _ in range(n):
        np.dot(a, b, c)


def gemm_seconds(m, k, n, dtype, cache) -> float:
    """Time of one ``(m, k) @ (k, n)`` product in ``dtype`` through the BLAS the kernels
    call, on one thread (the median of 5 timings of a loop of at least 2e7 FLOPs)."""
    key = (m, k, n)
    if key not in cache:
        a = np.ones((m, k), dtype)
        b = np.ones((k, n), dtype)
        c = np.empty((m, n), dtype)
        inner = max(1, int(2e7 / (2 * m * k * n + 1e4)))
        _dots(a, b, c, 1)
        with blas_threads(1):
            samples = []
            for _ in range(5):
                start = clock()
                _dots(a, b, c, inner)
                samples.append(clock() - start)
            cache[key] = float(np.median(samples)) / inner
    return cache[key]


def chunks(rows: int) -> list[int]:
    return [min(ATTACK_CHUNK_ROWS, rows - s) for s in range(0, rows, ATTACK_CHUNK_ROWS)]


def floor(sizes, rows, runs, backward, dtype) -> tuple[float, float]:
    """Seconds and FLOPs of ``runs`` runs of ``N_ITER`` iterations on ``rows`` rows,
    each iteration a forward pass and ``backward`` backward passes to the input, and
    the seconds of the forward passes alone; the products timed afresh."""
    seconds = flops = forward_seconds = 0.0
    cache = {}
    layers = list(zip(sizes[:-1], sizes[1:]))
    for m in chunks(rows):
        for a, b in layers:
            forward = gemm_seconds(m, a, b, dtype, cache)
            back = gemm_seconds(m, b, a, dtype, cache)
            seconds += runs * N_ITER * (forward + backward * back)
            forward_seconds += runs * N_ITER * forward
            flops += runs * N_ITER * (1 + backward) * 2.0 * m * a * b
    d = sizes[0]
    flops += runs * N_ITER * rows * 2 * (20 * d + d * np.log2(max(d, 2)))  # projections
    return seconds, flops, forward_seconds


def clock() -> float:
    """CPU seconds of this process: on a shared machine a one-thread run's CPU time
    moves far less than its wall time (both the attack and the floor use it)."""
    return time.process_time()


def counting(attack):
    """``attack()`` once, and the rows its compiled loops passed forward again after a
    success (what ``kernels.fab_rows`` returns), summed."""
    original = kernels.fab_rows
    total = 0

    def fab_rows(*args):
        nonlocal total
        back = original(*args)
        total += back
        return back

    kernels.fab_rows = fab_rows
    try:
        return attack(), total
    finally:
        kernels.fab_rows = original


def make_model(width, n_points, seed=0):
    X, y = make_blobs(2000 + n_points, 0.15, n_classes=N_CLASSES, seed=seed)
    model = robnp.MLP(2, (width, width), N_CLASSES, seed=seed)
    robnp.fit(model, X[:2000], y[:2000], max_epochs=20, seed=seed)
    return model, X[2000:], y[2000:]


def run(widths, n_points, repeats, untargeted=True) -> dict:
    rows = []
    for width in widths:
        model, X, y = make_model(width, n_points)
        sizes = model.layer_sizes
        n_correct = int((model.predict(X) == y).sum())
        cases = [("fab-t", True, min(N_TARGETS, N_CLASSES - 1), 1)]
        if untargeted:
            cases.append(("fab", False, 1, N_CLASSES))
        for name, targeted, runs, backward in cases:
            def attack():
                return fab(model, X, y, targeted=targeted, n_iter=N_ITER, n_threads=1,
                           seed=0)

            found, back = counting(attack)  # compiles, and counts the extra passes
            extra = back / (runs * N_ITER * n_correct)
            times, floors, needed = [], [], []
            for _ in range(repeats):
                start = clock()
                attack()
                times.append(clock() - start)
                seconds, flops, forward = floor(sizes, n_correct, runs, backward,
                                                model.dtype)
                floors.append(seconds)
                needed.append(seconds + extra * forward)
            ratios = np.array(times) / np.array(floors)
            rows.append({"width": width, "attack": name, "points": len(y),
                         "attacked": n_correct, "runs": runs, "s": float(np.median(times)),
                         "gflop": flops / 1e9, "floor_s": float(np.median(floors)),
                         "ratio": float(np.median(ratios)),
                         "gflops": flops / float(np.median(times)) / 1e9,
                         "extra_forward": extra,
                         "ratio_with_extra": float(np.median(np.array(times)
                                                             / np.array(needed))),
                         "robust_at_0.1": found.robust_accuracy(0.1)})
    width = widths[-1]
    model, X, y = make_model(width, n_points)
    results, times = {}, {}
    cores = os.cpu_count() or 1
    for n_threads in sorted({1, cores}):
        def call():
            return fab(model, X, y, targeted=True, n_iter=N_ITER, n_threads=n_threads,
                       seed=0)
        times[n_threads] = median_time(call, repeats)
        results[n_threads] = call()
    threads = {"width": width, "cores": cores, "one_thread_s": times[1],
               "all_threads_s": times[cores], "speedup": times[1] / times[cores],
               "identical": bool(np.array_equal(results[1].points, results[cores].points)
                                 and np.array_equal(results[1].norms, results[cores].norms))}
    return {"machine": machine(), "repeats": repeats, "rows": rows, "threads": threads}


def markdown(result: dict) -> str:
    lines = [f"Medians of {result['repeats']} repeats, CPU seconds; 10-class blobs, 2 "
             f"features, {N_ITER} iterations, L-infinity, one thread, float32. Floor: a "
             "forward and one backward pass (FAB-T) or one per class (FAB) per row and "
             "iteration, every product at its own chunk shape timed alone on one BLAS "
             "thread right after each repeat; the ratio is the median of the repeats' time "
             "/ floor. `extra`: forward passes beyond one per row and iteration (over the rows "
             "stepped back after a success); the last column counts them in the floor.", "",
             "| width | attack | points attacked | runs | s | GFLOP | GFLOP/s | floor s "
             "| extra | time / floor | time / (floor + extra) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['width']} | {r['attack']} | {r['attacked']} | {r['runs']} | "
                     f"{r['s']:.2f} | {r['gflop']:.1f} | {r['gflops']:.1f} | "
                     f"{r['floor_s']:.2f} | {r['extra_forward']:.2f} | {r['ratio']:.2f} | "
                     f"{r['ratio_with_extra']:.2f} |")
    t = result["threads"]
    lines += ["", f"Threads: FAB-T at width {t['width']}: {t['one_thread_s']:.2f} s on one "
              f"thread, {t['all_threads_s']:.2f} s on {t['cores']} (x{t['speedup']:.2f}); "
              f"results bit-identical: {t['identical']}."]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--widths", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--points", type=int, default=400)
    parser.add_argument("--targeted-only", action="store_true",
                        help="skip untargeted FAB (ten backward passes per iteration)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check it runs")
    parser.add_argument("--json", help="also write the raw numbers here")
    args = parser.parse_args()
    if args.smoke:
        args.widths, args.points, args.repeats = [16], 60, 1
    start = time.perf_counter()
    result = run(args.widths, args.points, args.repeats, not args.targeted_only)
    result["seconds"] = time.perf_counter() - start
    report(result, markdown(result), args.json)


if __name__ == "__main__":
    main()
