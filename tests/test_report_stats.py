"""Specification of robnp.stats: aggregates, trends, tables and results.json.

Records here are synthetic, with accuracies chosen in the test; every expected
number is computed independently from those choices (plain loops, numpy,
np.corrcoef), never copied from the module's output.
"""

import ast
import json
import math
from pathlib import Path

import numpy as np
import pytest

from robnp.report import document, stats, tables
from robnp.report import records as schema
from study_records import study_records
from robnp.errors import DataError

DATASETS = ("circles", "moons")
SEEDS = (1, 2)
WIDTHS = (8, 16, 32)
EPSILONS = (0.05, 0.2)
CONFIG = {
    "datasets": [{"name": name, "noise": 0.1} for name in DATASETS],
    "hidden_widths": list(WIDTHS), "epsilons": list(EPSILONS), "seeds": list(SEEDS),
    "n_samples": 400, "test_fraction": 0.2, "depth": 2, "input_dim": 2, "lr": 1e-3,
    "batch_size": 64, "max_epochs": 50, "patience": 5, "pgd_steps": 10,
    "pgd_step_fraction": 0.25,
}
ENVIRONMENT = {"python": "3.11.7", "numpy": "2.0", "numba": "0.60", "scipy": "1.14",
               "platform": "Linux", "robnp": "0.1.0"}


def params_of(width):
    # 2 inputs, two hidden layers of `width`, 2 classes.
    return (2 * width + width) + (width * width + width) + (2 * width + 2)


def clean_of(dataset, seed, width):
    return 0.90 + 0.03 * SEEDS.index(seed) + 0.01 * WIDTHS.index(width)


def gap_of(dataset, seed, width, eps, attack):
    # circles: gap grows with width; moons: it shrinks.  PGD is 0.02 stronger.
    direction = 1 if dataset == "circles" else -1
    return (0.10 + 0.5 * eps + direction * 0.02 * WIDTHS.index(width)
            + 0.01 * SEEDS.index(seed) + (0.02 if attack == "pgd" else 0.0))


def make_record(dataset, seed, width, eps):
    return study_records(
        (dataset,), (seed,), (width,), (eps,), param_count=params_of,
        epochs=lambda w: 40 + w, final_loss=0.2, clean=clean_of,
        robust=lambda attack, d, s, w, e: clean_of(d, s, w) - gap_of(d, s, w, e, attack))[0]


def make_records(datasets=DATASETS, widths=WIDTHS):
    return [make_record(d, s, w, e) for d in datasets for s in SEEDS for w in widths
            for e in EPSILONS]


# --------------------------------------------------------------------------
# aggregate
# --------------------------------------------------------------------------

def test_aggregate_hand_example_uses_population_std():
    records = [make_record("circles", seed, 8, 0.05) for seed in SEEDS]
    records[0]["clean_acc"], records[1]["clean_acc"] = 0.8, 0.9
    (row,) = stats.aggregate(records)
    assert row["clean_acc_mean"] == pytest.approx(0.85)
    assert row["clean_acc_std"] == pytest.approx(0.05)  # ddof=0; ddof=1 would give 0.0707
    assert row["n_seeds"] == 2


def test_aggregate_matches_independent_means_and_stds():
    records = make_records()
    rows = stats.aggregate(records)
    assert len(rows) == len(DATASETS) * len(WIDTHS) * len(EPSILONS)
    assert [(r["dataset"], r["hidden_width"], r["epsilon"]) for r in rows] == [
        (d, w, e) for d in DATASETS for w in WIDTHS for e in EPSILONS]
    for row in rows:
        for metric in schema.metrics(schema.STUDY_ATTACKS):
            values = []
            for record in records:
                if (record["dataset"], record["hidden_width"], record["epsilon"]) == (
                        row["dataset"], row["hidden_width"], row["epsilon"]):
                    values.append(record[metric])
            mean = sum(values) / len(values)
            std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
            assert row[f"{metric}_mean"] == pytest.approx(mean, abs=1e-12)
            assert row[f"{metric}_std"] == pytest.approx(std, abs=1e-12)
        assert row["param_count"] == params_of(row["hidden_width"])
        assert row["n_seeds"] == len(SEEDS)


