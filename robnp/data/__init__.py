"""Synthetic classification datasets and the train/test split.

The two generators of the robustness-scaling study, ``circles`` and ``moons``, follow
its procedure draw for draw (same NumPy ``default_rng`` stream, same order), so the
same arguments give the same points and labels.  Generators live in a registry:
adding a dataset is one decorated function.

Higher input dimensions (the study's "3D input features" extension) come from
``input_dim``: the 2-D generators keep their points in the first two coordinates
and append ``input_dim - 2`` nuisance coordinates of pure Gaussian noise (standard
deviation ``noise``) that carry no label information, drawn after everything else
so that the first two coordinates stay identical to the 2-D dataset.  ``spheres``
is natively ``input_dim``-dimensional: two concentric spheres.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import ConfigError

__all__ = [
    "Dataset",
    "DATASETS",
    "register_dataset",
    "dataset_names",
    "make_dataset",
    "make_circles",
    "make_moons",
    "make_spheres",
    "train_test_split",
]


@dataclass(frozen=True)
class Dataset:
    """A registered generator.

    ``generate(n_samples, noise, seed, input_dim)`` returns ``(X, y)``: ``X`` float32
    of shape ``(n_samples, input_dim)``, ``y`` int64 of shape ``(n_samples,)``.
    """

    name: str
    generate: Callable[..., tuple[np.ndarray, np.ndarray]]
    n_classes: int
    min_input_dim: int
    description: str


DATASETS: dict[str, Dataset] = {}


def register_dataset(name: str, *, n_classes: int = 2, min_input_dim: int = 2):
    """Decorator adding ``generate(n_samples, noise, seed, input_dim)`` to the registry."""

    def decorate(generate):
        doc = (generate.__doc__ or "").strip().splitlines()
        DATASETS[name] = Dataset(name, generate, n_classes, min_input_dim,
                                 doc[0] if doc else "")
        return generate

    return decorate


def dataset_names() -> list[str]:
    return sorted(DATASETS)


def get_dataset(name: str) -> Dataset:
    """The registered dataset ``name``; a clear error lists the known names."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown dataset {name!r}; known datasets: {', '.join(dataset_names())}"
        ) from None


def _check_common(n_samples, noise):
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 2:
        raise ConfigError(f"n_samples must be an integer >= 2, got {n_samples!r}")
    if not np.isfinite(noise) or noise < 0:
        raise ConfigError(f"noise must be a finite number >= 0, got {noise!r}")


def _finish(X, y, rng, n_samples):
    """Shuffle rows and labels with one permutation and cast, as the study does."""
    order = rng.permutation(n_samples)
    return X[order].astype(np.float32), y[order].astype(np.int64)


def make_circles(n_samples: int, noise: float, factor: float = 0.5, seed=None):
    """Two concentric circles: outer (label 0) of radius 1, inner (label 1) of
    radius ``factor``, Gaussian noise of standard deviation ``noise``.

    Returns
    -------
    X : ndarray of shape (n_samples, 2), float32
    y : ndarray of shape (n_samples,), int64
    """
    _check_common(n_samples, noise)
    if not 0 < factor < 1:
        raise ConfigError(f"factor must be in (0, 1), got {factor!r}")
    rng = np.random.default_rng(seed)
    n_out = n_samples // 2
    n_in = n_samples - n_out
    theta_out = rng.uniform(0, 2 * np.pi, n_out)
    theta_in = rng.uniform(0, 2 * np.pi, n_in)
    X = np.vstack([
        np.column_stack([np.cos(theta_out), np.sin(theta_out)]),
        factor * np.column_stack([np.cos(theta_in), np.sin(theta_in)]),
    ])
    y = np.concatenate([np.zeros(n_out), np.ones(n_in)])
    X = X + rng.normal(0, noise, X.shape)
    return _finish(X, y, rng, n_samples)


