"""The teaching figures of robnp.report.teaching, drawn from hand-made rows."""

import numpy as np
import pytest

from robnp.report.teaching import robustness_figure
from study_records import study_records

EPS = (0.01, 0.1)


def _doc(exact=(0.9, 0.7), undecided_at=None):
    """One circles model per seed (two seeds) at width 8, with every analysis; the
    seed-2 model is undecided at ``undecided_at``."""
    rows = study_records(("circles",), (1, 2), (8,), EPS, clean=lambda d, s, w: 0.95,
                         robust=lambda attack, d, s, w, e: 0.95 - e - 0.01 * s)
    for row in rows:
        k = EPS.index(row["epsilon"])
        open_ = row["seed"] == 2 and row["epsilon"] == undecided_at
        row.update({"exact_acc": None if open_ else exact[k] - 0.01 * row["seed"],
                    "certified_acc": exact[k] - 0.01 * row["seed"] - (0.2 if open_ else 0),
                    "undecided": 5 if open_ else 0,
                    "ceiling_acc": 0.99, "bayes_robust_acc": 0.93 - row["epsilon"]})
    return {"results": rows}


def _lines(fig):
    return {line.get_label(): line for line in fig.axes[0].lines}


def test_the_population_estimate_is_never_drawn_above_the_bayes_accuracy():
    # A fresh draw's sample ceiling of 0.995 at eps 0.01 on circles, whose Bayes
    # accuracy is 0.9504: drawn at the Bayes accuracy, marked as cut, and labelled as
    # the optimistic estimate it is.
    population = {"circles": {"eps": list(EPS), "ceiling": [0.995, 0.62], "size": 1000,
                              "bayes_accuracy": 0.9504}}
    fig = robustness_figure(_doc(), population)
    lines = _lines(fig)
    estimate = next(line for label, line in lines.items() if "optimistic" in label)
    assert "fresh" in estimate.get_label() and "cut to the Bayes accuracy" in estimate.get_label()
    assert list(estimate.get_ydata()) == [0.9504, 0.62]
    cut = next(line for label, line in lines.items() if label.startswith("cut:"))
    assert list(cut.get_xdata()) == [0.01] and list(cut.get_ydata()) == [0.9504]
    bayes = next(line for label, line in lines.items() if label.startswith("Bayes accuracy"))
    assert list(bayes.get_ydata()) == [0.9504, 0.9504]
    assert not any("population ceiling" in label for label in lines)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(text.startswith("cut:") for text in legend)


def test_a_population_estimate_without_a_density_is_not_cut():
    population = {"circles": {"eps": list(EPS), "ceiling": [0.995, 0.62], "size": 500,
                              "bayes_accuracy": None}}
    lines = _lines(robustness_figure(_doc(), population))
    estimate = next(line for label, line in lines.items() if "optimistic" in label)
    assert list(estimate.get_ydata()) == [0.995, 0.62]
    assert "cut" not in estimate.get_label()
    assert not any(label.startswith(("cut:", "Bayes accuracy")) for label in lines)


def test_the_exact_line_is_a_mean_only_where_every_model_is_decided():
    fig = robustness_figure(_doc(undecided_at=0.1))
    exact = _lines(fig)["exact (verified)"]
    assert list(exact.get_xdata()) == [0.01]
    assert exact.get_ydata()[0] == pytest.approx(np.mean([0.89, 0.88]))
    # at 0.1: seed 1 decided at 0.69; seed 2 in [0.48, best attack 0.83]
    (bar,) = [c for c in fig.axes[0].containers if c.get_label().startswith("exact lies")]
    segment = bar.lines[2][0].get_segments()[0]
    assert segment[0][0] == segment[1][0] == 0.1
    assert sorted(y for _, y in segment) == pytest.approx(
        [np.mean([0.69, 0.48]), np.mean([0.69, 0.83])])
