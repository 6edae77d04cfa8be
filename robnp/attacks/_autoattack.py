"""AutoAttack's standard suite as one registered name (Croce and Hein, 2020,
"Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks"), and what any suite of attacks is: stages run in cascade.

The standard version, as the reference code's ``set_version('standard')`` sets it up
for the L-infinity and L2 balls, in this order, each with one restart:

1. ``apgd-ce``: APGD on the cross-entropy, 100 iterations;
2. ``apgd-t``: APGD on the targeted DLR loss, 100 iterations per target, the 9 most
   likely wrong classes;
3. ``fab-t``: targeted FAB, 100 iterations per target, the same 9 targets;
4. ``square``: the Square attack, 5000 queries, ``p_init = 0.8`` (L-infinity only
   here: robnp's Square attack has no L2 form, so the L2 suite skips it).

Each stage attacks only the points every earlier stage left robust (points
misclassified when clean are never attacked), so the robust accuracy after a stage
is the suite's up to there and the last one is the suite's worst case. In results
the stages are named ``aa-apgd-ce``, ``aa-apgd-t``, ``aa-fab-t``, ``aa-square`` and
the suite ``autoattack``.

Fewer classes than the reference assumes
----------------------------------------
The DLR loss needs 3 classes and its targeted form 4; targets are the wrong classes,
so a model of ``K`` classes has ``K - 1`` of them. The suite runs what is defined and
:meth:`AutoAttackOptions.notices` says what changed:

* ``K < 10``: APGD-T and FAB-T target all ``K - 1`` wrong classes, not 9;
* ``K = 3``: the second stage is APGD on the untargeted DLR loss (the suite's second
  attack before it became targeted), since targeted DLR is not defined;
* ``K = 2``: no DLR loss is defined, and a targeted attack is the untargeted one: the
  second stage is APGD-CE again from its own random start (APGD on the margin, the
  targeted DLR's numerator, would step exactly as APGD-CE does, since with two
  classes the cross-entropy is a decreasing function of the margin), and FAB-T,
  with the one wrong class as its target, is FAB.

Where this differs from the reference
-------------------------------------
* Every stage draws from a generator derived from the evaluation's seed and the
  stage's name; the reference seeds from the clock when no seed is given.
* The input box is the ``bounds`` option (any box, or none), not ``[0, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .._checks import Coerced, Satisfies
from ._apgd import APGDCEOptions, APGDDLROptions, APGDTOptions
from ._fab import FABTOptions
from ._registry import AttackOptions, get_attack
from ._square import SquareOptions
from ._threat import AttackedModel, check_bounds, check_norm, check_threads

__all__ = ["AutoAttackOptions", "SuiteOptions", "Stage", "StageRun", "run", "run_stages",
           "STANDARD"]

#: The reference's standard parameters (``set_version('standard')``, L-infinity / L2).
STANDARD = {"n_iter": 100, "n_restarts": 1, "n_target_classes": 9, "n_queries": 5000,
            "p_init": 0.8, "rho": 0.75}


class Stage(NamedTuple):
    """One attack of a suite: its name in results, the registered attack it runs and
    that attack's options."""

    name: str
    attack: str
    options: AttackOptions


class StageRun(NamedTuple):
    """What one stage did at every radius (arrays of shape (n_eps, n_points[, d])).

    ``attacked``: the points still robust when the stage ran (it ran on those);
    ``success``: the ones it broke; ``adversarial``: its points (the clean point
    where it did not run); ``broken``: broken by this stage or any before it (clean
    errors included)."""

    stage: Stage
    adversarial: np.ndarray
    attacked: np.ndarray
    success: np.ndarray
    broken: np.ndarray


@dataclass(frozen=True)
class SuiteOptions(AttackOptions):
    """Base of the options of a suite: several registered attacks run in cascade
    under one name. :func:`robnp.evaluate` reports each stage as an attack of its own
    (the robust accuracy after it) and the suite as the worst case of its stages;
    the convergence check reruns each stage."""

    def stages(self, n_classes: int) -> tuple[Stage, ...]:
        """The stages run on a model of ``n_classes`` classes, in order."""
        raise NotImplementedError

    def notices(self, n_classes: int) -> tuple[str, ...]:
        """What differs from the suite as its authors run it on such a model, and why
        (empty when nothing does)."""
        return ()

    def passes(self, n_classes: int | None = None) -> float:
        """The stages' costs added: the most the cascade can cost (each stage runs on
        the points still robust). ``None``: the reference's 10 classes."""
        classes = 10 if n_classes is None else n_classes
        return float(sum(stage.options.passes(classes) for stage in self.stages(classes)))


