"""The one record schema of robnp's results, defined here and nowhere else.

Two shapes of the same facts:

*Evaluation records* (long form) are what an evaluation produces: one per
(model, attack, norm, eps), holding the attack's robust accuracy and the count of
points it attacked successfully (:data:`EVALUATION_FIELDS`). Any attack in the
registry fits without a schema change.

*Analysis records* (long form, optional) hold what the data allows at one eps
(``{"analysis": key, "epsilon": eps, "value": number or None}``, see
:data:`ANALYSIS_FIELDS`): exact and certified accuracy, ceilings, the Bayes
classifier's robust accuracy, invalid shares. They travel with the evaluation
records and become extra keys at the end of the study rows.

*Study rows* (wide form) are the robustness-scaling study's ``results`` records:
one per (model, eps), with the model's facts and, for every attack the run has,
``<attack>_acc`` and ``<attack>_gap`` (clean minus robust accuracy). They are
derived from the evaluation records by :func:`study_rows`, so results.json keeps the
study's schema (for FGSM and PGD, byte for byte) and a new attack appears under new
keys beside the old ones. Statistics, tables, figures and validation read the
attacks a run has from its rows (:func:`record_attacks`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence

import numpy as np

from robnp.errors import DataError

__all__ = ["MODEL_FIELDS", "TRAILING_FIELDS", "EVALUATION_FIELDS", "ANALYSIS_FIELDS",
           "STUDY_ATTACKS", "is_analysis",
           "attack_key", "attack_label", "record_attacks", "record_fields", "metrics",
           "study_rows", "evaluation_problems", "record_problems", "check_records",
           "record_key", "describe_record", "plain", "sorted_records"]

#: Facts of one trained model that lead every study row, in the study's order.
MODEL_FIELDS: dict[str, type] = {
    "dataset": str,
    "seed": int,
    "hidden_width": int,
    "param_count": int,
    "epochs": int,
    "final_loss": float,
    "clean_acc": float,
}

#: Facts of the model that follow the attack columns (the study's order).
TRAILING_FIELDS: dict[str, type] = {
    "noise": float,
    "depth": int,
    "input_dim": int,
}

#: Keys of one evaluation record, beside the model's identity.
EVALUATION_FIELDS: dict[str, type] = {
    "attack": str,
    "norm": str,
    "epsilon": float,
    "robust_acc": float,
    "n_success": int,
    "n_points": int,
}

#: Keys of one analysis record; its ``value`` is a finite number or None (undefined).
ANALYSIS_FIELDS: dict[str, type] = {
    "analysis": str,
    "epsilon": float,
}


def is_analysis(record) -> bool:
    """Whether a long-form record is an analysis record (else an evaluation record)."""
    return isinstance(record, Mapping) and "analysis" in record


#: The attacks of the robustness-scaling study, in its column order.
STUDY_ATTACKS: tuple[str, ...] = ("fgsm", "pgd")


def attack_key(name: str) -> str:
    """The key prefix of an attack in study rows: ``pgd-cw`` -> ``pgd_cw``."""
    return name.replace("-", "_")


def attack_label(key: str) -> str:
    """A display name: ``fgsm`` -> ``FGSM``, ``apgd_ce`` -> ``APGD-CE``."""
    return key.upper().replace("_", "-")


def record_attacks(records) -> tuple[str, ...]:
    """The attack keys present in study rows (every ``<attack>_gap`` key names one),
    in the column order of the rows (``fgsm``, ``pgd``, then any others as the run
    listed them). Analyses that are not attacks (``exact_acc``, ...) have no gap."""
    found: list[str] = []
    for record in records:
        if not isinstance(record, Mapping):
            continue
        for key in record:
            if isinstance(key, str) and key.endswith("_gap") and key[:-4] not in found:
                found.append(key[:-4])
    return tuple(found)


def record_fields(attacks: Sequence[str]) -> dict[str, type]:
    """The full schema of a study row for these attack keys, in column order."""
    fields = dict(MODEL_FIELDS)
    fields["epsilon"] = float
    fields.update({f"{attack}_acc": float for attack in attacks})
    fields.update({f"{attack}_gap": float for attack in attacks})
    fields.update(TRAILING_FIELDS)
    return fields


def metrics(attacks: Sequence[str]) -> tuple[str, ...]:
    """Quantities averaged across seeds: clean accuracy, then every attack's robust
    accuracy, then every attack's gap."""
    return ("clean_acc", *(f"{a}_acc" for a in attacks), *(f"{a}_gap" for a in attacks))


