"""Dask executor benchmark: the default sweep on the local pool and on a local Dask
cluster of as many workers (interleaved repeats, medians), and the Dask cluster's
speed-up from 1 to 2 workers on a study of heavier tasks.

Run: ``python benchmarks/bench_dask.py [--repeats 2] [--json FILE]``. Every run
writes to a fresh temporary directory; the wall time is that of ``run_study``,
cluster start-up included.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time

import numpy

from robnp.study import StudyConfig, run_study
from robnp.study.executors import DaskExecutor, LocalExecutor

# Heavier tasks for the scaling measurement: TRADES at widths 64-256.
HEAVY = dict(datasets=("moons",), widths=(64, 96, 128, 160, 192, 256), seeds=(0, 1),
             epsilons=(0.1,), recipe="trades", train_eps=0.1, max_epochs=40, patience=None)


def timed(config, executor) -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        run_study(config, out, executor=executor)
        return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    default = StudyConfig()
    local, dask = [], []
    for _ in range(args.repeats):
        local.append(timed(default, LocalExecutor(args.jobs)))
        dask.append(timed(default, DaskExecutor(jobs=args.jobs)))
    n_tasks = len(default.tasks())
    heavy = StudyConfig(**HEAVY)
    one, two = [], []
    for _ in range(args.repeats):
        one.append(timed(heavy, DaskExecutor(jobs=1)))
        two.append(timed(heavy, DaskExecutor(jobs=2)))

    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "numpy": numpy.__version__,
                    "python": platform.python_version()},
        "default_sweep": {"tasks": n_tasks, "local_seconds": local, "dask_seconds": dask},
        "heavy": {"tasks": len(heavy.tasks()), "dask_1_seconds": one, "dask_2_seconds": two},
    }
    ml, md = statistics.median(local), statistics.median(dask)
    m1, m2 = statistics.median(one), statistics.median(two)
    print(f"Default sweep ({n_tasks} tasks), {args.jobs} workers, median of {args.repeats}:")
    print(f"  local pool {ml:.1f} s, Dask local cluster {md:.1f} s: overhead "
          f"{md - ml:+.1f} s ({(md - ml) / ml:+.1%} of the sweep), "
          f"{(md - ml) / n_tasks * 1000:+.0f} ms per task")
    print(f"Heavier study ({len(heavy.tasks())} TRADES tasks) on Dask: 1 worker {m1:.1f} s, "
          f"2 workers {m2:.1f} s: x{m1 / m2:.2f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
