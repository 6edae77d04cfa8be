"""A second, independent fit of Approach 2 by variable projection.

For fixed exponents (alpha, beta, and with quality terms eps_q, zeta) the
law ``L = A x1 + B x2 + E x3`` with ``x1 = N^-alpha``,
``x2 = (1 + 1/Q)^zeta D^-beta`` and ``x3 = (1 + 1/Q)^eps_q`` is linear in the
coefficients (A, B, E) >= 0.  Dividing each row by the observed loss makes the
residuals relative (close to the log residuals of the main fit), and the best
coefficients are a non-negative least-squares problem (Lawson & Hanson's
NNLS).  What is left is a search over the 2 (or 4) exponents of the profiled
sum of squares (Golub & Pereyra's variable projection): a grid over alpha and
beta, then Nelder-Mead from the best grid points.

The method shares nothing with the main fit: a different loss (squares of
relative residuals instead of Huber on log residuals), a different optimizer
and no gradient.  When the two disagree beyond the main fit's bootstrap
interval, something is fragile (a poorly identified exponent, outliers the
Huber loss discounts, or an optimizer stopping early), and the analysis warns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize, nnls

from robnp.errors import DataError
from robnp.scaling.laws import Approach2Law
from robnp.scaling.table import RunTable

_EXPONENT_GRID = np.linspace(0.02, 1.5, 40)
_BOUNDS = [(1e-3, 4.0), (1e-3, 4.0), (-10.0, 10.0), (-10.0, 10.0)]


@dataclass(frozen=True)
class CrossCheckFit:
    """Result of :func:`fit_approach2_varpro`.

    Attributes
    ----------
    law : Approach2Law
    rss : float
        Sum of squared relative residuals at the optimum.
    quality_terms : bool
        Whether eps_q and zeta were fitted.
    converged : bool
        Nelder-Mead reported success.
    message : str
    """

    law: Approach2Law
    rss: float
    quality_terms: bool
    converged: bool
    message: str


def _profile(phi, log_N, log_D, u, inv_loss):
    """Profiled squared relative error and NNLS coefficients at exponents phi."""
    alpha, beta = phi[0], phi[1]
    eps_q, zeta = (phi[2], phi[3]) if phi.size == 4 else (0.0, 0.0)
    X = np.stack([np.exp(-alpha * log_N), np.exp(zeta * u - beta * log_D), np.exp(eps_q * u)], axis=1)
    coef, norm = nnls(X * inv_loss[:, None], np.ones_like(inv_loss))
    return norm * norm, coef


def fit_approach2_varpro(table: RunTable, *, quality_terms: bool | None = None) -> CrossCheckFit:
    """Fit Approach 2 by variable projection (see module docstring).

    Parameters
    ----------
    table : RunTable
    quality_terms : bool, optional
        Fit eps_q and zeta; default when the table has two or more quality
        levels.

    Returns
    -------
    CrossCheckFit

    Raises
    ------
    DataError
        Too few points.
    """
    if quality_terms is None:
        quality_terms = table.quality_levels().size >= 2
    n_params = 7 if quality_terms else 5
    if table.n_rows < n_params + 1:
        raise DataError(f"the Approach 2 cross-check needs at least {n_params + 1} points, "
                        f"the table has {table.n_rows}")
    log_N, log_D = np.log(table.N), np.log(table.D)
    u = np.log1p(1.0 / table.quality)
    inv_loss = 1.0 / table.loss

    def objective(phi):
        return _profile(np.asarray(phi), log_N, log_D, u, inv_loss)[0]

    grid = [(objective(np.array([al, be] + [0.0] * (n_params - 5))), al, be)
            for al in _EXPONENT_GRID for be in _EXPONENT_GRID]
    grid.sort()
    best = None
    for _, al, be in grid[:3]:
        x0 = np.array([al, be] + [0.0] * (n_params - 5))
        res = minimize(objective, x0, method="Nelder-Mead", bounds=_BOUNDS[:n_params - 3],
                       options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 20000, "maxfev": 40000,
                                "adaptive": True})
        if best is None or res.fun < best.fun:
            best = res
    phi = np.asarray(best.x)
    rss, (A, B, E) = _profile(phi, log_N, log_D, u, inv_loss)
    if min(A, B, E) <= 0:
        # NNLS set a coefficient to 0: the law has lost a term.  Keep it
        # positive for the log-space code and say so through the message.
        message = f"{best.message} (NNLS put a coefficient on its bound 0)"
        A, B, E = (max(c, 1e-300) for c in (A, B, E))
    else:
        message = str(best.message)
    law = Approach2Law(A=float(A), B=float(B), E=float(E), alpha=float(phi[0]), beta=float(phi[1]),
                       eps_q=float(phi[2]) if quality_terms else 0.0,
                       zeta=float(phi[3]) if quality_terms else 0.0)
    return CrossCheckFit(law=law, rss=float(rss), quality_terms=quality_terms,
                         converged=bool(best.success), message=message)


@dataclass(frozen=True)
class Agreement:
    """One quantity compared between the main fit and the cross-check."""

    name: str
    main: float
    check: float
    low: float
    high: float
    source: str      # "bootstrap" or "tolerance"
    agrees: bool


#: Used only when no bootstrap interval exists: relative for the exponents,
#: absolute for a and b.
FALLBACK_TOLERANCE = {"alpha": 0.05, "beta": 0.05, "a": 0.02, "b": 0.02}


def compare_with_main(main_law: Approach2Law, check_law: Approach2Law, intervals=None,
                      quality_terms: bool = False):
    """Compare exponents of two Approach 2 fits.

    Parameters
    ----------
    main_law, check_law : Approach2Law
    intervals : dict of str to (float, float), optional
        Bootstrap intervals of the main fit.  Without one for a quantity, the
        check falls back to :data:`FALLBACK_TOLERANCE` around the main value
        (eps_q and zeta are then not compared).
    quality_terms : bool
        Also compare eps_q and zeta.

    Returns
    -------
    agreements : list of Agreement
    warnings : list of str
        One message per quantity that disagrees.
    """
    intervals = intervals or {}
    names = ["alpha", "beta", "a", "b"] + (["eps_q", "zeta"] if quality_terms else [])
    out, warnings = [], []
    for name in names:
        m, c = float(getattr(main_law, name)), float(getattr(check_law, name))
        if name in intervals and np.all(np.isfinite(intervals[name])):
            lo, hi = (float(v) for v in intervals[name])
            source = "bootstrap"
        elif name in FALLBACK_TOLERANCE:
            tol = FALLBACK_TOLERANCE[name] * (abs(m) if name in ("alpha", "beta") else 1.0)
            lo, hi, source = m - tol, m + tol, "tolerance"
        else:
            continue
        agrees = lo <= c <= hi
        out.append(Agreement(name, m, c, lo, hi, source, agrees))
        if not agrees:
            warnings.append(f"Approach 2 cross-check disagrees on {name}: variable projection gives "
                            f"{c:.4g}, outside the main fit's {source} interval [{lo:.4g}, {hi:.4g}] "
                            f"(main fit {m:.4g})")
    return out, warnings
