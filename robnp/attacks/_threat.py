"""The threat model every attack shares: the radius, the optional data box, the
list of radii an evaluation sweeps, and the sign of a gradient.

The projection itself is compiled (:func:`robnp.kernels.project_linf`); here are the
checks at the Python boundary, written once for every attack.
"""

from __future__ import annotations

import numpy as np

from .. import _checks
from ..errors import ConfigError

__all__ = ["check_eps", "check_radii", "check_bounds", "gradient_sign", "NORMS"]

#: Norms of the balls attacks work in.
NORMS = ("linf", "l2")


def check_eps(eps) -> float:
    """``eps`` as a float; a clear error unless it is a finite number >= 0."""
    return _checks.real("eps", eps, 0)


def check_radii(eps) -> tuple[float, ...]:
    """One radius or a list of them (any iterable or 1-D array) as a tuple of floats,
    each finite and >= 0; the order is kept."""
    if hasattr(eps, "__iter__") and not isinstance(eps, (str, bytes, np.ndarray)):
        eps = list(eps)
    if np.ndim(eps) == 0:
        eps = [eps]
    elif np.ndim(eps) != 1:
        raise ConfigError(f"eps must be a number or a list of numbers, got {eps!r}")
    radii = tuple(check_eps(e) for e in eps)
    if not radii:
        raise ConfigError("eps must list at least one radius")
    return radii


def check_bounds(bounds) -> tuple[float, float, bool]:
    """``(lower, upper, use_bounds)`` from ``None`` or a pair ``lower < upper``; one
    side may be infinite."""
    if bounds is None:
        return 0.0, 0.0, False
    if np.ndim(bounds) != 1 or len(bounds) != 2:
        raise ConfigError(f"bounds must be a pair (lower, upper), got {bounds!r}")
    lower, upper = (_checks.real("bounds", b, finite=False) for b in bounds)
    if not lower < upper:
        raise ConfigError(f"bounds must satisfy lower < upper, got {bounds!r}")
    return lower, upper, True


def gradient_sign(name: str, gradient, X: np.ndarray, kinds: str) -> np.ndarray:
    """``sign(gradient)`` (-1, 0 or 1; NaN stays NaN) as a new C-contiguous array of
    ``X``'s dtype, once ``gradient`` is checked to be an array of ``X``'s shape with a
    dtype kind in ``kinds``. The sign is taken before the cast: a float64 gradient
    too small for float32 still points somewhere."""
    gradient = np.asarray(gradient)
    if gradient.shape != X.shape or gradient.dtype.kind not in kinds:
        what = "float" if kinds == "f" else "real"
        raise ConfigError(f"{name} must be a {what} array of X's shape {X.shape}, got "
                          f"{gradient.dtype} with shape {gradient.shape}")
    return np.ascontiguousarray(np.sign(gradient), dtype=X.dtype)
