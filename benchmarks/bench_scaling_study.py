"""The scaling study's small preset against its FLOP floor and against the default sweep.

In one benchmark run, on this machine:

1. ``robnp sweep`` with its defaults (the robustness-scaling study), wall time: the
   yardstick;
2. ``robnp scaling run --preset small`` (every run of the grid and of the
   compute-optimal test, the fits with 100 bootstrap replicates, the figures), wall
   time, with ``--jobs`` workers;
3. its FLOP floor: every matrix product the runs do, each at its own shape, timed
   alone on one BLAS thread through the BLAS the kernels call (``gemm_seconds`` of
   ``bench_attacks``), summed over runs and divided by the workers (a perfect
   packing; never below the longest run's floor). Per run: its TRADES training (per
   chunk of r rows of each minibatch: a clean forward, 10 attack steps of a forward
   and an input-gradient backward, a forward over the 2r stacked clean and
   adversarial rows, their weight gradients and the deltas below every layer but the
   first) and, per checkpoint, ``pgd-cw``'s 40 steps on the test sample (a forward and
   an input-gradient backward per step, in chunks of ``ATTACK_CHUNK_ROWS``) with the
   final forward passes.

The ratio ``wall / floor`` is what the study's target (within 1.5x) is about; the
sweep's time in the same run says how the study's cost compares with the main job's.

Run: ``python benchmarks/bench_scaling_study.py [--jobs 2] [--preset small]
[--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_attacks import gemm_seconds  # noqa: E402
from bench_engine import machine  # noqa: E402

from robnp.attacks._threat import ATTACK_CHUNK_ROWS  # noqa: E402
from robnp.scaling.study import ScalingConfig, ScalingTask  # noqa: E402
from robnp.training.fit import TRAIN_CHUNK_ROWS  # noqa: E402


def _chunks(rows: int, size: int) -> list[int]:
    return [min(size, rows - s) for s in range(0, rows, size)]


def run_shapes(task: ScalingTask) -> dict:
    """(m, k, n) -> count of every product of one run (module docstring)."""
    c = task.config
    sizes = task.sizes
    layers = list(zip(sizes[:-1], sizes[1:]))
    counts: dict = {}

    def add(shape, times=1):
        counts[shape] = counts.get(shape, 0) + times

    batch = c.batch_size_for(task.examples)
    batches = _chunks(task.examples, batch)
    for rows in batches:
        for r in _chunks(rows, TRAIN_CHUNK_ROWS):
            for a, b in layers:
                add((r, a, b), 1 + c.attack_steps)
                add((r, b, a), c.attack_steps)
                add((2 * r, a, b))
                add((a, 2 * r, b))
            for a, b in layers[1:]:
                add((2 * r, b, a))
    for _ in c.checkpoints:
        for r in _chunks(c.n_test, ATTACK_CHUNK_ROWS):
            for a, b in layers:
                add((r, a, b), c.eval_steps + 3)  # steps, the best point's and the loss's
                add((r, b, a), c.eval_steps)
    return counts


def floor(tasks, workers: int, repeats: int) -> dict:
    cache: dict = {}
    per_run = []
    for task in tasks:
        seconds = sum(count * gemm_seconds(m, k, n, repeats, cache)
                      for (m, k, n), count in run_shapes(task).items())
        per_run.append(seconds)
    total = sum(per_run)
    return {"total_seconds": total, "longest_run_seconds": max(per_run),
            "floor_seconds": max(total / workers, max(per_run)), "n_runs": len(per_run)}


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def optimal_runs(config: ScalingConfig, document: dict) -> list[ScalingTask]:
    plan = document.get("optimal") or {}
    if "runs" not in plan:
        return []
    return [ScalingTask(config, plan["source"], run["width"], run["examples"], seed)
            for run in plan["runs"] for seed in plan["seeds"]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--preset", default="small")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--keep", help="keep the study's directory here")
    parser.add_argument("--json", help="also write the raw numbers here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="robnp-bench-"))
    out = Path(args.keep) if args.keep else work / "study"
    shutil.rmtree(out, ignore_errors=True)
    robnp = [sys.executable, "-m", "robnp_cli.main"]
    sweep = timed(robnp + ["sweep", "--out", str(work / "sweep"), "--quiet",
                           "--jobs", str(args.jobs)])
    study = timed(robnp + ["scaling", "run", "--preset", args.preset, "--out", str(out),
                           "--jobs", str(args.jobs), "--quiet"])
    document = json.loads((out / "scaling.json").read_text())
    config = ScalingConfig.from_dict(document["config"])
    tasks = config.tasks() + optimal_runs(config, document)
    bound = floor(tasks, args.jobs, args.repeats)
    result = {"machine": machine(), "jobs": args.jobs, "preset": args.preset,
              "sweep_seconds": sweep, "study_seconds": study, **bound,
              "ratio_to_floor": study / bound["floor_seconds"],
              "ratio_to_sweep": study / sweep}
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
