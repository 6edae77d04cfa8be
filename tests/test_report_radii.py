"""Radii reports: quantiles keep inf, curves count radius > eps, the figure refuses
radii that do not fit."""

import numpy as np
import pytest

from robnp.errors import DataError
from robnp.report.radii import accuracy_curve, radii_figure, radius_quantiles


def test_quantiles_are_observed_values_and_keep_inf():
    radii = np.array([0.0, 0.1, 0.2, 0.3, np.inf, np.inf])
    assert radius_quantiles(radii, (0.1, 0.5, 0.9)) == [0.0, 0.2, np.inf]


def test_curve_counts_radii_above_eps():
    radii = np.array([0.0, 0.1, 0.2, np.inf])
    np.testing.assert_array_equal(accuracy_curve(radii, [0.0, 0.1, 0.15, 5.0]),
                                  [0.75, 0.5, 0.5, 0.25])


def test_figure_draws_and_refuses_misfits():
    lower = np.array([0.0, 0.1, 0.2, 0.25])
    upper = np.array([0.0, 0.1001, 0.2001, 0.4])
    fig = radii_figure(lower, upper, {"fab": [0.0, 0.11, np.inf, 0.5]}, title="t")
    assert len(fig.axes) == 2
    with pytest.raises(DataError, match="lower <= upper"):
        radii_figure(upper, lower, {})
    with pytest.raises(DataError, match="radii of fab"):
        radii_figure(lower, upper, {"fab": [0.1]})
    with pytest.raises(DataError, match="radii >= 0"):
        radius_quantiles([np.nan])