def study_rows(model: Mapping, evaluations: Sequence[Mapping]) -> list[dict]:
    """The study's wide rows of one model from its evaluation records.

    Parameters
    ----------
    model : dict
        The model's facts: every key of :data:`MODEL_FIELDS` and
        :data:`TRAILING_FIELDS`, and any further keys (kept after those).
    evaluations : sequence of dict
        Evaluation records (:data:`EVALUATION_FIELDS`) of this model, and any
        analysis records (:data:`ANALYSIS_FIELDS`), whose values follow every
        other key of the row.

    Returns
    -------
    list of dict
        One row per eps, in the order the radii first appear, with attacks in the
        order they first appear.
    """
    attacks: list[str] = []
    by_eps: dict[float, dict[str, float]] = {}
    analyses: dict[float, dict] = {}
    for record in evaluations:
        if is_analysis(record):
            analyses.setdefault(float(record["epsilon"]), {})[record["analysis"]] = \
                record["value"]
            continue
        attack = attack_key(record["attack"])
        if attack not in attacks:
            attacks.append(attack)
        by_eps.setdefault(float(record["epsilon"]), {})[attack] = record["robust_acc"]
    rows = []
    for eps, accuracy in by_eps.items():
        row = {key: model[key] for key in MODEL_FIELDS}
        row["epsilon"] = eps
        row.update({f"{a}_acc": accuracy[a] for a in attacks})
        row.update({f"{a}_gap": model["clean_acc"] - accuracy[a] for a in attacks})
        row.update({key: value for key, value in model.items() if key not in MODEL_FIELDS})
        row.update(analyses.get(eps, {}))
        rows.append(row)
    return rows


# --------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------

def record_key(record: Mapping) -> tuple:
    """Sort key of a study row: (dataset, seed, hidden_width, epsilon)."""
    return (str(record["dataset"]), int(record["seed"]),
            int(record["hidden_width"]), float(record["epsilon"]))


def describe_record(record: Mapping) -> str:
    """Short human name of a record's run, e.g. ``circles seed=42 width=16 eps=0.1``."""
    parts = []
    for label, key in (("", "dataset"), ("seed=", "seed"),
                       ("width=", "hidden_width"), ("eps=", "epsilon")):
        if key in record:
            parts.append(f"{label}{record[key]}")
    return " ".join(parts) or "record"


def _field_problem(name: str, value, kind: type) -> str | None:
    if kind is str:
        if not isinstance(value, str) or not value:
            return f"'{name}' must be a non-empty string, got {value!r}"
        return None
    # bool is an int subclass, but True as a width is a bug, not a value.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return f"'{name}' must be a number, got {value!r}"
    if kind is int and not isinstance(value, numbers.Integral):
        return f"'{name}' must be an integer, got {value!r}"
    if not math.isfinite(value):
        return f"'{name}' must be finite, got {value!r}"
    return None


def _schema_problems(records, fields_of, what: str) -> list[str]:
    if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Sequence):
        return [f"{what} must be a list of dicts, got {type(records).__name__}"]
    problems = []
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            problems.append(f"record {index} is a {type(record).__name__}, not a dict")
            continue
        name = f"record {index} ({describe_record(record)})"
        fields = fields_of(record)
        missing = [key for key in fields if key not in record]
        if missing:
            problems.append(f"{name} lacks {', '.join(missing)}")
        for key, kind in fields.items():
            if key in record:
                problem = _field_problem(key, record[key], kind)
                if problem:
                    problems.append(f"{name}: {problem}")
    return problems


def record_problems(records) -> list[str]:
    """Every way study rows deviate from the schema.

    Parameters
    ----------
    records : sequence of dict
        Candidate study rows.

    Returns
    -------
    list of str
        One message per problem, naming the record and the field; empty when every
        row has every key of :func:`record_fields` for the attacks found in any row,
        each with a value of the right kind. Extra keys are allowed.
    """
    fields = record_fields(record_attacks(records if isinstance(records, Sequence)
                                          and not isinstance(records, (str, bytes))
                                          else []))
    return _schema_problems(records, lambda record: fields, "records")


def evaluation_problems(records) -> list[str]:
    """Every way evaluation records deviate from :data:`EVALUATION_FIELDS` (analysis
    records from :data:`ANALYSIS_FIELDS`, with a finite number or None as value)."""
    problems = _schema_problems(
        records, lambda record: ANALYSIS_FIELDS if is_analysis(record) else EVALUATION_FIELDS,
        "evaluation records")
    for index, record in enumerate(records if not problems else []):
        if is_analysis(record):
            value = record.get("value", "missing")
            if value is not None and _field_problem("value", value, float):
                problems.append(f"record {index}: value must be a finite number or null, "
                                f"got {value!r}")
            continue
        if not 0 <= record["n_success"] <= record["n_points"] or record["n_points"] < 1:
            problems.append(f"record {index}: n_success {record['n_success']} is not within "
                            f"[0, n_points = {record['n_points']}]")
    return problems


def check_records(records) -> None:
    """Raise :class:`DataError` unless every study row matches the schema."""
    problems = record_problems(records)
    if problems:
        shown = "; ".join(problems[:3])
        more = f" (and {len(problems) - 3} more problems)" if len(problems) > 3 else ""
        raise DataError(f"invalid records: {shown}{more}")


def plain(value):
    """NumPy scalars as the Python scalars json and callers expect."""
    return value.item() if isinstance(value, np.generic) else value


def sorted_records(records) -> list[dict]:
    """Copies of study rows with plain Python values, sorted by :func:`record_key`."""
    check_records(records)
    copies = [{key: plain(value) for key, value in record.items()} for record in records]
    return sorted(copies, key=record_key)
