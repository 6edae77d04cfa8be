"""Figures of a robustness sweep, drawn from cross-seed statistics.

Three figures, named as in the reproduced study:

``clean_vs_robust.png``
    Clean accuracy and FGSM / PGD robust accuracy against hidden width, one
    line per eps.
``robustness_gap.png``
    Robustness gap (clean minus robust accuracy) against hidden width, one
    line per eps.
``param_scaling.png``
    Mean gap over eps against parameter count, annotated with the Pearson
    trend of :func:`robnp.stats.correlation_trend`.

Every figure has one row of panels per dataset, FGSM on the left and PGD on
the right; with more than :data:`MAX_COLUMNS` attacks a dataset's panels wrap onto
rows of a grid (four attacks: 2 x 2; five or six: 2 x 3), which share one y axis.  Lines are means across seeds; the shaded bands and error bars are
one standard deviation across seeds (population, as in :mod:`robnp.stats`).

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas and
never through ``pyplot``: nothing is registered in pyplot's global figure list,
so nothing needs closing, and importing this module does not import matplotlib
at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robnp._io import atomic_savefig
from robnp.report.records import attack_label
from robnp.report.stats import (TOO_FEW_WIDTHS, document_statistics, shown_interval,
                                table_attacks, width_table)

#: File names of the figures, in the order :func:`write_figures` returns them.
FIGURE_FILES: tuple[str, ...] = ("clean_vs_robust.png", "robustness_gap.png", "param_scaling.png")

_ATTACK_COLORS = ("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown")
_DPI = 120
_PANEL_SIZE = (5.2, 3.5)  # inches per panel: readable with two panels side by side
#: Most panels side by side; more attacks wrap onto further rows.
MAX_COLUMNS = 3


@dataclass(frozen=True)
class _PlotData:
    datasets: list
    attacks: list
    aggregated: list
    table: list
    summaries: dict
    epsilons: list
    n_seeds: str
    training: str  # "" for the study's training, else how the models were trained


def _training_note(config) -> str:
    """A second title line, ``"models trained by trades at eps 0.1"``, for a study
    trained by a recipe; ``""`` for the study's own training (its figures keep their
    titles)."""
    recipe = config.get("recipe") if isinstance(config, dict) else None
    if not recipe:
        return ""
    eps = config.get("train_eps")
    return f"\nmodels trained by {recipe}" + (f" at eps {eps:g}" if eps is not None else "")


def _plot_data(results_doc) -> _PlotData:
    aggregated, summaries, datasets = document_statistics(results_doc)
    table = width_table(aggregated)
    counts = sorted({row["n_seeds"] for row in table})
    n_seeds = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return _PlotData(
        datasets=datasets,
        attacks=[(key, attack_label(key)) for key in table_attacks(aggregated)],
        aggregated=aggregated,
        table=table,
        summaries=summaries,
        epsilons=sorted({row["epsilon"] for row in aggregated}),
        n_seeds=n_seeds,
        training=_training_note(results_doc.get("config")),
    )


def _eps_colors(epsilons) -> dict:
    from matplotlib import colormaps

    # Stop short of viridis' pale yellow end, which vanishes on white.
    shades = colormaps["viridis"](np.linspace(0.0, 0.85, max(len(epsilons), 1)))
    return {eps: shades[index] for index, eps in enumerate(epsilons)}


def _new_figure(n_rows: int, n_cols: int, title: str):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(n_cols * _PANEL_SIZE[0] + 1.4, n_rows * _PANEL_SIZE[1] + 0.6),
                 layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(title, fontsize=13)
    return fig


def _grid_shape(n_panels: int) -> tuple[int, int]:
    """``(rows, columns)`` of one dataset's panels: one row up to
    :data:`MAX_COLUMNS`, else as few rows as that allows, filled evenly."""
    rows = -(-n_panels // MAX_COLUMNS)
    return rows, -(-n_panels // rows)


def _panels(data: _PlotData, title: str):
    """The figure and its panels: ``panels[dataset][attack]`` (indices), each
    dataset's block of rows sharing one y axis; the grid's unused cells removed."""
    rows, columns = _grid_shape(len(data.attacks))
    fig = _new_figure(len(data.datasets) * rows, columns, title)
    axes = fig.subplots(len(data.datasets) * rows, columns, squeeze=False, sharey="row")
    panels = []
    for d in range(len(data.datasets)):
        block = axes[d * rows:(d + 1) * rows]
        for row in block[1:]:
            row[0].sharey(block[0, 0])  # the row's others follow its first panel
        panels.append([block[i // columns, i % columns] for i in range(len(data.attacks))])
        for i in range(len(data.attacks), rows * columns):
            block[i // columns, i % columns].remove()
    return fig, axes, panels


def _width_axis(ax, widths) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(widths)
    ax.set_xticklabels([str(width) for width in widths])
    ax.minorticks_off()
    ax.set_xlabel("hidden width (log2 scale)")
    ax.grid(True, alpha=0.3)


def _band(ax, x, mean, std, color, label, **line_kw):
    mean, std = np.asarray(mean), np.asarray(std)
    style = {"marker": "o", "markersize": 3.5, "linewidth": 1.6, **line_kw}
    (line,) = ax.plot(x, mean, color=color, label=label, **style)
    ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.18, linewidth=0)
    return line


def _series(rows, key) -> tuple[list, list, list]:
    rows = sorted(rows, key=lambda row: row["hidden_width"])
    return ([row["hidden_width"] for row in rows],
            [row[f"{key}_mean"] for row in rows],
            [row[f"{key}_std"] for row in rows])


def _label_every_panel(axes) -> None:
    # sharey hides the numbers of all but the first panel of a row; a reader looking
    # at the PGD panel alone must still read its values.
    for ax in axes.flat:
        ax.tick_params(axis="y", labelleft=True)


def _legend(fig, axes, title: str | None, loc: str = "outside right upper",
            ncols: int = 1) -> None:
    handles, labels = {}, []
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in handles:
                handles[label] = handle
                labels.append(label)
    if labels:
        fig.legend([handles[label] for label in labels], labels, title=title,
                   loc=loc, ncols=ncols, fontsize=9)


def _draw_per_eps(data: _PlotData, metric: str):
    """Shared body of the two per-eps figures; `metric` is "acc" or "gap"."""
    accuracy = metric == "acc"
    title = ("Clean vs robust accuracy" if accuracy else "Robustness gap (clean - robust accuracy)")
    fig, axes, panels = _panels(data, f"{title}: mean across {data.n_seeds} seeds, "
                                      f"band = ±1 std{data.training}")
    colors = _eps_colors(data.epsilons)
    for row_index, dataset in enumerate(data.datasets):
        table_rows = [row for row in data.table if row["dataset"] == dataset]
        widths = sorted(row["hidden_width"] for row in table_rows)
        for col_index, (attack, label) in enumerate(data.attacks):
            ax = panels[row_index][col_index]
            if accuracy:
                # Drawn above every eps line (a small eps nearly equals clean accuracy
                # and would hide it), dashed and unfilled so the line below shows through.
                _band(ax, *_series(table_rows, "clean_acc"), color="black",
                      label="clean", linestyle=(0, (4, 2)), zorder=5, linewidth=1.3,
                      marker="")
            for eps in data.epsilons:
                rows = [row for row in data.aggregated
                        if row["dataset"] == dataset and row["epsilon"] == eps]
                if rows:
                    _band(ax, *_series(rows, f"{attack}_{metric}"), color=colors[eps],
                          label=f"ε = {eps:g}")
            _width_axis(ax, widths)
            if accuracy:
                ax.set_ylim(-0.02, 1.02)
                ax.set_ylabel("accuracy")
                ax.set_title(f"{dataset}: {label} robust accuracy")
            else:
                ax.axhline(0.0, color="grey", linewidth=0.8)
                ax.set_ylabel(f"{label} gap")
                ax.set_title(f"{dataset}: {label} robustness gap")
    _label_every_panel(axes)
    _legend(fig, axes, None if accuracy else "attack radius")
    return fig


def _seed_points(results, dataset, attack) -> tuple[list, list]:
    """Each seed's mean gap over eps at each width: ``(param counts, gaps)``."""
    by_task = {}
    for row in results:
        if row["dataset"] == dataset:
            key = (row["param_count"], row["seed"])
            by_task.setdefault(key, []).append(row[f"{attack}_gap"])
    keys = sorted(by_task)
    seeds = sorted({seed for _, seed in keys})
    # Side by side around the width's position (a log axis: multiplicative offsets),
    # so the error bar does not hide them.
    offset = {seed: 1.06 ** (index - (len(seeds) - 1) / 2) for index, seed in enumerate(seeds)}
    return ([count * offset[seed] for count, seed in keys],
            [float(np.mean(by_task[k])) for k in keys])


