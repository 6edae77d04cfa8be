"""Adversarial attacks built on the analytic input gradient, and their registry.

Each attack is one private module (``_fgsm.py``, ``_pgd.py``, ``_apgd.py``,
``_square.py``, ``_fab.py``) holding the attack function, the frozen dataclass of its options and
the ``run`` entry the registry calls; the registry lines below name them.
:func:`robust_accuracy` and the study look attacks up by name here.

Registered attacks
------------------
``fgsm``       one signed-gradient step (Goodfellow et al., 2015).
``pgd``        the study's PGD: 10 signed steps of eps/4 on the cross-entropy from the
               clean point, final iterate (Madry et al., 2018); options add random
               starts, restarts, per-sample worst case, targets, L2 and more losses.
``pgd-cw``     the scaling-law paper's evaluation (Section 3.1): 40 steps of eps/4 on
               the CW margin from a uniform start, per-sample worst iterate.
``apgd-ce``    Auto-PGD on the cross-entropy (Croce and Hein, 2020).
``apgd-dlr``   Auto-PGD on the DLR loss (>= 3 classes).
``apgd-t``     Auto-PGD on the targeted DLR loss over the 9 most likely wrong classes
               (>= 4 classes).
``square``     the Square attack, score-based, logits only (Andriushchenko et al.,
               2020): the check against gradient masking.
``fab``        FAB, the fast adaptive boundary attack (Croce and Hein, 2020): the
               smallest perturbation it finds per point, L-inf, L2 or L1, so one run
               gives robust accuracy at every radius.
``fab-t``      FAB targeted at the 9 most likely wrong classes in turn.
``autoattack`` AutoAttack's standard suite (Croce and Hein, 2020): ``apgd-ce``,
               ``apgd-t``, ``fab-t``, ``square`` at the reference's parameters, each
               on the points still robust; reported per stage (``aa-apgd-ce``, ...)
               and as the worst case. On fewer than 10 classes it runs what is
               defined and says what it replaced (see ``_autoattack.py``).

The model protocol
------------------
Every registered attack accepts a :class:`robnp.MLP` (the compiled kernels run the
whole attack) or any object with

* ``logits(X) -> array (n, n_classes)`` for ``X`` of shape ``(n, n_features)``;
* ``input_gradient(X, y, loss) -> array (n, n_features)``: the gradient w.r.t. ``X``
  of the mean (or sum) over rows of the loss named ``loss`` (a name in
  :data:`robnp.losses.LOSSES`; attacks use each row's gradient only up to a positive
  factor). Targeted losses (:data:`robnp.losses.TARGETED_LOSSES`, used by targeted PGD
  and ``apgd-t``) are asked for as ``input_gradient(X, y, loss, y_target=t)``.
  :func:`robnp.losses.loss_and_grad_logits` gives dL/dlogits for every name, so a
  model with its own backward pass only chains it;
* optionally ``n_features``, ``n_classes`` and ``dtype`` (float32 or float64; default
  float64), against which inputs are checked;
* optionally ``logit_jacobian(X) -> array (n, n_classes, n_features)``, every logit's
  input gradient at once, which FAB uses; without it FAB builds them from
  cross-entropy ``input_gradient`` calls (:mod:`robnp.attacks._jacobian`).

Such a model runs a NumPy loop over these methods that applies the same compiled
step, projection and bookkeeping kernels as the MLP path, so both give the same
results up to the rounding of the gradients. The Square attack calls only ``logits``.

Adding an attack: write ``_name.py`` with ``NameOptions(AttackOptions)`` (its
fields' ``constraints``, its cost ``passes()``, its ``budget`` option) and
``run(model, X, y, radii, options, rng) -> [X_adv per radius]``, then add one
``register_attack`` line below (see ``docs/architecture.md``, "Adding an attack").
"""

from . import _apgd, _autoattack, _fab, _fgsm, _pgd, _square
from ._apgd import (APGDCEOptions, APGDDLROptions, APGDOptions, APGDTOptions, apgd,
                    checkpoints)
from ._autoattack import AutoAttackOptions, Stage, SuiteOptions
from ._evaluate import (AttackResult, Evaluation, accuracy, evaluate, predict,
                        robust_accuracy)
from ._fab import FABOptions, FABTOptions, MinimalPerturbation, fab
from ._fgsm import FGSMOptions, fgsm, fgsm_from_gradient
from ._pgd import PGDCWOptions, PGDOptions, pgd
from ._registry import (ATTACKS, Attack, AttackOptions, attack_names, get_attack,
                        register_attack)
from ._square import SquareOptions, square
from ._threat import (NORMS, AttackedModel, as_generator, check_bounds, check_eps, check_radii,
                      check_reach)

#: The earlier name of :class:`AttackedModel`, kept because it was public.
Target = AttackedModel

__all__ = ["fgsm", "fgsm_from_gradient", "pgd", "apgd", "square", "fab", "checkpoints",
           "FGSMOptions", "PGDOptions", "PGDCWOptions", "APGDOptions", "APGDCEOptions",
           "APGDDLROptions", "APGDTOptions", "SquareOptions", "FABOptions", "FABTOptions",
           "MinimalPerturbation", "AutoAttackOptions", "SuiteOptions", "Stage",
           "AttackedModel", "Target",
           "accuracy", "robust_accuracy", "as_generator", "evaluate", "Evaluation",
           "AttackResult", "predict",
           "ATTACKS", "Attack", "AttackOptions", "attack_names", "get_attack",
           "register_attack", "NORMS", "check_bounds", "check_eps", "check_radii",
           "check_reach"]

# -- the registry ----------------------------------------------------------------
register_attack("fgsm", _fgsm.run, FGSMOptions,
                "one signed-gradient step of eps (Goodfellow et al. 2015)")
register_attack("pgd", _pgd.run, PGDOptions,
                "projected signed-gradient ascent, 10 steps of eps/4 (Madry et al. 2018)")
register_attack("pgd-cw", _pgd.run, PGDCWOptions,
                "PGD-40 on the CW margin from a random start, per-sample best iterate")
register_attack("apgd-ce", _apgd.run, APGDCEOptions,
                "Auto-PGD on the cross-entropy, 100 iterations (Croce and Hein 2020)")
register_attack("apgd-dlr", _apgd.run, APGDDLROptions,
                "Auto-PGD on the DLR loss, 100 iterations (Croce and Hein 2020)")
register_attack("apgd-t", _apgd.run, APGDTOptions,
                "Auto-PGD on the targeted DLR loss, 9 target classes (Croce and Hein 2020)")
register_attack("square", _square.run, SquareOptions,
                "Square attack, 5000 queries, logits only (Andriushchenko et al. 2020)")
register_attack("fab", _fab.run, FABOptions,
                "FAB, the smallest perturbation, 100 iterations (Croce and Hein 2020)")
register_attack("fab-t", _fab.run, FABTOptions,
                "targeted FAB, 9 target classes, 100 iterations (Croce and Hein 2020)")
register_attack("autoattack", _autoattack.run, AutoAttackOptions,
                "AutoAttack's standard suite in cascade: APGD-CE, APGD-T, FAB-T, Square")
