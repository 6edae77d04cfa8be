"""Exact robust accuracy of the study's models: time, and what decided each point.

Trains the study's models (by default all 36: circles and moons, widths 16-512, depth
2, seeds 42, 123, 7, exactly as ``robnp sweep`` trains them) and runs
``robnp.verify.verify_radii`` on each model's test split at the study's five radii.
Reports, per width, the verification time (core-seconds, training excluded) and the
split of the points between

* ``clean``  misclassified where they stand,
* ``attack`` counterexample found by PGD or a box corner,
* ``bound``  certified by IBP/CROWN on the whole ball,
* ``bab``    decided by branch and bound (either way),
* ``larger`` robust because robust at a larger radius,
* undecided (``budget`` / ``rounding``), which must be zero for an exact answer.

The target is the whole default study (72,000 problems) in under 10 minutes of wall
time on 2 cores with nothing undecided.

Run: ``python benchmarks/bench_verify.py [--jobs 2]``; a small smoke test:
``python benchmarks/bench_verify.py --datasets circles --seeds 42 --widths 16,64
--n-test 100 --jobs 1``.
"""

from __future__ import annotations

import os

# One BLAS thread per process before NumPy loads: parallelism is across models.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import time  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402

CATEGORIES = ("clean", "attack", "bound", "bab", "larger", "budget", "rounding", "unsplit")


def verify_task(task, n_test: int | None, budget: int) -> dict:
    """Train the task's model as ``run_task`` does, then verify its test split."""
    import numpy as np

    from robnp.attacks import accuracy, robust_accuracy
    from robnp.study.tasks import task_data, train_task
    from robnp.verify import verify_radii

    start = time.perf_counter()
    X_train, X_test, y_train, y_test = task_data(task)
    model, _ = train_task(task, X_train, y_train)
    train_seconds = time.perf_counter() - start
    if n_test is not None:
        X_test, y_test = X_test[:n_test], y_test[:n_test]
    start = time.perf_counter()
    results = verify_radii(model, X_test, y_test, task.epsilons, budget=budget,
                           seed=task.seed)
    verify_seconds = time.perf_counter() - start
    pgd = robust_accuracy(model, X_test, y_test, attack="pgd", eps=task.epsilons,
                          steps=dict(task.attacks)["pgd"].steps)
    per_eps = []
    for eps, result in zip(task.epsilons, results):
        bracket = result.bracket
        per_eps.append({"eps": eps, "certified": bracket.certified, "attack": bracket.attack,
                        "undecided": bracket.undecided, "pgd": pgd[eps],
                        "max_branches": int(result.branches.max()),
                        "branches": int(result.branches.sum())})
    counts = Counter(str(how) for result in results for how in result.decided_by)
    return {"dataset": task.dataset, "seed": task.seed, "width": task.width,
            "n_points": int(X_test.shape[0]), "clean": accuracy(model, X_test, y_test),
            "train_seconds": train_seconds, "verify_seconds": verify_seconds,
            "counts": dict(counts), "per_eps": per_eps,
            "problems": int(X_test.shape[0]) * len(task.epsilons),
            "undecided": int(sum(np.sum(r.verdict == "undecided") for r in results))}


def main(argv=None) -> dict:
    from robnp.study.config import StudyConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="circles,moons")
    parser.add_argument("--widths", default="16,32,64,128,256,512")
    parser.add_argument("--seeds", default="42,123,7")
    parser.add_argument("--n-test", type=int, default=None,
                        help="Verify only the first N test points of each model.")
    parser.add_argument("--budget", type=int, default=4096)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", dest="json_file", default=None)
    args = parser.parse_args(argv)
    config = StudyConfig(datasets=tuple(args.datasets.split(",")),
                         widths=tuple(int(w) for w in args.widths.split(",")),
                         seeds=tuple(int(s) for s in args.seeds.split(",")))
    tasks = sorted(config.tasks(), key=lambda t: -t.cost())
    start = time.perf_counter()
    if args.jobs == 1:
        rows = [verify_task(task, args.n_test, args.budget) for task in tasks]
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
            futures = [pool.submit(verify_task, task, args.n_test, args.budget)
                       for task in tasks]
            rows = [future.result() for future in futures]
    wall = time.perf_counter() - start

    by_width = defaultdict(list)
    for row in rows:
        by_width[row["width"]].append(row)
    print(f"{len(rows)} models, {sum(r['problems'] for r in rows)} problems, "
          f"jobs {args.jobs}, wall {wall:.1f}s (training included)")
    header = "".join(f"{c:>9}" for c in CATEGORIES)
    print(f"  {'width':>6}{'models':>7}{'verify s':>10}{'s/problem':>11}{header}")
    total_verify = 0.0
    for width in sorted(by_width):
        group = by_width[width]
        seconds = sum(r["verify_seconds"] for r in group)
        total_verify += seconds
        problems = sum(r["problems"] for r in group)
        counts = Counter()
        for r in group:
            counts.update(r["counts"])
        cells = "".join(f"{counts.get(c, 0):>9}" for c in CATEGORIES)
        print(f"  {width:>6}{len(group):>7}{seconds:>10.2f}{seconds / problems * 1e3:>9.3f}ms"
              f"{cells}")
    problems = sum(r["problems"] for r in rows)
    undecided = sum(r["undecided"] for r in rows)
    print(f"  verification: {total_verify:.1f} core-seconds for {problems} problems "
          f"({total_verify / problems * 1e3:.3f} ms each); undecided: {undecided}")
    print(f"  training: {sum(r['train_seconds'] for r in rows):.1f} core-seconds")
    # certified <= exact <= any attack's accuracy; verify's own attacks and the study's
    # PGD-10 are separate, so where a point is undecided PGD-10 may break it and come out
    # below verify's attack bound: that decides the point (not robust), as the study's
    # bracket does with every attack's counterexamples
    order_ok = all(e["certified"] <= min(e["attack"], e["pgd"]) + 1e-12
                   for r in rows for e in r["per_eps"])
    print(f"  certified <= attack and certified <= PGD accuracy everywhere: {order_ok}")
    for r in rows:
        for e in r["per_eps"]:
            if e["pgd"] < e["attack"] - 1e-12:
                print(f"    PGD-10 breaks an undecided point: {r['dataset']} seed {r['seed']} "
                      f"width {r['width']} eps {e['eps']} (verify's attacks {e['attack']}, "
                      f"PGD {e['pgd']}, undecided {e['undecided']})")
    summary = {"wall_seconds": wall, "verify_core_seconds": total_verify,
               "problems": problems, "undecided": undecided, "jobs": args.jobs,
               "models": rows}
    if args.json_file:
        with open(args.json_file, "w") as handle:
            json.dump(summary, handle, indent=2)
    return summary


if __name__ == "__main__":
    main()
