"""Scaling laws for adversarial robustness.

"The paper" throughout this package is Bartoldson, Diffenderfer, Parasyris and
Kailkhura, *Adversarial Robustness Limits via Scaling-Law and Human-Alignment
Studies* (Section 3 and Appendix F).  The package fits its three approaches to
a table of runs and uses them to
choose model size N and data size D for a FLOPs budget:

* Approach 1, envelope of training curves: :func:`fit_envelope`;
* Approach 2, parametric loss with data-quality terms: :func:`fit_approach2`;
* Approach 3, data-quality bottleneck: :func:`fit_approach3`;

with compute-optimal allocations (``fit.optimal(F)``), the compute overhead of
a smaller model (``fit.overhead(omega_N)``), a loss-to-accuracy map, bootstrap
intervals over runs, a variable-projection cross-check of Approach 2, and the
comparison of the paper's Table 3 (:func:`analyze`).

Only NumPy and SciPy are needed; matplotlib only for :mod:`robnp.scaling.plots`.
"""

from robnp.scaling.accuracy import LossAccuracyMap, fit_loss_to_accuracy, loss_accuracy_from_table
from robnp.scaling.allocation import (
    Allocation, Overhead, approach2_optimal, approach2_overhead, numeric_optimal, numeric_overhead,
)
from robnp.scaling.analysis import (
    AnalysisConfig, ScalingReport, analyze, render_text, report_to_dict, run_scaling_fit, save_report,
)
from robnp.scaling.bootstrap import (
    BootstrapConfig, BootstrapResult, bootstrap_envelope, bootstrap_parametric, resample_groups,
)
from robnp.scaling.crosscheck import CrossCheckFit, compare_with_main, fit_approach2_varpro
from robnp.scaling.envelope import EnvelopeConfig, EnvelopeFit, PowerLaw, fit_envelope, fit_power_law
from robnp.scaling.fit import Convergence, FitConfig, ParametricFit, fit_approach2, fit_approach3
from robnp.scaling.laws import Approach2Law, Approach3Law
from robnp.scaling.table import DEFAULT_FLOPS_PER_ND, RunTable, make_table, read_table

__all__ = [
    "Allocation", "AnalysisConfig", "Approach2Law", "Approach3Law", "BootstrapConfig",
    "BootstrapResult", "Convergence", "CrossCheckFit", "DEFAULT_FLOPS_PER_ND", "EnvelopeConfig",
    "EnvelopeFit", "FitConfig", "LossAccuracyMap", "Overhead", "ParametricFit", "PowerLaw",
    "RunTable", "ScalingReport", "analyze", "approach2_optimal", "approach2_overhead",
    "bootstrap_envelope", "bootstrap_parametric", "compare_with_main", "fit_approach2",
    "fit_approach2_varpro", "fit_approach3", "fit_envelope", "fit_loss_to_accuracy",
    "fit_power_law", "loss_accuracy_from_table", "make_table", "numeric_optimal",
    "numeric_overhead", "read_table", "render_text", "report_to_dict", "resample_groups",
    "run_scaling_fit",
    "save_report",
]
