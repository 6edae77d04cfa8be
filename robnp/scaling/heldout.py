"""What the scaling study's fits say beyond the runs they were fitted to.

* :func:`heldout_predictions`: the paper's Table 3 question asked of runs left out:
  fit Approaches 2 and 3 without the runs of the largest model (and, separately,
  without the runs of the largest D), predict the left-out runs' final losses, and
  report the relative errors.
* :func:`plateau_against_truth`: the fitted asymptote (Approach 2's ``E`` at infinite
  quality and ``E'`` at each quality level in the table; Approach 3's ``E``),
  converted to accuracy by the loss-to-accuracy line of the runs (paper, Appendix
  F.2.2), next to what the data allows: the Bayes classifier's robust accuracy on
  the study's test sample (exact for the radial tasks; an attack's upper bound for
  the mixtures) with its binomial interval, and the best robust accuracy measured.
* :func:`invalid_trend`: the share of invalid adversarial points along the grid, per
  model size, at the largest D of each source (does it rise towards 1 as N and D
  grow, as the paper's human study suggests of its plateau?).

Pure functions over a :class:`robnp.scaling.table.RunTable` and plain rows.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import RobnpError
from .accuracy import LossAccuracyMap
from .fit import FitConfig, fit_approach2, fit_approach3
from .table import RunTable

__all__ = ["heldout_predictions", "plateau_against_truth", "invalid_trend",
           "binomial_interval"]


def binomial_interval(successes: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / n``."""
    from scipy.stats import norm

    if n <= 0:
        return (math.nan, math.nan)
    z = float(norm.ppf(0.5 + level / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def _fitter(approach: int):
    return fit_approach2 if approach == 2 else fit_approach3


def heldout_predictions(table: RunTable, fit_config: FitConfig | None = None,
                        quality: float | None = None) -> list[dict]:
    """For each split ("largest N", "largest D") and approach (2, 3): the fit on the
    other finished runs and its predictions of the left-out ones.

    Returns
    -------
    list of dict
        ``split``, ``approach``, ``n_fit``, ``rows`` (per left-out run: ``N``, ``D``,
        ``quality``, ``measured``, ``predicted``, ``relative_error``),
        ``median_abs_error`` and ``max_abs_error`` (relative), ``by_quality`` (the
        median per quality level), or ``error`` (why the fit could not be made)
        instead of the rows.
    """
    fit_config = fit_config or FitConfig(grid="small")
    final = table.final()
    quality = final.reference_quality() if quality is None else quality
    out = []
    for split, values in (("largest N", final.N), ("largest D", final.D)):
        left_out = values == values.max()
        train, test = final.take(~left_out), final.take(left_out)
        for approach in (2, 3):
            entry = {"split": split, "approach": approach, "n_fit": train.n_rows}
            try:
                fit = _fitter(approach)(train, fit_config, reference_quality=quality)
            except RobnpError as exc:
                entry["error"] = str(exc)
                out.append(entry)
                continue
            predicted = np.asarray(fit.predict(test.N, test.D, test.quality), dtype=np.float64)
            errors = predicted / test.loss - 1.0
            entry["rows"] = [{"N": float(n), "D": float(d), "quality": float(q),
                              "measured": float(m), "predicted": float(p),
                              "relative_error": float(e)}
                             for n, d, q, m, p, e in zip(test.N, test.D, test.quality,
                                                         test.loss, predicted, errors)]
            entry["median_abs_error"] = float(np.median(np.abs(errors)))
            entry["max_abs_error"] = float(np.max(np.abs(errors)))
            entry["by_quality"] = [
                {"quality": float(q), "median_abs_error": float(np.median(np.abs(
                    errors[test.quality == q]))), "n": int((test.quality == q).sum())}
                for q in np.unique(test.quality)]
            out.append(entry)
    return out


def plateau_against_truth(table: RunTable, fits: dict, truth: dict,
                          acc_map: LossAccuracyMap | None) -> dict:
    """The fitted asymptotes next to what the data allows.

    Parameters
    ----------
    table : RunTable
    fits : dict
        Approach number -> ParametricFit (those that could be fitted).
    truth : dict
        ``bayes_robust_acc`` (and ``bayes_exact``, ``bayes_interval``) of the task
        at the study's radius on its test sample, from the study runner.
    acc_map : LossAccuracyMap or None
        The runs' loss-to-accuracy line (the analysis's,
        :attr:`robnp.scaling.analysis.ScalingReport.loss_accuracy`); None when it
        could not be fitted.

    Returns
    -------
    dict
        ``loss_to_accuracy`` (slope, intercept, r2, loss range), per approach the
        asymptotic loss and its accuracy at infinite quality and at each finite
        quality level, ``best_measured`` (the lowest final loss and the highest final
        robust accuracy of any run), and ``truth`` as given. An asymptote below the
        runs' losses converts to accuracy by extrapolating the line (``extrapolated``;
        cut to [0, 1]).
    """
    out: dict = {"truth": truth}
    final = table.final()
    if acc_map is not None:
        out["loss_to_accuracy"] = {"slope": acc_map.slope, "intercept": acc_map.intercept,
                                   "r2": acc_map.r2, "loss_range": list(acc_map.loss_range)}
    levels = [float(q) for q in final.quality_levels()]
    for number, fit in sorted(fits.items()):
        rows = []
        for q in sorted(set(levels) | {math.inf}):
            if math.isfinite(q) and not fit.quality_terms:
                continue
            loss = float(fit.law.E_eff(q))
            entry = {"quality": q, "loss": loss, "accuracy": None, "extrapolated": None}
            if acc_map is not None:
                # the line is fitted on the runs' losses; beyond them it is an
                # extrapolation, and an accuracy outside [0, 1] is cut to it
                entry["accuracy"] = float(np.clip(acc_map.predict(loss), 0.0, 1.0))
                entry["extrapolated"] = bool(loss < acc_map.loss_range[0])
            rows.append(entry)
        out[f"approach{number}"] = rows
    out["best_measured"] = {
        "loss": float(final.loss.min()),
        "accuracy": None if final.accuracy is None else float(final.accuracy.max()),
    }
    return out


def invalid_trend(rows: list[dict]) -> list[dict]:
    """Per source and model size, at the source's largest D and the run's end: the
    robust accuracy and both invalid shares (means over seeds), in increasing N.

    ``rows`` are the runs table's rows (dicts with ``source``, ``N``, ``examples``,
    ``train_fraction``, ``accuracy``, ``invalid_share``, ``invalid_error_share``)."""
    out = []
    for source in dict.fromkeys(r["source"] for r in rows):
        mine = [r for r in rows if r["source"] == source and r["train_fraction"] == 1.0]
        D = max(r["examples"] for r in mine)
        for N in sorted({r["N"] for r in mine}):
            at = [r for r in mine if r["N"] == N and r["examples"] == D]
            out.append({"source": source, "N": N, "D": D,
                        "robust_acc": _mean(r["accuracy"] for r in at),
                        "invalid_share": _mean(r["invalid_share"] for r in at),
                        "invalid_error_share": _mean(r["invalid_error_share"] for r in at),
                        "n_seeds": len(at)})
    return out


def _mean(values):
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(values)) if values else None
