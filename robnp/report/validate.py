"""Checks that a sweep's output directory holds a complete, plausible study.

:func:`validate_results` runs the checks the reproduced study lists, against
the configuration stored in results.json, and returns a
:class:`ValidationReport`.  A missing or unreadable results.json is an error
(raised); a result that fails a check is not: the failures are returned so
that all of them can be shown at once.

:func:`load_results` reads an output directory's results.json back, checked as far
as every reader needs (strict JSON, a ``results`` list, a ``config`` object). It
lives here, below :mod:`robnp.report.document` (which writes results.json and
refuses to regenerate what these checks find inconsistent), so that neither module
imports the other back; ``robnp.report.load_results`` and
``robnp.report.document.load_results`` are the same function.

The plausibility thresholds (:data:`MIN_CLEAN_ACC`, :data:`PGD_SLACK`, ...)
are the study's.  They describe what a healthy sweep on its 2-D tasks looks
like, not mathematical guarantees: FGSM accuracy, for example, may rise a
little with eps because a single large step can overshoot the boundary.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import product
from pathlib import Path

import numpy as np

from robnp._checks import is_integer, is_real
from robnp.errors import DataError, StoreError
from robnp.report.plots import FIGURE_FILES
from robnp.report.records import (attack_label, describe_record, metrics, record_attacks,
                                  record_problems)
from robnp.report.stats import aggregate_unchecked, summarize_by_dataset_unchecked

#: Lowest acceptable cross-seed mean clean accuracy of any dataset and width.
MIN_CLEAN_ACC = 0.8
#: Largest acceptable |stored gap - (clean_acc - robust_acc)|.
GAP_TOLERANCE = 1e-6
#: PGD may be this much weaker than FGSM (higher accuracy) and still count as stronger.
PGD_SLACK = 0.05
#: Share of runs in which PGD must be at least as strong as FGSM (within the slack).
PGD_MIN_FRACTION = 0.9
#: Largest acceptable rise of FGSM accuracy from one eps to the next.
FGSM_MAX_RISE = 0.10
#: Keys the environment metadata must carry.
ENVIRONMENT_KEYS: tuple[str, ...] = ("python", "numpy", "numba", "scipy", "platform", "robnp")
#: Smallest size of a figure that can hold a drawn plot; an empty canvas is smaller.
MIN_FIGURE_BYTES = 4096
#: How many individual problems one check lists before summarizing the rest.
MAX_LISTED = 5

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_AGGREGATE_MATCH = 1e-9


# --------------------------------------------------------------------------
# reading results.json back
# --------------------------------------------------------------------------

#: Name of the results document inside an output directory.
RESULTS_FILE = "results.json"


def _reject_constant(name: str):
    raise DataError(f"results.json contains {name}, which strict JSON does not allow")


def load_results(out_dir) -> dict:
    """Read and check the results document of an output directory.

    Parameters
    ----------
    out_dir : str or os.PathLike
        A directory written by :func:`robnp.report.write_report`.

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
        # The parser's message may end in "starting at": the position follows apart.
        raise DataError(f"{path} is not valid JSON: {exc.msg} (line {exc.lineno}, "
                        f"column {exc.colno})") from exc
    if not isinstance(doc, Mapping):
        raise DataError(f"{path} is not a robnp results document: "
                        f"top level is a {type(doc).__name__}, not an object")
    for key, kind in (("results", list), ("config", Mapping)):
        if not isinstance(doc.get(key), kind):
            raise DataError(f"{path} is not a robnp results document: "
                            f"'{key}' is missing or not a {'list' if kind is list else 'object'}")
    return doc


@dataclass(frozen=True)
class ValidationReport:
    """Outcome of :func:`validate_results`.

    Attributes
    ----------
    failures : list of str
        One line per failed expectation, prefixed with the check's name.
    checks : list of str
        Names of the checks that ran, in order.
    summary_lines : list of str
        The configuration and each dataset's correlations, for printing.
    """

    failures: list[str]
    checks: list[str]
    summary_lines: list[str]

    @property
    def passed(self) -> bool:
        """True when no check failed."""
        return not self.failures


