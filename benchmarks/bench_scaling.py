"""Benchmark of the default Approach 2 fit (paper's 3125-point grid) on 256 points.

Run from the repository root::

    python3 benchmarks/bench_scaling.py [--repeats 5]

Prints the machine, the median and range of the wall time of
``fit_approach2(table)`` with the default :class:`FitConfig`, for a table
without quality (base-only, 250 points) and with four quality levels (joint,
256 points), plus one timing of the full default ``robnp scaling fit
--approach 2`` analysis without figures (fit, 200 bootstrap replicates and
the cross-check).  The data are synthetic losses with 1% log-normal noise.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robnp.scaling import (  # noqa: E402
    AnalysisConfig, Approach2Law, FitConfig, analyze, fit_approach2, make_table,
)

TRUTH = Approach2Law(A=8.0, B=20.0, E=0.3, alpha=0.35, beta=0.30, eps_q=0.15, zeta=-0.2)


def table(qualities, n_N, n_D, seed=0):
    rng = np.random.default_rng(seed)
    N, D, Q = (a.ravel() for a in np.meshgrid(np.geomspace(1e2, 1e5, n_N), np.geomspace(1e3, 1e6, n_D),
                                               np.asarray(qualities, dtype=float)))
    loss = TRUTH.loss(N, D, Q) * np.exp(0.01 * rng.standard_normal(N.size))
    run = [f"r{i // 4}" for i in range(N.size)]     # 4 checkpoints per run for the bootstrap
    return make_table(N, D, loss, quality=Q if len(qualities) > 1 else None, run=run)


def machine() -> str:
    try:
        cpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines()
                      if line.startswith("Model name")), platform.processor())
    except (OSError, subprocess.CalledProcessError):
        model = platform.processor() or "unknown CPU"
    return (f"{model}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, NumPy {np.__version__}")


def timed(fn, repeats):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"command: python3 benchmarks/bench_scaling.py --repeats {args.repeats}")
    cases = [("base-only, no quality", table((np.inf,), 10, 25)),
             ("joint, 4 quality levels", table((0.05, 0.2, 1.0, np.inf), 8, 8))]
    for name, t in cases:
        times, fit = timed(lambda: fit_approach2(t, FitConfig()), args.repeats)
        conv = fit.convergence[-1]
        print(f"fit_approach2 ({name}, {t.n_rows} points, {conv.n_starts} starts): "
              f"median {statistics.median(times):.2f} s, min {min(times):.2f} s, max {max(times):.2f} s "
              f"over {args.repeats} runs; converged={fit.converged}, a={fit.law.a:.4f} "
              f"(true {TRUTH.a:.4f}), alpha={fit.law.alpha:.4f}, beta={fit.law.beta:.4f}")
    t = cases[1][1]
    times, report = timed(lambda: analyze(t, AnalysisConfig(approaches=(2,), strict=True)), 1)
    boot = report.bootstrap[2]
    print(f"full default Approach 2 analysis ({t.n_rows} points: fit, {boot.n_boot} bootstrap replicates over "
          f"{t.n_runs} runs, cross-check; no figures): {times[0]:.2f} s")


if __name__ == "__main__":
    main()
