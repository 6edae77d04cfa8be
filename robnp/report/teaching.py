"""Figures that show what the data allows, next to what the attacks found.

``boundary_figure``
    A trained 2-D model's decision regions over its test points, with the Bayes
    decision boundary, each point's eps-box and an arrow to the attack's point;
    adversarial points whose Bayes label is no longer the clean label (the
    attack changed the true class: the "invalid" adversarial examples of
    Bartoldson et al. 2024, Section G) are marked apart. It draws a
    :class:`robnp.verify.boundary.BoundaryMap`, computed by
    :func:`robnp.verify.boundary.boundary_map`: this module runs no model.
``robustness_figure``
    Robust accuracy against eps per dataset of a sweep run with analyses: every
    attack, the exact (verified) value (a bracket where some model is undecided),
    the sample ceiling of the test split, an estimate of the population's best
    robust accuracy (a fresh draw's sample ceiling, optimistic, cut to the Bayes
    accuracy), the Bayes accuracy, and the Bayes classifier's robust accuracy.

Built on :class:`matplotlib.figure.Figure` with the Agg canvas, outside pyplot.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from .records import attack_label, record_attacks
from .stats import exact_bracket

__all__ = ["boundary_figure", "robustness_figure"]

_CLASS_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink")


def _figure(size):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def boundary_figure(boundary, *, attack: str = "pgd", max_boxes: int = 40):
    """The model's decision regions, the Bayes boundary, eps-boxes and attack arrows.

    Parameters
    ----------
    boundary : robnp.verify.boundary.BoundaryMap
        The model's and the Bayes labels over a grid and the test points under attack
        (:func:`robnp.verify.boundary.boundary_map`).
    attack : str
        The attack's name, for the legend.
    max_boxes : int
        Broken points drawn with their box and arrow (evenly spaced among the
        broken ones, so the figure stays readable); every adversarial point is
        marked.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle

    X, y, adversarial, eps = boundary.X, boundary.y, boundary.adversarial, boundary.eps
    gx, gy, regions, truth = boundary.grid_x, boundary.grid_y, boundary.regions, boundary.truth
    broken, invalid, n_classes = boundary.broken, boundary.invalid, boundary.n_classes
    # linspace's end points are exactly the padded extent of the points
    lo, hi = np.array([gx[0], gy[0]]), np.array([gx[-1], gy[-1]])

    span = hi - lo
    fig = _figure((min(12.0, 3.2 + 5.0 * span[0] / span[1]), 5.4))
    ax = fig.subplots()
    from matplotlib.colors import ListedColormap

    cmap = ListedColormap(_CLASS_COLORS[:n_classes])
    ax.contourf(gx, gy, regions, levels=np.arange(n_classes + 1) - 0.5, cmap=cmap, alpha=0.18)
    ax.contour(gx, gy, regions, levels=np.arange(n_classes) + 0.5, colors="dimgray",
               linewidths=1.0)
    ax.contour(gx, gy, truth, levels=np.arange(n_classes) + 0.5, colors="black",
               linewidths=1.8, linestyles="--")
    for k in range(n_classes):
        rows = y == k
        ax.scatter(X[rows, 0], X[rows, 1], s=14, color=_CLASS_COLORS[k], edgecolor="white",
                   linewidth=0.4, zorder=3)
    shown = np.flatnonzero(broken)
    if shown.size > max_boxes:
        shown = shown[np.linspace(0, shown.size - 1, max_boxes).round().astype(int)]
    for i in shown:
        ax.add_patch(Rectangle(X[i] - eps, 2 * eps, 2 * eps, fill=False, linewidth=0.6,
                               edgecolor="crimson" if invalid[i] else "gray", alpha=0.7,
                               zorder=2))
        ax.annotate("", xy=adversarial[i], xytext=X[i], zorder=4,
                    arrowprops={"arrowstyle": "->", "linewidth": 0.8,
                                "color": "crimson" if invalid[i] else "black"})
    valid = broken & ~invalid
    ax.scatter(adversarial[valid, 0], adversarial[valid, 1], marker="x", s=22, color="black",
               linewidth=1.0, zorder=5)
    ax.scatter(adversarial[invalid, 0], adversarial[invalid, 1], marker="X", s=40,
               color="crimson", edgecolor="white", linewidth=0.5, zorder=5)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_aspect("equal")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    n_broken, n_invalid = int(broken.sum()), int(invalid.sum())
    share = f"{n_invalid}/{n_broken} = {n_invalid / n_broken:.0%}" if n_broken else "none broken"
    boxes = (f"; boxes and arrows for {shown.size} of them" if shown.size < n_broken else "")
    ax.set_title(f"{boundary.dataset}, eps = {eps:g} (L-inf), {attack_label(attack)}: "
                 f"{n_broken} of {len(y)} test points broken{boxes}\n"
                 f"adversarial points whose Bayes label is not the clean label: {share}",
                 fontsize=10)
    handles = [Patch(facecolor=_CLASS_COLORS[k], alpha=0.35, label=f"model predicts {k}")
               for k in range(n_classes)]
    handles += [Line2D([], [], marker="o", color=_CLASS_COLORS[k], linestyle="none",
                       markersize=4, label=f"test point, class {k}") for k in range(n_classes)]
    handles += [Line2D([], [], color="black", linestyle="--", linewidth=1.8,
                       label="Bayes boundary"),
                Line2D([], [], color="dimgray", linewidth=1.0, label="model boundary"),
                Line2D([], [], marker="x", color="black", linestyle="none",
                       label="adversarial, Bayes label = clean label"),
                Line2D([], [], marker="X", color="crimson", linestyle="none",
                       label="adversarial, Bayes label changed\n(red box and arrow)")]
    ax.legend(handles=handles, fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              framealpha=0.9)
    return fig


