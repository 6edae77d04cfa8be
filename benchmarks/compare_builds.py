"""Time one study task through ``run_task`` with the robnp found under ROOT.

Run it for two checkouts one after the other (same minute, same load) to compare
builds: ``python benchmarks/compare_builds.py ROOT WIDTH``, e.g. a worktree of an
earlier commit and this one. Prints the root, the width, the median of 3 timed runs
after a warm-up run, and the first record's PGD accuracy (equal across builds that
keep the study's numbers).
"""

import statistics
import sys
import time


def main(root: str, width: int) -> None:
    sys.path.insert(0, root)
    import robnp
    from robnp.study import StudyConfig, run_task

    if not robnp.__file__.startswith(root):
        raise SystemExit(f"robnp was imported from {robnp.__file__}, not {root}")
    task = StudyConfig(datasets=("circles",), widths=(width,), seeds=(42,)).tasks()[0]
    run_task(task)  # compile or load the kernels
    times = []
    for _ in range(3):
        start = time.perf_counter()
        result = run_task(task)
        times.append(time.perf_counter() - start)
    print(root, width, f"{statistics.median(times):.3f} s", result.records[0]["pgd_acc"])


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
