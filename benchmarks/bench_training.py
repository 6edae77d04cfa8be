"""Training benchmark: a TRADES-10 epoch against its GEMM floor, the thread speed-up of
one large run, and the peak memory of a width-512 TRADES run.

For the study's net (2 inputs, two hidden layers of width w, 2 classes) on 1600 circles
training points, minibatches of 256 (chunks of 64 rows, the loop's fixed split):

* ``trades``: one epoch of the scaling-law paper's TRADES (10 sign-PGD steps on the KL
  term from a uniform start, eps 0.1), timed as ``History.seconds / epochs`` of a
  fixed-length run (no early stopping), on one thread;
* its floor: every matrix product the epoch's chunks do, each at its own shape, timed
  alone on one BLAS thread through the BLAS the kernels call, right after each
  repeat's epochs (the ratio is the median of the repeats' ratios): per
  chunk of r rows one clean forward over r rows, ten attack steps (a forward and an
  input-gradient backward over r rows), then one forward and one weight-gradient
  backward over the 2r stacked clean and adversarial rows;
* threads: the same run at the largest width with ``n_threads=1`` and with every core,
  and whether the trained parameters are bit-identical;
* memory: a fresh process trains a width-512 TRADES model on 1600 points for two
  epochs; its peak resident set (``ru_maxrss``, the interpreter, NumPy, SciPy and the
  compiled kernels included) and the peak of Python-level allocations
  (``tracemalloc``) during training.

Run: ``python benchmarks/bench_training.py [--repeats 5] [--widths 16 64 256 512]
[--json out.json]``; ``--smoke`` runs tiny sizes only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np

import robnp
from robnp.training.fit import TRAIN_CHUNK_ROWS, TrainConfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_attacks import gemm_seconds  # noqa: E402
from bench_engine import machine, report  # noqa: E402

EPS = 0.1
STEPS = 10
BATCH = 256


def trades_config(epochs: int) -> TrainConfig:
    return TrainConfig(recipe="trades", train_eps=EPS, max_epochs=epochs, patience=None,
                       batch_size=BATCH, seed=0)


def chunk_rows(n_train: int) -> list[int]:
    """Rows of every chunk of one epoch: minibatches of BATCH, each split into chunks of
    TRAIN_CHUNK_ROWS (the last minibatch and its last chunk may be short)."""
    rows = []
    for start in range(0, n_train, BATCH):
        batch = min(BATCH, n_train - start)
        rows += [min(TRAIN_CHUNK_ROWS, batch - s) for s in range(0, batch, TRAIN_CHUNK_ROWS)]
    return rows


def epoch_shapes(sizes, n_train: int) -> list[tuple[int, int, int, int]]:
    """(count, m, k, n) of every product of one TRADES epoch (see the module docstring)."""
    counts: dict[tuple[int, int, int], int] = {}

    def add(shape, times=1):
        counts[shape] = counts.get(shape, 0) + times

    layers = list(zip(sizes[:-1], sizes[1:]))
    for r in chunk_rows(n_train):
        for a, b in layers:
            add((r, a, b), 1 + STEPS)               # clean forward, attack forwards
            add((r, b, a), STEPS)                   # attack input gradients
            add((2 * r, a, b))                      # the training forward
            add((a, 2 * r, b))                      # weight gradients
        for a, b in layers[1:]:
            add((2 * r, b, a))                      # deltas below every layer but the first
    return [(count, *shape) for shape, count in counts.items()]


def floor_seconds(sizes, n_train: int, repeats: int, cache: dict) -> tuple[float, float]:
    seconds = flops = 0.0
    for count, m, k, n in epoch_shapes(sizes, n_train):
        seconds += count * gemm_seconds(m, k, n, repeats, cache)
        flops += count * 2.0 * m * k * n
    return seconds, flops


def epoch_seconds(model_seed: int, width: int, X, y, epochs: int, n_threads: int = 1):
    model = robnp.MLP(2, (width, width), 2, seed=model_seed)
    history = robnp.fit(model, X, y, trades_config(epochs), n_threads=n_threads)
    return history.seconds / history.epochs, history, model


_MEMORY_SCRIPT = """
import resource, sys, tracemalloc
import robnp
from robnp.training.fit import TrainConfig
X, y = robnp.make_circles(2000, 0.15, seed=42)
X, _, y, _ = robnp.train_test_split(X, y)
model = robnp.MLP(2, (512, 512), 2, seed=0)
config = TrainConfig(recipe="trades", train_eps=0.1, max_epochs=1, patience=None)
robnp.fit(model, X[:300], y[:300], config)            # compile and load the kernels
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
robnp.fit(robnp.MLP(2, (512, 512), 2, seed=0), X, y, config.replace(max_epochs=2))
traced = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(len(y), before * 1024, after * 1024, traced)
"""


def memory() -> dict:
    out = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT], capture_output=True,
                         text=True, check=True).stdout.split()
    rows, before, after, traced = (int(v) for v in out)
    return {"points": rows, "rss_before_mb": before / 2**20, "rss_peak_mb": after / 2**20,
            "traced_peak_mb": traced / 2**20}


def run(widths, repeats: int, n_points: int, big_width: int | None) -> dict:
    X, y = robnp.make_circles(n_points * 5 // 4, 0.15, seed=42)
    X, _, y, _ = robnp.train_test_split(X, y)
    X = X.astype(np.float32)
    n_train = len(y)
    rows, cache = [], {}
    for width in widths:
        sizes = (2, width, width, 2)
        epochs = 2 if width >= 256 else 5
        epoch_seconds(0, width, X, y, 1)                    # warm-up
        # Each repeat times the epochs (the loop's own clock, without building the
        # model) and then the floor afresh, so that the machine's drift from minute to
        # minute (at width 16 both moved by up to 2x between runs) falls on both sides
        # of the ratio; the medians are reported.
        epochs_s, floors, ratios = [], [], []
        for _ in range(repeats):
            epochs_s.append(epoch_seconds(0, width, X, y, epochs)[0])
            floors.append(floor_seconds(sizes, n_train, 3, {})[0])
            ratios.append(epochs_s[-1] / floors[-1])
        per_epoch, floor = float(np.median(epochs_s)), float(np.median(floors))
        history = epoch_seconds(0, width, X, y, 1)[1]
        gemm_flops = floor_seconds(sizes, n_train, 1, cache)[1]
        rows.append({"width": width, "epoch_ms": per_epoch * 1e3,
                     "floor_ms": floor * 1e3, "ratio": float(np.median(ratios)),
                     "ratio_range": (min(ratios), max(ratios)),
                     "gemm_gflop": gemm_flops / 1e9,
                     "counted_gflop": float(history.flops_per_epoch[0]) / 1e9,
                     "gflops": float(history.flops_per_epoch[0]) / per_epoch / 1e9})
    threads = None
    if big_width:
        cores = os.cpu_count() or 1
        times, params = {}, {}
        for n_threads in sorted({1, cores}):
            samples = []
            for _ in range(repeats):
                t, _, model = epoch_seconds(0, big_width, X, y, 2, n_threads)
                samples.append(t)
            times[n_threads] = float(np.median(samples))
            params[n_threads] = model.params.copy()
        threads = {"width": big_width, "cores": cores, "one_ms": times[1] * 1e3,
                   "all_ms": times[cores] * 1e3, "speedup": times[1] / times[cores],
                   "identical": bool(np.array_equal(params[1], params[cores]))}
    return {"machine": machine(), "repeats": repeats, "points": n_train, "rows": rows,
            "threads": threads}


def markdown(result: dict, mem: dict | None) -> str:
    lines = [f"Medians of {result['repeats']} repeats, {result['points']} training points, "
             f"minibatches of {BATCH} in chunks of {TRAIN_CHUNK_ROWS} rows, TRADES with {STEPS} "
             f"steps at eps {EPS}, one thread. Floor: every matrix product of the epoch at "
             "its own shape, timed alone on one BLAS thread right after each repeat's epochs; the "
             "ratio is the median of the repeats' ratios.", "",
             "| width | epoch ms | counted GFLOP | GFLOP/s | GEMM GFLOP | floor ms | "
             "epoch / floor (range) |", "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        low, high = r["ratio_range"]
        lines.append(f"| {r['width']} | {r['epoch_ms']:.2f} | {r['counted_gflop']:.3f} | "
                     f"{r['gflops']:.1f} | {r['gemm_gflop']:.3f} | {r['floor_ms']:.2f} | "
                     f"{r['ratio']:.2f} ({low:.2f}-{high:.2f}) |")
    t = result["threads"]
    if t:
        lines += ["", f"Threads: a TRADES epoch at width {t['width']}: {t['one_ms']:.1f} ms "
                  f"on one thread, {t['all_ms']:.1f} ms on {t['cores']} (x{t['speedup']:.2f}); "
                  f"parameters after two epochs bit-identical: {t['identical']}."]
    if mem:
        lines += ["", f"Memory: width-512 TRADES on {mem['points']} points: peak resident "
                  f"set {mem['rss_peak_mb']:.0f} MB (after loading the kernels "
                  f"{mem['rss_before_mb']:.0f} MB); Python-level allocations during "
                  f"training peak at {mem['traced_peak_mb']:.1f} MB."]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 64, 256, 512])
    parser.add_argument("--points", type=int, default=1600)
    parser.add_argument("--json")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat")
    args = parser.parse_args()
    if args.smoke:
        result = run([8, 16], 1, 200, 16)
        mem = None
    else:
        result = run(args.widths, args.repeats, args.points, max(args.widths))
        mem = memory()
    result["memory"] = mem
    report(result, markdown(result, mem), args.json)


if __name__ == "__main__":
    main()
