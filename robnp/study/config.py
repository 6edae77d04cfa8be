"""The configuration of a robustness-scaling study, and its expansion into tasks.

:class:`StudyConfig` holds every setting of ``robnp sweep`` with the study's values
as defaults (one source of defaults: the CLI, config files and the Python API all
read them from here). Its settings are flat, as the command line and config files
name them, but it is composed of the library's own configuration objects, each made
once and checked by its own rules: the training settings make one
:class:`~robnp.training.config.TrainConfig` without a seed (:attr:`StudyConfig.train`;
the recipe's options in it, ``train_eps`` as their ``eps``), each attack an options
object of the attack registry (:mod:`robnp.attacks`). The flat training settings
read back what that object holds, so that two spellings of one study are one study.
:meth:`StudyConfig.tasks` expands it into independent
:class:`~robnp.study.tasks.Task` objects, one per (dataset, seed, width), that carry
those objects as they are (the training one with the task's seed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from typing import Any, Mapping

from .. import _checks
from ..attacks import AttackOptions, SuiteOptions, get_attack
from ..data import get_dataset
from ..errors import ConfigError
from ..training.config import TrainConfig
from ..training.recipes import RecipeOptions, get_recipe
from .tasks import Task, TrainSource

__all__ = ["StudyConfig", "load_config_file", "format_setting", "DEFAULT_ATTACKS", "ANALYSES"]

#: The study's attacks, and the default of ``--attacks``.
DEFAULT_ATTACKS = ("fgsm", "pgd")
#: Analyses a study may add to its records (none by default; see run_task).
ANALYSES = ("exact", "ceiling", "bayes")
# PGD options that the study names on its own (``pgd_steps``, ``pgd_step_fraction``).
_STUDY_PGD_OPTIONS = {"steps": "pgd_steps", "step_fraction": "pgd_step_fraction"}
# TrainConfig fields the study names on its own, the seed (one per task) and the recipe's.
_TRAIN_SETTINGS = ("lr", "batch_size", "max_epochs", "patience", "min_delta")
_OWN_TRAIN_FIELDS = {*_TRAIN_SETTINGS, "seed", "recipe", "recipe_options", "train_eps"}
_TRAIN_DEFAULTS = TrainConfig()


def format_setting(value) -> str:
    """A setting's value as the command line writes it: a list comma-separated (an
    attack by its name), anything else as ``str``."""
    if isinstance(value, tuple):
        return ",".join(v[0] if isinstance(v, tuple) else str(v) for v in value)
    return str(value)


def _name(name, value):
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must hold non-empty names, got {value!r}")
    return value


def _as_table(name, table, what) -> dict:
    """A table of settings (a mapping, or ``(name, value)`` pairs as stored) as a dict
    whose keys use underscores."""
    try:
        entries = dict(table)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a table of {what}, got {table!r}") from None
    return {str(key).replace("-", "_"): value for key, value in entries.items()}


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
        Training (Adam, early stopping); see :class:`robnp.training.fit.TrainConfig`.
        ``patience`` None (or 0) trains exactly ``max_epochs`` epochs.
    pgd_steps : int
        PGD iterations; the step size is ``pgd_step_fraction * eps``.
    pgd_step_fraction : float
        PGD step size as a fraction of eps (0.25, the study's eps/4).
    attacks : tuple
        Registered attacks run on every model, in order: names, ``(name, options)``
        pairs, or a mapping name -> options (a mapping of option values, as in a
        config file's ``[attacks.NAME]`` table, or the attack's options object).
        Stored as ``(name, options object)`` pairs; PGD's ``steps`` and
        ``step_fraction`` are ``pgd_steps`` and ``pgd_step_fraction``.
    n_classes : int or None
        Classes of the datasets that take a class count (``blobs``, ``spirals``);
        None: each dataset's default. Datasets with a fixed count ignore it.
    recipe : str
        The training recipe (:mod:`robnp.training.recipes`): ``standard`` (the
        study's), ``pgd-at``, ``trades``, ``fgsm-rs``, ``n-fgsm``.
    train_eps : float or None
        The L-infinity radius an adversarial recipe trains at (required by those;
        refused by ``standard``).
    recipe_options : mapping
        Further options of the recipe (``beta``, ``steps``, ``smoothing``, ...; a
        config file's ``[recipe_options]`` table). Stored as the sorted ``(name,
        value)`` pairs that differ from the recipe's defaults.
    train_options : mapping
        The training loop's other settings (:class:`~robnp.training.fit.TrainConfig`
        fields the study does not name itself: ``optimizer``, ``momentum``,
        ``nesterov``, ``weight_decay``, ``schedule``, ``ema``, ``select``,
        ``val_fraction``, ...; a config file's ``[train_options]`` table). Stored as
        sorted ``(name, value)`` pairs that differ from the defaults. A cosine or
        one-cycle schedule needs ``patience`` None (``--patience 0``).
    analyses : tuple of str
        What the data allows, added to every record (:data:`ANALYSES`): ``exact``
        (``exact_acc``, ``certified_acc``, ``undecided``: the verifier's bracket),
        ``ceiling`` (``ceiling_acc``: the test split's sample ceiling), ``bayes``
        (``bayes_robust_acc``, ``invalid_share_<attack>``,
        ``error_region_acc_<attack>``; datasets with a known density only). None
        by default, so the study's records keep their keys.
    train_source : str, TrainSource or None
        A generator file (``robnp data fit-generator``) every task trains on in place
        of its draw's training split (as many rows, ``sample(n_train, seed)``), the
        test split staying the truth's. Its generator must be of the study's one
        dataset with the study's noise, input dimension and class count. Stored as a
        :class:`~robnp.study.tasks.TrainSource` (path, generator identity, SHA-256);
        it enters the config block and the task keys only when given.
    train : TrainConfig
        Not a setting but made from them: the training configuration every task
        trains with (``seed`` None; each task's is its seed), the recipe's options
        in it.
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
    patience: int | None = 50
    min_delta: float = 1e-5
    pgd_steps: int = 10
    pgd_step_fraction: float = 0.25
    attacks: tuple = DEFAULT_ATTACKS
    n_classes: int | None = None
    analyses: tuple[str, ...] = ()
    recipe: str = "standard"
    train_eps: float | None = None
    recipe_options: Any = ()
    train_options: Any = ()
    train_source: Any = None
    train: TrainConfig = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("datasets", _checks.sequence("datasets", self.datasets, _name,
                                          what="dataset names"))
        for name in ("n_samples", "depth", "input_dim"):
            set_(name, _checks.integer(name, getattr(self, name), 2 if name != "depth" else 1))
        for name in self.datasets:
            dataset = get_dataset(name)
            if self.input_dim < dataset.min_input_dim:
                raise ConfigError(f"input_dim must be >= {dataset.min_input_dim} for "
                                  f"dataset {name!r}, got {self.input_dim}")
        if self.n_classes is not None:
            set_("n_classes", _checks.integer("n_classes", self.n_classes, 2))
            for name in self.datasets:
                self.classes_of(name)  # the dataset's own minimum
        set_("widths", _checks.sequence(
            "widths", self.widths, lambda name, v: _checks.integer(name, v, 1),
            what="integers >= 1"))
        set_("seeds", _checks.sequence(
            "seeds", self.seeds, lambda name, v: _checks.integer(name, v, 0),
            what="integers >= 0"))
        set_("epsilons", _checks.sequence(
            "epsilons", self.epsilons, lambda name, v: _checks.real(name, v, 0),
            what="numbers >= 0"))
        set_("noise", _checks.real("noise", self.noise, 0))
        set_("test_fraction", _checks.real("test_fraction", self.test_fraction, 0, 1,
                                           low_open=True, high_open=True))
        if self.patience == 0 and not isinstance(self.patience, bool):
            set_("patience", None)  # 0 turns early stopping off, as in robnp train
        set_("recipe", get_recipe(self.recipe).name)
        if self.train_eps is not None:
            set_("train_eps", _checks.real("train_eps", self.train_eps, 0, low_open=True))
        # The training settings make one TrainConfig, checked by its rules; the flat
        # settings are then what it holds.
        train = TrainConfig(**{name: getattr(self, name) for name in _TRAIN_SETTINGS},
                            seed=None, recipe=self.recipe,
                            recipe_options=self._recipe_options(),
                            **self._train_table(self.train_options))
        set_("train", train)
        for name in _TRAIN_SETTINGS:
            set_(name, getattr(train, name))
        set_("recipe_options", self._changed_recipe_options(train.recipe_options))
        set_("train_options", tuple(
            (name, getattr(train, name)) for name in sorted(_train_option_names())
            if getattr(train, name) != getattr(_TRAIN_DEFAULTS, name)))
        set_("pgd_steps", _checks.integer("pgd_steps", self.pgd_steps, 1))
        set_("pgd_step_fraction", _checks.real("pgd_step_fraction", self.pgd_step_fraction,
                                               0, low_open=True))
        set_("attacks", self._attack_settings(self.attacks))
        set_("analyses", self._check_analyses(self.analyses))
        set_("train_source", self._check_train_source(self.train_source))
        n_test = int(self.n_samples * self.test_fraction)
        if n_test < 1 or self.n_samples - n_test < 1:
            raise ConfigError(
                f"n_samples={self.n_samples} with test_fraction={self.test_fraction} "
                f"leaves an empty train or test set")

    def classes_of(self, dataset: str) -> int:
        """The class count of ``dataset`` in this study."""
        spec = get_dataset(dataset)
        return spec.classes(self.n_classes if spec.variable_classes else None)

    # -- the library's configuration objects --------------------------------------------
    def train_config(self, seed: int | None = None) -> TrainConfig:
        """The training configuration as :func:`robnp.fit` takes it, with ``seed``."""
        return dataclasses.replace(self.train, seed=seed)

    def recipe_settings(self) -> RecipeOptions:
        """The recipe's options object: its defaults, ``recipe_options`` and
        ``train_eps``."""
        return self.train.recipe_options

    def _recipe_options(self) -> RecipeOptions:
        """The recipe's options object from its defaults, the ``recipe_options``
        table and ``train_eps`` (the one place it becomes the options' ``eps``),
        with the study's rules: an adversarial recipe needs ``train_eps``, a clean
        one refuses it, and the table does not set ``eps``."""
        entries = _as_table("recipe_options", self.recipe_options, "option names and values")
        if "eps" in entries:
            raise ConfigError("set the recipe's radius with train_eps (--train-eps), not in "
                              "recipe_options")
        spec = get_recipe(self.recipe)
        if "eps" in spec.options.field_names():
            if self.train_eps is None:
                raise ConfigError(f"recipe {self.recipe!r} needs train_eps (--train-eps), the "
                                  f"radius it trains at")
            entries["eps"] = self.train_eps
        elif self.train_eps is not None:
            raise ConfigError(f"train_eps is for adversarial recipes; recipe "
                              f"{self.recipe!r} trains on the clean points, got "
                              f"train_eps={self.train_eps}")
        return spec.make_options(entries, source="recipe_options")

    def _changed_recipe_options(self, options: RecipeOptions) -> tuple:
        """The recipe's options as sorted ``(name, value)`` pairs that differ from
        the recipe's defaults at the same radius (``eps`` is ``train_eps``), so that
        two spellings of one training are one study."""
        spec = get_recipe(self.recipe)
        radius = {"eps": options.eps} if "eps" in spec.options.field_names() else {}
        defaults = spec.make_options(radius).to_dict()
        return tuple(sorted((key, value) for key, value in options.to_dict().items()
                            if key != "eps" and value != defaults[key]))

    @staticmethod
    def _train_table(table) -> dict:
        """``train_options`` as a dict of TrainConfig fields the study does not name
        itself (a field it names is refused here, with the setting to use)."""
        entries = _as_table("train_options", table, "training settings")
        allowed = _train_option_names()
        for name in entries:
            if name in _OWN_TRAIN_FIELDS:
                raise ConfigError(f"train_options: set {name} as the study's own setting "
                                  f"({name.replace('_', '-')}), not in train_options")
            if name not in allowed:
                raise ConfigError(f"train_options: unknown training setting {name!r}; known: "
                                  f"{', '.join(allowed)}")
        return entries

    def _attack_settings(self, attacks) -> tuple:
        if isinstance(attacks, Mapping):
            entries = list(attacks.items())
        elif isinstance(attacks, str):
            entries = [(name, None) for name in _checks.names("attacks", attacks)]
        else:
            if not hasattr(attacks, "__iter__"):
                raise ConfigError(f"attacks must be a list of attack names, got {attacks!r}")
            entries = [(entry, None) if isinstance(entry, str) else tuple(entry)
                       for entry in attacks]
        _checks.sequence("attacks", [name for name, _ in entries], _name)
        return tuple((name, self._attack_options(name, options)) for name, options in entries)

    def _attack_options(self, name: str, options) -> AttackOptions:
        """Attack ``name``'s options object from its options (an options object, or a
        mapping of option values), made and checked by the attack registry; PGD's
        ``steps`` and ``step_fraction`` are the study's ``pgd_steps`` and
        ``pgd_step_fraction``."""
        spec = get_attack(name)
        study = {option: getattr(self, setting) for option, setting in _STUDY_PGD_OPTIONS.items()
                 } if name == "pgd" else {}
        if isinstance(options, AttackOptions):
            if not isinstance(options, spec.options):
                raise ConfigError(f"options of attack {name!r} must be a "
                                  f"{spec.options.__name__}, got {options!r}")
            return dataclasses.replace(options, **study) if study else options
        values = dict(options or {})
        for option, setting in _STUDY_PGD_OPTIONS.items():
            if study and (option in values or option.replace("_", "-") in values):
                raise ConfigError(f"set PGD's {option} with {setting.replace('_', '-')}, "
                                  f"not in the pgd attack's options")
        return spec.make_options({**values, **study}, source=f"attacks.{name}")

    def _check_train_source(self, source) -> TrainSource | None:
        if source is None:
            return None
        if isinstance(source, Mapping):  # a stored config block: the file is not read
            try:
                source = TrainSource.from_dict(source)
            except (KeyError, TypeError, ValueError):
                raise ConfigError(f"train_source must hold path, generator and sha256, "
                                  f"got {source!r}") from None
        elif not isinstance(source, TrainSource):
            if not isinstance(source, str) or not source.strip():
                raise ConfigError(f"train_source must be the path of a generator file "
                                  f"(.npz), got {source!r}")
            source = TrainSource.from_file(source)
        task = source.task
        wanted = [(name, {"dataset": name, "noise": self.noise, "input_dim": self.input_dim,
                          "n_classes": self.classes_of(name)}) for name in self.datasets]
        for name, want in wanted:
            got = {key: task.get(key) for key in want}
            if got != want:
                raise ConfigError(f"train_source {source.path} holds a generator of "
                                  f"{_describe_task(got)}, not of the study's "
                                  f"{_describe_task(want)}")
        return source

    def _check_analyses(self, analyses) -> tuple:
        if isinstance(analyses, str):  # "exact,bayes" from a config file
            analyses = [v.strip() for v in analyses.split(",") if v.strip()]

        def known(name, value):
            if value not in ANALYSES:
                raise ConfigError(f"{name} must be among {', '.join(ANALYSES)}, got {value!r}")
            return value

        names = _checks.sequence("analyses", analyses, known, allow_empty=True)
        if names:
            norms = {options.norm for _, options in self.attacks}
            if len(norms) != 1:
                raise ConfigError(f"analyses need attacks of one norm, got {sorted(norms)}")
        if "bayes" in names:
            from ..data.bayes import density_datasets

            unknown = [d for d in self.datasets if d not in density_datasets()]
            if unknown:
                raise ConfigError(f"analysis 'bayes' needs a dataset with a known density "
                                  f"({', '.join(density_datasets())}), got {unknown[0]!r}")
            if self.noise <= 0:
                raise ConfigError(f"analysis 'bayes' needs noise > 0 (noise 0 has no "
                                  f"density), got {self.noise}")
        # The order of ANALYSES, so that two spellings of one study are one study.
        return tuple(name for name in ANALYSES if name in names)

    @property
    def attack_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.attacks)

    def attack_notices(self) -> dict[str, list[str]]:
        """dataset -> what a suite of attacks (``autoattack``) replaces or skips on its
        class count, and why; only datasets with something to say."""
        out = {}
        for dataset in self.datasets:
            found = [notice for _, options in self.attacks if isinstance(options, SuiteOptions)
                     for notice in options.notices(self.classes_of(dataset))]
            if found:
                out[dataset] = found
        return out

    def _attack_tables(self) -> dict:
        """Each attack's options that differ from its defaults (PGD's from
        ``pgd_steps`` / ``pgd_step_fraction``): the ``attacks`` of a config file."""
        tables = {}
        for name, options in self.attacks:
            defaults = self._attack_settings([name])[0][1].to_dict()
            tables[name] = {key: value for key, value in options.to_dict().items()
                            if value != defaults[key]}
        return tables

    # -- construction -----------------------------------------------------------------
    @classmethod
    def field_names(cls) -> list[str]:
        """The settings (the constructor's keywords), in order."""
        return [f.name for f in dataclasses.fields(cls) if f.init]

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

    @staticmethod
    def merge_attacks(stored, names) -> Any:
        """The ``attacks`` setting from a config file's value (``stored``: a list of
        names, or a table name -> options) and a list of names given on the command
        line: the names decide which attacks run, the file's tables their options."""
        if names is None:
            return stored
        names = _checks.names("--attacks", names)
        if not isinstance(stored, Mapping):
            return names
        unused = [name for name in stored if name not in names]
        if unused:
            raise ConfigError(f"the config file sets options of attack(s) {', '.join(unused)} "
                              f"that --attacks does not run")
        return {name: stored.get(name, {}) for name in names}

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
            if name not in ("widths", "epsilons", "seeds", "datasets", "attacks", "n_classes",
                            "analyses", "recipe", "train_eps", "recipe_options",
                            "train_options", "train_source"):
                out[name] = getattr(self, name)
        # Settings the study did not have appear only when they differ from its
        # defaults, so a study configuration keeps its results.json byte for byte.
        if self.attack_names != DEFAULT_ATTACKS or any(self._attack_tables().values()):
            out["attacks"] = self._attack_tables()
        if self.attack_notices():
            out["attack_notices"] = self.attack_notices()
        if self.n_classes is not None:
            out["n_classes"] = self.n_classes
        if self.analyses:
            out["analyses"] = list(self.analyses)
        if self.recipe != "standard" or self.recipe_options:
            out["recipe"] = self.recipe
            if self.train_eps is not None:
                out["train_eps"] = self.train_eps
            out["recipe_options"] = self.train.recipe_options.to_dict()
        if self.train_options:
            out["train_options"] = dict(self.train_options)
        if self.train_source is not None:
            out["train_source"] = self.train_source.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "StudyConfig":
        """Inverse of :meth:`to_dict`."""
        values = {k: v for k, v in data.items() if k in cls.field_names()}
        values["widths"] = data["hidden_widths"]
        values["epsilons"] = data["epsilons"]
        values["seeds"] = data["seeds"]
        values["datasets"] = [d["name"] for d in data["datasets"]]
        if "recipe_options" in values:  # every option is written; eps is train_eps
            values["recipe_options"] = {k: v for k, v in values["recipe_options"].items()
                                        if k != "eps"}
        return cls.from_mapping(values, source="stored config")

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
            Task(dataset=dataset, n_classes=self.classes_of(dataset), noise=self.noise,
                 n_samples=self.n_samples,
                 test_fraction=self.test_fraction, input_dim=self.input_dim, seed=seed,
                 width=width, depth=self.depth, train=dataclasses.replace(self.train, seed=seed),
                 epsilons=self.epsilons, attacks=self.attacks, analyses=self.analyses,
                 train_source=self.train_source)
            for dataset in self.datasets
            for seed in self.seeds
            for width in self.widths
        ]

    @property
    def n_runs(self) -> int:
        """Records the study produces: datasets x seeds x widths x epsilons."""
        return len(self.datasets) * len(self.seeds) * len(self.widths) * len(self.epsilons)


def _describe_task(task: dict) -> str:
    return (f"{task['dataset']} (noise {task['noise']:g}, input_dim {task['input_dim']}, "
            f"{task['n_classes']} classes)")


def _train_option_names() -> list[str]:
    """TrainConfig fields a study sets in ``train_options``: those it does not name
    itself."""
    return [f.name for f in dataclasses.fields(TrainConfig) if f.name not in _OWN_TRAIN_FIELDS]


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
    nested = [key for key, value in data.items()
              if isinstance(value, dict)
              and key not in ("attacks", "recipe_options", "train_options")]
    if nested:
        raise ConfigError(f"config file {path}: unexpected table(s) {nested}; "
                          f"put settings at the top level")
    return data
