"""One factory of the study's rows for every reporting test.

Rows are built the way the study builds them: a model's facts and its long-form
evaluation records, pivoted by :func:`robnp.report.records.study_rows`. Each test
chooses its numbers through ``clean(dataset, seed, width)`` and
``robust(attack, dataset, seed, width, eps)``.
"""

from robnp.report.records import STUDY_ATTACKS, study_rows


def study_records(datasets, seeds, widths, epsilons, *, clean, robust,
                  attacks=STUDY_ATTACKS, epochs=lambda width: 30, final_loss=0.3,
                  param_count=lambda width: width * width + 6 * width + 2, **extra):
    """Every (dataset, seed, width, eps) row, with ``extra`` model facts appended."""
    records = []
    for dataset in datasets:
        for seed in seeds:
            for width in widths:
                model = {"dataset": dataset, "seed": seed, "hidden_width": width,
                         "param_count": param_count(width), "epochs": epochs(width),
                         "final_loss": final_loss, "clean_acc": clean(dataset, seed, width),
                         "noise": 0.1, "depth": 2, "input_dim": 2, **extra}
                evaluations = [{"attack": attack, "norm": "linf", "epsilon": eps,
                                "robust_acc": robust(attack, dataset, seed, width, eps),
                                "n_success": 0, "n_points": 1}
                               for eps in epsilons for attack in attacks]
                records += study_rows(model, evaluations)
    return records
