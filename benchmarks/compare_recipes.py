"""The study under several training recipes, side by side: per dataset and width the
clean accuracy, the PGD accuracy and gap at one radius, the training FLOPs and the wall
time of the tasks; per dataset and recipe the Pearson correlation of the PGD gap
(mean over every eps, the study's statistic) with log10 parameters, and the sweep's
totals.

Each argument is ``NAME=DIR``, a finished ``robnp sweep --out DIR``. A run of the
study's own training has no ``train_flops`` (its files are the study's); its FLOPs
are counted from each task's epochs with :func:`robnp.training.fit.epoch_flops`,
the count its training history records.

Run: ``python benchmarks/compare_recipes.py standard=results pgd-at=results_at
trades=results_trades [--eps 0.1]``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from robnp.study import StudyConfig
from robnp.training.fit import epoch_flops


def load(directory: str) -> dict:
    return json.loads((Path(directory) / "results.json").read_text())


def task_flops(doc: dict) -> dict[tuple, float]:
    """Training FLOPs of every (dataset, seed, width) of a results document."""
    config = StudyConfig.from_dict(doc["config"])
    n_train = config.n_samples - int(config.n_samples * config.test_fraction)
    out = {}
    for task in doc["tasks"]:
        key = (task["dataset"], task["seed"], task["hidden_width"])
        if "train_flops" in task:
            out[key] = task["train_flops"]
        else:
            sizes = (config.input_dim, *(task["hidden_width"],) * config.depth,
                     config.classes_of(task["dataset"]))
            train = config.train_config(task["seed"])
            out[key] = task["epochs"] * epoch_flops(sizes, train, n_train)
    return out


def summarise(name: str, doc: dict, eps: float) -> dict:
    flops = task_flops(doc)
    seconds = {(t["dataset"], t["seed"], t["hidden_width"]): t["task_seconds"]
               for t in doc["tasks"]}
    rows = {}
    for row in doc["results"]:
        if row["epsilon"] != eps:
            continue
        key = (row["dataset"], row["hidden_width"])
        entry = rows.setdefault(key, {"clean": [], "pgd": [], "gap": [], "flops": [],
                                      "seconds": [], "epochs": []})
        model = (row["dataset"], row["seed"], row["hidden_width"])
        entry["clean"].append(row["clean_acc"])
        entry["pgd"].append(row["pgd_acc"])
        entry["gap"].append(row["pgd_gap"])
        entry["flops"].append(flops[model])
        entry["seconds"].append(seconds[model])
        entry["epochs"].append(row["epochs"])
    trends = {dataset: summary["trend_pgd_gap"]["pearson_r"]
              for dataset, summary in doc["dataset_summaries"].items()}
    p_values = {dataset: summary["trend_pgd_gap"]["pearson_p_value"]
                for dataset, summary in doc["dataset_summaries"].items()}
    return {"name": name, "rows": rows, "trends": trends, "p_values": p_values,
            "flops": sum(flops.values()), "task_seconds": sum(seconds.values())}


def markdown(runs: list[dict], eps: float) -> str:
    datasets = sorted({key[0] for run in runs for key in run["rows"]})
    lines = []
    for dataset in datasets:
        lines += [f"**{dataset}**, eps {eps}: means over the seeds; GFLOP and seconds per "
                  f"training task (seconds: the whole task, evaluation included)", "",
                  "| recipe | width | clean acc | PGD acc | PGD gap | epochs | GFLOP | s |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for run in runs:
            for width in sorted(w for d, w in run["rows"] if d == dataset):
                e = run["rows"][(dataset, width)]
                lines.append(
                    f"| {run['name']} | {width} | {np.mean(e['clean']):.3f} | "
                    f"{np.mean(e['pgd']):.3f} | {np.mean(e['gap']):.3f} | "
                    f"{np.mean(e['epochs']):.0f} | {np.mean(e['flops']) / 1e9:.1f} | "
                    f"{np.mean(e['seconds']):.1f} |")
        lines += ["", "Pearson r of log10(params) with the PGD gap (the study's statistic, "
                  "over every eps): " + "; ".join(
                      f"{r['name']} {r['trends'][dataset]:.2f} (p = "
                      f"{r['p_values'][dataset]:.3f})" for r in runs) + ".", ""]
    lines.append("Whole sweep: " + "; ".join(
        f"{r['name']} {r['flops'] / 1e12:.2f} TFLOP of training, {r['task_seconds']:.0f} "
        f"task-seconds" for r in runs) + ".")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="NAME=DIR of a finished sweep")
    parser.add_argument("--eps", type=float, default=0.1)
    args = parser.parse_args()
    runs = []
    for spec in args.runs:
        name, _, directory = spec.partition("=")
        runs.append(summarise(name, load(directory), args.eps))
    print(markdown(runs, args.eps))


if __name__ == "__main__":
    main()
