"""Verification: what can be guaranteed about robustness.

:mod:`robnp.verify.ceiling` bounds robust accuracy from the data alone: the best
robust accuracy any classifier can reach on a sample (König's matching for two
classes, a linear or integer program for more).
"""

from .ceiling import (PopulationCeiling, ceiling_figure, conflict_pairs, population_ceiling,
                      robustness_ceiling)

__all__ = ["PopulationCeiling", "ceiling_figure", "conflict_pairs", "population_ceiling",
           "robustness_ceiling"]