def _mean_by_eps(rows, key):
    """eps -> mean of the rows' non-null ``key`` values (None when there are none)."""
    out = {}
    for eps in sorted({row["epsilon"] for row in rows}):
        values = [row[key] for row in rows if row["epsilon"] == eps and row.get(key) is not None]
        out[eps] = float(np.mean(values)) if values else None
    return out


def _draw_exact(ax, bracket) -> None:
    """The mean exact robust accuracy where every model is decided, and elsewhere the
    bracket ``[lower, upper]`` around it (:func:`~robnp.report.stats.exact_bracket`)
    as a vertical bar."""
    if not bracket:
        return
    style = dict(color="black", alpha=0.55)
    decided = [e for e, (_, exact, _) in bracket.items() if exact is not None]
    if decided:
        ax.plot(decided, [bracket[e][1] for e in decided], linewidth=3.2, marker="s",
                markersize=4, zorder=3, label="exact (verified)", **style)
    open_eps = [e for e, (_, exact, _) in bracket.items() if exact is None]
    if open_eps:
        low = np.array([bracket[e][0] for e in open_eps])
        high = np.array([bracket[e][2] for e in open_eps])
        ax.errorbar(open_eps, (low + high) / 2, yerr=(high - low) / 2, fmt="none",
                    elinewidth=3.2, capsize=4, zorder=3,
                    label="exact lies here (some points undecided):\n"
                          "[certified, best attack]", **style)


def _draw_population(ax, entry) -> None:
    """A fresh draw's sample ceiling as an estimate of the population's best robust
    accuracy, cut to the Bayes accuracy (cut points hollow), and the Bayes accuracy."""
    p_eps, ceiling, size = entry["eps"], np.asarray(entry["ceiling"], float), entry["size"]
    bayes = entry.get("bayes_accuracy")
    shown = ceiling if bayes is None else np.minimum(ceiling, bayes)
    label = (f"population's best, estimated: ceiling of a fresh\ndraw of {size} "
             f"(optimistic)")
    if bayes is not None:
        label += ", cut to the Bayes accuracy"
    ax.plot(p_eps, shown, color="tab:green", linestyle=":", marker="v", markersize=4,
            label=label)
    if bayes is not None:
        cut = ceiling > bayes
        if cut.any():
            ax.plot(np.asarray(p_eps)[cut], shown[cut], linestyle="none", marker="v",
                    markersize=6, color="tab:green", markerfacecolor="white", zorder=6,
                    label="cut: the fresh draw's ceiling exceeded\nthe Bayes accuracy")
        ax.axhline(bayes, color="tab:purple", linestyle=(0, (1, 1)), linewidth=1.2,
                   label="Bayes accuracy: no robust accuracy\non the population "
                         "exceeds it")
        ax.annotate(f"Bayes accuracy {bayes:.4f}", xy=(0.02, bayes), va="bottom",
                    xycoords=("axes fraction", "data"), fontsize=7.5, color="tab:purple")


