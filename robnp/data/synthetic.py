"""The synthetic generators: each one's generating process, written down exactly.

The two generators of the robustness-scaling study, ``circles`` and ``moons``, follow
its procedure draw for draw (same NumPy ``default_rng`` stream, same order), so the
same arguments give the same points and labels.  ``spheres`` is natively
``input_dim``-dimensional.  ``blobs`` and ``spirals`` have ``n_classes`` classes.

Every generator is built so that its class-conditional densities are known in
closed form (a blurred ring or sphere, or a finite Gaussian mixture): the
deterministic parts of each process (class counts, arc points, arm points, blob
centres) are functions here, shared with :mod:`robnp.data.bayes`, which computes
the exact Bayes posterior from them.

Higher input dimensions for the planar datasets (circles, moons, blobs, spirals)
come from ``input_dim``: the points stay in the first two coordinates and
``input_dim - 2`` nuisance coordinates of pure Gaussian noise (standard deviation
``noise``) are appended, drawn after everything else from a child stream of the
seed, so that the first two coordinates stay identical to the 2-D dataset and
the extra ones carry no label information.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

__all__ = [
    "make_circles", "make_moons", "make_spheres", "make_blobs", "make_spirals",
    "with_nuisance",
    "class_counts", "two_class_counts", "moon_arcs", "blob_centres", "spiral_arms",
    "SPIRAL_INNER_RADIUS", "SPIRAL_TURNS", "BLOB_RADIUS",
]

#: Radius of the circle on which ``blobs`` places its centres.
BLOB_RADIUS = 1.0
#: Radius at which every ``spirals`` arm starts (it ends at radius 1).
SPIRAL_INNER_RADIUS = 0.25
#: Number of full turns each ``spirals`` arm makes between its two ends.
SPIRAL_TURNS = 1.0


def _check_common(n_samples, noise):
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 2:
        raise ConfigError(f"n_samples must be an integer >= 2, got {n_samples!r}")
    if not np.isfinite(noise) or noise < 0:
        raise ConfigError(f"noise must be a finite number >= 0, got {noise!r}")


def _check_classes(n_classes, n_samples, name):
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) \
            or n_classes < 2:
        raise ConfigError(f"n_classes must be an integer >= 2 for {name!r}, got {n_classes!r}")
    if n_samples < n_classes:
        raise ConfigError(f"n_samples must be >= n_classes={n_classes} for {name!r} "
                          f"(one point per class at least), got {n_samples!r}")


def _finish(X, y, rng, n_samples):
    """Shuffle rows and labels with one permutation and cast, as the study does."""
    order = rng.permutation(n_samples)
    return X[order].astype(np.float32), y[order].astype(np.int64)


def class_counts(n_samples: int, n_classes: int) -> np.ndarray:
    """How many points of each class a generator draws.

    The rule of ``blobs`` and ``spirals``: class ``k`` gets ``n_samples // n_classes``
    points, plus one for the first ``n_samples % n_classes`` classes.  (The
    two-class generators keep the study's rule instead, :func:`two_class_counts`,
    which gives the odd point to class 1.)

    Returns
    -------
    ndarray of shape (n_classes,), int64
    """
    counts = np.full(n_classes, n_samples // n_classes, dtype=np.int64)
    counts[: n_samples % n_classes] += 1
    return counts


def two_class_counts(n_samples: int) -> np.ndarray:
    """The study's two-class split: ``n // 2`` points of class 0, the rest class 1.

    Returns
    -------
    ndarray of shape (2,), int64
    """
    return np.array([n_samples // 2, n_samples - n_samples // 2], dtype=np.int64)


def make_circles(n_samples: int, noise: float, factor: float = 0.5, seed=None):
    """Two concentric circles: outer (label 0) of radius 1, inner (label 1) of
    radius ``factor``, Gaussian noise of standard deviation ``noise``.

    The process: ``n // 2`` angles of class 0, then ``n - n // 2`` of class 1, all
    i.i.d. uniform on ``[0, 2 pi)``; each point is ``r_y (cos t, sin t)`` plus
    i.i.d. ``N(0, noise^2)`` on both coordinates; rows are then shuffled.

    Returns
    -------
    X : ndarray of shape (n_samples, 2), float32
    y : ndarray of shape (n_samples,), int64
    """
    _check_common(n_samples, noise)
    if not 0 < factor < 1:
        raise ConfigError(f"factor must be in (0, 1), got {factor!r}")
    rng = np.random.default_rng(seed)
    n_out, n_in = two_class_counts(n_samples)
    theta_out = rng.uniform(0, 2 * np.pi, n_out)
    theta_in = rng.uniform(0, 2 * np.pi, n_in)
    X = np.vstack([
        np.column_stack([np.cos(theta_out), np.sin(theta_out)]),
        factor * np.column_stack([np.cos(theta_in), np.sin(theta_in)]),
    ])
    y = np.concatenate([np.zeros(n_out), np.ones(n_in)])
    X = X + rng.normal(0, noise, X.shape)
    return _finish(X, y, rng, n_samples)


def moon_arcs(n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The noise-free points of ``moons``: one per sample, evenly spaced on each arc.

    Class 0 (upper moon): ``(cos t, sin t)`` at ``t = linspace(0, pi, n // 2)``;
    class 1 (lower moon): ``(1 - cos t, 0.5 - sin t)`` at
    ``t = linspace(0, pi, n - n // 2)``.

    Returns
    -------
    upper : ndarray of shape (n // 2, 2), float64
    lower : ndarray of shape (n - n // 2, 2), float64
    """
    n_up, n_low = two_class_counts(n_samples)
    t_up = np.linspace(0, np.pi, n_up)
    t_low = np.linspace(0, np.pi, n_low)
    upper = np.column_stack([np.cos(t_up), np.sin(t_up)])
    lower = np.column_stack([1 - np.cos(t_low), 1 - np.sin(t_low) - 0.5])
    return upper, lower