def test_aggregate_rejects_record_without_a_key():
    records = make_records()
    del records[3]["pgd_acc"]
    with pytest.raises(DataError, match="pgd_acc"):
        stats.aggregate(records)


@pytest.mark.parametrize("field, value", [("fgsm_acc", float("nan")),
                                          ("hidden_width", True),
                                          ("seed", 1.5),
                                          ("dataset", "")])
def test_records_with_bad_values_are_rejected(field, value):
    records = make_records()
    records[0][field] = value
    with pytest.raises(DataError, match=field):
        schema.check_records(records)


# --------------------------------------------------------------------------
# per-dataset summaries and trends
# --------------------------------------------------------------------------

def per_width_mean_gap(records, dataset, attack):
    return [np.mean([r[f"{attack}_gap"] for r in records
                     if r["dataset"] == dataset and r["hidden_width"] == w]) for w in WIDTHS]


def test_summary_per_width_and_pearson_match_hand_computation():
    records = make_records()
    summary = stats.summarize_dataset([r for r in records if r["dataset"] == "moons"])
    assert summary["widths"] == list(WIDTHS)
    assert summary["epsilons"] == list(EPSILONS)
    assert summary["n_experiments"] == len(SEEDS) * len(WIDTHS) * len(EPSILONS)
    assert set(summary["per_width"]) == {str(w) for w in WIDTHS}

    entry = summary["per_width"]["16"]
    cleans = [clean_of("moons", s, 16) for s in SEEDS]
    assert entry["clean_acc"] == pytest.approx(np.mean(cleans))
    assert entry["clean_acc_std"] == pytest.approx(np.std(cleans))
    assert entry["param_count"] == params_of(16)
    gaps = [gap_of("moons", s, 16, e, "pgd") for s in SEEDS for e in EPSILONS]
    assert entry["mean_pgd_gap"] == pytest.approx(np.mean(gaps))
    assert entry["std_pgd_gap"] == pytest.approx(np.std(gaps))

    log_params = np.log10([params_of(w) for w in WIDTHS])
    for attack in ("fgsm", "pgd"):
        gaps = per_width_mean_gap(records, "moons", attack)
        expected_r = np.corrcoef(log_params, gaps)[0, 1]
        trend = summary[f"trend_{attack}_gap"]
        assert trend["pearson_r"] == pytest.approx(expected_r, abs=1e-12)
        assert summary[f"corr_logparams_{attack}_gap"] == trend["pearson_r"]
        assert trend["pearson_r"] < 0  # moons gaps shrink with width by construction
        assert 0.0 <= trend["pearson_p_value"] <= 1.0
        low, high = trend["pearson_r_ci95"]
        assert -1.0 <= low <= trend["pearson_r"] <= high <= 1.0
        assert trend["slope_per_log10_param"] == pytest.approx(np.polyfit(log_params, gaps, 1)[0])
        # Gaps fall strictly with width, so the rank correlation is exactly -1.
        assert trend["spearman_rho"] == pytest.approx(-1.0)


def test_summary_rejects_mixed_datasets():
    with pytest.raises(DataError, match="one dataset"):
        stats.summarize_dataset(make_records())


def test_trend_is_none_with_two_widths_and_never_nan():
    summary = stats.summarize_dataset(make_records(datasets=("circles",), widths=(8, 16)))
    trend = summary["trend_fgsm_gap"]
    for key in ("pearson_r", "pearson_p_value", "pearson_r_ci95", "spearman_rho",
                "spearman_p_value"):
        assert trend[key] is None
    assert summary["corr_logparams_fgsm_gap"] is None
    json.dumps(summary, allow_nan=False)


