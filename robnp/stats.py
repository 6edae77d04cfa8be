"""Statistics of a robustness sweep: aggregates, trends, tables, results.json.

Everything here is a pure function over *records*: plain dicts, one per
dataset x seed x hidden width x eps, with the keys listed in
:data:`RECORD_FIELDS`.  Nothing here trains or attacks a model, so every
function can be exercised with hand-made records.

Two kinds of spread appear, and they answer different questions:

* :func:`aggregate` gives, for each (dataset, width, eps), the mean and the
  population standard deviation (``ddof=0``, as :func:`numpy.std`) across seeds.
* :func:`width_table` summarizes a width by averaging those per-eps means and
  per-eps standard deviations over eps.  This is how the reproduced study
  computes its "mean +/- std across seeds" table, so the numbers compare
  directly.

The scaling trend of a dataset (:func:`correlation_trend`) relates
``log10(param_count)`` to the per-width mean gap, averaged over every seed and
eps of the width; it reports Pearson's r with its two-sided p-value and the
Fisher-transform 95% confidence interval, Spearman's rho, and the least-squares
slope per decade of parameters.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from robnp.errors import DataError

#: Keys of one record and the kind of value each holds.
RECORD_FIELDS: dict[str, type] = {
    "dataset": str,
    "seed": int,
    "hidden_width": int,
    "param_count": int,
    "epochs": int,
    "final_loss": float,
    "clean_acc": float,
    "epsilon": float,
    "fgsm_acc": float,
    "pgd_acc": float,
    "fgsm_gap": float,
    "pgd_gap": float,
    "noise": float,
    "depth": int,
    "input_dim": int,
}

#: Quantities averaged across seeds by :func:`aggregate`.
METRICS: tuple[str, ...] = ("clean_acc", "fgsm_acc", "pgd_acc", "fgsm_gap", "pgd_gap")

#: Attacks whose gaps are summarized, as they appear in key names.
ATTACKS: tuple[str, ...] = ("fgsm", "pgd")

#: Fields that describe one training task (shared by all eps of that task).
#: Wall time lives only here, never in records, so that everything but the
#: ``tasks`` block of results.json is identical across repeated runs.
TASK_FIELDS: tuple[str, ...] = (
    "dataset", "seed", "hidden_width", "epochs", "task_seconds", "final_loss",
)

#: The dataset whose summary the study keeps under the top-level "summary" key.
HEADLINE_DATASET = "circles"

TREND_KEYS: tuple[str, ...] = (
    "pearson_r", "pearson_p_value", "pearson_r_ci95",
    "spearman_rho", "spearman_p_value", "slope_per_log10_param",
)


# --------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------

def record_key(record: Mapping) -> tuple:
    """Sort key of a record: (dataset, seed, hidden_width, epsilon)."""
    return (str(record["dataset"]), int(record["seed"]),
            int(record["hidden_width"]), float(record["epsilon"]))


def describe_record(record: Mapping) -> str:
    """Short human name of a record's run, e.g. ``circles seed=42 width=16 eps=0.1``."""
    parts = []
    for label, key in (("", "dataset"), ("seed=", "seed"),
                       ("width=", "hidden_width"), ("eps=", "epsilon")):
        if key in record:
            parts.append(f"{label}{record[key]}")
    return " ".join(parts) or "record"


def _field_problem(name: str, value, kind: type) -> str | None:
    if kind is str:
        if not isinstance(value, str) or not value:
            return f"'{name}' must be a non-empty string, got {value!r}"
        return None
    # bool is an int subclass, but True as a width is a bug, not a value.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return f"'{name}' must be a number, got {value!r}"
    if kind is int and not isinstance(value, numbers.Integral):
        return f"'{name}' must be an integer, got {value!r}"
    if not math.isfinite(value):
        return f"'{name}' must be finite, got {value!r}"
    return None


def record_problems(records) -> list[str]:
    """List every way `records` deviate from the record schema.

    Parameters
    ----------
    records : sequence of dict
        Candidate records.

    Returns
    -------
    list of str
        One message per problem, naming the record and the field; empty when
        every record has every key of :data:`RECORD_FIELDS` with a value of
        the right kind.  Extra keys are allowed.
    """
    if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Sequence):
        return [f"records must be a list of dicts, got {type(records).__name__}"]
    problems = []
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            problems.append(f"record {index} is a {type(record).__name__}, not a dict")
            continue
        name = f"record {index} ({describe_record(record)})"
        missing = [key for key in RECORD_FIELDS if key not in record]
        if missing:
            problems.append(f"{name} lacks {', '.join(missing)}")
        for key, kind in RECORD_FIELDS.items():
            if key in record:
                problem = _field_problem(key, record[key], kind)
                if problem:
                    problems.append(f"{name}: {problem}")
    return problems


