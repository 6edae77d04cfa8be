"""The results document of a sweep, and its output directory.

:func:`build_results` assembles results.json from the study's rows, checking them
once and computing every statistic once; tables and figures read the document.
:func:`write_report` is the last step of ``robnp sweep``; :func:`regenerate`
backs ``robnp report DIR``, which rebuilds every derived number and figure from
the records stored in results.json without training anything. Reading results.json
back (:func:`load_results`, :data:`RESULTS_FILE`) lives in :mod:`robnp.report.validate`,
which this module calls; both names are importable from here.  Because the
derived parts are always recomputed from the records, a report can be
regenerated after the statistics code changes and will agree with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from robnp._io import atomic_write_json
from robnp.errors import DataError, StoreError
from robnp.report.plots import FIGURE_FILES, write_figures
from robnp.report.records import check_records, plain, record_attacks, sorted_records
from robnp.report.stats import (HEADLINE_DATASET, TASK_FIELDS, aggregate_unchecked,
                                dataset_order, summarize_by_dataset_unchecked,
                                task_table_unchecked)
from robnp.report.validate import RESULTS_FILE, load_results, validate_results

__all__ = ["RESULTS_FILE", "document_records", "build_results", "load_results",
           "write_report", "regenerate", "INTEGRITY_CHECKS"]

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
    results = sorted_records(records)  # the one schema check of these records
    if not results:
        raise DataError("no records to report")
    attacks = record_attacks(results)
    if not isinstance(config, Mapping):
        raise DataError(f"config must be a dict, got {type(config).__name__}")
    if not isinstance(environment, Mapping):
        raise DataError(f"environment must be a dict, got {type(environment).__name__}")
    summaries = summarize_by_dataset_unchecked(results, attacks)
    names = dataset_order(results, config)
    headline = HEADLINE_DATASET if HEADLINE_DATASET in summaries else names[0]
    if tasks is None:
        task_rows = task_table_unchecked(results)
    else:
        for index, task in enumerate(tasks):
            missing = [key for key in TASK_FIELDS if not isinstance(task, Mapping) or key not in task]
            if missing:
                raise DataError(f"task {index} lacks {', '.join(missing)}")
        task_rows = sorted(
            ({key: plain(value) for key, value in task.items()} for task in tasks),
            key=lambda task: (str(task["dataset"]), int(task["seed"]), int(task["hidden_width"])))
    return {
        "results": results,
        "aggregated": aggregate_unchecked(results, attacks),
        "dataset_summaries": {name: summaries[name] for name in names},
        "summary": summaries[headline],
        "config": dict(config),
        "environment": dict(environment),
        "tasks": task_rows,
        "n_experiments": len(results),
    }


def write_report(results_doc, out_dir) -> dict[str, Path]:
    """Write results.json and the figures into `out_dir`, each atomically.

    Parameters
    ----------
    results_doc : dict
        A document from :func:`build_results`.
    out_dir : str or os.PathLike
        Destination directory; created if missing.

    Returns
    -------
    dict of str to Path
        ``"results"`` and each figure's stem (``"clean_vs_robust"``,
        ``"robustness_gap"``, ``"param_scaling"``) mapped to its file.
    """
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create {out_dir}: {exc.strerror or exc}") from None
    # results.json first: it is the one file the figures can be rebuilt from.
    written = {"results": atomic_write_json(out_dir / RESULTS_FILE, results_doc)}
    for name, path in zip(FIGURE_FILES, write_figures(results_doc, out_dir)):
        written[Path(name).stem] = path
    return written


def regenerate(out_dir) -> dict:
    """Recompute every derived part of a report from its stored records.

    Reloads results.json, rebuilds the aggregates, summaries and task table
    from its ``results`` and ``config`` (keeping its ``environment`` and
    ``tasks``), and rewrites results.json and the figures.  Top-level keys
    this package does not produce are kept as they were.

    Parameters
    ----------
    out_dir : str or os.PathLike
        A directory written by :func:`write_report`.

    Returns
    -------
    dict
        The rewritten results document.

    Raises
    ------
    StoreError, DataError
        As :func:`load_results`; a DataError, with nothing rewritten, if the
        records fail one of :data:`INTEGRITY_CHECKS` of :mod:`robnp.report.validate`.
    """
    old = load_results(out_dir)
    _refuse_invalid(out_dir)
    environment = old.get("environment")
    rebuilt = build_results(old["results"], old["config"],
                            environment if isinstance(environment, Mapping) else {},
                            tasks=old.get("tasks"))
    document = {key: value for key, value in old.items() if key not in rebuilt}
    document.update(rebuilt)
    write_report(document, out_dir)
    return document


#: The checks of :func:`robnp.report.validate.validate_results` a report is not rebuilt
#: without: what the records and configuration say must be true for the figures
#: drawn from them to be true. The plausibility checks (clean accuracy, PGD versus
#: FGSM, trends) describe a healthy study, not a consistent one, and the aggregate,
#: summary and figure checks concern exactly what a report rebuilds.
INTEGRITY_CHECKS = ("records match the schema", "config lists the sweep",
                    "every run of the config present once", "accuracies in [0, 1]",
                    "gaps equal clean minus robust accuracy")


def _refuse_invalid(out_dir) -> None:
    outcome = validate_results(out_dir)
    problems = [failure for failure in outcome.failures
                if failure.split(": ", 1)[0] in INTEGRITY_CHECKS]
    if problems:
        shown = "; ".join(problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise DataError(f"{Path(out_dir) / RESULTS_FILE} is invalid, nothing rewritten: "
                        f"{shown}{more}; see robnp validate {out_dir}")
