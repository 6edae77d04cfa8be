"""Specification of robnp.validate: a good directory passes, and each way of
breaking it is reported by the check responsible for it."""

import json
import shutil

import pytest

from robnp import _io, report
from robnp.report import document, validate
from study_records import study_records
from robnp.errors import RobnpError

DATASETS = ("circles", "moons")
SEEDS = (11, 22)
WIDTHS = (8, 16, 32)
EPSILONS = (0.05, 0.1, 0.3)
CONFIG = {"datasets": [{"name": name, "noise": 0.1} for name in DATASETS],
          "hidden_widths": list(WIDTHS), "epsilons": list(EPSILONS), "seeds": list(SEEDS),
          "n_samples": 400, "test_fraction": 0.2, "depth": 2, "input_dim": 2, "lr": 1e-3,
          "batch_size": 64, "max_epochs": 50, "patience": 5, "pgd_steps": 10,
          "pgd_step_fraction": 0.25, "an_extra_key": "is fine"}
ENVIRONMENT = {"python": "3.11.7", "numpy": "2.0", "numba": "0.60", "scipy": "1.14",
               "platform": "Linux-x86_64", "robnp": "0.1.0"}

COMPLETE = "every run of the config present once"
ACCURACY_RANGE = "accuracies in [0, 1]"
GAPS = "gaps equal clean minus robust accuracy"
CLEAN = "mean clean accuracy at least 0.8"
PGD = "PGD at least as strong as FGSM"
FGSM_TREND = "FGSM accuracy does not rise with eps"
AGGREGATES = "aggregates complete"
SUMMARIES = "summaries carry correlations"
ENVIRONMENT_CHECK = "environment metadata present"
FIGURES = "figures present and drawn"


def make_records():
    """A healthy sweep: clean ~0.9, robust accuracy falling with eps, PGD a bit stronger."""
    def clean(dataset, seed, width):
        return 0.88 + 0.02 * SEEDS.index(seed) + 0.01 * WIDTHS.index(width)

    def robust(attack, dataset, seed, width, eps):
        d_index, w_index = DATASETS.index(dataset), WIDTHS.index(width)
        fgsm = clean(dataset, seed, width) - (0.05 + eps + 0.01 * w_index * (1 - 2 * d_index))
        return fgsm - (0.01 if attack == "pgd" else 0.0)

    return study_records(DATASETS, SEEDS, WIDTHS, EPSILONS, clean=clean, robust=robust,
                         epochs=lambda width: 25, task_seconds=2.0)


def set_accuracy(record, attack, value):
    """Change one robust accuracy and keep its gap consistent."""
    record[f"{attack}_acc"] = value
    record[f"{attack}_gap"] = record["clean_acc"] - value