@dataclass(frozen=True)
class _Grid:
    datasets: list
    seeds: list
    widths: list
    epsilons: list

    def runs(self) -> set:
        return {(d, s, w, _eps_key(e))
                for d, s, w, e in product(self.datasets, self.seeds, self.widths, self.epsilons)}


def _eps_key(eps) -> float:
    # eps values pass through JSON and arithmetic elsewhere; compare them
    # after rounding away representation noise.
    return round(float(eps), 12)


def _run_key(record) -> tuple:
    return (record["dataset"], int(record["seed"]), int(record["hidden_width"]),
            _eps_key(record["epsilon"]))


def _describe_run(run) -> str:
    dataset, seed, width, eps = run
    return f"{dataset} seed={seed} width={width} eps={eps:g}"


def _is_number(value) -> bool:
    return is_real(value) and math.isfinite(value)


def _limited(messages: list[str]) -> list[str]:
    if len(messages) <= MAX_LISTED:
        return messages
    return messages[:MAX_LISTED] + [f"... and {len(messages) - MAX_LISTED} more like these"]


# --------------------------------------------------------------------------
# the checks; each returns a list of problems (empty when it passes)
# --------------------------------------------------------------------------

def _parse_grid(config) -> tuple[_Grid | None, list[str]]:
    problems = []
    names = []
    for entry in config.get("datasets") or []:
        name = entry.get("name") if isinstance(entry, Mapping) else entry
        if isinstance(name, str) and name:
            names.append(name)
        else:
            problems.append(f"config dataset entry {entry!r} has no name")
    if not names:
        problems.append("config lists no datasets")
    lists = {}
    for key, accept in (("seeds", is_integer), ("hidden_widths", is_integer),
                        ("epsilons", _is_number)):
        values = config.get(key)
        if not isinstance(values, list) or not values:
            problems.append(f"config '{key}' is missing or empty")
        elif not all(accept(value) for value in values):
            problems.append(f"config '{key}' holds an invalid value: {values!r}")
        else:
            lists[key] = values
    if problems:
        return None, problems
    return _Grid(names, [int(s) for s in lists["seeds"]], [int(w) for w in lists["hidden_widths"]],
                 [float(e) for e in lists["epsilons"]]), []


def _check_schema(records) -> list[str]:
    return record_problems(records) or ([] if records else ["results.json holds no records"])


def _check_complete(doc, records, grid: _Grid) -> list[str]:
    expected = grid.runs()
    counts = Counter(_run_key(record) for record in records)
    problems = []
    missing = sorted(expected - set(counts))
    if missing:
        problems.append(
            f"{len(missing)} of {len(expected)} runs missing "
            f"({len(grid.datasets)} datasets x {len(grid.seeds)} seeds x "
            f"{len(grid.widths)} widths x {len(grid.epsilons)} eps), e.g. "
            + "; ".join(_describe_run(run) for run in missing[:3]))
    problems += [f"duplicate run {_describe_run(run)} ({n} records)"
                 for run, n in sorted(counts.items()) if n > 1]
    problems += [f"run {_describe_run(run)} is not in the stored config"
                 for run in sorted(set(counts) - expected)]
    stored_count = doc.get("n_experiments")
    if stored_count is not None and stored_count != len(records):
        problems.append(f"n_experiments is {stored_count} but there are {len(records)} records")
    return problems


def _check_accuracy_range(records, attacks) -> list[str]:
    keys = ("clean_acc", *(f"{attack}_acc" for attack in attacks))
    return [f"{describe_record(record)}: {key} = {record[key]} outside [0, 1]"
            for record in records for key in keys if not 0.0 <= record[key] <= 1.0]


def _check_gaps(records, attacks) -> list[str]:
    problems = []
    for record, attack in product(records, attacks):
        expected = record["clean_acc"] - record[f"{attack}_acc"]
        stored = record[f"{attack}_gap"]
        if abs(stored - expected) > GAP_TOLERANCE:
            problems.append(f"{describe_record(record)}: {attack}_gap = {stored} but "
                            f"clean_acc - {attack}_acc = {expected:.6g}")
    return problems