def _draw_param_scaling(data: _PlotData, results):
    fig, axes, panels = _panels(
        data, f"Mean robustness gap over eps vs parameter count "
              f"(line: mean across {data.n_seeds} seeds, bars: ±1 std, dots: each seed)"
              f"{data.training}")
    for row_index, dataset in enumerate(data.datasets):
        rows = sorted((row for row in data.table if row["dataset"] == dataset),
                      key=lambda row: row["hidden_width"])
        params = [row["param_count"] for row in rows]
        lows, highs, noise = [], [], []
        for col_index, (attack, label) in enumerate(data.attacks):
            ax = panels[row_index][col_index]
            means = np.array([row[f"{attack}_gap_mean"] for row in rows])
            stds = np.array([row[f"{attack}_gap_std"] for row in rows])
            color = _ATTACK_COLORS[col_index % len(_ATTACK_COLORS)]
            seed_x, seed_y = _seed_points(results, dataset, attack)
            ax.scatter(seed_x, seed_y, s=10, color="dimgray", alpha=0.6, zorder=3,
                       label="one seed", linewidths=0)
            ax.errorbar(params, means, yerr=stds, color=color, marker="o", capsize=3,
                        linewidth=1.6, zorder=4, label="mean ± std")
            lows.append(min(np.min(means - stds), min(seed_y)))
            highs.append(max(np.max(means + stds), max(seed_y)))
            noise.append(float(np.median(stds)))
            # Widths label the ticks, where no line can cross them.
            ax.set_xscale("log")
            ax.minorticks_off()
            ax.set_xticks(params)
            ax.set_xticklabels([f"{p:,}\nh={row['hidden_width']}" for p, row in zip(params, rows)],
                               fontsize=8)
            ax.margins(x=0.08)
            ax.set_xlabel("parameter count (log scale), hidden width")
            ax.set_ylabel(f"mean {label} gap")
            trend = data.summaries[dataset][f"trend_{attack}_gap"]
            ax.set_title(f"{dataset}: {label} gap vs size\n{_trend_text(trend, len(rows))}",
                         fontsize=10)
            ax.grid(True, which="major", alpha=0.3)
        # A flat trend must look flat: the y range spans at least four times the
        # seed-to-seed spread (and 0.05), so differences smaller than the noise do not
        # fill the panel.
        low, high = min(lows), max(highs)
        span = max(high - low, 4 * max(noise), 0.05) * 1.1
        middle = (low + high) / 2
        panels[row_index][0].set_ylim(middle - span / 2, middle + span / 2)
    _label_every_panel(axes)
    _legend(fig, axes, None, loc="outside lower center", ncols=2)
    return fig


