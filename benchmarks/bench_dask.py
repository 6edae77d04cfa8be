"""Dask executor benchmark: the default sweep on the local pool and on a local Dask
cluster of as many workers (interleaved repeats, medians), and the Dask cluster's
speed-up from 1 to 2 workers on a study of heavier tasks.

With ``--scaling``, the same two questions on the scaling study: the small preset's grid
with data sizes up to ``--max-d`` (65,536 by default: a quarter of the preset's work,
the compute-optimal test left out, no bootstrap, no figures), on the local pool of 2
workers and on Dask with 2 and with 1 worker, one run each.

Run: ``python benchmarks/bench_dask.py [--repeats 2] [--scaling] [--json FILE]``. Every
run writes to a fresh temporary directory; the wall time is that of ``run_study`` (or
``run_scaling_study``), cluster start-up included.
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


def timed_scaling(config, executor) -> float:
    from robnp.scaling.run import run_scaling_study

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        run_scaling_study(config, out, executor=executor, n_boot=0, figures=False)
        return time.perf_counter() - start


def scaling(args) -> dict:
    from robnp.scaling.study import preset

    config = preset("small", data_sizes=tuple(d for d in (4096, 16384, 65536, 262144)
                                              if d <= args.max_d), optimal_factors=())
    local = timed_scaling(config, LocalExecutor(2))
    two = timed_scaling(config, DaskExecutor(jobs=2))
    one = timed_scaling(config, DaskExecutor(jobs=1))
    n = len(config.tasks())
    print(f"Scaling study ({n} runs, D up to {args.max_d}): local pool, 2 workers {local:.1f} s; "
          f"Dask 2 workers {two:.1f} s (overhead {(two - local) / local:+.1%}); Dask 1 worker "
          f"{one:.1f} s: x{one / two:.2f} from 1 to 2 workers")
    return {"runs": n, "max_d": args.max_d, "local_2_seconds": local, "dask_2_seconds": two,
            "dask_1_seconds": one}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--scaling", action="store_true")
    parser.add_argument("--max-d", type=int, default=65536)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.scaling:
        result = scaling(args)
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(result, handle, indent=2)
        return

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
