"""Figures of the scaling study's own runs, beside the fitter's (:mod:`robnp.scaling.plots`).

* ``study_loss_curves.png``: the TRADES test loss of every run against D (each
  run's checkpoints joined), one panel per source, one colour per model size: the
  raw material of Approaches 1-3.
* ``study_plateau.png``: robust accuracy of the finished runs against training
  FLOPs, one panel per source, with the Bayes classifier's robust accuracy (and its
  interval) and the accuracy of each law's fitted asymptote at that source's
  quality: does the law's limit equal what the data allows?
* ``study_invalid.png``: at each source's largest D, the share of the attack's
  successful points whose Bayes label changed, and the share of all robust errors
  that are invalid, against N.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .plots import _figure, _save

__all__ = ["study_figures"]


def _panels(n: int, height: float = 3.2):
    fig = _figure(4.0 * n, height)
    axes = fig.subplots(1, n, squeeze=False)[0]
    return fig, axes


def _colours(values):
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    values = sorted(values)
    return {v: cmap(i / max(1, len(values) - 1)) for i, v in enumerate(values)}


def study_figures(rows: list[dict], document: dict, out_dir) -> dict:
    """Draw the three figures of the module docstring into ``out_dir``; their paths
    by name."""
    out_dir = Path(out_dir)
    sources = list(dict.fromkeys(r["source"] for r in rows))
    colours = _colours({r["width"] for r in rows})
    paths = {}

    fig, axes = _panels(len(sources))
    for ax, source in zip(axes, sources):
        mine = [r for r in rows if r["source"] == source]
        for run in dict.fromkeys(r["run"] for r in mine):
            points = sorted((r["D"], r["loss"], r["width"]) for r in mine if r["run"] == run)
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", ms=3,
                    color=colours[points[0][2]], alpha=0.8)
        for width, colour in colours.items():
            ax.plot([], [], color=colour, label=f"width {width}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("examples seen D")
        ax.set_title(source, fontsize=9)
    axes[0].set_ylabel("TRADES test loss (pgd-cw)")
    axes[0].legend(fontsize=7)
    paths["study_loss_curves"] = _save(fig, out_dir / "study_loss_curves.png")

    plateau = document.get("plateau") or {}
    truth = plateau.get("truth") or {}
    quality = {spec: facts["quality"] for spec, facts in document["sources"].items()}
    fig, axes = _panels(len(sources))
    for ax, source in zip(axes, sources):
        mine = [r for r in rows if r["source"] == source and r["train_fraction"] == 1.0]
        for width, colour in colours.items():
            at = sorted((r["flops"], r["accuracy"]) for r in mine if r["width"] == width)
            ax.plot([p[0] for p in at], [p[1] for p in at], marker="o", ms=3, color=colour,
                    label=f"width {width}")
        if truth.get("bayes_robust_acc") is not None:
            lo, hi = truth["bayes_interval"]
            ax.axhspan(lo, hi, color="black", alpha=0.12)
            ax.axhline(truth["bayes_robust_acc"], color="black", lw=1,
                       label="Bayes classifier" + (" (exact)" if truth.get("bayes_exact")
                                                   else " (attack bound)"))
        for number, style in ((2, "--"), (3, ":")):
            for entry in plateau.get(f"approach{number}", []):
                same = entry["quality"] == quality[source] or (
                    math.isinf(entry["quality"]) and math.isinf(quality[source]))
                if same and entry["accuracy"] is not None:
                    ax.axhline(entry["accuracy"], color="tab:red", ls=style, lw=1,
                               label=f"Approach {number} asymptote")
        ax.set_xscale("log")
        ax.set_xlabel("training FLOPs")
        ax.set_title(source, fontsize=9)
    axes[0].set_ylabel("robust accuracy (pgd-cw)")
    axes[0].legend(fontsize=7)
    paths["study_plateau"] = _save(fig, out_dir / "study_plateau.png")

    trend = document.get("invalid") or []
    fig, axes = _panels(2)
    for source in sources:
        mine = [t for t in trend if t["source"] == source]
        for ax, key in zip(axes, ("invalid_share", "invalid_error_share")):
            values = [(t["N"], t[key]) for t in mine if t[key] is not None]
            if values:
                ax.plot(*np.array(values).T, marker="o", ms=3, label=source)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=7)
    axes[0].set_ylabel("invalid share of successful attacks")
    axes[1].set_ylabel("invalid share of robust errors")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("parameters N (at the largest D)")
        ax.set_ylim(-0.02, 1.02)
    paths["study_invalid"] = _save(fig, out_dir / "study_invalid.png")
    return paths
