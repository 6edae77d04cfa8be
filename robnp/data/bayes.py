"""Exact class densities, Bayes posteriors and Bayes errors of the synthetic datasets.

The generators of :mod:`robnp.data.synthetic` are known processes, so the density
of a point given its class is known exactly, and with it the Bayes-optimal label
of any input: whether a perturbed point still "fits its label" (the question the
scaling-law paper's human study asks of CIFAR-10 images, Bartoldson et al. 2024,
Section G) has an exact answer here.

Densities, with ``s = noise`` and ``d = input_dim``:

* **A blurred sphere** (``circles`` in its first two coordinates, ``spheres`` in
  all ``d``): a point uniform on the sphere of radius ``r`` plus ``N(0, s^2 I_d)``.
  Averaging the Gaussian over the direction ``u``,

      p(x | r) = (2 pi s^2)^(-d/2) exp(-(|x|^2 + r^2) / 2 s^2) E_u[exp(r x.u / s^2)],

  and with ``kappa = r |x| / s^2`` and ``nu = d/2 - 1`` the mean over the sphere
  is ``E_u[exp(kappa u_1)] = Gamma(d/2) (kappa/2)^(-nu) I_nu(kappa)`` (the
  von Mises-Fisher normaliser).  With the scaled Bessel function
  ``ive(nu, k) = I_nu(k) exp(-k)`` this is, in log space,

      log p = -(d/2) log(2 pi s^2) - (|x| - r)^2 / 2 s^2
              + log Gamma(d/2) - nu log(kappa/2) + log ive(nu, kappa),

  which for ``d = 2`` is the ring density
  ``exp(-(|x| - r)^2 / 2 s^2) i0e(r |x| / s^2) / (2 pi s^2)``.  Near
  ``kappa = 0`` (and wherever ``ive`` underflows) the last three terms come from
  the power series ``sum_m Gamma(nu + 1) (kappa^2/4)^m / (m! Gamma(m + nu + 1))``
  instead; they tend to 0 as ``kappa -> 0``.
* **A finite Gaussian mixture** (``moons``, ``spirals``, ``blobs``): each class is
  the equal-weight mixture of ``N(c_j, s^2 I_2)`` over its noise-free points
  ``c_j`` (the evenly spaced arc or arm points, which depend on ``n_samples``;
  one centre per class for blobs); computed with ``logsumexp``.
* **Nuisance coordinates** (``input_dim > 2`` for the planar datasets) are i.i.d.
  ``N(0, s^2)`` whatever the label: they multiply every class density by the same
  factor, which is included in :func:`class_log_density` (so it is a density in
  ``d`` dimensions) and cancels in the posterior.

**Priors.** A generator draws exactly ``n_k`` points of class ``k`` (``n // 2`` and
``n - n // 2`` for two classes; :func:`robnp.data.synthetic.class_counts` for
blobs and spirals), so the priors are the sample's proportions ``n_k / n`` for the
given ``n_samples``: the class of a row picked at random from one draw.  For an
even ``n_samples`` and two classes they are exactly 1/2.  The posterior of a
uniformly chosen row of a draw is then exact, moons' arc points included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import integrate, optimize
from scipy.special import gammaln, ive, logsumexp

from .. import _checks
from ..errors import ConfigError, DataError
from . import get_dataset
from .synthetic import blob_centres, class_counts, moon_arcs, spiral_arms, two_class_counts

__all__ = ["class_priors", "class_log_density", "bayes_posterior", "bayes_label",
           "bayes_error", "density_datasets", "shell_label_changes", "shell_dim",
           "log_posterior_gradient"]

#: Radii of the registered ``circles`` and ``spheres`` (label 0 outer, label 1 inner).
_SHELL_RADII = (1.0, 0.5)


@dataclass(frozen=True)
class _Params:
    name: str
    n_samples: int
    noise: float
    input_dim: int
    n_classes: int


@dataclass(frozen=True)
class _Model:
    """How one dataset's class densities are computed.

    ``counts(p)`` gives the exact class counts.  A *shell* model has class
    densities that depend on ``|x|`` only, in ``shell_dim(p)`` dimensions (the
    rest being nuisance).  A *mixture* model gives, per class, the 2-D centres of
    its equal-weight Gaussian mixture.
    """

    counts: Callable[[_Params], np.ndarray]
    shell_dim: Callable[[_Params], int] | None = None
    centres: Callable[[_Params], list[np.ndarray]] | None = None


_MODELS: dict[str, _Model] = {
    "circles": _Model(lambda p: two_class_counts(p.n_samples), shell_dim=lambda p: 2),
    "spheres": _Model(lambda p: two_class_counts(p.n_samples),
                      shell_dim=lambda p: p.input_dim),
    "moons": _Model(lambda p: two_class_counts(p.n_samples),
                    centres=lambda p: list(moon_arcs(p.n_samples))),
    "blobs": _Model(lambda p: class_counts(p.n_samples, p.n_classes),
                    centres=lambda p: [c[None, :] for c in blob_centres(p.n_classes)]),
    "spirals": _Model(lambda p: class_counts(p.n_samples, p.n_classes),
                      centres=lambda p: spiral_arms(p.n_samples, p.n_classes)),
}


def density_datasets() -> list[str]:
    """Names of the datasets whose class densities are known exactly."""
    return sorted(_MODELS)


def _params(dataset, n_samples, noise, input_dim, n_classes) -> tuple[_Model, _Params]:
    registered = get_dataset(dataset)
    if dataset not in _MODELS:
        raise ConfigError(f"no exact class density is known for dataset {dataset!r}; "
                          f"known: {', '.join(density_datasets())}")
    _checks.integer("n_samples", n_samples, 2)
    _checks.real("noise", noise, 0, low_open=True, context="for a density (noise 0 has none)")
    _checks.integer("input_dim", input_dim, registered.min_input_dim, context=f"for {dataset!r}")
    k = registered.classes(n_classes)
    if n_samples < k:
        raise ConfigError(f"n_samples must be >= n_classes={k} for {dataset!r}, "
                          f"got {n_samples!r}")
    return _MODELS[dataset], _Params(dataset, int(n_samples), float(noise), int(input_dim), k)


def class_priors(dataset: str, *, n_samples: int, n_classes: int | None = None) -> np.ndarray:
    """The generator's exact class proportions ``n_k / n_samples``.

    Returns
    -------
    ndarray of shape (n_classes,), float64
    """
    input_dim = get_dataset(dataset).min_input_dim
    model, p = _params(dataset, n_samples, 1.0, input_dim, n_classes)
    return model.counts(p) / p.n_samples


def _log_sphere_mean_exp(nu: float, kappa: np.ndarray) -> np.ndarray:
    """``log E_u[exp(kappa u_1)] - kappa`` for ``u`` uniform on the sphere S^(2 nu + 1).

    Equal to ``log(Gamma(nu + 1) (kappa/2)^(-nu) ive(nu, kappa))``; the power series
    in ``kappa^2 / 4`` takes over where that form is 0 * inf or underflows.
    """
    kappa = np.asarray(kappa, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if nu == 0:
            closed = np.log(ive(0, kappa))
        else:
            closed = gammaln(nu + 1) - nu * np.log(kappa / 2) + np.log(ive(nu, kappa))
    # Relative size of the series' second term: below 1e-2 the series converges
    # in a few terms, and the closed form loses digits to cancellation there.
    use_series = ~np.isfinite(closed) | (kappa * kappa < 4e-2 * (nu + 1))
    if nu == 0:
        use_series &= ~np.isfinite(closed)
    if not use_series.any():
        return closed
    k = kappa[use_series]
    n_terms = int(2 * k.max() + 60)
    m = np.arange(n_terms)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        powers = m * np.log(k * k / 4)[None, :]
    powers[0] = 0.0  # (kappa^2/4)^0 = 1, also at kappa = 0
    terms = powers - gammaln(m + 1) - gammaln(m + nu + 1) + gammaln(nu + 1)
    out = closed.copy()
    out[use_series] = logsumexp(terms, axis=0) - k
    return out


def _log_shell(rho: np.ndarray, radius: float, s: float, d: int) -> np.ndarray:
    """Log density at distance ``rho`` from the origin of a sphere of ``radius``
    in ``d`` dimensions blurred by ``N(0, s^2 I_d)`` (module docstring)."""
    kappa = radius * rho / (s * s)
    return (-0.5 * d * np.log(2 * np.pi * s * s) - (rho - radius) ** 2 / (2 * s * s)
            + _log_sphere_mean_exp(d / 2 - 1, kappa))


def _mixture(X2: np.ndarray, centres: np.ndarray, s: float, want_grad: bool):
    """Log density of the equal-weight mixture of ``N(c_j, s^2 I_2)`` at rows of X2
    and, when asked, its gradient in ``x`` (compiled: one pass over the centres per
    row, no (rows, centres) temporaries)."""
    from .. import kernels

    X2 = np.ascontiguousarray(X2, dtype=np.float64)
    centres = np.ascontiguousarray(centres, dtype=np.float64)
    log = np.empty(len(X2))
    grad = np.empty((len(X2), 2)) if want_grad else np.empty((0, 2))
    kernels.mixture_log_and_grad(X2, centres, 1.0 / (2 * s * s), np.empty(len(centres)),
                                 log, grad, want_grad)
    return log - np.log(len(centres)) - np.log(2 * np.pi * s * s), grad


def _log_mixture(X2: np.ndarray, centres: np.ndarray, s: float) -> np.ndarray:
    """Log density of the equal-weight mixture of ``N(c_j, s^2 I_2)`` at rows of X2."""
    return _mixture(X2, centres, s, False)[0]


def _log_nuisance(X_rest: np.ndarray, s: float) -> np.ndarray:
    if X_rest.shape[1] == 0:
        return np.zeros(len(X_rest))
    return (-0.5 * X_rest.shape[1] * np.log(2 * np.pi * s * s)
            - np.einsum("ij,ij->i", X_rest, X_rest) / (2 * s * s))


def _log_density(model: _Model, p: _Params, X: np.ndarray) -> np.ndarray:
    s = p.noise
    columns = []
    if model.shell_dim is not None:
        d = model.shell_dim(p)
        rho = np.linalg.norm(X[:, :d], axis=1)
        rest = _log_nuisance(X[:, d:], s)
        for radius in _SHELL_RADII:
            columns.append(_log_shell(rho, radius, s, d) + rest)
    else:
        rest = _log_nuisance(X[:, 2:], s)
        for centres in model.centres(p):
            columns.append(_log_mixture(X[:, :2], centres, s) + rest)
    return np.column_stack(columns)


def _check_X(X, input_dim) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != input_dim:
        raise DataError(f"X must have shape (n, input_dim={input_dim}), got {X.shape}")
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        raise DataError(f"X must be finite; row {int(np.argmin(finite))} holds NaN or inf")
    return X


def class_log_density(dataset: str, X, *, n_samples: int, noise: float, input_dim: int = 2,
                      n_classes: int | None = None) -> np.ndarray:
    """``log p(x | y = k)`` of the generator ``make_dataset(dataset, n_samples, noise,
    input_dim=input_dim, n_classes=n_classes)`` (any seed).

    Parameters
    ----------
    dataset : str
        One of :func:`density_datasets`.
    X : array_like of shape (n, input_dim)
    n_samples, noise, input_dim, n_classes
        The generator's arguments; ``noise`` must be > 0.

    Returns
    -------
    ndarray of shape (n, n_classes), float64
        Log densities with respect to Lebesgue measure on R^input_dim.
    """
    model, p = _params(dataset, n_samples, noise, input_dim, n_classes)
    return _log_density(model, p, _check_X(X, p.input_dim))


def _log_joint(dataset, X, n_samples, noise, input_dim, n_classes) -> np.ndarray:
    model, p = _params(dataset, n_samples, noise, input_dim, n_classes)
    log_prior = np.log(model.counts(p) / p.n_samples)
    return _log_density(model, p, _check_X(X, p.input_dim)) + log_prior


def bayes_posterior(dataset: str, X, *, n_samples: int, noise: float, input_dim: int = 2,
                    n_classes: int | None = None) -> np.ndarray:
    """Exact posterior ``P(y = k | x)`` of a row drawn by the generator.

    Priors are the generator's class proportions for ``n_samples`` (module
    docstring); ``n_samples`` also fixes moons' and spirals' noise-free points.

    Returns
    -------
    ndarray of shape (n, n_classes), float64
        Rows sum to 1.
    """
    log_joint = _log_joint(dataset, X, n_samples, noise, input_dim, n_classes)
    return np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))


def _mixture_log_and_grad(X2: np.ndarray, centres: np.ndarray, s: float):
    """:func:`_log_mixture` and its gradient in ``x``: the responsibility-weighted
    mean of ``(c_j - x) / s^2``."""
    return _mixture(X2, centres, s, True)


def log_posterior_gradient(dataset: str, X, *, n_samples: int, noise: float,
                           input_dim: int = 2, n_classes: int | None = None):
    """The log posterior ``log P(y = k | x)`` of a Gaussian-mixture dataset
    (``moons``, ``blobs``, ``spirals``) and its exact gradient in ``x``.

    With ``g_k = grad log pi_k p(x | k)``, ``grad log P(k | x) = g_k - sum_m
    P(m | x) g_m``; the nuisance coordinates' share of ``g_k`` is the same for
    every class, so their gradient is exactly 0.

    Returns
    -------
    log_posterior : ndarray of shape (n, n_classes), float64
    gradient : ndarray of shape (n, n_classes, input_dim), float64
    """
    model, p = _params(dataset, n_samples, noise, input_dim, n_classes)
    if model.centres is None:
        raise ConfigError(f"dataset must be a Gaussian mixture (moons, blobs, spirals) "
                          f"for the posterior gradient, got {dataset!r}")
    X = _check_X(X, p.input_dim)
    log_prior = np.log(model.counts(p) / p.n_samples)
    parts = [_mixture_log_and_grad(X[:, :2], centres, p.noise) for centres in model.centres(p)]
    log_joint = np.column_stack([log for log, _ in parts]) + log_prior
    log_post = log_joint - logsumexp(log_joint, axis=1, keepdims=True)
    g = np.zeros((X.shape[0], len(parts), p.input_dim))
    g[:, :, :2] = np.stack([grad for _, grad in parts], axis=1)
    posterior = np.exp(log_post)
    g -= np.einsum("nk,nkd->nd", posterior, g)[:, None, :]
    return log_post, g


def bayes_label(dataset: str, X, *, n_samples: int, noise: float, input_dim: int = 2,
                n_classes: int | None = None) -> np.ndarray:
    """The Bayes-optimal label (largest posterior; ties to the smaller label).

    Returns
    -------
    ndarray of shape (n,), int64
    """
    log_joint = _log_joint(dataset, X, n_samples, noise, input_dim, n_classes)
    return np.argmax(log_joint, axis=1).astype(np.int64)


def _shell_log_joint(model: _Model, p: _Params):
    """``rho -> log pi_k p(rho e_1 | k)`` of a shell model, shape (n, 2)."""
    d, s = model.shell_dim(p), p.noise
    log_prior = np.log(model.counts(p) / p.n_samples)

    def log_joint(rho):
        rho = np.atleast_1d(np.asarray(rho, dtype=np.float64))
        return np.column_stack([_log_shell(rho, r, s, d) for r in _SHELL_RADII]) + log_prior

    return log_joint


def _shell_cuts(model: _Model, p: _Params) -> tuple[list[float], float]:
    """The radii where a shell model's Bayes label changes (bracketed on a fine grid,
    then brentq), and the radius past which the integrals stop."""
    d, s = model.shell_dim(p), p.noise
    log_joint = _shell_log_joint(model, p)
    upper = max(_SHELL_RADII) + 12 * s + 6 * s * np.sqrt(d)
    grid = np.linspace(0, upper, 4001)
    gap = np.diff(log_joint(grid), axis=1)[:, 0]
    cuts = [optimize.brentq(lambda r: float(np.diff(log_joint(r), axis=1)[0, 0]),
                            grid[i], grid[i + 1], xtol=1e-13)
            for i in np.flatnonzero(np.sign(gap[:-1]) * np.sign(gap[1:]) < 0)]
    return cuts, upper


def shell_label_changes(dataset: str, *, n_samples: int, noise: float, input_dim: int = 2,
                        n_classes: int | None = None) -> np.ndarray:
    """Radii ``|x_S|`` at which the Bayes label of a radial dataset changes.

    For ``circles`` (``S`` the first two coordinates) and ``spheres`` (all of
    them) the posterior depends on ``|x_S|`` only, so the Bayes rule is constant
    between consecutive radii returned here (located to 1e-13 by brentq within
    ``max radius + 12 noise + 6 noise sqrt(d)``; beyond, the outer class wins).

    Returns
    -------
    ndarray of shape (n_changes,), float64, increasing
    """
    model, p = _params(dataset, n_samples, noise, input_dim, n_classes)
    if model.shell_dim is None:
        raise ConfigError(f"dataset must be radial (circles or spheres) for label-change "
                          f"radii, got {dataset!r}")
    return np.asarray(_shell_cuts(model, p)[0], dtype=np.float64)


def shell_dim(dataset: str, input_dim: int = 2) -> int | None:
    """Coordinates whose norm decides the Bayes label of a radial dataset (2 for
    circles, ``input_dim`` for spheres); None for the mixtures."""
    # Any valid draw size will do: the shell's dimension does not depend on it (one
    # point per class at least, or a 3-class spirals would be refused).
    enough = max(2, get_dataset(dataset).classes(None))
    model, p = _params(dataset, enough, 1.0, input_dim, None)
    return None if model.shell_dim is None else model.shell_dim(p)


def _shell_error(model: _Model, p: _Params) -> float:
    """``1 - integral of max_k pi_k p_k`` along the radius, split at the radii where
    the Bayes label changes."""
    d = model.shell_dim(p)
    log_joint = _shell_log_joint(model, p)
    log_surface = np.log(2.0) + 0.5 * d * np.log(np.pi) - gammaln(d / 2)
    cuts, upper = _shell_cuts(model, p)
    edges = [0.0, *cuts, upper]

    def lost(rho):
        # Mass of the classes the Bayes rule does not pick, at radius rho.
        lj = log_joint(rho)[0]
        return float(np.exp(np.delete(lj, np.argmax(lj))).sum()
                     * np.exp(log_surface + (d - 1) * np.log(rho)) if rho > 0 else 0.0)

    error = 0.0
    for a, b in zip(edges[:-1], edges[1:]):
        error += integrate.quad(lost, a, b, epsabs=1e-13, epsrel=1e-11, limit=200)[0]
    return error


def _grid_error(model: _Model, p: _Params, resolution: int) -> float:
    """The rectangle rule for ``integral of (sum_k pi_k p_k - max_k pi_k p_k)`` on a
    grid of spacing ``h = noise / resolution`` reaching 9 noise deviations past
    every centre.

    A Gaussian on a grid is separable, ``exp(-|x - c|^2 / 2 s^2) = a(x_1) b(x_2)``,
    so a whole mixture on a block of the grid is one matrix product ``A @ B.T``.
    Densities below the float64 range round to 0, where the integrand is below
    1e-300 anyway.
    """
    s = p.noise
    priors = model.counts(p) / p.n_samples
    centres = model.centres(p)
    points = np.vstack(centres)
    low, high = points.min(axis=0) - 9 * s, points.max(axis=0) + 9 * s
    h = s / resolution
    xs = np.arange(low[0], high[0] + h / 2, h)
    ys = np.arange(low[1], high[1] + h / 2, h)
    factors = [(np.exp(-(ys[:, None] - c[None, :, 1]) ** 2 / (2 * s * s)),
                prior / (len(c) * 2 * np.pi * s * s), c) for c, prior in zip(centres, priors)]
    error = 0.0
    for x0 in range(0, len(xs), 256):
        block = xs[x0:x0 + 256, None]
        joint = np.stack([weight * (np.exp(-(block - c[None, :, 0]) ** 2 / (2 * s * s)) @ B.T)
                          for B, weight, c in factors])
        error += float((joint.sum(axis=0) - joint.max(axis=0)).sum())
    return error * h * h


def bayes_error(dataset: str, *, n_samples: int, noise: float, input_dim: int = 2,
                n_classes: int | None = None, resolution: int = 16) -> float:
    """The generator's Bayes error ``1 - integral of max_k pi_k p(x | k) dx``.

    Nuisance coordinates cancel, so circles, moons, blobs and spirals are
    integrated in their two informative coordinates whatever ``input_dim``.

    * ``circles`` and ``spheres``: the densities depend on ``|x|`` only, so the
      integral is one-dimensional (``dx = S_(d-1) rho^(d-1) d rho``), done by
      ``scipy.integrate.quad`` between the radii where the Bayes label changes;
      exact to about 1e-10.
    * ``moons``, ``blobs``, ``spirals``: the rectangle rule on square grids of
      spacing ``noise / resolution`` and half that, reaching 9 noise deviations
      past every centre, combined by one Richardson step.  The integrand is
      smooth except for a kink on the decision boundary, so each sum's error
      falls as ``resolution^-2``; the combination is tested against the closed
      forms for 2 and 4 blobs (``Phi(-1/s)`` and ``1 - Phi(1/(s sqrt 2))^2``).
      The cost grows as ``(extent / noise)^2 resolution^2 n_samples``.

    Parameters
    ----------
    dataset, n_samples, noise, input_dim, n_classes
        As for :func:`bayes_posterior`.
    resolution : int
        Grid points per noise standard deviation of the coarser grid (mixtures only).

    Returns
    -------
    float
    """
    model, p = _params(dataset, n_samples, noise, input_dim, n_classes)
    _checks.integer("resolution", resolution, 2)
    if model.shell_dim is not None:
        return _shell_error(model, p)
    # The rule's error is c h^2 + o(h^2) (a kink along a curve averages out over
    # the grid), so one Richardson step on h and h/2 removes its leading term.
    coarse = _grid_error(model, p, int(resolution))
    fine = _grid_error(model, p, 2 * int(resolution))
    return (4 * fine - coarse) / 3