def _check_clean_accuracy(records) -> list[str]:
    clean = defaultdict(dict)
    for record in records:
        # One value per seed: every eps of a task repeats the same clean accuracy.
        clean[(record["dataset"], int(record["hidden_width"]))][int(record["seed"])] = record["clean_acc"]
    problems = []
    for (dataset, width), by_seed in sorted(clean.items()):
        mean = float(np.mean(list(by_seed.values())))
        if mean < MIN_CLEAN_ACC:
            problems.append(f"{dataset} width={width}: mean clean accuracy {mean:.4f} "
                            f"across {len(by_seed)} seeds is below {MIN_CLEAN_ACC}")
    return problems


def _check_pgd_strength(records) -> list[str]:
    if not records:
        return []
    weaker = [record for record in records
              if record["pgd_acc"] > record["fgsm_acc"] + PGD_SLACK]
    share = 1.0 - len(weaker) / len(records)
    if share >= PGD_MIN_FRACTION:
        return []
    examples = "; ".join(f"{describe_record(r)} (pgd {r['pgd_acc']:.4f} vs fgsm {r['fgsm_acc']:.4f})"
                         for r in weaker[:3])
    return [f"PGD accuracy exceeds FGSM accuracy by more than {PGD_SLACK} in "
            f"{len(weaker)} of {len(records)} runs ({share:.1%} within tolerance, "
            f"need {PGD_MIN_FRACTION:.0%}), e.g. {examples}"]


def _check_fgsm_trend(records) -> list[str]:
    curves = defaultdict(list)
    for record in records:
        curves[(record["dataset"], int(record["seed"]), int(record["hidden_width"]))].append(
            (float(record["epsilon"]), record["fgsm_acc"]))
    problems = []
    for (dataset, seed, width), points in sorted(curves.items()):
        points.sort()
        for (eps_a, acc_a), (eps_b, acc_b) in zip(points, points[1:]):
            if acc_b - acc_a > FGSM_MAX_RISE:
                problems.append(f"{dataset} seed={seed} width={width}: FGSM accuracy rises "
                                f"from {acc_a:.4f} at eps={eps_a:g} to {acc_b:.4f} at "
                                f"eps={eps_b:g} (more than {FGSM_MAX_RISE})")
    return problems


def _check_aggregates(doc, fresh_rows, attacks, grid: _Grid) -> list[str]:
    stored = doc.get("aggregated")
    if not isinstance(stored, list):
        return ["'aggregated' is missing or not a list"]
    keys = ("dataset", "hidden_width", "epsilon", "n_seeds") + tuple(
        f"{metric}_mean" for metric in metrics(attacks))
    problems = []
    rows = {}
    for index, row in enumerate(stored):
        if not isinstance(row, Mapping) or any(key not in row for key in keys):
            problems.append(f"aggregated row {index} lacks some of {', '.join(keys)}")
            continue
        if not (isinstance(row["dataset"], str) and is_integer(row["hidden_width"])
                and _is_number(row["epsilon"])):
            problems.append(f"aggregated row {index} has a malformed dataset, width or eps")
            continue
        cell = (row["dataset"], row["hidden_width"], _eps_key(row["epsilon"]))
        if cell in rows:
            problems.append(f"aggregated cell {cell} appears twice")
        rows[cell] = row
    expected = {(d, w, _eps_key(e)) for d, w, e in product(grid.datasets, grid.widths, grid.epsilons)}
    missing = sorted(expected - set(rows))
    if missing:
        problems.append(f"{len(missing)} of {len(expected)} aggregated cells missing, e.g. "
                        + "; ".join(f"{d} width={w} eps={e:g}" for d, w, e in missing[:3]))
    for cell in sorted(expected & set(rows)):
        if rows[cell]["n_seeds"] != len(grid.seeds):
            problems.append(f"aggregated {cell[0]} width={cell[1]} eps={cell[2]:g} has "
                            f"n_seeds={rows[cell]['n_seeds']}, expected {len(grid.seeds)}")
    # Stale aggregates (records edited or replaced after the fact) disagree
    # with a fresh computation from the records.
    for fresh in fresh_rows:
        row = rows.get((fresh["dataset"], fresh["hidden_width"], _eps_key(fresh["epsilon"])))
        if row is None:
            continue
        for metric in metrics(attacks):
            key = f"{metric}_mean"
            if not _is_number(row[key]) or abs(row[key] - fresh[key]) > _AGGREGATE_MATCH:
                problems.append(f"aggregated {fresh['dataset']} width={fresh['hidden_width']} "
                                f"eps={fresh['epsilon']:g}: {key} = {row[key]} but the "
                                f"records give {fresh[key]:.6g}")
    return problems


