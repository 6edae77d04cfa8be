"""The scaling study on robnp's own runs: a grid of model size N x data seen D x data
quality, trained under the scaling-law paper's TRADES recipe, every checkpoint
evaluated as the paper evaluates, stored as the runs table the fits read.

The scaling-law paper (Bartoldson et al., 2024, Sections 3.1-3.3) trains models of
several sizes on several amounts of synthetic data of several qualities, one pass over
fresh samples each, and fits laws to their test losses. Here a *run* is one
:class:`ScalingTask`:

1. its training data is a stream of one rung of a quality ladder (:class:`Source`:
   the task's true generator, or a generator fitted to ``m`` real points per class,
   :mod:`robnp.data.generators`), read once, ``examples`` = D examples in order
   (:class:`robnp.data.quality.GeneratorStream`);
2. its model is an MLP of ``depth`` hidden layers of ``width`` units, initialised
   from the run's seed;
3. it trains by TRADES (beta 5, 10 steps of eps/4, label smoothing 0.1) with a
   one-cycle schedule and a weight average, the paper's recipe
   (:meth:`ScalingConfig.train_config`); batch size and step size follow D by the
   rule of :meth:`ScalingConfig.batch_size_for` (written down in ``docs/scaling.md``);
4. at fixed fractions of its run (``checkpoints``; the run is cut into equal periods
   of whole minibatches, :func:`robnp.training.stream.fit_stream`) the averaged
   weights are evaluated on a fixed sample of the **true** distribution
   (:mod:`robnp.scaling.checkpoint`): the TRADES test loss against ``pgd-cw``, clean
   and robust accuracy, the share of invalid adversarial points, the training FLOPs
   so far.

A task is identified by its content (:attr:`ScalingTask.key`), so the study runs
through the sweep's machinery (:func:`robnp.study.runner.run_into_store`): any
executor, a crash-safe store committed task by task, ``resume`` after a kill, the same
numbers for any number of workers. Generators are fitted once, in the calling
process, before any task starts, and travel inside the tasks; their identity, not
their arrays, is part of a task's key.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar, Mapping

import numpy as np

from .. import _checks
from ..errors import ConfigError
from ..flops import forward_flops

__all__ = ["ScalingConfig", "ScalingTask", "ScalingResult", "Source", "PRESETS",
           "preset", "true_test_sample", "truth_source", "TEST_SEED_PATH"]

#: The seed path of the fixed true test sample (below the study's ``test_seed``): no
#: training stream shares it (their blocks are drawn on path 13).
TEST_SEED_PATH = 29


# -- the quality ladder -----------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    """One rung of the quality ladder: a generator kind, the real points it is fitted
    to (``m`` per class; None for the truth) and its knobs.

    Written ``"true"``, ``"kde:m=64,h=0.05"`` or ``"diffusion:m=256,steps=10"``
    (:meth:`parse`; :meth:`spec` writes it back).
    """

    kind: str
    m: int | None = None
    knobs: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def parse(cls, text) -> "Source":
        from ..data import quality  # noqa: F401  (registers every kind, "diffusion" too)
        from ..data.generators import GENERATORS

        if isinstance(text, Source):
            return text
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"a source must be written kind[:m=M,knob=value,...], got "
                              f"{text!r}")
        kind, _, rest = text.strip().partition(":")
        entry = GENERATORS.lookup(kind.strip())
        values: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in rest.split(","))):
            name, eq, value = part.partition("=")
            if not eq:
                raise ConfigError(f"source {text!r}: expected name=value, got {part!r}")
            values[name.strip()] = _number(value.strip(), text)
        m = values.pop("m", None)
        if entry.fitted and m is None:
            raise ConfigError(f"source {text!r}: a {kind} generator needs m=<real points "
                              f"per class>")
        if not entry.fitted and m is not None:
            raise ConfigError(f"source {text!r}: the {kind} generator is not fitted to "
                              f"real points, so it takes no m")
        if m is not None:
            m = _checks.integer("m", m, 1, context=f"in source {text!r}")
        options = entry.make_options(values, source=f"source {text!r}")
        knobs = tuple((name, getattr(options, name)) for name in sorted(values))
        return cls(kind.strip(), m, knobs)

    def spec(self) -> str:
        parts = ([f"m={self.m}"] if self.m is not None else []) + \
            [f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}"
             for name, value in self.knobs]
        return self.kind + (":" + ",".join(parts) if parts else "")

    def label(self) -> str:
        """A file-name-safe label: ``true``, ``kde-m64-h0.05``."""
        return self.spec().replace(":", "-").replace(",", "-").replace("=", "")

    def fit(self, task, seed: int):
        """The fitted generator of this rung for ``task`` (a DataTask)."""
        from ..data.quality import fit_generator

        return fit_generator(task, self.kind, self.m, seed, **dict(self.knobs))


def _number(value: str, text: str):
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"source {text!r}: {value!r} is not a number") from None


# -- the configuration ------------------------------------------------------------------

def _increasing(name: str, values, minimum, kind=int) -> tuple:
    values = _as_tuple(name, values)
    if not values:
        raise ConfigError(f"{name} must list at least one value, got none")
    checked = tuple((_checks.integer if kind is int else _checks.real)(name, v, minimum)
                    for v in values)
    if any(b <= a for a, b in zip(checked, checked[1:])):
        raise ConfigError(f"{name} must be strictly increasing, got "
                          f"{', '.join(format(v, 'g') for v in checked)}")
    return checked


@dataclass(frozen=True)
class ScalingConfig:
    """Everything a scaling study's results depend on.

    Parameters
    ----------
    dataset, noise, input_dim, n_classes
        The task (:class:`robnp.data.generators.DataTask`); its true distribution is
        the test distribution of every run.
    eps : float > 0
        The L-infinity radius of training (TRADES) and evaluation (``pgd-cw``).
    widths : increasing ints
        Hidden-layer widths (the model sizes N).
    depth : int >= 1
        Hidden layers.
    data_sizes : increasing ints
        D, examples seen by a run (each its own run with a whole one-cycle schedule).
    sources : source specs
        The quality ladder (:class:`Source`), e.g. ``("true", "kde:m=64,h=0.05")``.
    seeds : ints
        Seeds of every grid point (model initialisation, stream, attack starts).
    extra_seeds : ints
        More seeds run only at the largest width and the largest D, per source (the
        spread of the runs that decide the plateau).
    generator_seed : int
        Seed of the real points the fitted generators see and of their fits.
    checkpoints : fractions in (0, 1], increasing, ending at 1
        Where each run is evaluated; each must be a multiple of ``1 / P`` for the run
        cut into ``P`` equal periods (the least common denominator).
    optimizer : {"adam", "sgd"}
        ``sgd``: the paper's SGD with Nesterov momentum 0.9 and weight decay 5e-4;
        ``adam``: Adam (see ``docs/scaling.md`` for which the study uses and why).
    lr, lr_bounds : floats > 0, increasing ints
        The step-size rule (:meth:`lr_for`): peak step size ``lr[i]`` of the
        one-cycle schedule for the first ``lr_bounds[i]`` examples, ``lr[-1]``
        beyond.
    batch_size, batch_from : int
        The batch rule (:meth:`batch_size_for`).
    max_batch_size : int
    beta, attack_steps, step_fraction, smoothing
        TRADES' options (the paper's: 5, 10, 1/4, 0.1).
    ema_decay : float in [0, 1)
    n_test, test_seed : int
        The fixed true test sample (the same for every run).
    eval_steps, eval_beta
        ``pgd-cw``'s steps and the beta of the test loss (the paper's 40 and 5).
    quality_measure : {"w1", "fid"}
        What sets each source's quality (:func:`robnp.scaling.run.source_quality`):
        ``1 / (W1 - W1_truth)``, the conditional Wasserstein-1 distance to the truth
        in excess of the true generator's own at the same sample size (the
        estimator's floor), or the paper's ``1 / FID`` with the FID analogue; ``inf``
        for the true generator either way. ``docs/scaling.md`` says why ``w1``.
    w1_n, fid_n : int
        Points per side of the two measures (both are reported).
    optimal_factors : multiples of N*, increasing, holding 1 (or empty: no check)
        The compute-optimal test (paper, Section 3.3.1): after the fit, runs at the
        fitted N* and at these other multiples of it, each with the D that spends
        the same FLOPs (:func:`robnp.scaling.run.optimal_tasks`), every seed.
    optimal_budget : float or None
        Its FLOPs budget; None: the training FLOPs of the run at the second-largest
        width and the largest D (a budget inside the grid, where the largest models
        compete).
    """

    dataset: str = "spheres"
    noise: float = 0.1
    input_dim: int = 20
    n_classes: int | None = None
    eps: float = 0.03
    widths: tuple = (8, 32, 128, 512)
    depth: int = 2
    data_sizes: tuple = (4096, 16384, 65536, 262144)
    sources: tuple = ("true",)
    seeds: tuple = (0,)
    extra_seeds: tuple = ()
    generator_seed: int = 0
    checkpoints: tuple = (0.25, 0.5, 1.0)
    optimizer: str = "sgd"
    lr: tuple = (0.5, 0.3, 0.2)
    lr_bounds: tuple = (65536, 10_000_000)
    batch_size: int = 128
    batch_from: int = 262144
    max_batch_size: int = 2048
    beta: float = 5.0
    attack_steps: int = 10
    step_fraction: float = 0.25
    smoothing: float = 0.1
    ema_decay: float = 0.995
    n_test: int = 2000
    test_seed: int = 0
    eval_steps: int = 40
    eval_beta: float = 5.0
    quality_measure: str = "w1"
    w1_n: int = 1536
    fid_n: int = 4096
    optimal_factors: tuple = (0.25, 1.0, 4.0)
    optimal_budget: float | None = None

    result_type: ClassVar[type]  # set below, once ScalingResult exists

    def __post_init__(self):
        from ..data.generators import DataTask

        task = DataTask(self.dataset, self.noise, self.input_dim, self.n_classes)
        object.__setattr__(self, "n_classes", task.n_classes)
        set_ = functools.partial(object.__setattr__, self)
        set_("eps", _checks.real("eps", self.eps, 0, low_open=True))
        scale = _task_scale(task)
        if self.eps >= scale:
            raise ConfigError(f"eps must be below the task's scale ({scale:g}, the spread "
                              f"of its clean points), got {self.eps:g}")
        set_("widths", _increasing("widths", self.widths, 1))
        set_("depth", _checks.integer("depth", self.depth, 1))
        set_("data_sizes", _increasing("data_sizes", self.data_sizes, 1))
        sources = tuple(Source.parse(s) for s in _as_tuple("sources", self.sources))
        if not sources:
            raise ConfigError("sources must list at least one source, got none")
        specs = [s.spec() for s in sources]
        if len(set(specs)) != len(specs):
            raise ConfigError(f"sources must be distinct, got {', '.join(specs)}")
        set_("sources", tuple(specs))
        seeds = tuple(_checks.integer("seeds", s, 0) for s in _as_tuple("seeds", self.seeds))
        if not seeds or len(set(seeds)) != len(seeds):
            raise ConfigError(f"seeds must list distinct seeds >= 0, got {seeds}")
        set_("seeds", seeds)
        extra = tuple(_checks.integer("extra_seeds", s, 0)
                      for s in _as_tuple("extra_seeds", self.extra_seeds))
        if set(extra) & set(seeds) or len(set(extra)) != len(extra):
            raise ConfigError(f"extra_seeds must be distinct and not among seeds, got {extra}")
        set_("extra_seeds", extra)
        set_("generator_seed", _checks.integer("generator_seed", self.generator_seed, 0))
        fractions = _increasing("checkpoints", self.checkpoints, 0, kind=float)
        if fractions[0] <= 0 or fractions[-1] != 1.0:
            raise ConfigError(f"checkpoints must lie in (0, 1] and end at 1, got "
                              f"{', '.join(format(f, 'g') for f in fractions)}")
        set_("checkpoints", fractions)
        _checks.choice("optimizer", self.optimizer, ("adam", "sgd"))
        rates = tuple(_checks.real("lr", v, 0, low_open=True) for v in _as_tuple("lr", self.lr))
        bounds = _as_tuple("lr_bounds", self.lr_bounds)
        bounds = _increasing("lr_bounds", bounds, 1) if bounds else ()
        if len(rates) != len(bounds) + 1:
            raise ConfigError(f"lr must hold one step size more than lr_bounds has bounds, got "
                              f"{len(rates)} step size(s) and {len(bounds)} bound(s)")
        set_("lr", rates)
        set_("lr_bounds", bounds)
        set_("batch_size", _checks.integer("batch_size", self.batch_size, 1))
        set_("batch_from", _checks.integer("batch_from", self.batch_from, 1))
        set_("max_batch_size", _checks.integer("max_batch_size", self.max_batch_size,
                                               self.batch_size))
        set_("beta", _checks.real("beta", self.beta, 0))
        set_("attack_steps", _checks.integer("attack_steps", self.attack_steps, 1))
        set_("step_fraction", _checks.real("step_fraction", self.step_fraction, 0,
                                           low_open=True))
        set_("smoothing", _checks.real("smoothing", self.smoothing, 0, 1, high_open=True))
        set_("ema_decay", _checks.real("ema_decay", self.ema_decay, 0, 1, high_open=True))
        set_("n_test", _checks.integer("n_test", self.n_test, 10))
        set_("test_seed", _checks.integer("test_seed", self.test_seed, 0))
        set_("eval_steps", _checks.integer("eval_steps", self.eval_steps, 1))
        set_("eval_beta", _checks.real("eval_beta", self.eval_beta, 0))
        set_("fid_n", _checks.integer("fid_n", self.fid_n, 50))
        _checks.choice("quality_measure", self.quality_measure, ("w1", "fid"))
        set_("w1_n", _checks.integer("w1_n", self.w1_n, 2 * task.n_classes))
        factors = _as_tuple("optimal_factors", self.optimal_factors)
        if factors:
            factors = _increasing("optimal_factors", factors, 0, kind=float)
            if 1.0 not in factors or factors[0] <= 0:
                raise ConfigError(f"optimal_factors must be > 0 and hold 1 (N* itself), got "
                                  f"{', '.join(format(f, 'g') for f in factors)}")
        set_("optimal_factors", factors)
        if self.optimal_budget is not None:
            set_("optimal_budget", _checks.real("optimal_budget", self.optimal_budget, 0,
                                                low_open=True))
        if self.optimal_budget is not None and self.optimal_factors:
            smallest = min(ScalingTask(self, self.reference_source(), self.widths[0], D,
                                       self.seeds[0]).train_flops()
                           for D in self.data_sizes[:1])
            if self.optimal_budget < smallest:
                raise ConfigError(
                    f"optimal_budget {self.optimal_budget:.3g} FLOPs is below the cheapest "
                    f"run of the grid ({smallest:.3g} FLOPs: width {self.widths[0]}, D "
                    f"{self.data_sizes[0]}); no model of the grid's sizes trains on it")
        periods = self.periods
        for D in self.data_sizes:
            steps = -(-D // self.batch_size_for(D))
            if steps < periods:
                raise ConfigError(
                    f"data size {D} gives {steps} minibatches of {self.batch_size_for(D)}, "
                    f"fewer than the {periods} periods the checkpoints need; raise the "
                    f"smallest data size or use coarser checkpoints")

    # -- what the grid is made of -------------------------------------------------------
    @property
    def periods(self) -> int:
        """Equal periods a run is cut into: the checkpoints' common denominator."""
        denominators = [Fraction(f).limit_denominator(1 << 16).denominator
                        for f in self.checkpoints]
        P = math.lcm(*denominators)
        for f in self.checkpoints:
            if abs(f * P - round(f * P)) > 1e-9:
                raise ConfigError(f"checkpoint {f:g} is not a multiple of 1/{P}")
        return P

    def data_task(self):
        from ..data.generators import DataTask

        return DataTask(self.dataset, self.noise, self.input_dim, self.n_classes)

    def source_list(self) -> list[Source]:
        return [Source.parse(s) for s in self.sources]

    def batch_size_for(self, D: int) -> int:
        """The batch rule: ``batch_size`` up to ``batch_from`` examples, then growing
        in proportion to D (the number of steps stays ``batch_from / batch_size``),
        to at most ``max_batch_size``; powers of two kept as given."""
        if D <= self.batch_from:
            return self.batch_size
        return min(self.max_batch_size, self.batch_size * (D // self.batch_from))

    def lr_for(self, D: int) -> float:
        """The step-size rule: ``lr[i]`` for the first bound ``lr_bounds[i] >= D``,
        else ``lr[-1]`` (the paper lowers its step size as D grows, Appendix D)."""
        for bound, rate in zip(self.lr_bounds, self.lr):
            if D <= bound:
                return rate
        return self.lr[-1]

    def train_config(self, D: int, seed: int):
        """The TrainConfig of a run of ``D`` examples with ``seed``."""
        from ..training.config import TrainConfig

        optimizer = ({"optimizer": "sgd", "momentum": 0.9, "nesterov": True,
                      "weight_decay": 5e-4} if self.optimizer == "sgd"
                     else {"optimizer": "adam"})
        return TrainConfig(lr=self.lr_for(D), batch_size=self.batch_size_for(D), patience=None,
                           seed=seed, schedule="one-cycle", ema=True,
                           ema_decay=self.ema_decay, recipe="trades",
                           recipe_options={"eps": self.eps, "beta": self.beta,
                                           "steps": self.attack_steps,
                                           "step_fraction": self.step_fraction,
                                           "smoothing": self.smoothing},
                           **optimizer)

    def tasks(self, generators: Mapping[str, Any] | None = None,
              threads: int = 1) -> list["ScalingTask"]:
        """The grid, in a fixed order: per source, width, D, seed; then the extra
        seeds at the largest width and D. ``generators`` maps each source's spec to
        its fitted generator (:func:`fit_sources`); without it the tasks carry none
        and can only be listed, priced and keyed, not run. ``threads``: threads each
        run trains and attacks on (the results are the same for any count)."""
        out = []
        for source in self.sources:
            generator = None if generators is None else generators[source]
            points = [(w, D, s) for w in self.widths for D in self.data_sizes
                      for s in self.seeds]
            points += [(self.widths[-1], self.data_sizes[-1], s) for s in self.extra_seeds]
            for width, D, seed in points:
                out.append(ScalingTask(config=self, source=source, width=width,
                                       examples=D, seed=seed, generator=generator,
                                       threads=threads))
        return out

    # -- identity, files ----------------------------------------------------------------
    def to_dict(self) -> dict:
        out = {"study": "scaling"}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ScalingConfig":
        data = dict(data)
        if data.pop("study", None) != "scaling":
            raise ValueError("not a scaling study's configuration")
        return cls.from_mapping(data)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "options") -> "ScalingConfig":
        """A configuration from field names (dashes allowed); an unknown name is one
        ConfigError listing the known ones."""
        known = cls.field_names()
        fields = {}
        for name, value in values.items():
            key = str(name).replace("-", "_")
            if key not in known:
                raise ConfigError(f"unknown setting {name!r} in {source}; known: "
                                  f"{', '.join(known)}")
            fields[key] = tuple(value) if isinstance(value, list) else value
        return cls(**fields)

    def fingerprint(self) -> str:
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def differences(self, other: "ScalingConfig") -> list[str]:
        return [f.name for f in dataclasses.fields(self)
                if getattr(self, f.name) != getattr(other, f.name)]

    def replace(self, **changes) -> "ScalingConfig":
        return dataclasses.replace(self, **changes)

    def n_params(self, width: int) -> int:
        """Parameters of the MLP of ``width``: weights and biases of every layer."""
        sizes = (self.input_dim, *(width,) * self.depth, self.n_classes)
        return int(sum(a * b + b for a, b in zip(sizes, sizes[1:])))

    def width_for(self, N: float) -> int:
        """The width whose MLP has the parameter count nearest ``N`` (at least 1)."""
        width = 1
        while self.n_params(width * 2) <= N:
            width *= 2
        low, high = width, width * 2
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if self.n_params(middle) <= N else (low, middle)
        return min((low, high), key=lambda w: abs(math.log(self.n_params(w) / N)))

    def reference_source(self) -> str:
        """The source the compute-optimal test trains on: the true generator when the
        ladder has it, else its first rung."""
        return "true" if "true" in self.sources else self.sources[0]

    def default_optimal_budget(self) -> float:
        width = self.widths[-2] if len(self.widths) > 1 else self.widths[-1]
        task = ScalingTask(self, self.reference_source(), width, self.data_sizes[-1],
                           self.seeds[0])
        return task.train_flops()


def _as_tuple(name: str, values) -> tuple:
    if isinstance(values, (str, int, float)):
        values = str(values).split(",") if isinstance(values, str) else [values]
    try:
        return tuple(v.strip() if isinstance(v, str) else v for v in values)
    except TypeError:
        raise ConfigError(f"{name} must be a list, got {values!r}") from None


def _task_scale(task) -> float:
    """The spread of the task's clean points: the standard deviation of a large
    draw's coordinates, the largest over coordinates (what eps must stay below)."""
    X, _ = _truth_draw(task.dataset, task.noise, task.input_dim, task.n_classes)
    return float(X.std(axis=0).max())


@functools.lru_cache(maxsize=8)
def _truth_draw(dataset, noise, input_dim, n_classes):
    from ..data.generators import DataTask, true_generator

    return true_generator(DataTask(dataset, noise, input_dim, n_classes)).sample(4096, 0)


# -- one run ----------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def true_test_sample(task, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The fixed true test sample of a study: ``n`` points of ``task``'s own generator
    drawn on the seed path ``(seed, TEST_SEED_PATH)``, read-only."""
    from ..data.generators import child_seed, true_generator

    X, y = true_generator(task).sample(n, child_seed(seed, TEST_SEED_PATH))
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


def truth_source(task):
    """The task's exact truth for Bayes labels (:class:`robnp.verify.DataSource`), or
    None for a task without known densities."""
    from ..verify import DataSource

    if not task.has_density:
        return None
    return DataSource(task.dataset, task.size, task.noise, task.input_dim, task.n_classes)


@dataclass(frozen=True)
class ScalingTask:
    """One run of the grid: ``width`` x ``depth`` MLP, ``examples`` = D examples of
    ``source``, ``seed``. ``generator`` is the source's fitted generator (not part of
    the identity: its identity is, through ``source`` and the configuration);
    ``threads`` the threads the run trains and attacks on (not part of it either: the
    results are the same for any count)."""

    config: ScalingConfig
    source: str
    width: int
    examples: int
    seed: int
    generator: Any = field(default=None, compare=False, hash=False, repr=False)
    threads: int = field(default=1, compare=False, hash=False)

    def identity(self) -> dict:
        config = self.config.to_dict()
        for name in ("widths", "data_sizes", "sources", "seeds", "extra_seeds", "fid_n",
                     "optimal_factors", "optimal_budget", "quality_measure", "w1_n"):
            config.pop(name)
        return {"scaling_run": config, "source": self.source, "width": self.width,
                "examples": self.examples, "seed": self.seed}

    @property
    def key(self) -> str:
        from ..study.tasks import content_key

        return content_key(self.identity())

    @property
    def label(self) -> str:
        return (f"{self.config.dataset} {self.source} width={self.width} "
                f"D={self.examples} seed={self.seed}")

    @property
    def run_label(self) -> str:
        return f"{Source.parse(self.source).label()}-w{self.width}-D{self.examples}-s{self.seed}"

    @property
    def sizes(self) -> tuple[int, ...]:
        c = self.config
        return (c.input_dim, *(self.width,) * c.depth, c.n_classes)

    def cost(self) -> float:
        """FLOPs of the run: training (the recipe's exact count per example and the
        optimizer's per step, :func:`robnp.training.fit.epoch_flops`), and per
        checkpoint the evaluation (``pgd-cw``'s passes on the test sample, and the
        two forward passes of the loss)."""
        from ..attacks import get_attack

        c = self.config
        options = get_attack("pgd-cw").make_options({"steps": c.eval_steps})
        passes = options.passes(c.n_classes) + 3
        evaluation = len(c.checkpoints) * passes * c.n_test * forward_flops(self.sizes)
        return self.train_flops() + float(evaluation)

    def train_flops(self) -> float:
        from ..training.fit import epoch_flops

        return float(epoch_flops(self.sizes, self.config.train_config(self.examples,
                                                                         self.seed),
                                 self.examples))

    def memory(self):
        from ..limits import training_memory

        c = self.config
        return training_memory(n_features=c.input_dim, hidden=(self.width,) * c.depth,
                               n_classes=c.n_classes, n_samples=c.n_test * 2,
                               test_fraction=0.5,
                               batch_size=c.batch_size_for(self.examples), max_epochs=1,
                               train=c.train_config(self.examples, self.seed))

    def run(self) -> "ScalingResult":
        return run_scaling_task(self)


def run_scaling_task(task: ScalingTask) -> "ScalingResult":
    """Train the run and evaluate its checkpoints (the module docstring)."""
    from ..attacks._threat import default_threads
    from ..data.quality import GeneratorStream
    from ..errors import TrainingDivergedError
    from ..model import MLP
    from ..training.stream import fit_stream
    from .checkpoint import checkpoint_metrics

    if task.generator is None:
        raise ConfigError(f"run {task.label} carries no fitted generator; build the "
                          f"tasks with ScalingConfig.tasks(fit_sources(config))")
    c = task.config
    start = time.perf_counter()
    data_task = c.data_task()
    X_test, y_test = true_test_sample(data_task, c.n_test, c.test_seed)
    truth = truth_source(data_task)
    model = MLP(c.input_dim, (task.width,) * c.depth, c.n_classes, seed=task.seed)
    view = model.copy()
    stream = GeneratorStream(task.generator, seed=task.seed)
    P = c.periods
    marks = {int(round(f * P)): f for f in c.checkpoints}
    rows: list[dict] = []

    def on_epoch(epoch, weights, examples, flops):
        if epoch not in marks:
            return
        np.copyto(view.params, weights)
        metrics = checkpoint_metrics(view, X_test, y_test, c.eps, beta=c.eval_beta,
                                     steps=c.eval_steps, source=truth, seed=task.seed)
        rows.append({"train_fraction": marks[epoch], "D": int(examples),
                     "flops": float(flops), **metrics})

    try:
        with default_threads(task.threads):
            history = fit_stream(
                model, stream, task.examples, c.train_config(task.examples, task.seed),
                epochs=P, n_threads=task.threads, on_epoch=on_epoch)
    except TrainingDivergedError as exc:
        raise TrainingDivergedError(f"run {task.label}: {exc}") from None
    return ScalingResult(key=task.key, n_params=int(model.n_params), rows=tuple(rows),
                         final_train_loss=float(history.final_loss),
                         seconds=time.perf_counter() - start)


@dataclass(frozen=True)
class ScalingResult:
    """What a run produced: its parameter count, one row per checkpoint (the keys of
    :func:`robnp.scaling.checkpoint.checkpoint_metrics` and ``train_fraction``, ``D``,
    ``flops``), its last training loss and its wall time."""

    key: str
    n_params: int
    rows: tuple
    final_train_loss: float
    seconds: float

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ScalingResult":
        data = json.loads(text)
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, dict) or set(data) != names:
            raise ValueError(f"expected an object with keys {sorted(names)}")
        if not isinstance(data["rows"], list) or not all(isinstance(r, dict)
                                                         for r in data["rows"]):
            raise ValueError("rows must be a list of objects")
        data["rows"] = tuple(data["rows"])
        return cls(**data)


ScalingConfig.result_type = ScalingResult


# -- presets ----------------------------------------------------------------------------

#: The grids ``robnp scaling run --preset`` starts from (a config file's settings
#: replace theirs). ``small``: 4 sizes x 4 data sizes x 3 quality levels on 2 cores
#: in minutes; ``paper``: the paper's design at the largest scale the tasks support,
#: for a cluster. The choices are measured and explained in ``docs/scaling.md``.
PRESETS: dict[str, dict] = {
    "small": {
        "dataset": "spheres", "noise": 0.1, "input_dim": 20, "eps": 0.03,
        "widths": (8, 32, 128, 512), "depth": 2,
        "data_sizes": (4096, 16384, 65536, 262144),
        "sources": ("true", "kde:m=512,h=0.05", "kde:m=128,h=0.05"),
        "seeds": (0,), "extra_seeds": (1,),
        "checkpoints": (0.25, 0.5, 1.0), "n_test": 2000,
    },
    "paper": {
        "dataset": "spheres", "noise": 0.1, "input_dim": 20, "eps": 0.03,
        "widths": (8, 16, 32, 64, 128, 256, 512, 1024), "depth": 2,
        "data_sizes": (16384, 131072, 1048576, 4194304, 16777216),
        "sources": ("true", "kde:m=8192,h=0.05", "kde:m=2048,h=0.05", "kde:m=512,h=0.05",
                    "kde:m=128,h=0.05"),
        "seeds": (0,), "extra_seeds": (1, 2),
        "checkpoints": (0.125, 0.25, 0.5, 1.0), "n_test": 10000,
    },
}


def preset(name: str, **changes) -> ScalingConfig:
    """The configuration of preset ``name`` with ``changes`` applied."""
    _checks.choice("preset", name, PRESETS)
    return ScalingConfig.from_mapping({**PRESETS[name], **changes},
                                      source=f"preset {name!r}")
