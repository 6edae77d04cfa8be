"""Specification of robnp.report.records: one schema, long-form evaluation records,
and the study's wide rows derived from them for whatever attacks a run has."""

import pytest

from robnp.report import document, records, tables
from study_records import study_records

MODEL = {"dataset": "moons", "seed": 1, "hidden_width": 8, "param_count": 122, "epochs": 9,
         "final_loss": 0.4, "clean_acc": 0.9, "noise": 0.1, "depth": 2, "input_dim": 2}


def evaluation(attack, eps, robust_acc, n_points=10):
    return {"attack": attack, "norm": "linf", "epsilon": eps, "robust_acc": robust_acc,
            "n_success": round((1 - robust_acc) * n_points), "n_points": n_points}


def test_study_rows_keep_the_study_column_order():
    rows = records.study_rows(MODEL, [evaluation("fgsm", 0.1, 0.7), evaluation("pgd", 0.1, 0.6),
                                      evaluation("fgsm", 0.2, 0.5), evaluation("pgd", 0.2, 0.3)])
    assert [list(row) for row in rows] == [[
        "dataset", "seed", "hidden_width", "param_count", "epochs", "final_loss", "clean_acc",
        "epsilon", "fgsm_acc", "pgd_acc", "fgsm_gap", "pgd_gap", "noise", "depth",
        "input_dim"]] * 2
    assert [row["epsilon"] for row in rows] == [0.1, 0.2]
    assert rows[1]["pgd_acc"] == 0.3 and rows[1]["pgd_gap"] == pytest.approx(0.6)


def test_a_new_attack_gets_new_keys_beside_the_old_ones():
    rows = records.study_rows(MODEL, [evaluation("fgsm", 0.1, 0.7), evaluation("pgd", 0.1, 0.6),
                                      evaluation("apgd-ce", 0.1, 0.55)])
    assert list(rows[0])[8:14] == ["fgsm_acc", "pgd_acc", "apgd_ce_acc", "fgsm_gap", "pgd_gap",
                                   "apgd_ce_gap"]
    assert records.record_attacks(rows) == ("fgsm", "pgd", "apgd_ce")
    assert records.record_problems(rows) == []


def test_analyses_without_a_gap_are_not_attacks():
    rows = records.study_rows({**MODEL, "exact_acc": 0.5}, [evaluation("pgd", 0.1, 0.6)])
    assert records.record_attacks(rows) == ("pgd",)


def test_every_row_must_have_every_attack_of_the_run():
    rows = records.study_rows(MODEL, [evaluation("fgsm", 0.1, 0.7), evaluation("pgd", 0.1, 0.6)])
    rows.append({key: value for key, value in rows[0].items() if key != "pgd_acc"})
    problems = records.record_problems(rows)
    assert len(problems) == 1 and "record 1" in problems[0] and "lacks pgd_acc" in problems[0]


@pytest.mark.parametrize("change,needle", [
    ({"n_success": 11}, "n_success 11 is not within"),
    ({"attack": ""}, "'attack' must be a non-empty string"),
    ({"robust_acc": float("nan")}, "'robust_acc' must be finite"),
    ({"n_points": 2.5}, "'n_points' must be an integer"),
])
def test_evaluation_record_problems(change, needle):
    record = {**evaluation("pgd", 0.1, 0.6), **change}
    problems = records.evaluation_problems([record])
    assert any(needle in problem for problem in problems), problems


def test_three_attacks_flow_through_document_and_table():
    attacks = ("fgsm", "pgd", "pgd_cw")
    rows = study_records(("circles",), (1, 2), (8, 16, 32), (0.1, 0.2), attacks=attacks,
                         clean=lambda d, s, w: 0.9 + 0.01 * s,
                         robust=lambda a, d, s, w, e: 0.8 - e - 0.01 * attacks.index(a) - w / 1000)
    doc = document.build_results(rows, {"datasets": [{"name": "circles", "noise": 0.1}]},
                                 {"python": "3"})
    assert doc["aggregated"][0]["pgd_cw_gap_mean"] == pytest.approx(
        sum(0.9 + 0.01 * s - (0.8 - 0.1 - 0.02 - 0.008) for s in (1, 2)) / 2)
    summary = doc["dataset_summaries"]["circles"]
    assert {"trend_fgsm_gap", "trend_pgd_gap", "trend_pgd_cw_gap"} <= set(summary)
    text = tables.format_summary_table(doc)
    assert "PGD-CW Gap" in text and "Corr(log params, PGD-CW gap):" in text
    markdown = tables.format_markdown_table(doc, "circles")
    assert "| Mean FGSM Gap | Mean PGD Gap | Mean PGD-CW Gap |" in markdown