def check_records(records) -> None:
    """Raise :class:`DataError` unless every record matches the schema.

    Raises
    ------
    DataError
        Naming the first problems found by :func:`record_problems`.
    """
    problems = record_problems(records)
    if problems:
        shown = "; ".join(problems[:3])
        more = f" (and {len(problems) - 3} more problems)" if len(problems) > 3 else ""
        raise DataError(f"invalid records: {shown}{more}")


def _plain(value):
    # NumPy scalars become the Python scalars json and callers expect.
    return value.item() if isinstance(value, np.generic) else value


def sorted_records(records) -> list[dict]:
    """Return copies of `records` with plain Python values, sorted by :func:`record_key`."""
    check_records(records)
    copies = [{key: _plain(value) for key, value in record.items()} for record in records]
    return sorted(copies, key=record_key)


def task_table(records) -> list[dict]:
    """One row per training task (dataset, seed, width) with its cost and outcome.

    Parameters
    ----------
    records : sequence of dict
        Records; all eps of a task carry the same task fields.

    Returns
    -------
    list of dict
        Rows with the keys of :data:`TASK_FIELDS`, sorted by dataset, seed
        and width.
    """
    tasks = {}
    for record in sorted_records(records):
        identity = (record["dataset"], record["seed"], record["hidden_width"])
        if identity not in tasks:
            tasks[identity] = {key: record[key] for key in TASK_FIELDS if key in record}
    return [tasks[identity] for identity in sorted(tasks)]


def dataset_order(records, config: Mapping | None = None) -> list[str]:
    """Names of the datasets present in `records`, in the configuration's order.

    Datasets listed in ``config["datasets"]`` (as ``{"name": ..., "noise": ...}``
    dicts or as plain names) come first in that order; any others follow
    alphabetically.
    """
    present = {str(record["dataset"]) for record in records}
    ordered = []
    for entry in (config or {}).get("datasets", []) or []:
        name = entry.get("name") if isinstance(entry, Mapping) else entry
        if isinstance(name, str) and name in present and name not in ordered:
            ordered.append(name)
    return ordered + sorted(present - set(ordered))


def _group(records, keys: tuple[str, ...]) -> dict[tuple, list]:
    groups = defaultdict(list)
    for record in records:
        groups[tuple(_plain(record[key]) for key in keys)].append(record)
    return groups


def _mean_std(values) -> tuple[float, float]:
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std())


# --------------------------------------------------------------------------
# aggregates
# --------------------------------------------------------------------------

def aggregate(records) -> list[dict]:
    """Cross-seed mean and standard deviation per (dataset, width, eps).

    Parameters
    ----------
    records : sequence of dict
        Records of any number of datasets, seeds, widths and eps.

    Returns
    -------
    list of dict
        Sorted by dataset, hidden width and eps.  Each row has ``dataset``,
        ``hidden_width``, ``param_count``, ``epsilon``, ``n_seeds`` (distinct
        seeds in the group) and ``<m>_mean`` / ``<m>_std`` for every ``m`` in
        :data:`METRICS`.  Standard deviations are population ones (``ddof=0``).

    Raises
    ------
    DataError
        If a record does not match the schema.
    """
    check_records(records)
    rows = []
    groups = _group(records, ("dataset", "hidden_width", "epsilon"))
    for (dataset, width, eps), members in sorted(groups.items()):
        row = {
            "dataset": dataset,
            "hidden_width": int(width),
            "param_count": int(members[0]["param_count"]),
            "epsilon": float(eps),
            "n_seeds": len({int(member["seed"]) for member in members}),
        }
        for metric in METRICS:
            mean, std = _mean_std([member[metric] for member in members])
            row[f"{metric}_mean"] = mean
            row[f"{metric}_std"] = std
        rows.append(row)
    return rows


# --------------------------------------------------------------------------
# trends and per-dataset summaries
# --------------------------------------------------------------------------