def _trend_problems(name: str, attack: str, stored, fresh: dict) -> list[str]:
    where = f"{name} trend_{attack}_gap"
    if not isinstance(stored, Mapping):
        return [f"{where} is missing"]
    r, p, ci = stored.get("pearson_r"), stored.get("pearson_p_value"), stored.get("pearson_r_ci95")
    if fresh["pearson_r"] is None:
        return [f"{where}: Pearson r is undefined (per-width mean gaps are constant)"]
    problems = []
    if not _is_number(r) or not -1.0 <= r <= 1.0:
        problems.append(f"{where}: pearson_r = {r!r} is not a correlation")
    elif abs(r - fresh["pearson_r"]) > _AGGREGATE_MATCH:
        problems.append(f"{where}: pearson_r = {r} but the records give {fresh['pearson_r']:.6g}")
    if not _is_number(p) or not 0.0 <= p <= 1.0:
        problems.append(f"{where}: pearson_p_value = {p!r} is not in [0, 1]")
    if not (isinstance(ci, list) and len(ci) == 2 and all(_is_number(v) for v in ci)):
        problems.append(f"{where}: pearson_r_ci95 = {ci!r} is not an interval")
    elif _is_number(r) and not ci[0] - 1e-12 <= r <= ci[1] + 1e-12:
        problems.append(f"{where}: 95% CI {ci} does not contain r = {r}")
    return problems


def _check_summaries(doc, fresh_summaries, attacks) -> list[str]:
    stored = doc.get("dataset_summaries")
    if not isinstance(stored, Mapping):
        return ["'dataset_summaries' is missing or not an object"]
    problems = []
    if not isinstance(doc.get("summary"), Mapping):
        problems.append("'summary' is missing or not an object")
    for name, fresh in sorted(fresh_summaries.items()):
        summary = stored.get(name)
        if not isinstance(summary, Mapping):
            problems.append(f"no summary for dataset {name}")
            continue
        if len(fresh["widths"]) < 3:
            continue  # too few widths for a correlation; nothing to demand
        for attack in attacks:
            trend = summary.get(f"trend_{attack}_gap")
            problems += _trend_problems(name, attack, trend, fresh[f"trend_{attack}_gap"])
            corr_key = f"corr_logparams_{attack}_gap"
            if isinstance(trend, Mapping) and summary.get(corr_key) != trend.get("pearson_r"):
                problems.append(f"{name}: {corr_key} differs from trend_{attack}_gap's pearson_r")
    return problems


def _check_environment(doc) -> list[str]:
    environment = doc.get("environment")
    if not isinstance(environment, Mapping):
        return ["'environment' is missing or not an object"]
    return [f"environment lacks '{key}'" for key in ENVIRONMENT_KEYS
            if not (isinstance(environment.get(key), str) and environment[key].strip())]


def _figure_problem(path: Path) -> str | None:
    if not path.is_file():
        return f"{path.name} is missing"
    size = path.stat().st_size
    if size < MIN_FIGURE_BYTES:
        return f"{path.name} has only {size} bytes"
    with path.open("rb") as handle:
        if handle.read(len(_PNG_SIGNATURE)) != _PNG_SIGNATURE:
            return f"{path.name} is not a PNG file"
    from matplotlib.image import imread

    try:
        pixels = imread(path)
    except Exception as exc:  # a corrupt image may fail in any of several decoders
        return f"{path.name} cannot be decoded: {exc}"
    if pixels.size == 0 or np.ptp(pixels) == 0:
        return f"{path.name} is blank (every pixel the same)"
    return None


