"""Engine benchmark: training epochs and PGD against this machine's FLOP floor.

For the study's net (2 inputs, two hidden layers of width w, 2 classes) at widths
16..512, on the study's data (1600 training points, batch 256, 400 test points):

* warm time per training epoch (median over repeats of a 20-epoch fit, per epoch);
* warm time of PGD-10 at the study's five eps on 400 points (``robust_accuracy``,
  which includes the final accuracy pass);
* the multiply-add FLOPs of each (see ``epoch_flops`` and ``pgd_flops``), divided by
  the float32 matrix-multiply rate (2048^3 on one BLAS thread, the faster of NumPy's
  BLAS and the one the kernels call) measured just before and after that width's
  timings: that quotient is the "FLOP floor", and time / floor is reported;
* first-call time (Numba compilation included, empty cache) against warm time,
  measured in a fresh subprocess.

Run: ``python benchmarks/bench_engine.py [--repeats 7] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
from numba import njit

import robnp
from robnp.threads import blas_threads

WIDTHS = (16, 32, 64, 128, 256, 512)
EPSILONS = (0.01, 0.05, 0.1, 0.2, 0.5)


def layer_macs(width: int) -> tuple[int, ...]:
    sizes = (2, width, width, 2)
    return tuple(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def epoch_flops(width: int, n_train: int = 1600) -> float:
    """Matrix-product FLOPs of one epoch: forward, weight gradients, and the
    backward pass of deltas through every layer but the first."""
    macs = layer_macs(width)
    return 2.0 * n_train * (sum(macs) + sum(macs) + sum(macs[1:]))


def pgd_flops(width: int, n_points: int = 400, steps: int = 10, n_eps: int = 5,
              shared_first_gradient: bool = True) -> float:
    """FLOPs of PGD at ``n_eps`` radii as ``robust_accuracy`` runs it: per eps,
    ``steps`` forward + input-gradient passes and one forward pass for the accuracy,
    except that the first step's gradient (at the clean points, the same for every
    eps) is computed once when ``shared_first_gradient``."""
    macs = sum(layer_macs(width))
    gradients = n_eps * steps - (n_eps - 1 if shared_first_gradient and steps else 0)
    return 2.0 * n_points * macs * (2 * gradients + n_eps)


def median_time(fn, repeats: int, inner: int = 1) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - start) / inner)
    return float(np.median(samples))


@njit(cache=False)
def _numba_dot(a, b, c):
    np.dot(a, b, c)


def matmul_rate(m: int, k: int, n: int, repeats: int) -> float:
    """Float32 GEMM rate in FLOP/s on one BLAS thread, median of repeats: the
    higher of NumPy's BLAS and the one Numba-compiled kernels call (SciPy's
    OpenBLAS), which are separate libraries whose speeds differ from hour to hour."""
    rng = np.random.default_rng(0)
    a = rng.random((m, k), dtype=np.float32)
    b = rng.random((k, n), dtype=np.float32)
    c = np.empty((m, n), np.float32)
    inner = max(1, int(2e9 / (2 * m * k * n)))
    with blas_threads(1):
        seconds = min(median_time(lambda: np.dot(a, b, c), repeats, inner),
                      median_time(lambda: _numba_dot(a, b, c), repeats, inner))
    return 2.0 * m * k * n / seconds


def report(result: dict, table: str, json_path: str | None) -> None:
    """What every benchmark ends with: the machine, the table, and the raw numbers in
    ``json_path`` when one is given."""
    print(json.dumps(result["machine"]))
    print(table)
    if json_path:
        with open(json_path, "w") as handle:
            json.dump(result, handle, indent=2)


def machine() -> dict:
    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import numba
    import scipy

    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "numba": numba.__version__, "scipy": scipy.__version__,
            "platform": platform.platform()}


_COLD_SCRIPT = """
import time, sys
t0 = time.perf_counter()
import robnp
X, y = robnp.make_circles(2000, 0.15, seed=42)
Xtr, Xte, ytr, yte = robnp.train_test_split(X, y)
t1 = time.perf_counter()
m = robnp.MLP(2, (16, 16), 2, seed=0)
robnp.fit(m, Xtr, ytr, max_epochs=1)
t2 = time.perf_counter()
robnp.robust_accuracy(m, Xte, yte, "pgd", eps=[0.1])
t3 = time.perf_counter()
robnp.fit(m, Xtr, ytr, max_epochs=1)
t4 = time.perf_counter()
robnp.robust_accuracy(m, Xte, yte, "pgd", eps=[0.1])
t5 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)
"""


def first_call_times() -> dict:
    """Import, first fit and first PGD with an empty Numba cache, then warm repeats."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out = subprocess.run([sys.executable, "-c", _COLD_SCRIPT], env=env, check=True,
                             capture_output=True, text=True).stdout.split()
        cold = [float(v) for v in out]
        out = subprocess.run([sys.executable, "-c", _COLD_SCRIPT], env=env, check=True,
                             capture_output=True, text=True).stdout.split()
        cached = [float(v) for v in out]
    return {"import_s": cold[0], "first_fit_epoch_s": cold[1], "first_pgd_s": cold[2],
            "warm_fit_epoch_s": cold[3], "warm_pgd_s": cold[4],
            "cached_first_fit_epoch_s": cached[1], "cached_first_pgd_s": cached[2]}