@dataclass(frozen=True)
class AutoAttackOptions(SuiteOptions):
    """Options of ``autoattack``, the standard suite; the stages' own parameters are
    the reference's (:data:`STANDARD`), fixed: run the attacks by name with
    ``cascade=True`` for other ones.

    Attributes
    ----------
    norm : {"linf", "l2"}
    bounds : (float, float) or None
        The input box of every stage.
    n_threads : int >= 1 or None
        Threads of every stage; never changes a result.
    """

    norm: str = "linf"
    bounds: tuple[float, float] | None = None
    n_threads: int | None = None

    randomized = True

    constraints = {"norm": Coerced(check_norm),
                   "bounds": Satisfies(check_bounds),
                   "n_threads": Coerced(check_threads)}

    def stages(self, n_classes: int) -> tuple[Stage, ...]:
        common = dict(bounds=self.bounds, n_threads=self.n_threads)
        apgd = dict(common, norm=self.norm, n_iter=STANDARD["n_iter"],
                    n_restarts=STANDARD["n_restarts"], rho=STANDARD["rho"])
        if n_classes >= 4:
            second = ("apgd-t", APGDTOptions(n_target_classes=STANDARD["n_target_classes"],
                                             **apgd))
        elif n_classes == 3:
            second = ("apgd-dlr", APGDDLROptions(**apgd))
        else:
            second = ("apgd-ce", APGDCEOptions(**apgd))
        out = [Stage("aa-apgd-ce", "apgd-ce", APGDCEOptions(**apgd)),
               Stage("aa-apgd-t", *second),
               Stage("aa-fab-t", "fab-t", FABTOptions(
                   norm=self.norm, n_iter=STANDARD["n_iter"], n_restarts=STANDARD["n_restarts"],
                   n_target_classes=STANDARD["n_target_classes"], **common))]
        if self.norm == "linf":
            out.append(Stage("aa-square", "square", SquareOptions(
                n_queries=STANDARD["n_queries"], p_init=STANDARD["p_init"],
                n_restarts=STANDARD["n_restarts"], **common)))
        return tuple(out)

    def notices(self, n_classes: int) -> tuple[str, ...]:
        found = []
        targets = STANDARD["n_target_classes"]
        if n_classes == 3:
            found.append("autoattack on 3 classes: aa-apgd-t runs apgd-dlr (untargeted DLR) "
                         "instead of apgd-t, since the targeted DLR loss needs 4 classes")
        elif n_classes == 2:
            found.append("autoattack on 2 classes: aa-apgd-t runs apgd-ce again from its own "
                         "random start instead of apgd-t, since DLR, targeted or not, needs 3 "
                         "classes and with 2 a targeted attack is the untargeted one; "
                         "aa-fab-t targets the one wrong class, so it is untargeted FAB")
        if 3 <= n_classes <= targets:
            which = "fab-t targets" if n_classes == 3 else "apgd-t and fab-t target"
            found.append(f"autoattack on {n_classes} classes: {which} all "
                         f"{n_classes - 1} wrong classes, not the standard {targets} (which "
                         f"need {targets + 1} classes)")
        if self.norm != "linf":
            found.append(f"autoattack in {self.norm}: aa-square is skipped, since robnp's "
                         f"Square attack is L-infinity only")
        return tuple(found)


def _predict(target: AttackedModel, X) -> np.ndarray:
    return target.logits(X).argmax(axis=1)


def run_stages(model, X, y, radii, stages, rng, broken) -> list[StageRun]:
    """Run ``stages`` in cascade at every radius.

    Parameters
    ----------
    model, X, y, radii
        As a registry ``run`` receives them (inputs checked).
    stages : sequence of Stage
    rng : numpy.random.Generator
        The suite's generator; each stage draws from one derived from it and the
        stage's name, so no stage's numbers depend on the stages around it.
    broken : ndarray of shape (n_eps, n_points), bool
        Points not to attack at each radius (clean errors, points already broken).

    Returns
    -------
    list of StageRun, one per stage, in order.
    """
    target = AttackedModel(model)
    broken = np.array(broken, bool)
    base = int(rng.integers(2 ** 63))
    runs = []
    for stage in stages:
        spec = get_attack(stage.attack)
        stage_rng = np.random.default_rng([base, *stage.name.encode()])
        adversarial = np.repeat(X[None], len(radii), axis=0)
        attacked = ~broken
        success = np.zeros_like(broken)
        for k, radius in enumerate(radii):
            rows = np.flatnonzero(attacked[k])
            if rows.size:
                adversarial[k, rows] = spec.run(model, np.ascontiguousarray(X[rows]),
                                                np.ascontiguousarray(y[rows]), (radius,),
                                                stage.options, stage_rng)[0]
                success[k, rows] = _predict(target, adversarial[k, rows]) != y[rows]
        broken = broken | success
        runs.append(StageRun(stage, adversarial, attacked, success, broken))
    return runs


def run(model, X, y, radii, options: SuiteOptions, rng) -> list[np.ndarray]:
    """Registry entry: per radius, the point of the first stage that broke each
    point, the clean point elsewhere (as the reference returns)."""
    target = AttackedModel(model)
    clean_wrong = _predict(target, X) != y
    broken = np.repeat(clean_wrong[None], len(radii), axis=0)
    runs = run_stages(model, X, y, radii, options.stages(target.n_classes(X)), rng, broken)
    points = np.repeat(X[None], len(radii), axis=0)
    for stage_run in runs:
        points[stage_run.success] = stage_run.adversarial[stage_run.success]
    return [np.ascontiguousarray(points[k]) for k in range(len(radii))]
