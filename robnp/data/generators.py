"""Generators of training data of controlled quality, fitted to a finite sample.

The scaling-law paper (Bartoldson et al., 2024, Section 3.1, Table 1) trains on
samples of diffusion models fitted to CIFAR-10, because real data is finite and
generated data is not, and measures their quality by FID. Here a *task* (a
registered dataset with its noise, input dimension and class count) has a known
generating process, so a ladder of generators can be built under it and their
distance to the truth measured exactly (:mod:`robnp.data.quality`).

A generator is fitted to ``m`` real points per class of the task, drawn with a
seed, and then sampled without limit:

* ``"true"``: the task's own generator (the top of the ladder; nothing fitted).
* ``"kde"``: the class-conditional kernel density: class ``k`` is the equal-weight
  mixture of ``N(x_j, h^2 I)`` over its ``m`` real points ``x_j``. As ``h -> 0`` it
  is resampling the ``m`` points (the finite-data regime); a large ``h`` blurs the
  classes into one another. Its density is exact (:meth:`Generator.class_log_density`).

Kinds are registered in :data:`GENERATORS` (a :class:`robnp._options.Registry`), each
with a frozen options class declaring its knobs' constraints. A third kind,
``"diffusion"`` (one EDM denoiser per class, sampled with ``S`` Heun steps), needs the
model and the training building blocks, so it lives in a higher layer,
:mod:`robnp.data.diffusion`, and is registered when that module is imported
(:mod:`robnp.data.quality` imports it).

**The truth.** The task's generator is drawn in blocks of ``DataTask.size`` points
(``make_dataset(dataset, size, noise, seed=...)``), as
:class:`robnp.training.stream.SampleStream` draws it, so its class densities are
:mod:`robnp.data.bayes`'s with ``n_samples=size`` (``size`` fixes moons' and spirals'
evenly spaced arc points). A class-``k`` row of the truth is a row of label ``k`` of
such a block, blocks taken in order until enough rows are found.

**Sampling.** ``generator.sample(n, seed)`` returns ``X`` float32 ``(n, input_dim)``
and ``y`` int64 with the task's class counts for ``n`` points
(:meth:`DataTask.class_counts`), rows shuffled; it is a function of the generator's
fitted state, ``n`` and ``seed`` alone.

**Files.** :func:`save_generator` writes ``.npz`` (a JSON ``meta`` entry and one
float64 array of real points per class); :func:`load_generator` never unpickles, and
a damaged file, or one fitted to another task than the one asked for, is a one-line
:class:`~robnp.errors.ModelFileError`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np

from .. import _checks, kernels
from .._io import atomic_write, read_npz
from .._options import Entry, Options, Registry
from .._version import __version__
from ..errors import ConfigError, DataError, ModelFileError, StoreError
from . import get_dataset, make_dataset
from .bayes import class_log_density, density_datasets
from .synthetic import class_counts, two_class_counts

__all__ = ["DataTask", "Generator", "TrueGenerator", "KDEGenerator", "GeneratorOptions",
           "TrueOptions", "KDEOptions", "GeneratorKind", "GENERATORS", "register_generator",
           "generator_kinds", "fit_generator", "true_generator", "save_generator",
           "load_generator", "generator_digest", "TRUTH_SIZE", "child_seed", "as_task",
           "real_points"]

#: Draw size that fixes the truth unless told otherwise (the stream's block size).
TRUTH_SIZE = 1024


def child_seed(seed: int, *path: int) -> int:
    """A 63-bit seed derived from ``seed`` and ``path`` (independent streams)."""
    state = np.random.SeedSequence([seed, *path]).generate_state(2, np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


@dataclass(frozen=True)
class DataTask:
    """A registered dataset with the settings that fix its distribution.

    Parameters
    ----------
    dataset : str
        A registered dataset (:func:`robnp.data.dataset_names`).
    noise : float >= 0
    input_dim : int
    n_classes : int or None
        None: the dataset's default (resolved on construction).
    size : int >= 2
        The draw size of the truth (module docstring).
    """

    dataset: str
    noise: float = 0.15
    input_dim: int = 2
    n_classes: int | None = None
    size: int = TRUTH_SIZE

    def __post_init__(self):
        spec = get_dataset(self.dataset)
        object.__setattr__(self, "noise", _checks.real("noise", self.noise, 0))
        object.__setattr__(self, "input_dim", _checks.integer(
            "input_dim", self.input_dim, spec.min_input_dim, context=f"for {self.dataset!r}"))
        k = spec.classes(self.n_classes)
        object.__setattr__(self, "n_classes", k)
        object.__setattr__(self, "size", _checks.integer(
            "size", self.size, max(2, k), context="(points per draw of the truth)"))

    def identity(self) -> dict:
        return {"dataset": self.dataset, "noise": self.noise, "input_dim": self.input_dim,
                "n_classes": self.n_classes, "size": self.size}

    def describe(self) -> str:
        return (f"{self.dataset} (noise {self.noise:g}, input_dim {self.input_dim}, "
                f"{self.n_classes} classes, size {self.size})")

    def class_counts(self, n: int) -> np.ndarray:
        """Points of each class among ``n``: the registered generator's own rule
        (``n // 2`` and ``n - n // 2`` for the two-class datasets, otherwise
        :func:`robnp.data.synthetic.class_counts`)."""
        if get_dataset(self.dataset).variable_classes:
            return class_counts(n, self.n_classes)
        return two_class_counts(n)

    def priors(self) -> np.ndarray:
        """The truth's class proportions (its draws have ``size`` points)."""
        return self.class_counts(self.size) / self.size

    @property
    def has_density(self) -> bool:
        """Whether :mod:`robnp.data.bayes` knows the class densities exactly."""
        return self.dataset in density_datasets() and self.noise > 0

    def check_density(self, what: str = "an exact distance") -> None:
        if not self.has_density:
            why = ("noise 0 has no density" if self.dataset in density_datasets()
                   else f"known for: {', '.join(density_datasets())}")
            raise ConfigError(f"{what} needs the task's exact class densities, which "
                              f"{self.describe()} lacks ({why})")

    def class_log_density(self, X) -> np.ndarray:
        """``log p(x | k)`` of the truth, shape ``(n, n_classes)``."""
        self.check_density("the true class density")
        return class_log_density(self.dataset, X, n_samples=self.size, noise=self.noise,
                                 input_dim=self.input_dim, n_classes=self.n_classes)

    def true_rows(self, counts, seed: int) -> list[np.ndarray]:
        """``counts[k]`` rows of class ``k`` of the truth for every ``k`` (float64),
        from the blocks ``make_dataset(..., size, seed=child(seed, b))``, b = 0, 1, ..."""
        need = np.array(counts, dtype=np.int64)
        parts: list[list[np.ndarray]] = [[] for _ in range(self.n_classes)]
        b = 0
        while (need > 0).any():
            X, y = make_dataset(self.dataset, self.size, self.noise,
                                seed=child_seed(seed, 0, b), input_dim=self.input_dim,
                                n_classes=self.n_classes)
            for k in np.flatnonzero(need > 0):
                rows = X[y == k][:need[k]]
                parts[k].append(rows)
                need[k] -= len(rows)
            b += 1
        return [np.concatenate(p).astype(np.float64) if p else
                np.empty((0, self.input_dim)) for p in parts]