def make_moons(n_samples: int, noise: float, seed=None):
    """Two interleaving half circles: the upper moon (label 0) and the lower,
    shifted moon (label 1), with Gaussian noise of standard deviation ``noise``.

    Returns
    -------
    X : ndarray of shape (n_samples, 2), float32
    y : ndarray of shape (n_samples,), int64
    """
    _check_common(n_samples, noise)
    rng = np.random.default_rng(seed)
    n_up = n_samples // 2
    n_low = n_samples - n_up
    t_up = np.linspace(0, np.pi, n_up)
    t_low = np.linspace(0, np.pi, n_low)
    X = np.vstack([
        np.column_stack([np.cos(t_up), np.sin(t_up)]),
        np.column_stack([1 - np.cos(t_low), 1 - np.sin(t_low) - 0.5]),
    ])
    y = np.concatenate([np.zeros(n_up), np.ones(n_low)])
    X = X + rng.normal(0, noise, X.shape)
    return _finish(X, y, rng, n_samples)


def make_spheres(n_samples: int, noise: float, input_dim: int = 3, factor: float = 0.5,
                 seed=None):
    """Two concentric spheres in ``input_dim`` dimensions: the unit sphere (label 0)
    and one of radius ``factor`` (label 1), directions uniform, Gaussian noise.

    Returns
    -------
    X : ndarray of shape (n_samples, input_dim), float32
    y : ndarray of shape (n_samples,), int64
    """
    _check_common(n_samples, noise)
    if input_dim < 2:
        raise ConfigError(f"input_dim must be >= 2 for spheres, got {input_dim!r}")
    rng = np.random.default_rng(seed)
    n_out = n_samples // 2
    n_in = n_samples - n_out
    directions = rng.normal(size=(n_samples, input_dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    radius = np.concatenate([np.ones(n_out), np.full(n_in, factor)])
    X = directions * radius[:, None]
    y = np.concatenate([np.zeros(n_out), np.ones(n_in)])
    X = X + rng.normal(0, noise, X.shape)
    return _finish(X, y, rng, n_samples)


def _with_nuisance(X, noise, seed, input_dim):
    """Append ``input_dim - 2`` label-free Gaussian coordinates to 2-D points."""
    if input_dim == 2:
        return X
    # A child stream of the dataset seed: the 2-D part stays bit-identical.
    rng = np.random.default_rng([0 if seed is None else seed, input_dim])
    extra = rng.normal(0, noise, (X.shape[0], input_dim - 2)).astype(np.float32)
    return np.ascontiguousarray(np.hstack([X, extra]))


@register_dataset("circles")
def _circles(n_samples, noise, seed, input_dim=2):
    """Concentric circles (radius 1 and 0.5); extra dimensions are noise."""
    X, y = make_circles(n_samples, noise, seed=seed)
    return _with_nuisance(X, noise, seed, input_dim), y


@register_dataset("moons")
def _moons(n_samples, noise, seed, input_dim=2):
    """Two interleaving moons; extra dimensions are noise."""
    X, y = make_moons(n_samples, noise, seed=seed)
    return _with_nuisance(X, noise, seed, input_dim), y


@register_dataset("spheres")
def _spheres(n_samples, noise, seed, input_dim=3):
    """Concentric spheres (radius 1 and 0.5) in input_dim dimensions."""
    return make_spheres(n_samples, noise, input_dim=input_dim, seed=seed)


def make_dataset(name: str, n_samples: int = 2000, noise: float = 0.15, seed=None,
                 input_dim: int = 2):
    """Generate the registered dataset ``name``.

    Returns
    -------
    X : ndarray of shape (n_samples, input_dim), float32
    y : ndarray of shape (n_samples,), int64
    """
    dataset = get_dataset(name)
    if isinstance(input_dim, bool) or not isinstance(input_dim, (int, np.integer)) \
            or input_dim < dataset.min_input_dim:
        raise ConfigError(
            f"input_dim must be an integer >= {dataset.min_input_dim} for {name!r}, "
            f"got {input_dim!r}")
    return dataset.generate(n_samples, noise, seed, input_dim)


def train_test_split(X, y, test_fraction: float = 0.2):
    """Split as the study does: the first ``n - int(n * test_fraction)`` rows train,
    the rest test (the generators already shuffle).

    Returns
    -------
    X_train, X_test, y_train, y_test
    """
    if not 0 <= test_fraction < 1:
        raise ConfigError(f"test_fraction must be in [0, 1), got {test_fraction!r}")
    n = X.shape[0]
    n_train = n - int(n * test_fraction)
    return X[:n_train], X[n_train:], y[:n_train], y[n_train:]