def make_moons(n_samples: int, noise: float, seed=None):
    """Two interleaving half circles: the upper moon (label 0) and the lower,
    shifted moon (label 1), with Gaussian noise of standard deviation ``noise``.

    The process: the arc points of :func:`moon_arcs` (evenly spaced, not random),
    plus i.i.d. ``N(0, noise^2)`` on both coordinates; rows are then shuffled.  So
    each class is an equal-weight mixture of Gaussians centred on its arc points.

    Returns
    -------
    X : ndarray of shape (n_samples, 2), float32
    y : ndarray of shape (n_samples,), int64
    """
    _check_common(n_samples, noise)
    rng = np.random.default_rng(seed)
    upper, lower = moon_arcs(n_samples)
    X = np.vstack([upper, lower])
    y = np.concatenate([np.zeros(len(upper)), np.ones(len(lower))])
    X = X + rng.normal(0, noise, X.shape)
    return _finish(X, y, rng, n_samples)


def make_spheres(n_samples: int, noise: float, input_dim: int = 3, factor: float = 0.5,
                 seed=None):
    """Two concentric spheres in ``input_dim`` dimensions: the unit sphere (label 0)
    and one of radius ``factor`` (label 1), directions uniform, Gaussian noise.

    The process: ``n // 2`` points of class 0, then ``n - n // 2`` of class 1; each
    direction is an i.i.d. standard normal vector divided by its norm (uniform on
    the unit sphere), scaled by the class radius, plus i.i.d. ``N(0, noise^2)`` on
    every coordinate; rows are then shuffled.

    Returns
    -------
    X : ndarray of shape (n_samples, input_dim), float32
    y : ndarray of shape (n_samples,), int64
    """
    _check_common(n_samples, noise)
    if input_dim < 2:
        raise ConfigError(f"input_dim must be >= 2 for spheres, got {input_dim!r}")
    rng = np.random.default_rng(seed)
    n_out, n_in = two_class_counts(n_samples)
    directions = rng.normal(size=(n_samples, input_dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    radius = np.concatenate([np.ones(n_out), np.full(n_in, factor)])
    X = directions * radius[:, None]
    y = np.concatenate([np.zeros(n_out), np.ones(n_in)])
    X = X + rng.normal(0, noise, X.shape)
    return _finish(X, y, rng, n_samples)


def blob_centres(n_classes: int) -> np.ndarray:
    """Centres of ``blobs``: evenly spaced on the circle of radius :data:`BLOB_RADIUS`.

    Centre ``k`` is ``BLOB_RADIUS (cos(2 pi k / K), sin(2 pi k / K))``.

    Returns
    -------
    ndarray of shape (n_classes, 2), float64
    """
    angle = 2 * np.pi * np.arange(n_classes) / n_classes
    return BLOB_RADIUS * np.column_stack([np.cos(angle), np.sin(angle)])


def make_blobs(n_samples: int, noise: float, n_classes: int = 3, seed=None):
    """``n_classes`` isotropic Gaussian blobs with centres on a circle.

    The process: class ``k`` has ``class_counts(n, K)[k]`` points (``n // K`` each,
    one more for the first ``n % K`` classes), all at centre ``k`` of
    :func:`blob_centres` (radius 1, angle ``2 pi k / K``); every point gets i.i.d.
    ``N(0, noise^2)`` on both coordinates (drawn in one call, classes in label
    order); rows are then shuffled.  Class ``k``'s density is the Gaussian
    ``N(c_k, noise^2 I)``.  Adjacent centres are ``2 sin(pi / K)`` apart.

    Returns
    -------
    X : ndarray of shape (n_samples, 2), float32
    y : ndarray of shape (n_samples,), int64
    """
    _check_common(n_samples, noise)
    _check_classes(n_classes, n_samples, "blobs")
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), class_counts(n_samples, n_classes))
    X = blob_centres(n_classes)[y] + rng.normal(0, noise, (n_samples, 2))
    return _finish(X, y, rng, n_samples)