@pytest.fixture(scope="module")
def good_dir(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("good")
    report.write_report(document.build_results(make_records(), CONFIG, ENVIRONMENT), out_dir)
    return out_dir


@pytest.fixture
def copy_of_good(good_dir, tmp_path):
    out_dir = tmp_path / "run"
    shutil.copytree(good_dir, out_dir)
    return out_dir


def rewrite(out_dir, records=None, environment=ENVIRONMENT, edit=None):
    """Replace results.json by one rebuilt from `records`, as a sweep would write it."""
    doc = document.build_results(make_records() if records is None else records, CONFIG,
                              environment)
    if edit is not None:
        edit(doc)
    _io.atomic_write_json(out_dir / "results.json", doc)


def failing_checks(result):
    return {failure.split(": ", 1)[0] for failure in result.failures}


# --------------------------------------------------------------------------
# the good directory
# --------------------------------------------------------------------------

def test_good_directory_passes_every_check(good_dir):
    result = validate.validate_results(good_dir)
    assert result.failures == []
    assert result.passed
    for name in (COMPLETE, ACCURACY_RANGE, GAPS, CLEAN, PGD, FGSM_TREND, AGGREGATES,
                 SUMMARIES, ENVIRONMENT_CHECK, FIGURES):
        assert name in result.checks


def test_summary_lines_describe_configuration_and_correlations(good_dir):
    lines = validate.validate_results(good_dir).summary_lines
    assert lines[0] == ("Configuration: 2 datasets, 2 seeds, 3 widths, 3 epsilons, "
                        "36 total experiments")
    assert lines[1].startswith("  - circles: 18 results, Corr(log params, FGSM gap) = ")
    assert lines[2].startswith("  - moons: 18 results")


def test_report_is_immutable(good_dir):
    result = validate.validate_results(good_dir)
    with pytest.raises(AttributeError):
        result.failures = []


def test_directory_without_results_raises(tmp_path):
    with pytest.raises(RobnpError, match="results.json"):
        validate.validate_results(tmp_path)


# --------------------------------------------------------------------------
# one broken thing at a time
# --------------------------------------------------------------------------

def test_missing_run_is_reported(copy_of_good):
    records = make_records()
    removed = records.pop(7)
    rewrite(copy_of_good, records)
    result = validate.validate_results(copy_of_good)
    assert COMPLETE in failing_checks(result)
    message = next(f for f in result.failures if f.startswith(COMPLETE))
    assert "1 of 36 runs missing" in message
    assert f"seed={removed['seed']} width={removed['hidden_width']}" in message
    assert failing_checks(result) <= {COMPLETE, AGGREGATES}


def test_duplicate_run_is_reported(copy_of_good):
    records = make_records()
    records.append(dict(records[0]))
    rewrite(copy_of_good, records)
    result = validate.validate_results(copy_of_good)
    assert any(f.startswith(COMPLETE) and "duplicate run" in f for f in result.failures)


def test_accuracy_above_one_is_reported(copy_of_good):
    records = make_records()
    # the smallest eps of its curve, so FGSM does not "rise" into it
    first = next(r for r in records if r["epsilon"] == EPSILONS[0])
    set_accuracy(first, "fgsm", 1.04)
    set_accuracy(first, "pgd", 1.03)
    rewrite(copy_of_good, records)
    result = validate.validate_results(copy_of_good)
    assert failing_checks(result) == {ACCURACY_RANGE}
    assert any("fgsm_acc = 1.04" in f for f in result.failures)


def test_inconsistent_gap_is_reported(copy_of_good):
    records = make_records()
    records[5]["pgd_gap"] += 0.01
    rewrite(copy_of_good, records)
    result = validate.validate_results(copy_of_good)
    assert failing_checks(result) == {GAPS}
    assert any("pgd_gap" in f for f in result.failures)


def test_low_clean_accuracy_is_reported(copy_of_good):
    records = make_records()
    for record in records:
        if record["dataset"] == "moons" and record["hidden_width"] == 16:
            # shift clean and robust alike: gaps and curves stay healthy
            record["clean_acc"] -= 0.2
            for attack in ("fgsm", "pgd"):
                set_accuracy(record, attack, record[f"{attack}_acc"] - 0.2)
    rewrite(copy_of_good, records)
    result = validate.validate_results(copy_of_good)
    assert failing_checks(result) == {CLEAN}
    assert any("moons width=16" in f for f in result.failures)


def test_pgd_weaker_than_fgsm_is_reported(copy_of_good):
    records = make_records()
    for record in records[:6]:  # 6 of 36 runs: 83% within tolerance, below 90%
        set_accuracy(record, "pgd", record["fgsm_acc"] + 0.06)
    rewrite(copy_of_good, records)
    result = validate.validate_results(copy_of_good)
    assert failing_checks(result) == {PGD}
    assert any("6 of 36 runs" in f for f in result.failures)


def test_pgd_weaker_in_few_runs_is_tolerated(copy_of_good):
    records = make_records()
    for record in records[:3]:  # 3 of 36: 92% within tolerance
        set_accuracy(record, "pgd", record["fgsm_acc"] + 0.06)
    rewrite(copy_of_good, records)
    assert validate.validate_results(copy_of_good).passed


def test_fgsm_accuracy_rising_with_eps_is_reported(copy_of_good):
    records = make_records()
    curve = [r for r in records if (r["dataset"], r["seed"], r["hidden_width"]) == ("moons", 22, 32)]
    curve.sort(key=lambda r: r["epsilon"])
    set_accuracy(curve[2], "fgsm", curve[1]["fgsm_acc"] + 0.15)
    rewrite(copy_of_good, records)
    result = validate.validate_results(copy_of_good)
    assert failing_checks(result) == {FGSM_TREND}
    assert any("moons seed=22 width=32" in f for f in result.failures)


def test_missing_environment_key_is_reported(copy_of_good):
    environment = {k: v for k, v in ENVIRONMENT.items() if k != "numba"}
    rewrite(copy_of_good, environment=environment)
    result = validate.validate_results(copy_of_good)
    assert result.failures == [f"{ENVIRONMENT_CHECK}: environment lacks 'numba'"]


def test_missing_aggregate_row_is_reported(copy_of_good):
    rewrite(copy_of_good, edit=lambda doc: doc["aggregated"].pop(4))
    result = validate.validate_results(copy_of_good)
    assert failing_checks(result) == {AGGREGATES}


def test_stale_aggregates_are_reported(copy_of_good):
    def edit(doc):
        doc["aggregated"][0]["fgsm_gap_mean"] += 0.1

    rewrite(copy_of_good, edit=edit)
    result = validate.validate_results(copy_of_good)
    assert failing_checks(result) == {AGGREGATES}


def test_summary_without_confidence_interval_is_reported(copy_of_good):
    def edit(doc):
        doc["dataset_summaries"]["moons"]["trend_pgd_gap"]["pearson_r_ci95"] = None

    rewrite(copy_of_good, edit=edit)
    result = validate.validate_results(copy_of_good)
    assert failing_checks(result) == {SUMMARIES}
    assert any("moons trend_pgd_gap" in f for f in result.failures)


def test_missing_figure_is_reported(copy_of_good):
    (copy_of_good / "robustness_gap.png").unlink()
    result = validate.validate_results(copy_of_good)
    assert result.failures == [f"{FIGURES}: robustness_gap.png is missing"]


def test_empty_figure_is_reported(copy_of_good):
    (copy_of_good / "param_scaling.png").write_bytes(b"")
    result = validate.validate_results(copy_of_good)
    assert result.failures == [f"{FIGURES}: param_scaling.png has only 0 bytes"]


def test_file_that_is_not_a_png_is_reported(copy_of_good):
    (copy_of_good / "clean_vs_robust.png").write_bytes(b"GIF89a" + bytes(8000))
    result = validate.validate_results(copy_of_good)
    assert result.failures == [f"{FIGURES}: clean_vs_robust.png is not a PNG file"]


def test_blank_figure_is_reported(copy_of_good, monkeypatch):
    from matplotlib.figure import Figure

    # A blank canvas compresses below the size threshold; lift it to reach the pixel check.
    monkeypatch.setattr(validate, "MIN_FIGURE_BYTES", 0)
    _io.atomic_savefig(Figure(figsize=(3, 2)), copy_of_good / "param_scaling.png")
    result = validate.validate_results(copy_of_good)
    assert result.failures == [f"{FIGURES}: param_scaling.png is blank (every pixel the same)"]


def test_malformed_records_skip_dependent_checks(copy_of_good):
    doc = json.loads((copy_of_good / "results.json").read_text())
    del doc["results"][0]["fgsm_acc"]
    (copy_of_good / "results.json").write_text(json.dumps(doc))
    result = validate.validate_results(copy_of_good)
    assert failing_checks(result) == {"records match the schema"}
    assert GAPS not in result.checks
    assert FIGURES in result.checks
