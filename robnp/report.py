"""The output directory of a sweep: results.json and the figures.

:func:`write_report` is the last step of ``robnp sweep``; :func:`regenerate`
backs ``robnp report DIR``, which rebuilds every derived number and figure from
the records stored in results.json without training anything.  Because the
derived parts are always recomputed from the records, a report can be
regenerated after the statistics code changes and will agree with it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from robnp._io import atomic_write_json
from robnp.errors import DataError, StoreError
from robnp.plots import FIGURE_FILES, write_figures
from robnp.stats import build_results

#: Name of the results document inside an output directory.
RESULTS_FILE = "results.json"


def _reject_constant(name: str):
    raise DataError(f"results.json contains {name}, which strict JSON does not allow")


def load_results(out_dir) -> dict:
    """Read and check the results document of an output directory.

    Parameters
    ----------
    out_dir : str or os.PathLike
        A directory written by :func:`write_report`.

    Returns
    -------
    dict
        The parsed results.json.

    Raises
    ------
    StoreError
        If the directory or results.json is missing or cannot be read.
    DataError
        If results.json is not valid strict JSON or not a robnp results
        document (a JSON object with a ``results`` list and a ``config``
        object).
    """
    out_dir = Path(out_dir)
    if not out_dir.exists():
        raise StoreError(f"results directory {out_dir} does not exist")
    if not out_dir.is_dir():
        raise StoreError(f"{out_dir} is not a directory")
    path = out_dir / RESULTS_FILE
    if not path.is_file():
        raise StoreError(f"no {RESULTS_FILE} in {out_dir}: nothing to report yet")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"cannot read {path}: {exc}") from exc
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, "
                        f"column {exc.colno}") from exc
    if not isinstance(doc, Mapping):
        raise DataError(f"{path} is not a robnp results document: "
                        f"top level is a {type(doc).__name__}, not an object")
    for key, kind in (("results", list), ("config", Mapping)):
        if not isinstance(doc.get(key), kind):
            raise DataError(f"{path} is not a robnp results document: "
                            f"'{key}' is missing or not a {'list' if kind is list else 'object'}")
    return doc


def write_report(results_doc, out_dir) -> dict[str, Path]:
    """Write results.json and the figures into `out_dir`, each atomically.

    Parameters
    ----------
    results_doc : dict
        A document from :func:`robnp.stats.build_results`.
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
        records fail one of :data:`INTEGRITY_CHECKS` of :mod:`robnp.validate`.
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


#: The checks of :func:`robnp.validate.validate_results` a report is not rebuilt
#: without: what the records and configuration say must be true for the figures
#: drawn from them to be true. The plausibility checks (clean accuracy, PGD versus
#: FGSM, trends) describe a healthy study, not a consistent one, and the aggregate,
#: summary and figure checks concern exactly what a report rebuilds.
INTEGRITY_CHECKS = ("records match the schema", "config lists the sweep",
                    "every run of the config present once", "accuracies in [0, 1]",
                    "gaps equal clean minus robust accuracy")


def _refuse_invalid(out_dir) -> None:
    from robnp.validate import validate_results

    outcome = validate_results(out_dir)
    problems = [failure for failure in outcome.failures
                if failure.split(": ", 1)[0] in INTEGRITY_CHECKS]
    if problems:
        shown = "; ".join(problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise DataError(f"{Path(out_dir) / RESULTS_FILE} is invalid, nothing rewritten: "
                        f"{shown}{more}; see robnp validate {out_dir}")
