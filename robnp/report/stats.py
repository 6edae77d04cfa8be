"""Statistics of a robustness sweep: aggregates and scaling trends.

Everything here is a pure function over the study's rows (one per dataset x seed x
hidden width x eps; the schema is :mod:`robnp.report.records`), for whatever attacks
the rows hold. Nothing here trains or attacks a model, so every function can be
exercised with hand-made records. The public functions check their records; the
results document (:func:`robnp.report.document.build_results`) and the validation
check them once and call the ``_unchecked`` versions.

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
import warnings
from collections import defaultdict
from collections.abc import Mapping

import numpy as np

from robnp.errors import DataError
from robnp.report.records import check_records, metrics, plain, record_attacks, sorted_records

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
# tasks and grouping
# --------------------------------------------------------------------------

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
    return task_table_unchecked(sorted_records(records))


def task_table_unchecked(results) -> list[dict]:
    """:func:`task_table` of records already checked and sorted
    (:func:`~robnp.report.records.sorted_records`): the results document checks its
    records once and computes every statistic from them."""
    tasks = {}
    for record in results:
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
        groups[tuple(plain(record[key]) for key in keys)].append(record)
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
        :func:`robnp.report.records.metrics` of the rows' attacks (clean accuracy,
        each attack's robust accuracy, each attack's gap).  Standard deviations
        are population ones (``ddof=0``).

    Raises
    ------
    DataError
        If a record does not match the schema.
    """
    check_records(records)
    return aggregate_unchecked(records, record_attacks(records))


def aggregate_unchecked(records, attacks) -> list[dict]:
    """:func:`aggregate` of records already checked
    (:func:`~robnp.report.records.check_records`), over the metrics of ``attacks``
    (their :func:`~robnp.report.records.record_attacks`)."""
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
        for metric in metrics(attacks):
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


#: What tables and figures say in place of Pearson's interval at three widths or fewer.
TOO_FEW_WIDTHS = "too few widths for a 95% CI"


