"""A 2-D model's decision regions beside the Bayes labels, and which attack points
changed the true class: the data :func:`robnp.report.teaching.boundary_figure` draws.

Running the model and the generator's Bayes classifier over a grid is computation, so
it lives here, with the other joins of a model and the data's truth
(:mod:`robnp.verify.truth`); the report layer only draws what this returns.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..attacks import predict
from ..errors import DataError

__all__ = ["BoundaryMap", "boundary_map"]


class BoundaryMap(NamedTuple):
    """A model's and the Bayes classifier's labels over a grid, and its test points
    under attack.

    Attributes
    ----------
    dataset : str
        The generator's name (for titles).
    n_classes : int
    eps : float
        L-infinity radius of the attack.
    X, adversarial : ndarray of shape (n, 2), float64
        Test points and the attack's point of each.
    y : ndarray of shape (n,)
        Labels of ``X``.
    grid_x, grid_y : ndarray of shape (resolution,), float64
        Grid coordinates per axis; the grid spans the points padded by
        ``max(0.3, 1.5 eps)``.
    regions, truth : ndarray of shape (resolution, resolution), int
        The model's and the Bayes classifier's label at every grid point (row ``i``,
        column ``j`` at ``(grid_x[j], grid_y[i])``).
    broken : ndarray of shape (n,), bool
        The model's label at the adversarial point is not ``y``.
    invalid : ndarray of shape (n,), bool
        Broken, and the Bayes label at the adversarial point is not ``y`` either
        (the attack changed the true class: the "invalid" adversarial examples of
        Bartoldson et al. 2024, Section G).
    """

    dataset: str
    n_classes: int
    eps: float
    X: np.ndarray
    y: np.ndarray
    adversarial: np.ndarray
    grid_x: np.ndarray
    grid_y: np.ndarray
    regions: np.ndarray
    truth: np.ndarray
    broken: np.ndarray
    invalid: np.ndarray


def boundary_map(model, X, y, source, eps: float, adversarial, *,
                 resolution: int = 240) -> BoundaryMap:
    """The model's decision regions and the Bayes labels over a grid around ``X``, and
    which adversarial points broke the model and which changed the true class.

    Parameters
    ----------
    model : MLP with 2 inputs
    X : ndarray of shape (n, 2)
        Test points.
    y : ndarray of shape (n,), int
    source : robnp.verify.DataSource
        The generator, for the Bayes labels.
    eps : float
        L-infinity radius of the attack.
    adversarial : ndarray of shape (n, 2)
        The attack's point of every test point at ``eps``.
    resolution : int
        Grid points per axis.

    Returns
    -------
    BoundaryMap
    """
    X = np.asarray(X, np.float64)
    adversarial = np.asarray(adversarial, np.float64)
    if X.ndim != 2 or X.shape[1] != 2 or adversarial.shape != X.shape:
        raise DataError(f"X and adversarial must have shape (n, 2), got {X.shape} and "
                        f"{adversarial.shape}")
    y = np.asarray(y)
    pad = max(0.3, 1.5 * eps)
    lo, hi = X.min(axis=0) - pad, X.max(axis=0) + pad
    gx, gy = np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution)
    grid = np.column_stack([a.ravel() for a in np.meshgrid(gx, gy)])
    regions = predict(model, grid.astype(model.dtype)).reshape(resolution, resolution)
    truth = source.label(grid).reshape(resolution, resolution)
    broken = predict(model, adversarial.astype(model.dtype)) != y
    invalid = broken & (source.label(adversarial) != y)
    return BoundaryMap(source.dataset, int(model.n_classes), eps, X, y, adversarial, gx, gy,
                       regions, truth, broken, invalid)
