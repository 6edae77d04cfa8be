"""Verification: sound margin bounds and exact robust accuracy by branch and bound."""

from .bounds import MarginBounds, ball_margin_bounds, box_margin_bounds, margin_bounds
from .bab import Bracket, Verification, exact_robust_accuracy, verify, verify_radii

__all__ = ["MarginBounds", "margin_bounds", "box_margin_bounds", "ball_margin_bounds",
           "Verification", "Bracket", "verify", "verify_radii", "exact_robust_accuracy"]