def _check_figures(out_dir: Path) -> list[str]:
    return [problem for problem in (_figure_problem(out_dir / name) for name in FIGURE_FILES)
            if problem]


# --------------------------------------------------------------------------
# the entry point
# --------------------------------------------------------------------------

def _summary_lines(records, grid: _Grid | None, summaries, attacks) -> list[str]:
    if grid is None:
        lines = [f"Configuration: unreadable, {len(records)} total experiments"]
    else:
        lines = [f"Configuration: {len(grid.datasets)} datasets, {len(grid.seeds)} seeds, "
                 f"{len(grid.widths)} widths, {len(grid.epsilons)} epsilons, "
                 f"{len(records)} total experiments"]
    if summaries is None:
        return lines
    order = [name for name in (grid.datasets if grid else []) if name in summaries]
    order += sorted(set(summaries) - set(order))
    for name in order:
        summary = summaries[name]

        def corr(attack):
            r = summary[f"corr_logparams_{attack}_gap"]
            return "n/a" if r is None else f"{r:.4f}"

        lines.append(f"  - {name}: {summary['n_experiments']} results, " + ", ".join(
            f"Corr(log params, {attack_label(a)} gap) = {corr(a)}" for a in attacks))
    return lines


def validate_results(out_dir) -> ValidationReport:
    """Check an output directory against the study's expectations.

    Parameters
    ----------
    out_dir : str or os.PathLike
        A directory written by :func:`robnp.report.write_report`.

    Returns
    -------
    ValidationReport
        The checks run and every failure found.  Checks that need well-formed
        records or a readable configuration are skipped (and not listed in
        ``checks``) when those are broken; the breakage itself is a failure.

    Raises
    ------
    StoreError, DataError
        If results.json is missing, unreadable, or not a results document
        (see :func:`robnp.report.load_results`).
    """
    out_dir = Path(out_dir)
    doc = load_results(out_dir)
    records = doc["results"]
    failures: list[str] = []
    checks: list[str] = []

    def run(name, problems_of, *args) -> bool:
        checks.append(name)
        problems = problems_of(*args)
        failures.extend(f"{name}: {problem}" for problem in _limited(problems))
        return not problems

    records_ok = run("records match the schema", _check_schema, records)
    grid, grid_problems = _parse_grid(doc["config"])
    run("config lists the sweep", lambda: grid_problems)
    summaries = None
    if records_ok:
        attacks = record_attacks(records)
        # The statistics the document should hold, computed once from its records.
        summaries = summarize_by_dataset_unchecked(records, attacks)
        if grid is not None:
            run("every run of the config present once", _check_complete, doc, records, grid)
        run("accuracies in [0, 1]", _check_accuracy_range, records, attacks)
        run("gaps equal clean minus robust accuracy", _check_gaps, records, attacks)
        run(f"mean clean accuracy at least {MIN_CLEAN_ACC}", _check_clean_accuracy, records)
        if {"fgsm", "pgd"} <= set(attacks):
            run("PGD at least as strong as FGSM", _check_pgd_strength, records)
        if "fgsm" in attacks:
            run("FGSM accuracy does not rise with eps", _check_fgsm_trend, records)
        if grid is not None:
            run("aggregates complete", _check_aggregates, doc,
                aggregate_unchecked(records, attacks), attacks, grid)
        run("summaries carry correlations", _check_summaries, doc, summaries, attacks)
    run("environment metadata present", _check_environment, doc)
    run("figures present and drawn", _check_figures, out_dir)
    return ValidationReport(failures=failures, checks=checks,
                            summary_lines=_summary_lines(records, grid, summaries,
                                                         attacks if records_ok else ()))