def as_task(task, **settings) -> DataTask:
    """``task`` if it is a :class:`DataTask`, else ``DataTask(task, **settings)``."""
    if isinstance(task, DataTask):
        if settings:
            raise ConfigError(f"give the task's settings in the DataTask, not as "
                              f"{', '.join(sorted(settings))}")
        return task
    if not isinstance(task, str):
        raise ConfigError(f"task must be a DataTask or a dataset name, got {task!r}")
    return DataTask(task, **settings)


# -- the registry ------------------------------------------------------------------------

@dataclass(frozen=True)
class GeneratorOptions(Options):
    """Base of every generator kind's knobs."""


@dataclass(frozen=True)
class TrueOptions(GeneratorOptions):
    """The true generator has no knobs."""


@dataclass(frozen=True)
class KDEOptions(GeneratorOptions):
    """h: the kernel's standard deviation (bandwidth) in every coordinate, > 0."""

    h: float = 0.02
    constraints: ClassVar = {"h": _checks.Real(0, low_open=True)}


@dataclass(frozen=True)
class GeneratorKind(Entry):
    """A registered kind of generator: ``build(task, m, seed, options) -> Generator``
    fits one; ``restore(task, m, seed, options, arrays)`` rebuilds it from a file;
    ``fitted`` says whether it is fitted to ``m`` real points per class."""

    name: str
    options: type
    build: Callable
    restore: Callable
    fitted: bool
    summary: str

    kind: ClassVar[str] = "generator"


