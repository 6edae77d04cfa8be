"""The per-width summary tables of a sweep: the one the CLI prints, and Markdown.

Both read a results document's ``aggregated`` rows and ``dataset_summaries``, which
:func:`robnp.report.document.build_results` computed once from the records (and which
``robnp report`` and ``robnp validate`` check against them); nothing is recomputed here.
Every attack the run has gets a gap column.
"""

from __future__ import annotations

from robnp.errors import DataError
from robnp.report.records import attack_label
from robnp.report.stats import (TOO_FEW_WIDTHS, document_statistics, exact_bracket,
                                shown_interval, table_attacks, width_table)

__all__ = ["format_summary_table", "format_markdown_table", "failed_trainings",
           "training_flops"]


def failed_trainings(results_doc) -> dict[tuple, str]:
    """``(dataset, seed, width) -> reason`` for every task whose rows carry a
    ``training_failed`` flag (a training that ended without NaN but did not learn)."""
    failed = {}
    for row in results_doc.get("results") or []:
        if isinstance(row, dict) and row.get("training_failed"):
            failed[(row["dataset"], row["seed"], row["hidden_width"])] = row["training_failed"]
    return failed


def training_flops(results_doc, dataset: str) -> dict[int, float]:
    """Mean training FLOPs over the seeds of each width of ``dataset``, from the
    rows' ``train_flops`` (written for every recipe but the study's); empty when the
    rows have none."""
    per_model = {}
    for row in results_doc.get("results", []):
        if isinstance(row, dict) and row.get("dataset") == dataset and "train_flops" in row:
            per_model[(row["seed"], row["hidden_width"])] = row["train_flops"]
    widths: dict[int, list] = {}
    for (_, width), value in per_model.items():
        widths.setdefault(width, []).append(value)
    return {width: sum(values) / len(values) for width, values in widths.items()}