def _trend_text(trend, n_widths: int) -> str:
    def number(value, digits=2):
        return "n/a" if value is None else f"{value:.{digits}f}"

    interval = shown_interval(trend, n_widths)
    if n_widths <= 3:
        ci = TOO_FEW_WIDTHS
    elif interval is None:
        ci = "95% CI n/a"
    else:
        ci = f"95% CI [{interval[0]:.2f}, {interval[1]:.2f}]"
    return (f"Pearson r = {number(trend['pearson_r'])} (p = "
            f"{number(trend['pearson_p_value'], 3)}), {ci}\n"
            f"Spearman ρ = {number(trend['spearman_rho'])}, n = {n_widths} widths")


def figure_clean_vs_robust(results_doc):
    """Clean and robust accuracy against hidden width, per dataset and attack.

    Parameters
    ----------
    results_doc : dict
        A results document; only its records and config are read.

    Returns
    -------
    matplotlib.figure.Figure
    """
    return _draw_per_eps(_plot_data(results_doc), "acc")


def figure_robustness_gap(results_doc):
    """Robustness gap against hidden width, per dataset and attack, one line per eps.

    Parameters
    ----------
    results_doc : dict
        A results document; only its records and config are read.

    Returns
    -------
    matplotlib.figure.Figure
    """
    return _draw_per_eps(_plot_data(results_doc), "gap")


def figure_param_scaling(results_doc):
    """Mean gap over eps against parameter count, with the Pearson trend.

    Parameters
    ----------
    results_doc : dict
        A results document; only its records and config are read.

    Returns
    -------
    matplotlib.figure.Figure
    """
    return _draw_param_scaling(_plot_data(results_doc), results_doc["results"])


def write_figures(results_doc, out_dir) -> list[Path]:
    """Draw the three figures and write them atomically as PNG files.

    Parameters
    ----------
    results_doc : dict
        A results document (see :func:`robnp.stats.build_results`).
    out_dir : str or os.PathLike
        Directory to write into; created if missing.

    Returns
    -------
    list of Path
        The written files, in the order of :data:`FIGURE_FILES`.
    """
    data = _plot_data(results_doc)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    builders = (lambda: _draw_per_eps(data, "acc"),
                lambda: _draw_per_eps(data, "gap"),
                lambda: _draw_param_scaling(data, results_doc["results"]))
    paths = []
    for name, build in zip(FIGURE_FILES, builders):
        paths.append(atomic_savefig(build(), out_dir / name, dpi=_DPI))
    return paths