def run(repeats: int) -> dict:
    X, y = robnp.make_circles(2000, 0.15, seed=42)
    X_train, X_test, y_train, y_test = robnp.train_test_split(X, y)
    rows = []
    for width in WIDTHS:
        model = robnp.MLP(2, (width, width), 2, seed=0)
        robnp.fit(model, X_train, y_train, max_epochs=2)
        epochs = 20
        # The reference rate is measured right next to this width's timings, so that
        # a shared machine's drift affects both sides of the ratio alike.
        rate_before = matmul_rate(2048, 2048, 2048, repeats)
        epoch_s = median_time(lambda: robnp.fit(model, X_train, y_train, max_epochs=epochs,
                                                patience=10**6), repeats) / epochs
        pgd_s = median_time(lambda: robnp.robust_accuracy(model, X_test, y_test, "pgd",
                                                          eps=EPSILONS), repeats)
        rate = max(rate_before, matmul_rate(2048, 2048, 2048, repeats))
        shape_rate = matmul_rate(256, width, width, repeats)
        rows.append({
            "width": width, "params": model.n_params, "gemm_gflops_2048": rate / 1e9,
            "epoch_ms": epoch_s * 1e3, "epoch_gflop": epoch_flops(width) / 1e9,
            "epoch_floor_ms": epoch_flops(width) / rate * 1e3,
            "epoch_ratio": epoch_s / (epoch_flops(width) / rate),
            "epoch_gflops": epoch_flops(width) / epoch_s / 1e9,
            "pgd_ms": pgd_s * 1e3, "pgd_gflop": pgd_flops(width) / 1e9,
            "pgd_floor_ms": pgd_flops(width) / rate * 1e3,
            "pgd_ratio": pgd_s / (pgd_flops(width) / rate),
            "pgd_ratio_nominal": pgd_s / (pgd_flops(width, shared_first_gradient=False) / rate),
            "pgd_gflops": pgd_flops(width) / pgd_s / 1e9,
            "gemm_256xwxw_gflops": shape_rate / 1e9,
        })
    return {"machine": machine(), "repeats": repeats, "rows": rows,
            "first_call": first_call_times()}


def markdown(result: dict) -> str:
    lines = [f"Medians of {result['repeats']} repeats. Reference rate: float32 GEMM 2048^3 on "
             "one BLAS thread, the faster of NumPy's and the kernels' BLAS, measured just "
             "before and just after each width (the higher is used). PGD / floor counts the "
             "FLOPs done (the first gradient shared by the five eps); the nominal floor "
             "counts all 50 gradients.", "",
             "| width | params | GEMM 2048^3 GFLOP/s | epoch ms | epoch GFLOP/s | floor ms "
             "| epoch / floor | PGD-10 x5 eps ms | PGD GFLOP/s | floor ms | PGD / floor "
             "| PGD / nominal floor | GEMM 256xwxw GFLOP/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['width']} | {r['params']:,} | {r['gemm_gflops_2048']:.1f} | "
                     f"{r['epoch_ms']:.3f} | "
                     f"{r['epoch_gflops']:.1f} | {r['epoch_floor_ms']:.3f} | "
                     f"{r['epoch_ratio']:.2f} | {r['pgd_ms']:.3f} | {r['pgd_gflops']:.1f} | "
                     f"{r['pgd_floor_ms']:.3f} | {r['pgd_ratio']:.2f} | "
                     f"{r['pgd_ratio_nominal']:.2f} | "
                     f"{r['gemm_256xwxw_gflops']:.1f} |")
    fc = result["first_call"]
    lines += ["", "First call with an empty Numba cache (width 16, fresh process): "
              f"import {fc['import_s']:.2f} s, first 1-epoch fit {fc['first_fit_epoch_s']:.2f} s "
              f"(warm {fc['warm_fit_epoch_s'] * 1e3:.2f} ms), first PGD-10 "
              f"{fc['first_pgd_s']:.2f} s (warm {fc['warm_pgd_s'] * 1e3:.2f} ms). "
              f"With the cache filled, a new process's first fit takes "
              f"{fc['cached_first_fit_epoch_s']:.2f} s and first PGD "
              f"{fc['cached_first_pgd_s']:.2f} s."]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", help="also write the raw numbers here")
    args = parser.parse_args()
    result = run(args.repeats)
    report(result, markdown(result), args.json)


if __name__ == "__main__":
    main()