def robustness_figure(results_doc, population: dict | None = None):
    """Robust accuracy against eps, one panel per dataset, at the largest width
    (means across seeds).

    Parameters
    ----------
    results_doc : dict
        A results document of a sweep run with ``--analyses`` (any of them; the
        lines drawn are those the rows hold).
    population : dict of dataset name to dict, optional
        Per dataset, from :func:`robnp.verify.population_ceiling` on one fresh draw:
        ``eps`` (list), ``ceiling`` (the draw's sample ceiling per eps), ``size``
        (its points) and ``bayes_accuracy`` (float, or None without an exact
        density). Drawn as what it is: an estimate of the population's best robust
        accuracy, optimistic (a sample ceiling's expectation is at least the
        population's), cut to the Bayes accuracy where the draw exceeds it (those
        points hollow), beside the Bayes accuracy itself.

    Returns
    -------
    matplotlib.figure.Figure
    """
    rows = results_doc.get("results") if isinstance(results_doc, dict) else None
    if not rows:
        raise DataError("the results document holds no records")
    datasets = list(dict.fromkeys(row["dataset"] for row in rows))
    attacks = record_attacks(rows)
    fig = _figure((5.4 * len(datasets) + 1.8, 4.4))
    axes = np.atleast_1d(fig.subplots(1, len(datasets), squeeze=False)[0])
    styles = [("ceiling_acc", "sample ceiling of the test split (a bound for these points)",
               dict(color="tab:green", linestyle="--", marker="^")),
              ("bayes_robust_acc", "Bayes classifier",
               dict(color="tab:purple", linestyle="-.", marker="D", markerfacecolor="none",
                    markersize=6, zorder=5))]
    colors = ("tab:blue", "tab:red", "tab:cyan", "tab:olive", "tab:brown")
    for ax, name in zip(axes, datasets):
        mine = [row for row in rows if row["dataset"] == name]
        width = max(row["hidden_width"] for row in mine)
        mine = [row for row in mine if row["hidden_width"] == width]
        n_seeds = len({row["seed"] for row in mine})
        clean = _mean_by_eps(mine, "clean_acc")
        eps = list(clean)
        ax.axhline(float(np.mean(list(clean.values()))), color="gray", linewidth=1,
                   label="clean accuracy")
        for attack, color in zip(attacks, colors):
            values = _mean_by_eps(mine, f"{attack}_acc")
            ax.plot(eps, [values[e] for e in eps], color=color, marker="o", markersize=4,
                    linewidth=1.4, zorder=4, label=f"{attack_label(attack)} (attack)")
        _draw_exact(ax, exact_bracket(mine, attacks))
        for key, label, style in styles:
            values = _mean_by_eps(mine, key)
            if any(v is not None for v in values.values()):
                shown = [e for e in eps if values[e] is not None]
                ax.plot(shown, [values[e] for e in shown], label=label,
                        **{"markersize": 4, **style})
        if population and name in population:
            _draw_population(ax, population[name])
        ax.set_xscale("symlog", linthresh=0.01)
        ax.set_xticks(eps)
        ax.set_xticklabels([f"{e:g}" for e in eps])
        ax.minorticks_off()
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("eps (L-inf radius, symlog scale)")
        ax.set_ylabel("robust accuracy (test split)")
        ax.set_title(f"{name}: width {width}, mean of {n_seeds} seed(s)", fontsize=10)
        ax.grid(True, alpha=0.3)
    # One legend for every panel: a line one panel lacks (a cut point) is still named.
    handles = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    axes[-1].legend(list(handles.values()), list(handles), fontsize=7.5, loc="upper left",
                    bbox_to_anchor=(1.01, 1.0))
    return fig
