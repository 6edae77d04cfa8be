"""Adversarial attacks built on the analytic input gradient, and their registry.

Each attack is one private module (``_fgsm.py``, ``_pgd.py``, ...) holding the
attack function, the frozen dataclass of its options and the ``run`` entry the
registry calls; the registry lines below name them. :func:`robust_accuracy` and the
study look attacks up by name here.

Adding an attack: write ``_name.py`` with ``NameOptions(AttackOptions)`` and
``run(model, X, y, radii, options, rng) -> [X_adv per radius]``, then add one
``register_attack`` line below.
"""

from . import _fgsm, _pgd
from ._evaluate import (AttackResult, Evaluation, accuracy, as_generator, evaluate, predict,
                        robust_accuracy)
from ._fgsm import FGSMOptions, fgsm, fgsm_from_gradient
from ._pgd import PGDOptions, pgd
from ._registry import (ATTACKS, Attack, AttackOptions, attack_names, get_attack,
                        register_attack)
from ._threat import NORMS, check_bounds, check_eps, check_radii

__all__ = ["fgsm", "fgsm_from_gradient", "pgd", "FGSMOptions", "PGDOptions",
           "accuracy", "robust_accuracy", "as_generator", "evaluate", "Evaluation",
           "AttackResult", "predict",
           "ATTACKS", "Attack", "AttackOptions", "attack_names", "get_attack",
           "register_attack", "NORMS", "check_bounds", "check_eps", "check_radii"]

# -- the registry ----------------------------------------------------------------
register_attack("fgsm", _fgsm.run, FGSMOptions,
                "one signed-gradient step of eps (Goodfellow et al. 2015)")
register_attack("pgd", _pgd.run, PGDOptions,
                "projected signed-gradient ascent, 10 steps of eps/4 (Madry et al. 2018)")
