"""Verification: what can be guaranteed about robustness.

* :mod:`robnp.verify.bounds`: sound margin bounds (interval bound propagation and
  CROWN) over an L-inf box or an L2 ball, valid for the model as it runs in floating
  point;
* :mod:`robnp.verify.bab`: exact robust accuracy by input-splitting branch and bound,
  with attack-found, re-checked counterexamples;
* :mod:`robnp.verify.radius`: each point's exact robustness radius, by bisection on
  the verifier from the attacks' minimal perturbations;
* :mod:`robnp.verify.ceiling`: the best robust accuracy any classifier can reach on
  a sample (König's matching for two classes, a linear or integer program for more),
  and its population estimate.
"""

from .bab import Bracket, Verification, exact_robust_accuracy, verify, verify_radii
from .bounds import MarginBounds, ball_margin_bounds, box_margin_bounds, margin_bounds
from .radius import RobustnessRadius, robustness_radius
from .ceiling import (PopulationCeiling, ceiling_figure, conflict_pairs, population_ceiling,
                      robustness_ceiling)

__all__ = ["MarginBounds", "margin_bounds", "box_margin_bounds", "ball_margin_bounds",
           "Verification", "Bracket", "verify", "verify_radii", "exact_robust_accuracy",
           "RobustnessRadius", "robustness_radius", "PopulationCeiling", "ceiling_figure", "conflict_pairs", "population_ceiling",
           "robustness_ceiling"]
from .truth import (BayesClassifier, DataSource, RobustnessBracket, adversarial_points,
                    bayes_robust_accuracy, error_region_robust_accuracy, invalid_share,
                    robustness_bracket)

__all__ += ["DataSource", "BayesClassifier", "invalid_share", "error_region_robust_accuracy",
            "bayes_robust_accuracy", "RobustnessBracket", "robustness_bracket",
            "adversarial_points"]
