"""Attack benchmark: the study's PGD, the paper's PGD-CW, APGD-CE against the GEMM floor,
and the thread speed-up on a large batch.

For the study's net (2 inputs, two hidden layers of width w, 2 classes; circles, 400
test points, five eps 0.01 .. 0.5):

* ``pgd``: the study's PGD-10 at the five eps through the registry (the attack only,
  no accuracy pass);
* ``pgd-cw``: 40 steps on the CW margin from a random start, per-sample best;
* ``apgd-ce``: APGD on the cross-entropy, 100 iterations (only points correct when
  clean are attacked, as in the reference code);
* each attack on one thread (``n_threads=1``), as its floor is timed;
* the floor of each: every matrix product the attack does, at its own shape (rows per
  call: the batch, or the fixed chunks of rows the kernels run on), each timed alone on
  one BLAS thread through the same BLAS the kernels call, in the same run; the ratio
  time / floor is what the arithmetic cannot explain;
* threads: ``pgd-cw`` on a large batch with ``n_threads=1`` and with every core, and
  whether the two results are bit-identical.

Run: ``python benchmarks/bench_attacks.py [--repeats 5] [--widths 16 128 256]
[--points 400] [--big 8192] [--json out.json]``; ``--smoke`` runs tiny sizes only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from numba import njit

import robnp
from robnp.attacks import get_attack
from robnp.attacks._threat import ATTACK_CHUNK_ROWS
from robnp.threads import blas_threads

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_engine import machine, median_time, report  # noqa: E402

EPSILONS = (0.01, 0.05, 0.1, 0.2, 0.5)


@njit(cache=False)
def _dots(a, b, c, n):
    for _ in range(n):
        np.dot(a, b, c)


def gemm_seconds(m: int, k: int, n: int, repeats: int, cache: dict) -> float:
    """Median time of one float32 ``(m, k) @ (k, n)`` product through the BLAS the
    kernels call, on one thread."""
    key = (m, k, n)
    if key not in cache:
        a = np.ones((m, k), np.float32)
        b = np.ones((k, n), np.float32)
        c = np.empty((m, n), np.float32)
        inner = max(1, int(2e7 / (2 * m * k * n + 1e4)))
        _dots(a, b, c, 1)
        with blas_threads(1):
            cache[key] = median_time(lambda: _dots(a, b, c, inner), repeats) / inner
    return cache[key]


def pass_shapes(sizes, rows: int, gradient: bool) -> list[tuple[int, int, int]]:
    """The products of a forward pass over ``rows`` rows, and of the input-gradient
    backward pass when ``gradient``."""
    shapes = [(rows, a, b) for a, b in zip(sizes[:-1], sizes[1:])]
    if gradient:
        shapes += [(rows, b, a) for a, b in zip(sizes[:-1], sizes[1:])]
    return shapes


def chunks(rows: int) -> list[int]:
    return [min(ATTACK_CHUNK_ROWS, rows - s) for s in range(0, rows, ATTACK_CHUNK_ROWS)]


def floor_seconds(passes, sizes, repeats, cache) -> tuple[float, float]:
    """``passes``: (rows per call, number of such passes, with gradient). Returns the
    summed GEMM time and the FLOPs."""
    seconds = flops = 0.0
    for rows, count, gradient in passes:
        for m, k, n in pass_shapes(sizes, rows, gradient):
            seconds += count * gemm_seconds(m, k, n, repeats, cache)
            flops += count * 2.0 * m * k * n
    return seconds, flops


def workloads(width: int, n_points: int, n_correct: int):
    """(name, options, passes) of every timed attack; see :func:`floor_seconds`."""
    n_eps = len(EPSILONS)
    stacked = n_eps * n_points
    # the gradient at the clean points once, then 9 more steps per eps
    study = [(n_points, 1 + n_eps * 9, True)]
    cw = [(m, 40, True) for m in chunks(stacked)] + [(m, 1, False) for m in chunks(stacked)]
    attacked = n_eps * n_correct
    apgd = [(n_points, 1, False)] + [(m, 101, True) for m in chunks(attacked)]
    return [("pgd", {}, study), ("pgd-cw", {}, cw), ("apgd-ce", {}, apgd)]


def run(widths, n_points, repeats, big) -> dict:
    X, y = robnp.make_circles(2000, 0.15, seed=42)
    X_train, X_test, y_train, y_test = robnp.train_test_split(X, y)
    X_test, y_test = X_test[:n_points], y_test[:n_points]
    rows, cache = [], {}
    for width in widths:
        model = robnp.MLP(2, (width, width), 2, seed=0)
        robnp.fit(model, X_train, y_train, max_epochs=5)
        sizes = (2, width, width, 2)
        n_correct = int((model.predict(X_test) == y_test).sum())
        for name, options, passes in workloads(width, len(y_test), n_correct):
            spec = get_attack(name)
            # one thread, as the floor is timed; the thread speed-up is measured apart
            one = {"n_threads": 1} if "n_threads" in spec.options.field_names() else {}
            opts = spec.make_options({**options, **one})

            def attack():
                spec.run(model, X_test, y_test, EPSILONS, opts, np.random.default_rng(0))

            seconds = median_time(attack, repeats)
            floor, flops = floor_seconds(passes, sizes, repeats, cache)
            rows.append({"width": width, "attack": name, "ms": seconds * 1e3,
                         "gflop": flops / 1e9, "floor_ms": floor * 1e3,
                         "ratio": seconds / floor, "gflops": flops / seconds / 1e9})
    threads = None
    if big:
        width = widths[-1]
        model = robnp.MLP(2, (width, width), 2, seed=0)
        rng = np.random.default_rng(1)
        Xb = rng.normal(size=(big, 2)).astype(np.float32)
        yb = model.predict(Xb)
        spec = get_attack("pgd-cw")
        results, times = {}, {}
        for n_threads in (1, os.cpu_count() or 1):
            opts = spec.make_options({"n_threads": n_threads, "steps": 10})
            times[n_threads] = median_time(
                lambda: spec.run(model, Xb, yb, (0.1,), opts, np.random.default_rng(0)),
                repeats)
            results[n_threads] = spec.run(model, Xb, yb, (0.1,), opts, np.random.default_rng(0))
        many = max(times)
        threads = {"rows": big, "width": width, "cores": many,
                   "one_thread_ms": times[1] * 1e3, "all_threads_ms": times[many] * 1e3,
                   "speedup": times[1] / times[many],
                   "identical": bool(np.array_equal(results[1][0], results[many][0]))}
    return {"machine": machine(), "repeats": repeats, "points": len(y_test), "rows": rows,
            "threads": threads}


def markdown(result: dict) -> str:
    lines = [f"Medians of {result['repeats']} repeats, {result['points']} points, eps "
             f"{', '.join(map(str, EPSILONS))}. Floor: every matrix product of the attack "
             "at its own shape, timed alone on one BLAS thread in the same run.", "",
             "| width | attack | ms | GFLOP | GFLOP/s | floor ms | time / floor |",
             "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['width']} | {r['attack']} | {r['ms']:.3f} | {r['gflop']:.4f} | "
                     f"{r['gflops']:.1f} | {r['floor_ms']:.3f} | {r['ratio']:.2f} |")
    t = result["threads"]
    if t:
        lines += ["", f"Threads: pgd-cw (10 steps) on {t['rows']} rows at width {t['width']}: "
                  f"{t['one_thread_ms']:.1f} ms on one thread, {t['all_threads_ms']:.1f} ms on "
                  f"{t['cores']} (x{t['speedup']:.2f}); results bit-identical: "
                  f"{t['identical']}."]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64, 128, 256, 512])
    parser.add_argument("--points", type=int, default=400)
    parser.add_argument("--big", type=int, default=8192,
                        help="rows of the thread benchmark (0: skip it)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check it runs")
    parser.add_argument("--json", help="also write the raw numbers here")
    args = parser.parse_args()
    if args.smoke:
        args.widths, args.points, args.repeats, args.big = [16, 128], 400, 3, 1024
    start = time.perf_counter()
    result = run(args.widths, args.points, args.repeats, args.big)
    result["seconds"] = time.perf_counter() - start
    report(result, markdown(result), args.json)


if __name__ == "__main__":
    main()
