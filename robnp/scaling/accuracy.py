"""Loss to accuracy: a linear map fitted on paired points (paper, Appendix F.2.2).

The paper regresses adversarial accuracy on loss, using each run's checkpoint
with the lowest loss, and converts predicted losses to predicted accuracies
with the fitted line (slope -0.75, intercept 1.26 on its data, R^2 = 0.98).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robnp.errors import DataError
from robnp.scaling.table import RunTable


@dataclass(frozen=True)
class LossAccuracyMap:
    """``accuracy = intercept + slope * loss``, fitted by least squares.

    Attributes
    ----------
    slope, intercept, r2 : float
    n_points : int
        Pairs used.
    loss_range : tuple of float
        Smallest and largest loss used; the map is a line, so use beyond this
        range is extrapolation.
    """

    slope: float
    intercept: float
    r2: float
    n_points: int
    loss_range: tuple

    def predict(self, loss) -> np.ndarray:
        """Predicted accuracy for each loss, float64, same shape as ``loss``."""
        return self.intercept + self.slope * np.asarray(loss, dtype=np.float64)


def fit_loss_to_accuracy(loss, accuracy) -> LossAccuracyMap:
    """Least-squares line of accuracy on loss.

    Parameters
    ----------
    loss, accuracy : array_like of shape (n_points,)
        Finite pairs; at least 3, with at least 2 distinct losses.

    Returns
    -------
    LossAccuracyMap

    Raises
    ------
    DataError
        Too few pairs, non-finite values or a single loss value.
    """
    loss = np.asarray(loss, dtype=np.float64).reshape(-1)
    acc = np.asarray(accuracy, dtype=np.float64).reshape(-1)
    if loss.shape != acc.shape:
        raise DataError(f"loss and accuracy have different lengths ({loss.size} and {acc.size})")
    if loss.size < 3:
        raise DataError(f"the loss-to-accuracy map needs at least 3 pairs, got {loss.size}")
    if not (np.all(np.isfinite(loss)) and np.all(np.isfinite(acc))):
        raise DataError("loss and accuracy must be finite for the loss-to-accuracy map")
    if np.ptp(loss) == 0:
        raise DataError("the loss-to-accuracy map needs at least 2 distinct loss values")
    design = np.stack([np.ones_like(loss), loss], axis=1)
    (intercept, slope), *_ = np.linalg.lstsq(design, acc, rcond=None)
    resid = acc - (intercept + slope * loss)
    ss_tot = float(np.sum((acc - acc.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid ** 2)) / ss_tot if ss_tot > 0 else 1.0
    return LossAccuracyMap(slope=float(slope), intercept=float(intercept), r2=r2,
                           n_points=int(loss.size), loss_range=(float(loss.min()), float(loss.max())))


def best_checkpoints(table: RunTable) -> np.ndarray:
    """Row index of each run's lowest-loss checkpoint, shape (n_runs,)."""
    codes = table.run_codes()
    order = np.lexsort((table.loss, codes))          # by run, then by loss
    first = np.concatenate([[True], np.diff(codes[order]) != 0])
    return order[first]


def loss_accuracy_from_table(table: RunTable, *, best_only: bool = True) -> LossAccuracyMap:
    """Fit the map on a table's ``loss`` and ``accuracy`` columns.

    Parameters
    ----------
    table : RunTable
        Must have an ``accuracy`` column.
    best_only : bool
        Use only each run's lowest-loss checkpoint, as the paper does.

    Returns
    -------
    LossAccuracyMap
    """
    if table.accuracy is None:
        raise DataError("the table has no 'accuracy' column for the loss-to-accuracy map")
    rows = best_checkpoints(table) if best_only else np.arange(table.n_rows)
    return fit_loss_to_accuracy(table.loss[rows], table.accuracy[rows])