def _number(value, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _interval(bounds, digits: int = 4) -> str:
    if bounds is None:
        return "n/a"
    return f"[{_number(bounds[0], digits)}, {_number(bounds[1], digits)}]"


def _interval_phrase(trend, n_widths: int, label: str, digits: int = 4) -> str:
    """``"<label> [lo, hi]"``, or :data:`TOO_FEW_WIDTHS` as the figures say it."""
    if n_widths <= 3:
        return TOO_FEW_WIDTHS
    return f"{label} {_interval(shown_interval(trend, n_widths), digits)}"


def _seeds_phrase(rows) -> str:
    counts = sorted({row["n_seeds"] for row in rows})
    number = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return f"{number} seed" + ("" if counts == [1] else "s")


def format_summary_table(results_doc) -> str:
    """The per-width summary printed at the end of a sweep.

    Parameters
    ----------
    results_doc : dict
        A results document (see :func:`robnp.report.document.build_results`).

    Returns
    -------
    str
        For each dataset a block headed ``[NAME] Per-width summary (mean +/- std
        across N seeds):`` with one line per width (width, parameter count,
        clean accuracy and every attack's gap as ``mean +/- std``), followed by
        the Pearson correlation of each gap with log10 parameter count, its
        p-value and its 95% confidence interval (``n/a`` where undefined).
    """
    aggregated, summaries, names = document_statistics(results_doc)
    table = width_table(aggregated)
    attacks = table_attacks(aggregated)
    labels = [attack_label(a) for a in attacks]
    failed = failed_trainings(results_doc)
    blocks = []
    for name in names:
        rows = [row for row in table if row["dataset"] == name]
        flops = training_flops(results_doc, name)
        header = "".join(f" {f'{label} Gap':>18}" for label in labels)
        header += f" {'Train FLOPs':>11}" if flops else ""
        lines = [
            f"  [{name.upper()}] Per-width summary (mean +/- std across {_seeds_phrase(rows)}):",
            f"  {'Width':>6} {'Params':>9} {'Clean':>18}{header}",
            "  " + "-" * (35 + 19 * len(attacks) + (12 if flops else 0)),
        ]
        flagged_widths = {width for (dataset, _, width) in failed if dataset == name}
        for row in rows:
            cells = [f"{row[f'{m}_mean']:.4f} +/- {row[f'{m}_std']:.4f}"
                     for m in ("clean_acc", *(f"{a}_gap" for a in attacks))]
            cost = f" {flops[row['hidden_width']]:>11.3g}" if flops else ""
            mark = "  ! training failed" if row["hidden_width"] in flagged_widths else ""
            lines.append(f"  {row['hidden_width']:>6d} {row['param_count']:>9d} "
                         + " ".join(f"{cell:>18}" for cell in cells) + cost + mark)
        lines.append("")
        summary = summaries[name]
        width = max(len(label) for label in labels)
        for attack, label in zip(attacks, labels):
            r = summary[f"trend_{attack}_gap"]["pearson_r"]
            lines.append(f"  {f'Corr(log params, {label} gap):':<{23 + width}} {_number(r)}")
        for attack, label in zip(attacks, labels):
            trend = summary[f"trend_{attack}_gap"]
            lines.append(f"  {f'{label} trend p-value (Pearson):':<{25 + width}} "
                         f"{_number(trend['pearson_p_value'])}, "
                         + _interval_phrase(trend, len(summary["widths"]), "95% CI for r:"))
        lines += _analysis_lines(results_doc, name, attacks)
        blocks.append("\n".join(lines))
    if failed:
        blocks.append("\n".join(
            [f"Warning: {len(failed)} training(s) failed without diverging; their numbers "
             f"describe untrained models:"] + [f"  {reason}" for reason in failed.values()]))
    return "\n\n".join(blocks) + "\n"


#: Analysis keys of study rows (robnp.study analyses), with their column headers.
_ANALYSIS_COLUMNS = (("exact_acc", "Exact"), ("certified_acc", "Certified"),
                     ("ceiling_acc", "Ceiling"), ("bayes_robust_acc", "Bayes"))


def _analysis_lines(results_doc, dataset: str, attacks) -> list[str]:
    """Per eps, means over every model of ``dataset``: each attack's robust accuracy,
    the analyses the rows hold (null values left out) and the invalid share of the
    last attack; nothing when the run had no analyses. The exact column is the mean
    where every model is decided and otherwise the bracket ``[lower, upper]`` of
    :func:`~robnp.report.stats.exact_bracket` over the same models, so it never
    falls below the certified mean."""
    rows = [row for row in results_doc.get("results", []) if row.get("dataset") == dataset]
    shown = [(key, header) for key, header in _ANALYSIS_COLUMNS
             if any(key in row for row in rows)]
    invalid = next((f"invalid_share_{a}" for a in reversed(attacks)
                    if any(f"invalid_share_{a}" in row for row in rows)), None)
    if not shown and invalid is None:
        return []
    columns = [(f"{a}_acc", attack_label(a)) for a in attacks] + shown
    if invalid is not None:
        columns.append((invalid, f"Invalid {attack_label(invalid[len('invalid_share_'):])}"))

    def mean(values):
        values = [v for v in values if v is not None]
        return f"{sum(values) / len(values):.4f}" if values else "n/a"

    bracket = exact_bracket(rows, attacks)

    def cell(key, at, eps):
        if key == "exact_acc" and eps in bracket:
            low, exact, high = bracket[eps]
            return f"{exact:.4f}" if exact is not None else f"[{low:.4f}, {high:.4f}]"
        return mean([r.get(key) for r in at])

    epsilons = sorted({row["epsilon"] for row in rows})
    cells = {eps: [cell(k, [r for r in rows if r["epsilon"] == eps], eps) for k, _ in columns]
             for eps in epsilons}
    widths = [max([12, len(header)] + [len(cells[eps][i]) for eps in epsilons])
              for i, (_, header) in enumerate(columns)]
    note = ("; exact: [certified, best attack] means where a model is undecided"
            if any(exact is None for _, exact, _ in bracket.values()) else "")
    lines = ["", "  What the data allows (means over the models; robust accuracy"
                 f"{note}; invalid share of the broken points):",
             f"  {'eps':>8}" + "".join(f" {header:>{w}}"
                                       for (_, header), w in zip(columns, widths))]
    for eps in epsilons:
        lines.append(f"  {eps:>8g}" + "".join(f" {text:>{w}}"
                                              for text, w in zip(cells[eps], widths)))
    return lines


def format_markdown_table(results_doc, dataset: str) -> str:
    """The per-width summary of one dataset as a Markdown table.

    Parameters
    ----------
    results_doc : dict
        A results document (see :func:`robnp.report.document.build_results`).
    dataset : str
        Name of the dataset to tabulate.

    Returns
    -------
    str
        A caption line, the table (width, parameters, clean accuracy and every
        attack's mean gap as ``mean ± std`` to three decimals), and one line
        with the Pearson trends.

    Raises
    ------
    DataError
        If `dataset` is not in the results.
    """
    aggregated, summaries, present = document_statistics(results_doc)
    if dataset not in present:
        raise DataError(f"dataset {dataset!r} is not in the results; "
                        f"available: {', '.join(present)}")
    rows = width_table([row for row in aggregated if row["dataset"] == dataset])
    summary = summaries[dataset]
    attacks = table_attacks(aggregated)
    labels = [attack_label(a) for a in attacks]
    lines = [
        f"*{dataset}: robustness gap by hidden width "
        f"(mean ± std across {_seeds_phrase(rows)}).*",
        "",
        "| Width | Params | Clean Acc | " + " | ".join(f"Mean {l} Gap" for l in labels) + " |",
        "|---:|---:|---:|" + "---:|" * len(labels),
    ]
    for row in rows:
        cells = [f"{row[f'{m}_mean']:.3f} ± {row[f'{m}_std']:.3f}"
                 for m in ("clean_acc", *(f"{a}_gap" for a in attacks))]
        lines.append(f"| {row['hidden_width']} | {row['param_count']:,} | " + " | ".join(cells) + " |")
    trends = []
    for attack, label in zip(attacks, labels):
        trend = summary[f"trend_{attack}_gap"]
        trends.append(f"{label} r = {_number(trend['pearson_r'], 2)} "
                      f"(p = {_number(trend['pearson_p_value'], 3)}, "
                      f"{_interval_phrase(trend, len(summary['widths']), '95% CI', 2)})")
    lines += ["", "Pearson correlation of log10(params) with the mean gap: "
              + "; ".join(trends) + "."]
    return "\n".join(lines) + "\n"


