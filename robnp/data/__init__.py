"""Synthetic classification datasets: the registry and the train/test split.

The generators themselves, each with its generating process written down exactly,
live in :mod:`robnp.data.synthetic`; the exact class densities, Bayes posteriors
and Bayes errors they imply in :mod:`robnp.data.bayes`.  A dataset is one
registered function ``generate(n_samples, noise, seed, input_dim=2)`` returning
``(X, y)``; a dataset with a variable number of classes also takes
``n_classes=...`` (registered with ``min_classes``).

Built in: ``circles`` and ``moons`` (the robustness-scaling study's, draw for draw;
``input_dim > 2`` appends label-free Gaussian coordinates), ``spheres`` (natively
``input_dim``-dimensional), and the multi-class ``blobs`` and ``spirals`` (3
classes unless ``n_classes`` says otherwise; extra dimensions are noise too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import _checks, _memory
from ..errors import ConfigError, DataError
from .synthetic import (make_blobs, make_circles, make_moons, make_spheres, make_spirals,
                        with_nuisance)

__all__ = [
    "Dataset",
    "DATASETS",
    "register_dataset",
    "dataset_names",
    "get_dataset",
    "make_dataset",
    "generation_memory",
    "make_circles",
    "make_moons",
    "make_spheres",
    "make_blobs",
    "make_spirals",
    "train_test_split",
]


@dataclass(frozen=True)
class Dataset:
    """A registered generator.

    ``generate(n_samples, noise, seed, input_dim)`` returns ``(X, y)``: ``X`` float32
    of shape ``(n_samples, input_dim)``, ``y`` int64 of shape ``(n_samples,)`` with
    labels in ``range(n_classes)``.  When ``min_classes`` is set, the generator also
    takes ``n_classes=`` (any integer ``>= min_classes``; ``n_classes`` is then the
    default); when it is ``None`` the class count is fixed at ``n_classes``.
    """

    name: str
    generate: Callable[..., tuple[np.ndarray, np.ndarray]]
    n_classes: int
    min_input_dim: int
    description: str
    min_classes: int | None = None

    @property
    def variable_classes(self) -> bool:
        """Whether the generator takes an ``n_classes`` argument."""
        return self.min_classes is not None

    def classes(self, n_classes=None) -> int:
        """The number of classes one call generates, validated.

        Parameters
        ----------
        n_classes : int or None
            ``None`` means the dataset's default.  A fixed-class dataset accepts
            only ``None`` or its own count; a variable one any integer
            ``>= min_classes``.

        Returns
        -------
        int

        Raises
        ------
        ConfigError
            For any other value, naming the dataset and the allowed values.
        """
        if n_classes is None:
            return self.n_classes
        if not self.variable_classes:
            if _checks.is_integer(n_classes) and n_classes == self.n_classes:
                return self.n_classes
            raise ConfigError(f"n_classes for dataset {self.name!r} is fixed at "
                              f"{self.n_classes} (or None), got {n_classes!r}")
        return _checks.integer("n_classes", n_classes, self.min_classes,
                               context=f"for dataset {self.name!r}")


DATASETS: dict[str, Dataset] = {}


def register_dataset(name: str, *, n_classes: int = 2, min_input_dim: int = 2,
                     min_classes: int | None = None):
    """Decorator adding a generator to the registry.

    Parameters
    ----------
    name : str
    n_classes : int
        The class count (with ``min_classes``: the default class count).
    min_input_dim : int
        Smallest ``input_dim`` the generator accepts.
    min_classes : int or None
        ``None`` (the default): the generator has the signature
        ``generate(n_samples, noise, seed, input_dim=2)`` and always makes
        ``n_classes`` classes.  An integer ``>= 2``: the generator has an extra
        keyword ``n_classes`` and accepts any value ``>= min_classes``.
    """
    _checks.integer("n_classes", n_classes, 2)
    if min_classes is not None and (not _checks.is_integer(min_classes)
                                    or not 2 <= min_classes <= n_classes):
        raise ConfigError(f"min_classes must be None or an integer in [2, n_classes="
                          f"{n_classes}], got {min_classes!r}")

    def decorate(generate):
        doc = (generate.__doc__ or "").strip().splitlines()
        DATASETS[name] = Dataset(name, generate, n_classes, min_input_dim,
                                 doc[0] if doc else "", min_classes)
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


@register_dataset("circles")
def _circles(n_samples, noise, seed, input_dim=2):
    """Concentric circles (radius 1 and 0.5); extra dimensions are noise."""
    X, y = make_circles(n_samples, noise, seed=seed)
    return with_nuisance(X, noise, seed, input_dim), y


@register_dataset("moons")
def _moons(n_samples, noise, seed, input_dim=2):
    """Two interleaving moons; extra dimensions are noise."""
    X, y = make_moons(n_samples, noise, seed=seed)
    return with_nuisance(X, noise, seed, input_dim), y


@register_dataset("spheres")
def _spheres(n_samples, noise, seed, input_dim=3):
    """Concentric spheres (radius 1 and 0.5) in input_dim dimensions."""
    return make_spheres(n_samples, noise, input_dim=input_dim, seed=seed)


@register_dataset("blobs", n_classes=3, min_classes=2)
def _blobs(n_samples, noise, seed, input_dim=2, n_classes=3):
    """Isotropic Gaussian blobs centred on the unit circle; extra dimensions are noise."""
    X, y = make_blobs(n_samples, noise, n_classes=n_classes, seed=seed)
    return with_nuisance(X, noise, seed, input_dim), y


@register_dataset("spirals", n_classes=3, min_classes=2)
def _spirals(n_samples, noise, seed, input_dim=2, n_classes=3):
    """Interleaved spiral arms, one per class; extra dimensions are noise."""
    X, y = make_spirals(n_samples, noise, n_classes=n_classes, seed=seed)
    return with_nuisance(X, noise, seed, input_dim), y


#: Bytes per row and input dimension a generator holds at its peak: float64 draws, the
#: float64 points, their float32 copy and the shuffled copy (measured with tracemalloc:
#: 28 for spheres, the largest; 11 to 18 for the 2-D generators and their nuisance
#: columns), and per row: the int64 labels, the shuffle and its copy.
_GENERATION_BYTES_PER_VALUE = 28
_GENERATION_BYTES_PER_ROW = 24


def generation_memory(n_samples: int, input_dim: int) -> _memory.MemoryEstimate:
    """Peak bytes of :func:`make_dataset` for ``n_samples`` rows of ``input_dim``
    features: an upper bound for every registered generator (tight for ``spheres``,
    up to 3x for the 2-D ones with nuisance columns)."""
    n_samples = _memory.check_size("n_samples", n_samples)
    input_dim = _memory.check_size("input_dim", input_dim)
    per_row = _GENERATION_BYTES_PER_VALUE * input_dim + _GENERATION_BYTES_PER_ROW
    return _memory.MemoryEstimate((
        ("generated data", f"n_samples={n_samples}, input_dim={input_dim}",
         float(n_samples * per_row)),
        ("array objects", "a few arrays", 65536.0),
    ))


def make_dataset(name: str, n_samples: int = 2000, noise: float = 0.15, seed=None,
                 input_dim: int = 2, n_classes: int | None = None):
    """Generate the registered dataset ``name``.

    Parameters
    ----------
    name : str
    n_samples : int
    noise : float
        Standard deviation of the Gaussian noise.
    seed : int or None
    input_dim : int
        Must be ``>= get_dataset(name).min_input_dim``.
    n_classes : int or None
        ``None``: the dataset's default; otherwise validated by
        :meth:`Dataset.classes`.

    Returns
    -------
    X : ndarray of shape (n_samples, input_dim), float32
    y : ndarray of shape (n_samples,), int64
    """
    dataset = get_dataset(name)
    _checks.integer("input_dim", input_dim, dataset.min_input_dim, context=f"for {name!r}")
    k = dataset.classes(n_classes)
    if _checks.is_integer(n_samples) and n_samples > 0:
        _memory.check_fits(generation_memory(n_samples, input_dim),
                           f"make_dataset({name!r}, n_samples={n_samples})")
    if dataset.variable_classes:
        return dataset.generate(n_samples, noise, seed, input_dim, n_classes=k)
    return dataset.generate(n_samples, noise, seed, input_dim)


def train_test_split(X, y, test_fraction: float = 0.2):
    """Split as the study does: the first ``n - int(n * test_fraction)`` rows train,
    the rest test (the generators already shuffle).

    Parameters
    ----------
    X : array_like of shape (n_samples, ...), finite numbers
    y : array_like of shape (n_samples,)
    test_fraction : float in (0, 1)
        Share of the rows held out.  The split must leave at least one row on
        each side (``int(n * test_fraction)`` test rows), as the study and the
        command line demand: an empty test set would make every accuracy
        measured on it undefined.

    Returns
    -------
    X_train, X_test, y_train, y_test : ndarrays
        Views of the (array-converted) inputs.

    Raises
    ------
    ConfigError
        ``test_fraction`` not a number in (0, 1), or one that leaves an empty
        train or test set for these rows.
    DataError
        ``X`` and ``y`` of different lengths, or a NaN or infinite value in ``X``
        (the message names the first such row).
    """
    # Checked, not converted: the split below uses the value as given.
    _checks.real("test_fraction", test_fraction, 0, 1, low_open=True, high_open=True,
                 finite=False)
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim < 1 or y.ndim < 1:
        raise DataError(f"X and y must be arrays with one row per sample, got shapes "
                        f"{X.shape} and {y.shape}")
    n = X.shape[0]
    if y.shape[0] != n:
        raise DataError(f"X and y must have the same number of rows, got {n} and "
                        f"{y.shape[0]}")
    try:
        finite = np.isfinite(X.reshape(n, -1)).all(axis=1)
    except TypeError:
        raise DataError(f"X must hold numbers, got dtype {X.dtype}") from None
    if not finite.all():
        row = int(np.argmin(finite))
        raise DataError(f"X must be finite; row {row} holds NaN or inf: {X[row].tolist()}")
    n_test = int(n * test_fraction)
    if n_test < 1 or n - n_test < 1:
        raise ConfigError(f"test_fraction must leave at least one train and one test "
                          f"row, got {test_fraction!r} of {n} rows: {n_test} test and "
                          f"{n - n_test} train rows")
    n_train = n - n_test
    return X[:n_train], X[n_train:], y[:n_train], y[n_train:]