def spiral_arms(n_samples: int, n_classes: int) -> list[np.ndarray]:
    """The noise-free points of ``spirals``: evenly spaced along each of K arms.

    Arm ``k`` has ``m = class_counts(n, K)[k]`` points at
    ``t = linspace(0, 1, m)``; the point at ``t`` has radius
    ``rho = a + (1 - a) t`` with ``a = SPIRAL_INNER_RADIUS`` and angle
    ``phi = 2 pi k / K + 2 pi SPIRAL_TURNS t``, i.e. ``rho (cos phi, sin phi)``.
    The arms are rotated copies of one another, interleaved by ``2 pi / K``.

    Returns
    -------
    list of K ndarrays, the k-th of shape (class_counts(n, K)[k], 2), float64
    """
    arms = []
    for k, m in enumerate(class_counts(n_samples, n_classes)):
        t = np.linspace(0, 1, m)
        rho = SPIRAL_INNER_RADIUS + (1 - SPIRAL_INNER_RADIUS) * t
        phi = 2 * np.pi * k / n_classes + 2 * np.pi * SPIRAL_TURNS * t
        arms.append(rho[:, None] * np.column_stack([np.cos(phi), np.sin(phi)]))
    return arms


def make_spirals(n_samples: int, noise: float, n_classes: int = 3, seed=None):
    """``n_classes`` interleaved spiral arms with Gaussian noise.

    The process: the arm points of :func:`spiral_arms` (evenly spaced in the arm
    parameter, not random; classes in label order), plus i.i.d. ``N(0, noise^2)``
    on both coordinates; rows are then shuffled.  So each class is an
    equal-weight mixture of Gaussians centred on its arm points.

    Returns
    -------
    X : ndarray of shape (n_samples, 2), float32
    y : ndarray of shape (n_samples,), int64
    """
    _check_common(n_samples, noise)
    _check_classes(n_classes, n_samples, "spirals")
    rng = np.random.default_rng(seed)
    arms = spiral_arms(n_samples, n_classes)
    X = np.vstack(arms)
    y = np.repeat(np.arange(n_classes), [len(arm) for arm in arms])
    X = X + rng.normal(0, noise, X.shape)
    return _finish(X, y, rng, n_samples)


def with_nuisance(X, noise, seed, input_dim):
    """Append ``input_dim - 2`` label-free Gaussian coordinates to 2-D points.

    The extra coordinates are i.i.d. ``N(0, noise^2)``, independent of everything
    else, so they multiply every class density by the same factor.
    """
    if input_dim == 2:
        return X
    # A child stream of the dataset seed: the 2-D part stays bit-identical.
    rng = np.random.default_rng([0 if seed is None else seed, input_dim])
    extra = rng.normal(0, noise, (X.shape[0], input_dim - 2)).astype(np.float32)
    return np.ascontiguousarray(np.hstack([X, extra]))