def _finite_or_none(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def correlation_trend(log_params, gaps) -> dict:
    """Association between log10 parameter count and a per-width mean gap.

    Parameters
    ----------
    log_params : array-like of shape (n_widths,)
        ``log10(param_count)`` of each width.
    gaps : array-like of shape (n_widths,)
        Mean robustness gap of each width.

    Returns
    -------
    dict
        ``pearson_r``, ``pearson_p_value`` (two-sided), ``pearson_r_ci95``
        (``[lo, hi]``, Fisher transform), ``spearman_rho``,
        ``spearman_p_value`` and ``slope_per_log10_param`` (least squares).
        A value is None where it is undefined: correlations need at least
        three widths and neither input constant; the slope needs two widths
        with different parameter counts.  No value is ever NaN.
    """
    from scipy import stats as sps

    x = np.asarray(log_params, dtype=np.float64)
    y = np.asarray(gaps, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise DataError(f"log_params and gaps must be 1-D of equal length, "
                        f"got shapes {x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise DataError("log_params and gaps must be finite")
    trend = dict.fromkeys(TREND_KEYS)
    x_varies = x.size >= 2 and np.ptp(x) > 0
    if x_varies:
        trend["slope_per_log10_param"] = _finite_or_none(sps.linregress(x, y).slope)
    if x.size >= 3 and x_varies and np.ptp(y) > 0:
        with warnings.catch_warnings():
            # Near-constant inputs may still warn; the checks above already
            # decided that the statistics are defined.
            warnings.simplefilter("ignore")
            pearson = sps.pearsonr(x, y)
            interval = pearson.confidence_interval(0.95)
            spearman = sps.spearmanr(x, y)
        trend["pearson_r"] = _finite_or_none(pearson.statistic)
        trend["pearson_p_value"] = _finite_or_none(pearson.pvalue)
        low, high = _finite_or_none(interval.low), _finite_or_none(interval.high)
        trend["pearson_r_ci95"] = None if low is None or high is None else [low, high]
        trend["spearman_rho"] = _finite_or_none(spearman.statistic)
        trend["spearman_p_value"] = _finite_or_none(spearman.pvalue)
    return trend


def summarize_dataset(records) -> dict:
    """Per-width summary and scaling trends of one dataset.

    Parameters
    ----------
    records : sequence of dict
        All records of a single dataset.

    Returns
    -------
    dict
        ``widths`` and ``epsilons`` (sorted), ``n_experiments``, ``per_width``
        keyed by the width as a string, with ``clean_acc`` and
        ``clean_acc_std`` (across seeds), ``param_count``, and ``mean_*`` /
        ``std_*`` of the FGSM and PGD gaps and accuracies over every seed and
        eps of the width; ``trend_fgsm_gap`` and ``trend_pgd_gap`` from
        :func:`correlation_trend`; and ``corr_logparams_fgsm_gap`` /
        ``corr_logparams_pgd_gap``, the Pearson r of those trends.

    Raises
    ------
    DataError
        If `records` is empty, mixes datasets, or breaks the schema.
    """
    check_records(records)
    names = sorted({record["dataset"] for record in records})
    if len(names) != 1:
        raise DataError(f"summarize_dataset needs records of exactly one dataset, "
                        f"got {names or 'none'}")
    widths = sorted({int(record["hidden_width"]) for record in records})
    epsilons = sorted({float(record["epsilon"]) for record in records})
    by_width = _group(records, ("hidden_width",))
    per_width = {}
    for width in widths:
        members = by_width[(width,)]
        # Each task repeats its clean accuracy once per eps; the spread
        # across seeds must count each seed once.
        clean_by_seed = {seed: np.mean([m["clean_acc"] for m in group])
                         for (seed,), group in _group(members, ("seed",)).items()}
        clean_mean, clean_std = _mean_std(list(clean_by_seed.values()))
        entry = {"clean_acc": clean_mean, "clean_acc_std": clean_std,
                 "param_count": int(members[0]["param_count"])}
        for attack in ATTACKS:
            gap_mean, gap_std = _mean_std([m[f"{attack}_gap"] for m in members])
            entry[f"mean_{attack}_gap"] = gap_mean
            entry[f"std_{attack}_gap"] = gap_std
        for attack in ATTACKS:
            entry[f"mean_{attack}_acc"] = _mean_std([m[f"{attack}_acc"] for m in members])[0]
        per_width[str(width)] = entry

    log_params = [math.log10(per_width[str(w)]["param_count"]) for w in widths]
    summary = {
        "dataset": names[0],
        "widths": widths,
        "epsilons": epsilons,
        "n_experiments": len(records),
        "per_width": per_width,
    }
    for attack in ATTACKS:
        gaps = [per_width[str(w)][f"mean_{attack}_gap"] for w in widths]
        trend = correlation_trend(log_params, gaps)
        summary[f"trend_{attack}_gap"] = trend
        summary[f"corr_logparams_{attack}_gap"] = trend["pearson_r"]
    return summary


def summarize_by_dataset(records) -> dict[str, dict]:
    """:func:`summarize_dataset` for each dataset, keyed by name (sorted)."""
    check_records(records)
    groups = _group(records, ("dataset",))
    return {name: summarize_dataset(groups[(name,)]) for (name,) in sorted(groups)}


# --------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------

_AGGREGATE_KEYS = ("dataset", "hidden_width", "param_count", "n_seeds") + tuple(
    f"{metric}_{stat}" for metric in ("clean_acc", "fgsm_gap", "pgd_gap")
    for stat in ("mean", "std"))


def width_table(aggregated) -> list[dict]:
    """Rows of the per-width summary table, from :func:`aggregate` output.

    Parameters
    ----------
    aggregated : sequence of dict
        Rows as returned by :func:`aggregate`.

    Returns
    -------
    list of dict
        One row per (dataset, width), sorted, with ``dataset``,
        ``hidden_width``, ``param_count``, ``n_seeds`` (the smallest over eps),
        ``clean_acc_mean`` / ``clean_acc_std`` (across seeds), and
        ``fgsm_gap_mean``, ``fgsm_gap_std``, ``pgd_gap_mean``, ``pgd_gap_std``:
        the mean over eps of the per-eps cross-seed mean and of the per-eps
        cross-seed standard deviation.
    """
    for index, row in enumerate(aggregated):
        missing = [key for key in _AGGREGATE_KEYS if key not in row]
        if missing:
            raise DataError(f"aggregated row {index} lacks {', '.join(missing)}")
    table = []
    for (dataset, width), rows in sorted(_group(aggregated, ("dataset", "hidden_width")).items()):
        entry = {"dataset": dataset, "hidden_width": int(width),
                 "param_count": int(rows[0]["param_count"]),
                 "n_seeds": min(int(row["n_seeds"]) for row in rows)}
        for metric in ("clean_acc", "fgsm_gap", "pgd_gap"):
            for stat in ("mean", "std"):
                key = f"{metric}_{stat}"
                entry[key] = float(np.mean([row[key] for row in rows]))
        table.append(entry)
    return table


def document_records(results_doc) -> list:
    """The records of a results document, checked against the schema.

    Raises
    ------
    DataError
        If `results_doc` has no ``results`` list, the list is empty, or a
        record breaks the schema.
    """
    if not isinstance(results_doc, Mapping) or not isinstance(results_doc.get("results"), list):
        raise DataError("not a results document: expected a dict with a 'results' list")
    check_records(results_doc["results"])
    if not results_doc["results"]:
        raise DataError("the results document holds no records")
    return results_doc["results"]


def _number(value, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _interval(bounds, digits: int = 4) -> str:
    if bounds is None:
        return "n/a"
    return f"[{_number(bounds[0], digits)}, {_number(bounds[1], digits)}]"


def _seeds_phrase(rows) -> str:
    counts = sorted({row["n_seeds"] for row in rows})
    number = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return f"{number} seed" + ("" if counts == [1] else "s")


def format_summary_table(results_doc) -> str:
    """The per-width summary printed at the end of a sweep.

    Parameters
    ----------
    results_doc : dict
        A results document (see :func:`build_results`); only its records and
        config are read, so the table always agrees with the records.

    Returns
    -------
    str
        For each dataset a block headed ``[NAME] Per-width summary (mean +/- std
        across N seeds):`` with one line per width (width, parameter count,
        clean accuracy, FGSM gap and PGD gap as ``mean +/- std``), followed by
        the Pearson correlation of each gap with log10 parameter count, its
        p-value and its 95% confidence interval (``n/a`` where undefined).
    """
    records = document_records(results_doc)
    table = width_table(aggregate(records))
    summaries = summarize_by_dataset(records)
    blocks = []
    for name in dataset_order(records, results_doc.get("config")):
        rows = [row for row in table if row["dataset"] == name]
        lines = [
            f"  [{name.upper()}] Per-width summary (mean +/- std across {_seeds_phrase(rows)}):",
            f"  {'Width':>6} {'Params':>9} {'Clean':>18} {'FGSM Gap':>18} {'PGD Gap':>18}",
            "  " + "-" * 73,
        ]
        for row in rows:
            cells = [f"{row[f'{m}_mean']:.4f} +/- {row[f'{m}_std']:.4f}"
                     for m in ("clean_acc", "fgsm_gap", "pgd_gap")]
            lines.append(f"  {row['hidden_width']:>6d} {row['param_count']:>9d} "
                         + " ".join(f"{cell:>18}" for cell in cells))
        lines.append("")
        summary = summaries[name]
        for attack, label in (("fgsm", "FGSM"), ("pgd", "PGD")):
            r = summary[f"trend_{attack}_gap"]["pearson_r"]
            lines.append(f"  {f'Corr(log params, {label} gap):':<27} {_number(r)}")
        for attack, label in (("fgsm", "FGSM"), ("pgd", "PGD")):
            trend = summary[f"trend_{attack}_gap"]
            lines.append(f"  {f'{label} trend p-value (Pearson):':<29} "
                         f"{_number(trend['pearson_p_value'])}, "
                         f"95% CI for r: {_interval(trend['pearson_r_ci95'])}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def format_markdown_table(results_doc, dataset: str) -> str:
    """The per-width summary of one dataset as a Markdown table.

    Parameters
    ----------
    results_doc : dict
        A results document (see :func:`build_results`).
    dataset : str
        Name of the dataset to tabulate.

    Returns
    -------
    str
        A caption line, the table (width, parameters, clean accuracy and mean
        FGSM / PGD gap as ``mean ± std`` to three decimals), and one line with
        the Pearson trends.

    Raises
    ------
    DataError
        If `dataset` is not in the results.
    """
    records = document_records(results_doc)
    present = dataset_order(records, results_doc.get("config"))
    if dataset not in present:
        raise DataError(f"dataset {dataset!r} is not in the results; "
                        f"available: {', '.join(present)}")
    subset = [record for record in records if record["dataset"] == dataset]
    rows = width_table(aggregate(subset))
    summary = summarize_dataset(subset)
    lines = [
        f"*{dataset}: robustness gap by hidden width "
        f"(mean ± std across {_seeds_phrase(rows)}).*",
        "",
        "| Width | Params | Clean Acc | Mean FGSM Gap | Mean PGD Gap |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        cells = [f"{row[f'{m}_mean']:.3f} ± {row[f'{m}_std']:.3f}"
                 for m in ("clean_acc", "fgsm_gap", "pgd_gap")]
        lines.append(f"| {row['hidden_width']} | {row['param_count']:,} | " + " | ".join(cells) + " |")
    trends = []
    for attack, label in (("fgsm", "FGSM"), ("pgd", "PGD")):
        trend = summary[f"trend_{attack}_gap"]
        trends.append(f"{label} r = {_number(trend['pearson_r'], 2)} "
                      f"(p = {_number(trend['pearson_p_value'], 3)}, "
                      f"95% CI {_interval(trend['pearson_r_ci95'], 2)})")
    lines += ["", "Pearson correlation of log10(params) with the mean gap: "
              + "; ".join(trends) + "."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# the results document
# --------------------------------------------------------------------------

def build_results(records, config: Mapping, environment: Mapping, tasks=None) -> dict:
    """Assemble the results.json document of a sweep.

    Parameters
    ----------
    records : sequence of dict
        Every record of the sweep, in any order.
    config : dict
        The study configuration (``StudyConfig.to_dict()``), stored as given.
    environment : dict
        Versions and platform (python, numpy, numba, scipy, platform, robnp).
    tasks : sequence of dict, optional
        Per-task rows (dataset, seed, hidden_width, epochs, task_seconds,
        final_loss).  Derived from the records when omitted.

    Returns
    -------
    dict
        ``results`` (records sorted by dataset, seed, width, eps),
        ``aggregated``, ``dataset_summaries`` (in configuration order),
        ``summary`` (the circles summary when present, otherwise the first
        dataset's), ``config``, ``environment``, ``tasks`` and
        ``n_experiments``.

    Raises
    ------
    DataError
        If there are no records or a record breaks the schema.
    """
    results = sorted_records(records)
    if not results:
        raise DataError("no records to report")
    if not isinstance(config, Mapping):
        raise DataError(f"config must be a dict, got {type(config).__name__}")
    if not isinstance(environment, Mapping):
        raise DataError(f"environment must be a dict, got {type(environment).__name__}")
    summaries = summarize_by_dataset(results)
    names = dataset_order(results, config)
    headline = HEADLINE_DATASET if HEADLINE_DATASET in summaries else names[0]
    if tasks is None:
        task_rows = task_table(results)
    else:
        for index, task in enumerate(tasks):
            missing = [key for key in TASK_FIELDS if not isinstance(task, Mapping) or key not in task]
            if missing:
                raise DataError(f"task {index} lacks {', '.join(missing)}")
        task_rows = sorted(
            ({key: _plain(value) for key, value in task.items()} for task in tasks),
            key=lambda task: (str(task["dataset"]), int(task["seed"]), int(task["hidden_width"])))
    return {
        "results": results,
        "aggregated": aggregate(results),
        "dataset_summaries": {name: summaries[name] for name in names},
        "summary": summaries[headline],
        "config": dict(config),
        "environment": dict(environment),
        "tasks": task_rows,
        "n_experiments": len(results),
    }