def shown_interval(trend, n_widths: int) -> list | None:
    """The 95% confidence interval of a trend's Pearson r as tables and figures show
    it: None at three widths or fewer (:data:`TOO_FEW_WIDTHS`), where Fisher's
    interval, of standard error ``1 / sqrt(n - 3)``, is ``[-1, 1]`` by construction
    and says nothing (results.json keeps the value :func:`correlation_trend`
    computed); otherwise the stored interval (None where r is undefined)."""
    if n_widths <= 3:
        return None
    return trend.get("pearson_r_ci95")


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
        ``clean_acc_std`` (across seeds), ``param_count``, and for every attack
        ``mean_<attack>_gap`` / ``std_<attack>_gap`` and ``mean_<attack>_acc``
        over every seed and eps of the width; ``trend_<attack>_gap`` from
        :func:`correlation_trend`; and ``corr_logparams_<attack>_gap``, the
        Pearson r of that trend.

    Raises
    ------
    DataError
        If `records` is empty, mixes datasets, or breaks the schema.
    """
    check_records(records)
    return _summarize(records, record_attacks(records))


def _summarize(records, attacks) -> dict:
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
        for attack in attacks:
            gap_mean, gap_std = _mean_std([m[f"{attack}_gap"] for m in members])
            entry[f"mean_{attack}_gap"] = gap_mean
            entry[f"std_{attack}_gap"] = gap_std
        for attack in attacks:
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
    for attack in attacks:
        gaps = [per_width[str(w)][f"mean_{attack}_gap"] for w in widths]
        trend = correlation_trend(log_params, gaps)
        summary[f"trend_{attack}_gap"] = trend
        summary[f"corr_logparams_{attack}_gap"] = trend["pearson_r"]
    return summary


def summarize_by_dataset(records) -> dict[str, dict]:
    """:func:`summarize_dataset` for each dataset, keyed by name (sorted)."""
    check_records(records)
    return summarize_by_dataset_unchecked(records, record_attacks(records))


def summarize_by_dataset_unchecked(records, attacks) -> dict[str, dict]:
    """:func:`summarize_by_dataset` of records already checked, over the metrics of
    ``attacks`` (as :func:`aggregate_unchecked`)."""
    groups = _group(records, ("dataset",))
    return {name: _summarize(groups[(name,)], attacks) for (name,) in sorted(groups)}


def exact_bracket(rows, attacks) -> dict[float, tuple[float, float | None, float]]:
    """Per eps, ``(lower, exact, upper)``: means over every model whose rows hold the
    ``exact`` analysis, bracketing the mean exact robust accuracy.

    A model's exact accuracy is known where branch and bound left no point undecided
    (``exact_acc`` not None) and lies between its ``certified_acc`` and its smallest
    attack robust accuracy otherwise. ``lower`` and ``upper`` average, over the same
    models, the exact value where known and those two bounds elsewhere, so
    ``lower <= exact <= upper`` always holds; ``exact`` is the mean only when every
    model is decided (it then equals both), else None. Averaging the decided models
    alone would compare means over different models and could fall outside the
    bracket.

    Parameters
    ----------
    rows : sequence of dict
        Study rows (one dataset, any seeds and widths).
    attacks : sequence of str
        The attack keys of the rows (:func:`~robnp.report.records.record_attacks`).

    Returns
    -------
    dict mapping eps to (float, float or None, float); empty without the analysis.
    """
    out = {}
    held = [row for row in rows if "exact_acc" in row and "certified_acc" in row]
    for eps in sorted({row["epsilon"] for row in held}):
        at = [row for row in held if row["epsilon"] == eps]
        lower, upper = [], []
        for row in at:
            exact = row["exact_acc"]
            best_attack = min((row[f"{a}_acc"] for a in attacks), default=row["clean_acc"])
            lower.append(row["certified_acc"] if exact is None else exact)
            upper.append(best_attack if exact is None else exact)
        decided = all(row["exact_acc"] is not None for row in at)
        low, high = float(np.mean(lower)), float(np.mean(upper))
        out[float(eps)] = (low, low if decided else None, high)
    return out


# --------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------

_WIDTH_KEYS = ("dataset", "hidden_width", "param_count", "n_seeds", "clean_acc_mean",
               "clean_acc_std")


def table_attacks(aggregated) -> tuple[str, ...]:
    """The attack keys of :func:`aggregate` rows (each has ``<attack>_gap_mean``)."""
    found: list[str] = []
    for row in aggregated:
        for key in row:
            if isinstance(key, str) and key.endswith("_gap_mean") and key[:-9] not in found:
                found.append(key[:-9])
    return tuple(found)


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
        ``clean_acc_mean`` / ``clean_acc_std`` (across seeds), and for every
        attack ``<attack>_gap_mean`` and ``<attack>_gap_std``: the mean over eps
        of the per-eps cross-seed mean and of the per-eps cross-seed standard
        deviation.
    """
    attacks = table_attacks(aggregated)
    required = _WIDTH_KEYS + tuple(f"{a}_gap_{stat}" for a in attacks for stat in ("mean", "std"))
    for index, row in enumerate(aggregated):
        missing = [key for key in required if key not in row]
        if missing:
            raise DataError(f"aggregated row {index} lacks {', '.join(missing)}")
    table = []
    for (dataset, width), rows in sorted(_group(aggregated, ("dataset", "hidden_width")).items()):
        entry = {"dataset": dataset, "hidden_width": int(width),
                 "param_count": int(rows[0]["param_count"]),
                 "n_seeds": min(int(row["n_seeds"]) for row in rows)}
        for metric in ("clean_acc", *(f"{a}_gap" for a in attacks)):
            for stat in ("mean", "std"):
                key = f"{metric}_{stat}"
                entry[key] = float(np.mean([row[key] for row in rows]))
        table.append(entry)
    return table


def document_statistics(results_doc):
    """``(aggregated rows, dataset summaries, dataset names in order)`` of a results
    document, as :func:`robnp.report.document.build_results` stored them: what tables
    and figures draw, without recomputing anything."""
    if not isinstance(results_doc, Mapping):
        raise DataError("not a results document: expected a dict")
    aggregated = results_doc.get("aggregated")
    summaries = results_doc.get("dataset_summaries")
    if not isinstance(aggregated, list) or not aggregated or not isinstance(summaries, Mapping):
        raise DataError("the results document has no statistics ('aggregated' and "
                        "'dataset_summaries'); rebuild it with robnp report")
    names = dataset_order(aggregated, results_doc.get("config"))
    return aggregated, summaries, names