def test_trend_of_constant_gaps_is_none_not_nan():
    trend = stats.correlation_trend([2.0, 3.0, 4.0], [0.3, 0.3, 0.3])
    assert trend["pearson_r"] is None and trend["spearman_rho"] is None
    assert trend["slope_per_log10_param"] == pytest.approx(0.0)
    json.dumps(trend, allow_nan=False)


def test_summarize_by_dataset_has_every_dataset():
    summaries = stats.summarize_by_dataset(make_records())
    assert sorted(summaries) == sorted(DATASETS)
    assert summaries["circles"]["corr_logparams_fgsm_gap"] > 0


# --------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------

def test_width_table_averages_per_eps_statistics_over_eps():
    records = make_records()
    table = stats.width_table(stats.aggregate(records))
    assert [(r["dataset"], r["hidden_width"]) for r in table] == [
        (d, w) for d in DATASETS for w in WIDTHS]
    row = table[1]  # circles, width 16
    per_eps_means, per_eps_stds = [], []
    for eps in EPSILONS:
        gaps = [gap_of("circles", s, 16, eps, "fgsm") for s in SEEDS]
        per_eps_means.append(np.mean(gaps))
        per_eps_stds.append(np.std(gaps))
    assert row["fgsm_gap_mean"] == pytest.approx(np.mean(per_eps_means))
    assert row["fgsm_gap_std"] == pytest.approx(np.mean(per_eps_stds))
    cleans = [clean_of("circles", s, 16) for s in SEEDS]
    assert row["clean_acc_mean"] == pytest.approx(np.mean(cleans))
    assert row["clean_acc_std"] == pytest.approx(np.std(cleans))
    assert row["param_count"] == params_of(16)


def test_format_summary_table_shows_means_stds_and_trends():
    records = make_records()
    doc = document.build_results(records, CONFIG, ENVIRONMENT)
    text = tables.format_summary_table(doc)
    assert "[CIRCLES] Per-width summary (mean +/- std across 2 seeds):" in text
    assert "[MOONS] Per-width summary (mean +/- std across 2 seeds):" in text
    assert text.index("[CIRCLES]") < text.index("[MOONS]")

    cleans = [clean_of("circles", s, 32) for s in SEEDS]
    per_eps = [[gap_of("circles", s, 32, e, "pgd") for s in SEEDS] for e in EPSILONS]
    pgd_mean = np.mean([np.mean(g) for g in per_eps])
    pgd_std = np.mean([np.std(g) for g in per_eps])
    line = next(l for l in text.splitlines() if l.split()[:2] == ["32", str(params_of(32))])
    assert f"{np.mean(cleans):.4f} +/- {np.std(cleans):.4f}" in line
    assert f"{pgd_mean:.4f} +/- {pgd_std:.4f}" in line

    log_params = np.log10([params_of(w) for w in WIDTHS])
    r = np.corrcoef(log_params, per_width_mean_gap(records, "moons", "fgsm"))[0, 1]
    moons_block = text[text.index("[MOONS]"):]
    assert f"Corr(log params, FGSM gap): {r:.4f}" in moons_block
    assert "FGSM trend p-value (Pearson):" in moons_block
    # Three widths: Fisher's interval is [-1, 1] by construction; the table says what
    # the figure says.
    assert "too few widths for a 95% CI" in moons_block and "95% CI for r" not in text
    assert doc["dataset_summaries"]["moons"]["trend_fgsm_gap"]["pearson_r_ci95"] == [-1.0, 1.0]


