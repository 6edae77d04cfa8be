"""Full default sweep benchmark: cold and warm wall time, per-width cost, memory, FLOP floor.

* cold: ``robnp sweep`` with an empty Numba cache (compilation included), as after a
  fresh install;
* warm: the same command again with the cache filled (median of ``--warm-runs``);
* peak memory: the largest sum of resident set sizes of the command and its worker
  processes, sampled every 20 ms from /proc;
* per width: the summed wall time of its training tasks (core-seconds) and epochs;
* FLOP floor: the matrix-product FLOPs of every epoch trained (from the run's own
  epoch counts, see ``bench_engine.epoch_flops``) plus those of the attacks, divided
  by ``jobs`` x the one-thread float32 GEMM rate measured in the same run.

Run: ``python benchmarks/bench_sweep.py [--warm-runs 3] [--jobs 2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import epoch_flops, layer_macs, machine, matmul_rate  # noqa: E402


def _descendants(pid: int) -> list[int]:
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def timed_sweep(out: Path, jobs: int, env: dict) -> tuple[float, float]:
    """Wall seconds and peak total RSS (MiB) of one ``robnp sweep``."""
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "robnp_cli.main", "sweep", "--out", str(out), "--quiet",
               "--jobs", str(jobs)]
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    peak = 0
    while process.poll() is None:
        peak = max(peak, sum(_rss_kib(pid) for pid in _descendants(process.pid)))
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"robnp sweep failed with exit code {process.returncode}")
    return seconds, peak / 1024


def study_flops(doc: dict) -> tuple[float, dict]:
    config = doc["config"]
    n_test = int(config["n_samples"] * config["test_fraction"])
    n_train = config["n_samples"] - n_test
    n_eps = len(config["epsilons"])
    total = 0.0
    per_width = {}
    for task in doc["tasks"]:
        width = task["hidden_width"]
        macs = sum(layer_macs(width))
        # clean accuracy, the gradient at the clean points (FGSM's step and PGD's
        # first), then per eps: PGD's other steps and the two accuracy passes
        pgd_gradients = max(config["pgd_steps"] - 1, 0)
        attack = 2.0 * n_test * macs * (1 + 2 + n_eps * (pgd_gradients * 2 + 2))
        flops = task["epochs"] * epoch_flops(width, n_train) + attack
        total += flops
        row = per_width.setdefault(width, {"seconds": 0.0, "epochs": 0, "gflop": 0.0})
        row["seconds"] += task["task_seconds"]
        row["epochs"] += task["epochs"]
        row["gflop"] += flops / 1e9
    return total, per_width


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm-runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--json", help="also write the raw numbers here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="robnp-bench-"))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(work / "numba-cache"))
    cold, cold_peak = timed_sweep(work / "results", args.jobs, env)
    warm = [timed_sweep(work / "results", args.jobs, env) for _ in range(args.warm_runs)]
    doc = json.loads((work / "results" / "results.json").read_text())
    rate = matmul_rate(2048, 2048, 2048, 5)
    flops, per_width = study_flops(doc)
    warm_seconds = statistics.median(s for s, _ in warm)
    floor = flops / (args.jobs * rate)
    result = {
        "machine": machine(), "jobs": args.jobs, "cold_seconds": cold,
        "warm_seconds": [s for s, _ in warm], "warm_median_seconds": warm_seconds,
        "peak_rss_mib": max([cold_peak] + [p for _, p in warm]),
        "gemm_gflops_one_thread": rate / 1e9, "total_gflop": flops / 1e9,
        "floor_seconds": floor, "warm_over_floor": warm_seconds / floor,
        "per_width": per_width,
    }
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result["machine"]))
    print(f"jobs {args.jobs}; cold {cold:.1f} s; warm runs "
          f"{', '.join(f'{s:.1f}' for s in result['warm_seconds'])} s (median {warm_seconds:.1f} s); "
          f"peak RSS {result['peak_rss_mib']:.0f} MiB")
    print(f"training + attack FLOPs {flops / 1e9:.1f} GFLOP; one-thread GEMM "
          f"{rate / 1e9:.1f} GFLOP/s; floor on {args.jobs} cores {floor:.1f} s; "
          f"warm / floor {warm_seconds / floor:.2f}")
    print("\n| width | tasks' wall time (core-s) | epochs (sum) | GFLOP | GFLOP/s |")
    print("|---|---|---|---|---|")
    for width in sorted(per_width):
        row = per_width[width]
        print(f"| {width} | {row['seconds']:.2f} | {row['epochs']} | {row['gflop']:.1f} | "
              f"{row['gflop'] / row['seconds']:.1f} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
