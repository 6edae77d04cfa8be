"""FAB's and FAB-T's minimal perturbations against the exact robustness radii.

Trains study models exactly as ``robnp sweep`` trains them (circles and moons at a few
widths, seed 42, the study's data draw; and a 5-class ``blobs`` model, noise 0.3, the
width 32), takes each model's test split, and computes

* FAB's and FAB-T's smallest perturbation per point (``robnp.attacks.fab``, the
  reference's defaults: 100 iterations, 1 restart, 9 target classes), timed;
* each point's exact robustness radius (``robnp.verify.robustness_radius``: bisection on
  the verifier to rtol 1e-3, started from FAB's points), timed.

On the points classified correctly whose radius the verifier closed (status ``exact``)
it reports, per attack, the median ratio attack radius / exact radius (the exact
radius's attack side, ``upper``, within 0.1% of the certified ``lower``), the share
within 1% (ratio <= 1.01), the 90% quantile and the largest ratio, the share the attack
did not break at all, and the count of points whose attack radius lies below the
certified radius (must be 0). ``width`` is the median relative width
``(upper - lower) / upper`` of the brackets left undecided.

Run: ``python benchmarks/bench_radii.py [--n-test N] [--json FILE]``.
"""

from __future__ import annotations

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402


def models(widths):
    """(label, task) of the benchmark's models."""
    from robnp.study.config import StudyConfig

    tasks = []
    for dataset in ("circles", "moons"):
        config = StudyConfig(datasets=(dataset,), widths=tuple(widths), seeds=(42,))
        tasks += [(f"{dataset} w{t.width}", t) for t in config.tasks()]
    blobs = StudyConfig(datasets=("blobs",), widths=(32,), seeds=(42,), noise=0.3,
                        n_classes=5)
    tasks += [(f"blobs-5 w{t.width}", t) for t in blobs.tasks()]
    return tasks


def measure(label, task, n_test, rtol):
    import numpy as np

    from robnp.attacks import fab
    from robnp.study.tasks import task_data, train_task
    from robnp.verify import robustness_radius

    X_train, X_test, y_train, y_test = task_data(task)
    model, _ = train_task(task, X_train, y_train)
    if n_test is not None:
        X_test, y_test = X_test[:n_test], y_test[:n_test]
    fab(model, X_test[:4], y_test[:4], n_iter=2)            # compile outside the timing
    found, seconds = {}, {}
    for name, targeted in (("fab", False), ("fab-t", True)):
        start = time.perf_counter()
        found[name] = fab(model, X_test, y_test, targeted=targeted, seed=task.seed)
        seconds[name] = time.perf_counter() - start
    start = time.perf_counter()
    exact = robustness_radius(model, X_test, y_test, rtol=rtol, start=found["fab"],
                              seed=task.seed)
    seconds["exact"] = time.perf_counter() - start
    closed = exact.status == "exact"
    undecided = exact.status == "undecided"
    row = {"model": label, "n_points": int(X_test.shape[0]),
           "n_classes": int(model.n_classes), "width": task.width,
           "clean": float(np.mean(exact.status != "clean_error")),
           "closed": int(closed.sum()),
           "undecided": int(np.sum(exact.status == "undecided")),
           "verify_calls": exact.verify_calls, "seconds": seconds,
           "median_exact": float(np.median(exact.lower[closed])),
           "undecided_width": float(np.median(
               (exact.upper[undecided] - exact.lower[undecided]) / exact.upper[undecided]))
           if undecided.any() else 0.0}
    for name, result in found.items():
        ratio = result.norms[closed] / exact.upper[closed]
        row[name] = {"median_ratio": float(np.median(ratio)),
                     "within_1pct": float(np.mean(ratio <= 1.01)),
                     "q90_ratio": float(np.quantile(ratio, 0.9)),
                     "max_ratio": float(np.max(ratio)),
                     "not_broken": float(np.mean(~np.isfinite(result.norms[closed]))),
                     "below_certified": int(np.sum(result.norms < exact.lower))}
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="16,64,256")
    parser.add_argument("--n-test", type=int, default=None,
                        help="Only the first N test points of each model (default: all).")
    parser.add_argument("--rtol", type=float, default=1e-3)
    parser.add_argument("--json", dest="json_file", default=None)
    args = parser.parse_args(argv)
    rows = []
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}")
    head = (f"{'model':<14}{'points':>7}{'closed':>7}{'undec':>6}{'width':>7}{'exact s':>9}"
            f"{'FAB s':>7}{'FAB-T s':>8}   " + "  ".join(
                f"{n + ': median, <=1%, q90, max, unbroken':<44}" for n in ("FAB", "FAB-T")))
    print(head)
    for label, task in models([int(w) for w in args.widths.split(",")]):
        row = measure(label, task, args.n_test, args.rtol)
        rows.append(row)
        cells = "  ".join(
            f"{row[n]['median_ratio']:.4f}, {row[n]['within_1pct']:.3f}, "
            f"{row[n]['q90_ratio']:.3f}, {row[n]['max_ratio']:.2f}, "
            f"{row[n]['not_broken']:.3f}{' (!)' if row[n]['below_certified'] else '':<8}"
            .ljust(44) for n in ("fab", "fab-t"))
        print(f"{label:<14}{row['n_points']:>7}{row['closed']:>7}{row['undecided']:>6}"
              f"{row['undecided_width']:>7.4f}"
              f"{row['seconds']['exact']:>9.1f}{row['seconds']['fab']:>7.2f}"
              f"{row['seconds']['fab-t']:>8.2f}   {cells}", flush=True)
    if args.json_file:
        with open(args.json_file, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=1)
    return rows


if __name__ == "__main__":
    main()