def test_format_summary_table_shows_the_interval_from_four_widths():
    widths = (8, 16, 32, 64)
    records = study_records(
        DATASETS, SEEDS, widths, EPSILONS, param_count=params_of, epochs=lambda w: 40 + w,
        final_loss=0.2, clean=lambda d, s, w: 0.9,
        robust=lambda attack, d, s, w, e: 0.8 - 0.01 * widths.index(w) ** 2 - 0.01 * s)
    doc = document.build_results(records, {**CONFIG, "hidden_widths": list(widths)},
                                 ENVIRONMENT)
    text = tables.format_summary_table(doc)
    low, high = doc["dataset_summaries"]["moons"]["trend_fgsm_gap"]["pearson_r_ci95"]
    assert f"95% CI for r: [{low:.4f}, {high:.4f}]" in text[text.index("[MOONS]"):]
    assert "too few widths" not in text
    assert f"95% CI [{low:.2f}, {high:.2f}]" in tables.format_markdown_table(doc, "moons")


def test_format_summary_table_says_n_a_without_enough_widths():
    doc = document.build_results(make_records(widths=(8, 16)), CONFIG, ENVIRONMENT)
    text = tables.format_summary_table(doc)
    assert "Corr(log params, FGSM gap): n/a" in text
    assert "n/a, too few widths for a 95% CI" in text


def test_format_markdown_table():
    doc = document.build_results(make_records(), CONFIG, ENVIRONMENT)
    text = tables.format_markdown_table(doc, "circles")
    assert "| Width | Params | Clean Acc | Mean FGSM Gap | Mean PGD Gap |" in text
    cleans = [clean_of("circles", s, 32) for s in SEEDS]
    assert f"| 32 | 1,218 | {np.mean(cleans):.3f} ± {np.std(cleans):.3f} |" in text
    assert len([l for l in text.splitlines() if l.startswith("| ")]) == 1 + len(WIDTHS)
    assert "too few widths for a 95% CI" in text and "[-1.00, 1.00]" not in text
    with pytest.raises(DataError, match="spirals"):
        tables.format_markdown_table(doc, "spirals")


# --------------------------------------------------------------------------
# the results document
# --------------------------------------------------------------------------

def test_build_results_document_shape_and_json_round_trip():
    records = make_records()
    shuffled = records[::-1]
    tasks = [{"dataset": d, "seed": s, "hidden_width": w, "epochs": 40 + w,
              "task_seconds": 0.5 * w, "final_loss": 0.2}
             for d in DATASETS for s in SEEDS for w in WIDTHS][::-1]
    doc = document.build_results(shuffled, CONFIG, ENVIRONMENT, tasks=tasks)
    assert set(doc) == {"results", "aggregated", "dataset_summaries", "summary", "config",
                        "environment", "tasks", "n_experiments"}
    assert doc["n_experiments"] == len(records)
    keys = [(r["dataset"], r["seed"], r["hidden_width"], r["epsilon"]) for r in doc["results"]]
    assert keys == sorted(keys)
    assert all(set(r) == set(schema.record_fields(schema.STUDY_ATTACKS)) for r in doc["results"])
    assert doc["summary"]["dataset"] == "circles"
    assert list(doc["dataset_summaries"]) == list(DATASETS)
    assert len(doc["tasks"]) == len(DATASETS) * len(SEEDS) * len(WIDTHS)
    assert set(doc["tasks"][0]) == {"dataset", "seed", "hidden_width", "epochs",
                                    "task_seconds", "final_loss"}
    assert doc["tasks"][0]["task_seconds"] == 0.5 * doc["tasks"][0]["hidden_width"]

    def no_constants(name):
        raise AssertionError(f"JSON holds {name}")

    text = json.dumps(doc, allow_nan=False)
    assert json.loads(text, parse_constant=no_constants) == doc
    assert records == make_records()  # the caller's list is untouched


def test_build_results_converts_numpy_scalars():
    records = make_records()
    for record in records:
        record["clean_acc"] = np.float32(record["clean_acc"])
        record["seed"] = np.int64(record["seed"])
    doc = document.build_results(records, CONFIG, ENVIRONMENT)
    json.dumps(doc, allow_nan=False)
    assert type(doc["results"][0]["seed"]) is int


