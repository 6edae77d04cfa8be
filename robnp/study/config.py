"""The configuration of a robustness-scaling study, and its expansion into tasks.

:class:`StudyConfig` holds every setting of ``robnp sweep`` with the study's values
as defaults (one source of defaults: the CLI, config files and the Python API all
read them from here). :meth:`StudyConfig.tasks` expands it into independent
:class:`~robnp.study.tasks.Task` objects, one per (dataset, seed, width).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
from dataclasses import dataclass
from typing import Any, Mapping

from ..data import get_dataset
from ..errors import ConfigError
from .tasks import Task

__all__ = ["StudyConfig", "load_config_file"]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_list(name, values, item_ok, what):
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ConfigError(f"{name} must be a list of {what}, got {values!r}")
    values = tuple(values)
    if not values:
        raise ConfigError(f"{name} must not be empty")
    for value in values:
        if not item_ok(value):
            raise ConfigError(f"{name} must hold {what}, got {value!r}")
    duplicates = sorted({repr(v) for v in values if values.count(v) > 1})
    if duplicates:
        raise ConfigError(f"{name} has duplicate values: {', '.join(duplicates)}")
    return values


@dataclass(frozen=True)
class StudyConfig:
    """Every setting of a robustness-scaling study; defaults are the study's.

    Attributes
    ----------
    datasets : tuple of str
        Registered dataset names (see :func:`robnp.data.dataset_names`).
    noise : float
        Gaussian noise of the generators.
    n_samples : int
        Points generated per dataset and seed (train + test).
    test_fraction : float
        Fraction held out for testing (the last rows).
    widths : tuple of int
        Hidden widths; every hidden layer of a model has the same width.
    depth : int
        Number of hidden layers (2 in the study).
    input_dim : int
        Input dimension (2 in the study; more adds noise coordinates, see robnp.data).
    epsilons : tuple of float
        L-infinity radii of the attacks.
    seeds : tuple of int
        One seed drives a dataset draw, and for each width the model's
        initialisation and the training shuffle.
    lr, batch_size, max_epochs, patience, min_delta :
        Training (Adam, early stopping); see :class:`robnp.train.TrainConfig`.
    pgd_steps : int
        PGD iterations; the step size is ``pgd_step_fraction * eps``.
    pgd_step_fraction : float
        PGD step size as a fraction of eps (0.25, the study's eps/4).
    """

    datasets: tuple[str, ...] = ("circles", "moons")
    noise: float = 0.15
    n_samples: int = 2000
    test_fraction: float = 0.2
    widths: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
    depth: int = 2
    input_dim: int = 2
    epsilons: tuple[float, ...] = (0.01, 0.05, 0.1, 0.2, 0.5)
    seeds: tuple[int, ...] = (42, 123, 7)
    lr: float = 1e-3
    batch_size: int = 256
    max_epochs: int = 2000
    patience: int = 50
    min_delta: float = 1e-5
    pgd_steps: int = 10
    pgd_step_fraction: float = 0.25

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("datasets", _check_list("datasets", self.datasets,
                                     lambda v: isinstance(v, str) and v, "dataset names"))
        for name in self.datasets:
            dataset = get_dataset(name)
            if _is_int(self.input_dim) and self.input_dim < dataset.min_input_dim:
                raise ConfigError(f"input_dim must be >= {dataset.min_input_dim} for "
                                  f"dataset {name!r}, got {self.input_dim}")
        set_("widths", _check_list("widths", self.widths,
                                   lambda v: _is_int(v) and v >= 1, "integers >= 1"))
        set_("seeds", _check_list("seeds", self.seeds,
                                  lambda v: _is_int(v) and v >= 0, "integers >= 0"))
        set_("epsilons", tuple(float(e) for e in _check_list(
            "epsilons", self.epsilons,
            lambda v: _is_number(v) and math.isfinite(v) and v >= 0, "numbers >= 0")))
        for name, low in (("n_samples", 2), ("depth", 1), ("input_dim", 2),
                          ("batch_size", 1), ("max_epochs", 1), ("patience", 1),
                          ("pgd_steps", 0)):
            value = getattr(self, name)
            if not _is_int(value) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        for name, low, high, closed_low in (("noise", 0, math.inf, True),
                                             ("test_fraction", 0, 1, False),
                                             ("lr", 0, math.inf, False),
                                             ("min_delta", 0, math.inf, True),
                                             ("pgd_step_fraction", 0, math.inf, False)):
            value = getattr(self, name)
            ok = _is_number(value) and math.isfinite(value) and value < high and (
                value >= low if closed_low else value > low)
            if not ok:
                bracket = "[" if closed_low else "("
                raise ConfigError(f"{name} must be a number in {bracket}{low}, {high}), "
                                  f"got {value!r}")
            set_(name, float(value))
        n_test = int(self.n_samples * self.test_fraction)
        if n_test < 1 or self.n_samples - n_test < 1:
            raise ConfigError(
                f"n_samples={self.n_samples} with test_fraction={self.test_fraction} "
                f"leaves an empty train or test set")

    # -- construction -----------------------------------------------------------------
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "config") -> "StudyConfig":
        """Build from a mapping whose keys are field names (dashes or underscores)."""
        known = set(cls.field_names())
        cleaned = {}
        for key, value in values.items():
            name = str(key).replace("-", "_")
            if name not in known:
                raise ConfigError(f"{source}: unknown key {key!r}; known keys: "
                                  f"{', '.join(k.replace('_', '-') for k in cls.field_names())}")
            if isinstance(value, list):
                value = tuple(value)
            cleaned[name] = value
        return cls(**cleaned)

    def replace(self, **changes) -> "StudyConfig":
        return dataclasses.replace(self, **changes)

    # -- identity ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The ``config`` block of results.json: the study's keys (``hidden_widths``,
        ``epsilons``, ``seeds``, ``datasets`` as name/noise records) plus every other
        setting."""
        out = {
            "hidden_widths": list(self.widths),
            "epsilons": list(self.epsilons),
            "seeds": list(self.seeds),
            "datasets": [{"name": name, "noise": self.noise} for name in self.datasets],
        }
        for name in self.field_names():
            if name not in ("widths", "epsilons", "seeds", "datasets"):
                out[name] = getattr(self, name)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "StudyConfig":
        """Inverse of :meth:`to_dict`."""
        values = {k: v for k, v in data.items() if k in cls.field_names()}
        values["widths"] = data["hidden_widths"]
        values["epsilons"] = data["epsilons"]
        values["seeds"] = data["seeds"]
        values["datasets"] = [d["name"] for d in data["datasets"]]
        return cls.from_mapping(values, source="results.json config")

    def fingerprint(self) -> str:
        """A hash of every setting; two configs with equal fingerprints run the same tasks."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def differences(self, other: "StudyConfig") -> list[str]:
        """Names of the settings that differ from ``other``."""
        return [name for name in self.field_names() if getattr(self, name) != getattr(other, name)]

    # -- expansion --------------------------------------------------------------------
    def tasks(self) -> list[Task]:
        """One task per (dataset, seed, width), in that nesting order."""
        return [
            Task(dataset=dataset, noise=self.noise, n_samples=self.n_samples,
                 test_fraction=self.test_fraction, input_dim=self.input_dim, seed=seed,
                 width=width, depth=self.depth, lr=self.lr, batch_size=self.batch_size,
                 max_epochs=self.max_epochs, patience=self.patience,
                 min_delta=self.min_delta, epsilons=self.epsilons,
                 pgd_steps=self.pgd_steps, pgd_step_fraction=self.pgd_step_fraction)
            for dataset in self.datasets
            for seed in self.seeds
            for width in self.widths
        ]

    @property
    def n_runs(self) -> int:
        """Records the study produces: datasets x seeds x widths x epsilons."""
        return len(self.datasets) * len(self.seeds) * len(self.widths) * len(self.epsilons)


def load_config_file(path) -> dict:
    """Read a TOML study configuration into a plain mapping (keys as written)."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    nested = [key for key, value in data.items() if isinstance(value, dict)]
    if nested:
        raise ConfigError(f"config file {path}: unexpected table(s) {nested}; "
                          f"put settings at the top level")
    return data
