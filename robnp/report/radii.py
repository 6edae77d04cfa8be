"""Robustness radii: each point's exact radius next to the perturbations attacks found.

``radius_quantiles``
    Quantiles of per-point radii, ``inf`` kept (a point no attack broke).
``accuracy_curve``
    Robust accuracy at every eps of a grid from per-point radii: the share of points
    whose radius is larger than eps. One attack run that reports radii (FAB), or a
    verifier's brackets, gives the whole curve, not a few radii.
``radii_figure``
    Two panels a teacher would show: each point's attack radius against its exact
    radius (on the diagonal: the attack found the nearest boundary point; above it:
    the attack overestimates robustness), and robust accuracy against eps from the
    exact radii (a band from certified to attack where the verifier was undecided)
    and from each attack.

Pure functions over arrays (the radii come from
:meth:`robnp.attacks.Evaluation.minimal_perturbation` and
:func:`robnp.verify.robustness_radius`); built on :class:`matplotlib.figure.Figure`
with the Agg canvas, outside pyplot.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from .records import attack_label

__all__ = ["radius_quantiles", "accuracy_curve", "radii_figure", "QUANTILES"]

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)

_COLORS = ("tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive")


def _radii(name: str, values) -> np.ndarray:
    radii = np.asarray(values, dtype=np.float64)
    if radii.ndim != 1 or radii.size == 0:
        raise DataError(f"{name} must be a non-empty 1-D array of radii, got shape "
                        f"{radii.shape}")
    if np.any(np.isnan(radii)) or np.any(radii < 0):
        raise DataError(f"{name} must hold radii >= 0 (inf allowed), got a NaN or a "
                        f"negative value")
    return radii


def radius_quantiles(radii, quantiles=QUANTILES) -> list[float]:
    """The ``quantiles`` of ``radii`` (shape (n,), ``inf`` allowed), each an observed
    value (the inverted empirical CDF, so ``inf`` never turns into NaN)."""
    radii = _radii("radii", radii)
    return [float(v) for v in np.quantile(radii, quantiles, method="inverted_cdf")]


def accuracy_curve(radii, grid) -> np.ndarray:
    """Share of points with radius > eps, for every eps of ``grid``; float64, shape
    ``(len(grid),)``."""
    radii = _radii("radii", radii)
    grid = np.asarray(grid, dtype=np.float64)
    return np.mean(radii[None, :] > grid[:, None], axis=1)


def radii_figure(lower, upper, attacks: dict, *, norm: str = "linf", title: str | None = None,
                 eps_max: float | None = None, marks=(), undecided=None):
    """Attack radii against exact radii, and robust accuracy against eps from each.

    Parameters
    ----------
    lower, upper : array-like of shape (n,)
        The exact radius's bracket per point (:class:`robnp.verify.RobustnessRadius`):
        certified and attack radius; equal to within the tolerance where decided, 0
        and 0 for clean errors.
    attacks : dict of str to array-like of shape (n,)
        Each attack's minimal perturbation per point (``inf``: not broken).
    norm : str
        For the axis labels.
    title : str, optional
    eps_max : float, optional
        Right end of the eps axis (default: 1.15 times the largest finite radius).
    marks : iterable of float
        Radii to mark on the accuracy panel (e.g. the ones an evaluation ran).
    undecided : array-like of shape (n,), bool, optional
        Points whose bracket the verifier left open (default: brackets wider than
        0.1% of ``upper``); drawn as brackets at their midpoint.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    lower, upper = _radii("lower", lower), _radii("upper", upper)
    if lower.shape != upper.shape or np.any(lower > upper):
        raise DataError("lower and upper must have one shape with lower <= upper")
    found = {name: _radii(f"radii of {name}", values) for name, values in attacks.items()}
    for name, values in found.items():
        if values.shape != lower.shape:
            raise DataError(f"radii of {name} have {values.size} points, the exact radii "
                            f"{lower.size}")
    correct = upper > 0
    every = np.concatenate([upper, *found.values()])
    finite = every[np.isfinite(every)]
    if eps_max is None:
        eps_max = 1.15 * float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    scatter, curves = fig.subplots(1, 2)
    symbol = {"linf": "L∞", "l2": "L2", "l1": "L1"}.get(norm, norm)

    # left: attack radius against the exact one, per point
    if undecided is None:
        undecided = upper - lower > 1e-3 * upper + 1e-9
    decided = correct & ~np.asarray(undecided, bool)
    exact = np.where(decided, lower, (lower + np.minimum(upper, eps_max)) / 2)
    top = eps_max
    for (name, values), color in zip(found.items(), _COLORS):
        inside = correct & (values < top)
        scatter.scatter(exact[inside], values[inside], s=14, alpha=0.7,
                        color=color, label=attack_label(name), edgecolors="none")
        missed = correct & (values >= top)
        if missed.any():
            scatter.scatter(exact[missed], np.full(missed.sum(), top), marker="^", s=22,
                            color=color, alpha=0.8, edgecolors="none")
    undecided = correct & ~decided
    if undecided.any():
        scatter.errorbar(exact[undecided], exact[undecided],
                         xerr=[exact[undecided] - lower[undecided],
                               np.minimum(upper[undecided], eps_max) - exact[undecided]],
                         fmt="none", ecolor="black", elinewidth=1, capsize=2,
                         label="undecided: [certified, attack]")
    scatter.plot([0, top], [0, top], color="black", lw=1, ls="--", label="attack = exact")
    scatter.set_xlim(0, top)
    scatter.set_ylim(0, top * 1.04)
    scatter.set_xlabel(f"exact robustness radius ({symbol}, verified)")
    scatter.set_ylabel(f"smallest perturbation the attack found ({symbol})")
    scatter.set_title("Per point: attack radius vs exact radius\n"
                      "(above the line: the attack missed a nearer boundary; ▲ not broken up to the top)",
                      fontsize=10)
    scatter.legend(fontsize=8, loc="lower right")

    # right: robust accuracy against eps
    grid = np.linspace(0, eps_max, 801)
    certified = np.mean(correct[None, :] & (lower[None, :] >= grid[:, None]), axis=1)
    attack_side = accuracy_curve(upper, grid)
    curves.fill_between(grid, certified, attack_side, step="post", color="tab:blue",
                        alpha=0.25, lw=0)
    curves.step(grid, attack_side, where="post", color="tab:blue", lw=2.2,
                label="exact (verified)" if not undecided.any() else
                "exact: attack side (band: undecided)")
    if undecided.any():
        curves.step(grid, certified, where="post", color="tab:blue", lw=1, ls=":",
                    label="exact: certified side")
    for (name, values), color in zip(found.items(), _COLORS):
        curves.step(grid, accuracy_curve(values, grid), where="post", color=color, lw=1.4,
                    label=attack_label(name))
    for eps in marks:
        curves.axvline(eps, color="grey", lw=0.6, ls=":")
    curves.set_xlim(0, eps_max)
    curves.set_ylim(0, 1.02)
    curves.set_xlabel(f"eps ({symbol})")
    curves.set_ylabel("robust accuracy (share of points with radius > eps)")
    curves.set_title("Robust accuracy at every eps, from the radii\n"
                     "(an attack's curve lies on or above the exact one)", fontsize=10)
    curves.legend(fontsize=8, loc="upper right")
    if title:
        fig.suptitle(title, fontsize=11)
    return fig