def test_summary_falls_back_to_first_dataset_without_circles():
    doc = document.build_results(make_records(datasets=("moons",)), CONFIG, ENVIRONMENT)
    assert doc["summary"]["dataset"] == "moons"


def test_build_results_rejects_no_records():
    with pytest.raises(DataError, match="no records"):
        document.build_results([], CONFIG, ENVIRONMENT)


# --------------------------------------------------------------------------
# layering
# --------------------------------------------------------------------------

@pytest.mark.parametrize("module", ["report/__init__", "report/records", "report/stats",
                                    "report/tables", "report/document", "report/plots",
                                    "report/validate", "_io", "_checks"])
def test_reporting_layer_does_not_import_the_engine(module):
    source = (Path(stats.__file__).parents[1] / f"{module}.py").read_text()
    allowed_robnp = {"robnp.errors", "robnp._io", "robnp._checks", "robnp.report.records",
                     "robnp.report.stats", "robnp.report.tables", "robnp.report.document",
                     "robnp.report.plots", "robnp.report.validate", "robnp.report", None}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module]
        else:
            continue
        for name in names:
            assert not name.startswith(("numba", "matplotlib.pyplot"))
            if name.startswith("robnp"):
                assert name in allowed_robnp, f"{module} imports {name}"


def _rows_with_exact(values):
    """Circles rows at one eps, one seed per model, with the exact analysis:
    ``values`` holds per model (exact or None, certified, pgd accuracy)."""
    rows = []
    for seed, (exact, certified, pgd) in enumerate(values, start=1):
        row = study_records(("circles",), (seed,), (8,), (0.1,), param_count=params_of,
                            epochs=lambda w: 40, final_loss=0.2,
                            clean=lambda d, s, w: 0.9,
                            robust=lambda attack, d, s, w, e, pgd=pgd: pgd + (
                                0.05 if attack == "fgsm" else 0.0))[0]
        row.update({"exact_acc": exact, "certified_acc": certified,
                    "undecided": 0 if exact is not None else 3})
        rows.append(row)
    return rows


def test_exact_bracket_holds_the_mean_exact_accuracy_of_every_model():
    # One model decided at 0.40, one undecided in [0.70, 0.80] (certified, PGD):
    # averaging the decided model alone gave 0.40, below the certified mean 0.55.
    rows = _rows_with_exact([(0.40, 0.40, 0.45), (None, 0.70, 0.80)])
    assert stats.exact_bracket(rows, ("fgsm", "pgd")) == {
        0.1: (pytest.approx(0.55), None, pytest.approx(0.60))}
    decided = _rows_with_exact([(0.40, 0.40, 0.45), (0.75, 0.75, 0.80)])
    low, exact, high = stats.exact_bracket(decided, ("fgsm", "pgd"))[0.1]
    assert low == exact == high == pytest.approx(0.575)
    assert stats.exact_bracket(make_records(), ("fgsm", "pgd")) == {}


def test_what_the_data_allows_shows_a_bracket_that_is_one():
    rows = _rows_with_exact([(0.40, 0.40, 0.45), (None, 0.70, 0.80)])
    doc = document.build_results(rows, {**CONFIG, "datasets": [{"name": "circles",
                                                               "noise": 0.1}]}, ENVIRONMENT)
    text = tables.format_summary_table(doc)
    block = text[text.index("What the data allows"):].splitlines()
    header = block[1].split()
    assert "exact: [certified, best attack] means where a model is undecided" in block[0]
    line = block[2]
    assert "[0.5500, 0.6000]" in line and line.split()[header.index("Certified") + 1] == "0.5500"
    decided = _rows_with_exact([(0.40, 0.40, 0.45), (0.75, 0.75, 0.80)])
    doc = document.build_results(decided, doc["config"], ENVIRONMENT)
    text = tables.format_summary_table(doc)
    line = text[text.index("What the data allows"):].splitlines()[2].split()
    assert line[1:] == ["0.6750", "0.6250", "0.5750", "0.5750"]
