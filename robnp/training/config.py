"""How the training loop trains: :class:`TrainConfig`, one frozen dataclass.

Its fields fall into groups:

* **the run** -- ``batch_size``, ``max_epochs``, the early-stopping rule
  (``patience``, ``min_delta``), the ``seed`` and the fused path's ``loss``;
* **the optimizer** -- ``optimizer``, its step size ``lr`` and its hyperparameters
  (Adam's ``beta1``, ``beta2``, ``adam_eps``; SGD's ``momentum``, ``nesterov``; either's
  ``weight_decay``);
* **the schedule** -- ``schedule`` and its parameters (``step_every``, ``gamma``,
  ``lr_floor``, ``pct_start``);
* **weight averaging** -- ``ema``, ``ema_decay``;
* **the recipe** -- ``recipe`` and ``recipe_options`` (``train_eps`` fills its ``eps``);
* **selection and monitors** -- ``select``, ``val_fraction``, ``overfit_check``.

The fields keep the order in which they were added (Adam's and the run's first), not
the groups': :meth:`TrainConfig.identity` lists them in that order, and a study's task
keys and model sidecars are written from it.

Each value is checked here, once, by the rules of the piece that uses it (the
optimizers' own checks in :mod:`robnp.training.optim`, the recipe's options class);
:func:`robnp.training.fit.fit` trains with it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import InitVar, dataclass
from typing import Any, Mapping

from .. import _checks
from ..errors import ConfigError
from ..losses import loss_code
from .optim import check_adam_hyperparameters, check_sgd_hyperparameters
from .recipes import RecipeOptions, get_recipe

__all__ = ["TrainConfig", "resolve_config", "OPTIMIZERS", "SCHEDULE_NAMES", "SELECTIONS"]

#: Optimizers the loop knows (:mod:`robnp.training.optim`).
OPTIMIZERS = ("adam", "adamw", "sgd")
#: Step-size schedules, stepped once per minibatch (:mod:`robnp.training.schedules`).
SCHEDULE_NAMES = ("constant", "step", "cosine", "one-cycle")
#: Checkpoint selection: the last epoch's weights, or those of the epoch with the best
#: robust validation accuracy.
SELECTIONS = ("last", "robust")

# Fields TrainConfig had before the loop grew slots: always part of its identity, so
# that a study's task keys stay what they were.
_BASE_FIELDS = ("lr", "beta1", "beta2", "adam_eps", "batch_size", "max_epochs", "patience",
                "min_delta", "seed", "loss")


@dataclass(frozen=True)
class TrainConfig:
    """How :func:`~robnp.training.fit.fit` trains; the defaults are the study's (Adam,
    early stopping). The attributes come in the groups of the module docstring.

    Attributes
    ----------
    lr : float > 0
        Step size (Adam's, or SGD's); with a schedule, its peak (``max_lr`` of
        one-cycle, the start of cosine and step decay).
    beta1, beta2, adam_eps : float
        Adam's moment decays and denominator constant (PyTorch defaults).
    batch_size : int
        Minibatch size; rows are reshuffled every epoch and the last batch may be short.
    max_epochs : int
        Hard limit on epochs.
    patience : int >= 1 or None
        Stop after this many consecutive epochs without improvement of the epoch loss
        (the recipe's own objective); None: no early stopping, exactly
        ``max_epochs`` epochs.
    min_delta : float
        An epoch improves when its loss is below the best so far minus ``min_delta``.
    seed : int or None
        Seed of the loop's generator: each epoch's shuffle and the recipe's noise.
    loss : str
        Training loss of the fused path (see :mod:`robnp.losses`); any other
        configuration trains the recipe's objective and needs ``"cross_entropy"``.
    optimizer : {"adam", "adamw", "sgd"}
        PyTorch's ``Adam``, ``AdamW``, ``SGD`` (:mod:`robnp.training.optim`).
    momentum : float in [0, 1)
        SGD's momentum (``dampening`` 0); anything but 0 with another optimizer is
        refused.
    nesterov : bool
        SGD with Nesterov momentum (needs ``momentum > 0``; sgd only).
    weight_decay : float >= 0
        With PyTorch's semantics: for ``adam`` and ``sgd`` L2 regularisation,
        ``weight_decay * params`` added to the gradient (so the moments or the
        momentum carry it); for ``adamw`` decoupled decay, ``params *= 1 - lr *
        weight_decay`` before the step.
    schedule : {"constant", "step", "cosine", "one-cycle"}
        The step size of every minibatch (:mod:`robnp.training.schedules`):
        ``lr`` throughout; ``lr * gamma ** (step // step_every)``; cosine annealing
        from ``lr`` to ``lr_floor`` over the run; PyTorch's ``OneCycleLR`` with
        ``max_lr = lr``, warm-up ``pct_start`` and the paper's other defaults. As
        PyTorch does by default, one-cycle also cycles the momentum, SGD's
        ``momentum`` or Adam's ``beta1``, between 0.95 and 0.85 (``momentum`` and
        ``beta1`` are then unused). Cosine and one-cycle need the run's length, so
        they need ``patience=None``.
    step_every : int >= 1
    gamma : float in (0, 1]
        The step schedule's period (in minibatches) and factor.
    lr_floor : float in [0, lr]
        Where the cosine schedule ends.
    pct_start : float in (0, 1)
        One-cycle's share of warm-up steps.
    ema : bool
        Keep an exponential moving average of the weights (:class:`robnp.training.ema.
        EMA`, decay ``min(ema_decay, (1 + t) / (10 + t))`` counted from the end of the
        warm-up: one-cycle's warm-up, else from the first step). The model ends with
        the averaged weights, and the monitors evaluate them; the recorded losses are
        the live weights'.
    ema_decay : float in [0, 1)
    recipe : str
        A registered training recipe (:mod:`robnp.training.recipes`).
    recipe_options : RecipeOptions, mapping or None
        The recipe's options: None for its defaults; a mapping of option names, made
        into the recipe's options. Stored as the options object.
    train_eps : float >= 0 or None (init only)
        Fills the ``eps`` of an adversarial recipe's options; ``recipe_options.eps``
        is the one value kept (read it as :attr:`eps`).
    select : {"last", "robust"}
        Keep the last epoch's weights, or (Rice et al., 2020) those of the epoch with
        the best PGD-10 accuracy on a validation split at the recipe's ``eps``.
    val_fraction : float in [0, 1)
        Share of the training rows held out for ``select="robust"`` (> 0 there).
    overfit_check : bool or None
        The catastrophic-overfitting rule (Wong et al., 2020): after every epoch the
        PGD-10 accuracy at the recipe's ``eps`` on a fixed training batch; a drop of
        more than :data:`OVERFIT_DROP` from the previous epoch restores that epoch's
        weights and stops. None: on for ``fgsm-rs`` and ``n-fgsm``, off otherwise.
    """

    # the fields TrainConfig always had: Adam's and the run's
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    adam_eps: float = 1e-8
    batch_size: int = 256
    max_epochs: int = 2000
    patience: int | None = 50
    min_delta: float = 1e-5
    seed: int | None = 0
    loss: str = "cross_entropy"
    # the optimizer
    optimizer: str = "adam"
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    # the schedule
    schedule: str = "constant"
    step_every: int = 1000
    gamma: float = 0.1
    lr_floor: float = 0.0
    pct_start: float = 0.025
    # weight averaging
    ema: bool = False
    ema_decay: float = 0.995
    # the recipe
    recipe: str = "standard"
    recipe_options: Any = None
    train_eps: InitVar[float | None] = None
    # selection and monitors
    select: str = "last"
    val_fraction: float = 0.0
    overfit_check: bool | None = None

    def __post_init__(self, train_eps):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        # Plain Python numbers: the compiled loop sees one signature, whatever was passed.
        for name, value in zip(("lr", "beta1", "beta2", "adam_eps"), check_adam_hyperparameters(
                self.lr, self.beta1, self.beta2, self.adam_eps)):
            set_(name, value)
        for name in ("batch_size", "max_epochs"):
            set_(name, _checks.integer(name, getattr(self, name), 1))
        if self.patience is not None:
            set_("patience", _checks.integer("patience", self.patience, 1))
        set_("min_delta", _checks.real("min_delta", self.min_delta, 0))
        if self.seed is not None:
            set_("seed", _checks.integer("seed", self.seed, 0))
        loss_code(self.loss)
        _checks.choice("optimizer", self.optimizer, OPTIMIZERS, "optimizer")
        # SGD's own options are refused with another optimizer before SGD's rule
        # between them (Nesterov needs momentum) is applied.
        if self.optimizer != "sgd":
            if _checks.flag("nesterov", self.nesterov):
                raise ConfigError(f"nesterov is an option of the sgd optimizer, got "
                                  f"optimizer {self.optimizer!r}")
            momentum = _checks.real("momentum", self.momentum, 0, 1, high_open=True)
            if momentum != 0:
                raise ConfigError(f"momentum is an option of the sgd optimizer (Adam's is "
                                  f"beta1), got momentum={momentum:g} with optimizer "
                                  f"{self.optimizer!r}")
        _, momentum, _, weight_decay, nesterov = check_sgd_hyperparameters(
            self.lr, self.momentum, 0.0, self.weight_decay, self.nesterov)
        set_("momentum", momentum)
        set_("weight_decay", weight_decay)
        set_("nesterov", nesterov)
        _checks.choice("schedule", self.schedule, SCHEDULE_NAMES, "schedule")
        set_("step_every", _checks.integer("step_every", self.step_every, 1))
        set_("gamma", _checks.real("gamma", self.gamma, 0, 1, low_open=True))
        set_("lr_floor", _checks.real("lr_floor", self.lr_floor, 0, self.lr))
        set_("pct_start", _checks.real("pct_start", self.pct_start, 0, 1, low_open=True,
                                       high_open=True))
        if self.schedule in ("cosine", "one-cycle") and self.patience is not None:
            raise ConfigError(f"the {self.schedule} schedule cannot run with early stopping "
                              f"(patience={self.patience}): its length is undefined; set "
                              f"patience off (None, or 0 on the command line)")
        set_("ema", _checks.flag("ema", self.ema))
        set_("ema_decay", _checks.real("ema_decay", self.ema_decay, 0, 1, high_open=True))
        set_("recipe_options", _recipe_options(self.recipe, self.recipe_options, train_eps))
        _checks.choice("select", self.select, SELECTIONS, "checkpoint selection")
        set_("val_fraction", _checks.real("val_fraction", self.val_fraction, 0, 1,
                                          high_open=True))
        if self.select == "robust":
            if self.val_fraction == 0:
                raise ConfigError("select='robust' needs a validation split: val_fraction "
                                  "must be in (0, 1), got 0.0")
            _monitor_eps(self, "select='robust'")
        if self.overfit_check is not None:
            set_("overfit_check", _checks.flag("overfit_check", self.overfit_check))
            if self.overfit_check:
                _monitor_eps(self, "overfit_check")
        if self.loss != "cross_entropy" and not self.fused:
            raise ConfigError(f"loss={self.loss!r} trains only on the default path (standard "
                              f"recipe without smoothing, adam, constant schedule, no ema, no "
                              f"weight decay, select='last'); recipes train on cross-entropy")

    def replace(self, **changes) -> "TrainConfig":
        """``dataclasses.replace`` that also resets ``recipe_options`` to the new
        recipe's defaults when ``recipe`` changes and no options are given."""
        if ("recipe" in changes and changes["recipe"] != self.recipe
                and "recipe_options" not in changes):
            changes["recipe_options"] = None
        return dataclasses.replace(self, **changes)

    @property
    def eps(self) -> float | None:
        """The recipe's training radius, or None for a recipe without one."""
        return getattr(self.recipe_options, "eps", None)

    @property
    def checks_overfitting(self) -> bool:
        """Whether the catastrophic-overfitting rule runs (``overfit_check`` resolved)."""
        if self.overfit_check is None:
            return get_recipe(self.recipe).options.single_step
        return self.overfit_check

    @property
    def fused(self) -> bool:
        """True when fixed-data training takes the fused compiled path."""
        return (self.recipe == "standard" and self.recipe_options.smoothing == 0
                and self.optimizer == "adam" and self.weight_decay == 0
                and self.schedule == "constant" and not self.ema and self.select == "last"
                and not self.checks_overfitting)

    def identity(self) -> dict:
        """Everything training depends on, as plain JSON values: the fields
        :class:`TrainConfig` always had, then every other field only where it differs
        from its default (so the study's task keys stay as they were); the recipe's
        options, as a dict, whenever the recipe or its options are not the default."""
        defaults = _DEFAULT_CONFIG
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "recipe_options":
                if (self.recipe != "standard"
                        or value != get_recipe(self.recipe).make_options()):
                    out[f.name] = value.to_dict()
            elif f.name in _BASE_FIELDS or value != getattr(defaults, f.name):
                out[f.name] = value
        return out


def _recipe_options(recipe: str, options, train_eps) -> RecipeOptions:
    """The recipe's options object from None, a mapping or an options object, with
    ``train_eps`` filled into its ``eps``."""
    spec = get_recipe(recipe)
    if train_eps is not None:
        train_eps = _checks.real("train_eps", train_eps, 0)
        if "eps" not in spec.options.field_names():
            raise ConfigError(f"train_eps: the {recipe} recipe has no eps (it trains on "
                              f"clean points), got train_eps={train_eps!r}")
    if options is None:
        options = spec.make_options({} if train_eps is None else {"eps": train_eps})
    elif isinstance(options, Mapping):
        given = {str(key).replace("-", "_"): value for key, value in options.items()}
        if train_eps is not None and "eps" in given:
            given_eps = _checks.real("eps", given["eps"], 0)
            if given_eps != train_eps:
                raise ConfigError(f"train_eps={train_eps!r} and recipe_options eps="
                                  f"{given['eps']!r} disagree; give one of them")
        if train_eps is not None:
            given["eps"] = train_eps
        options = spec.make_options(given)
    elif not isinstance(options, spec.options):
        raise ConfigError(f"recipe_options of recipe {recipe!r} must be a "
                          f"{spec.options.__name__} or a mapping of its options, got "
                          f"{type(options).__name__} (a new recipe needs its own options: "
                          f"use TrainConfig.replace)")
    if train_eps is not None:
        options = dataclasses.replace(options, eps=train_eps)
    return options


def _monitor_eps(config: TrainConfig, what: str) -> float:
    """The radius the monitors attack at: the recipe's ``eps``."""
    eps = config.eps
    if eps is None:
        raise ConfigError(f"{what} attacks at the recipe's eps, and the {config.recipe} "
                          f"recipe has none; use an adversarial recipe")
    return float(eps)


def _train_config_fields() -> set[str]:
    return {f.name for f in dataclasses.fields(TrainConfig)} | {"train_eps"}


def resolve_config(config: TrainConfig | None, overrides: Mapping) -> TrainConfig:
    """``config`` (the defaults when None) with ``overrides`` replaced, checked."""
    if config is None:
        config = TrainConfig()
    elif not isinstance(config, TrainConfig):
        raise ConfigError(f"config must be a TrainConfig, got {type(config).__name__}")
    if overrides:
        unknown = set(overrides) - _train_config_fields()
        if unknown:
            raise ConfigError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        config = config.replace(**overrides)
    return config


# The defaults identity() compares with.
_DEFAULT_CONFIG = TrainConfig()