GENERATORS: Registry = Registry("generator", GeneratorOptions)


def register_generator(kind: GeneratorKind) -> GeneratorKind:
    return GENERATORS.add(kind)


def generator_kinds() -> list[str]:
    return GENERATORS.names()


# -- generators --------------------------------------------------------------------------

class Generator:
    """A class-conditional generator of a task's data.

    Attributes
    ----------
    task : DataTask
    kind : str
    options : GeneratorOptions
    m : int or None
        Real points per class it was fitted to (None for the truth).
    seed : int or None
        Seed of the real points' draw (None for the truth).
    """

    kind: ClassVar[str] = ""
    #: The knobs :meth:`knob` shows (None: all); the others are in :meth:`identity`.
    shown_knobs: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, task: DataTask, options: GeneratorOptions, m: int | None,
                 seed: int | None):
        self.task = task
        self.options = options
        self.m = m
        self.seed = seed

    # what a kind defines
    def class_rows(self, counts: np.ndarray, seed: int) -> list[np.ndarray]:
        """``counts[k]`` rows of class ``k`` for every ``k`` (float64), drawn with
        ``seed``; what :meth:`sample` shuffles together."""
        raise NotImplementedError

    def _class_log_density(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def arrays(self) -> dict[str, np.ndarray]:
        """The fitted state, as the arrays a file stores."""
        return {}

    @property
    def has_density(self) -> bool:
        """Whether :meth:`class_log_density` is exact."""
        return False

    # shared
    def identity(self) -> dict:
        """What fixes the generator: its task, kind, knobs, ``m`` and fitting seed."""
        return {"task": self.task.identity(), "kind": self.kind,
                "options": self.options.to_dict(), "m": self.m, "seed": self.seed}

    def knob(self) -> str:
        """The knobs shown (:attr:`shown_knobs`) as ``name=value`` text (``"-"`` for
        none)."""
        return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in self.options.to_dict().items()
                         if self.shown_knobs is None or k in self.shown_knobs) or "-"

    def label(self) -> str:
        """A short name for tables and figures."""
        knob = self.knob()
        fitted = f" m={self.m}" if self.m is not None else ""
        return self.kind + fitted + ("" if knob == "-" else f" {knob}")

    def sample(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``n`` points with the task's class counts for ``n``, rows shuffled.

        Returns
        -------
        X : ndarray (n, input_dim), float32
        y : ndarray (n,), int64
        """
        n = _checks.integer("n", n, 1)
        seed = _checks.integer("seed", seed, 0)
        counts = self.task.class_counts(n)
        X = np.concatenate(self.class_rows(counts, seed))
        y = np.repeat(np.arange(self.task.n_classes), counts)
        order = np.random.default_rng(child_seed(seed, 2)).permutation(n)
        return (np.ascontiguousarray(X[order], dtype=np.float32),
                np.ascontiguousarray(y[order], dtype=np.int64))

    def class_log_density(self, X) -> np.ndarray:
        """``log q(x | k)`` of the generator, shape ``(n, n_classes)`` float64."""
        if not self.has_density:
            raise ConfigError(f"generator {self.label()!r} has no exact density")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.task.input_dim:
            raise DataError(f"X must have shape (n, input_dim={self.task.input_dim}), "
                            f"got {X.shape}")
        if not np.isfinite(X).all():
            raise DataError("X must hold finite numbers")
        return self._class_log_density(X)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.label()!r}, task={self.task.describe()!r})"


class TrueGenerator(Generator):
    """The task's own generator (module docstring: "The truth")."""

    kind = "true"

    def class_rows(self, counts, seed):
        return self.task.true_rows(counts, child_seed(seed, 1))

    @property
    def has_density(self) -> bool:
        return self.task.has_density

    def _class_log_density(self, X):
        return self.task.class_log_density(X)


def _mixture_log_density(X: np.ndarray, points: np.ndarray, h: float) -> np.ndarray:
    """``log (1/m) sum_j N(x; x_j, h^2 I)`` for every row of X, max-shifted (exact
    far from every point too)."""
    m, d = points.shape
    const = -np.log(m) - 0.5 * d * np.log(2 * np.pi * h * h)
    out = np.empty(len(X))
    if d == 2:
        kernels.mixture_log_and_grad(np.ascontiguousarray(X), np.ascontiguousarray(points),
                                     1.0 / (2 * h * h), np.empty(m), out,
                                     np.empty((0, 2)), False)
        return out + const
    rows = max(1, 2 ** 21 // (m * d))
    for start in range(0, len(X), rows):
        block = X[start:start + rows]
        sq = ((block[:, None, :] - points[None, :, :]) ** 2).sum(axis=2) / (-2 * h * h)
        top = sq.max(axis=1)
        out[start:start + rows] = top + np.log(np.exp(sq - top[:, None]).sum(axis=1))
    return out + const


class KDEGenerator(Generator):
    """The class-conditional kernel density (module docstring)."""

    kind = "kde"

    def __init__(self, task, options, m, seed, points: list[np.ndarray]):
        super().__init__(task, options, m, seed)
        self.points = [np.ascontiguousarray(p, dtype=np.float64) for p in points]

    def arrays(self):
        return {f"points_{k}": p for k, p in enumerate(self.points)}

    @property
    def has_density(self) -> bool:
        return True

    def class_rows(self, counts, seed):
        h = self.options.h
        out = []
        for k, (c, points) in enumerate(zip(counts, self.points)):
            rng = np.random.default_rng(child_seed(seed, 3, k))
            which = rng.integers(len(points), size=int(c))
            out.append(points[which] + h * rng.standard_normal((int(c), points.shape[1])))
        return out

    def _class_log_density(self, X):
        return np.column_stack([_mixture_log_density(X, p, self.options.h)
                                for p in self.points])


def _build_true(task, m, seed, options):
    return TrueGenerator(task, options, None, None)


def _restore_true(task, m, seed, options, arrays):
    return TrueGenerator(task, options, None, None)


def real_points(task: DataTask, m: int, seed: int) -> list[np.ndarray]:
    """The ``m`` real points per class a generator is fitted to."""
    return task.true_rows(np.full(task.n_classes, m), child_seed(seed, 4))


def _build_kde(task, m, seed, options):
    return KDEGenerator(task, options, m, seed, real_points(task, m, seed))


def _restore_kde(task, m, seed, options, arrays):
    points = []
    for k in range(task.n_classes):
        name = f"points_{k}"
        if name not in arrays:
            raise DataError(f"missing array {name!r}")
        p = arrays[name]
        if p.dtype.kind != "f" or p.shape != (m, task.input_dim):
            raise DataError(f"array {name!r} must be floats of shape ({m}, "
                            f"{task.input_dim}), got {p.dtype} {p.shape}")
        if not np.isfinite(p).all():
            raise DataError(f"array {name!r} holds a non-finite value")
        points.append(p)
    return KDEGenerator(task, options, m, seed, points)


register_generator(GeneratorKind("true", TrueOptions, _build_true, _restore_true, False,
                                 "the task's own generator: the top of the ladder"))
register_generator(GeneratorKind("kde", KDEOptions, _build_kde, _restore_kde, True,
                                 "class-conditional Gaussian kernel density of bandwidth "
                                 "h on m real points per class"))


def fit_generator(task, kind: str, m: int | None = None, seed: int = 0, **knobs) -> Generator:
    """Fit a generator of ``kind`` to ``m`` real points per class of ``task``, drawn
    with ``seed``.

    Parameters
    ----------
    task : DataTask or str
        A dataset name means ``DataTask(name)`` (its default settings).
    kind : str
        One of :func:`generator_kinds`.
    m : int >= 1 or None
        Real points per class; None (and only None) for the true generator.
    seed : int >= 0
    **knobs
        The kind's options (``h=0.02`` for ``"kde"``), checked by its options class.

    Returns
    -------
    Generator
    """
    task = as_task(task)
    entry = GENERATORS.lookup(kind)
    options = entry.make_options(knobs)
    seed = _checks.integer("seed", seed, 0)
    if not entry.fitted:
        if m is not None:
            raise ConfigError(f"m must be None for generator {kind!r} (it is not fitted "
                              f"to real points), got {m!r}")
        return entry.build(task, None, seed, options)
    m = _checks.integer("m", m, 1, context="(real points per class)")
    return entry.build(task, m, seed, options)


def generator_digest(generator: Generator) -> str:
    """A SHA-256 of the generator's identity and fitted arrays (names, dtypes, shapes,
    bytes): two generators with one digest sample the same points."""
    digest = hashlib.sha256(json.dumps(generator.identity(), sort_keys=True).encode())
    for name, array in sorted(generator.arrays().items()):
        array = np.ascontiguousarray(array)
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def true_generator(task) -> TrueGenerator:
    """The task's own generator."""
    return fit_generator(task, "true")


_FORMAT = "robnp.Generator"


def save_generator(generator: Generator, path) -> str:
    """Write ``generator`` to ``path`` (``.npz`` appended when missing): ``meta``, a
    JSON string (format, robnp version, :meth:`Generator.identity`), and the fitted
    arrays. Written to a temporary name and renamed into place. Returns the path."""
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    arrays = dict(generator.arrays())
    arrays["meta"] = np.array(json.dumps({"format": _FORMAT, "robnp_version": __version__,
                                          **generator.identity()}))
    try:
        atomic_write(path, lambda handle: np.savez(handle, **arrays), suffix=".tmp.npz")
    except StoreError as exc:
        raise ModelFileError(str(exc)) from None
    return path


def load_generator(path, task: DataTask | None = None) -> Generator:
    """Read a generator written by :func:`save_generator` (never unpickles).

    Parameters
    ----------
    path : str or PathLike
    task : DataTask, optional
        When given, the file must hold a generator of this task.

    Raises
    ------
    ModelFileError
        Missing, damaged or inconsistent file, or one of another task: one line.
    """
    path = os.fspath(path)
    files = read_npz(path, "generator", "save_generator")
    try:
        meta = json.loads(str(files.pop("meta")))
        if meta.get("format") != _FORMAT:
            raise DataError(f"format is {meta.get('format')!r}, not {_FORMAT!r}")
        stored = DataTask(**meta["task"])
        entry = GENERATORS.lookup(meta["kind"])
        options = entry.make_options(meta["options"])
        m, seed = meta["m"], meta["seed"]
        if entry.fitted:
            m = _checks.integer("m", m, 1)
            seed = _checks.integer("seed", seed, 0)
        generator = entry.restore(stored, m, seed, options, files)
    except (ValueError, KeyError, TypeError, ConfigError, DataError) as exc:
        reason = str(exc) if isinstance(exc, (ConfigError, DataError)) else \
            f"{type(exc).__name__}: {exc}"
        raise ModelFileError(f"{path} is not a valid robnp generator ({reason})") from None
    extra = set(files) - set(generator.arrays())
    if extra:
        raise ModelFileError(f"{path}: unexpected arrays {sorted(extra)}")
    if task is not None and stored != task:
        raise ModelFileError(f"{path} holds a generator of {stored.describe()}, not of "
                             f"{task.describe()}")
    return generator
