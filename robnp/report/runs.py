"""The runs table of a sweep: one row per trained model, the input of
``robnp scaling fit`` (:func:`robnp.scaling.table.read_table`).

Columns, in order: ``N`` (parameters), ``D`` (training examples processed: a row
seen in two epochs counts twice), ``loss`` (the adversarial test loss: the mean
cross-entropy on the test split at the attack's points at one radius, see
``docs/scaling.md``), ``accuracy`` (the attack's robust accuracy there), ``flops``
(training FLOPs, monitors excluded), then ``dataset``, ``seed``, ``width``,
``epsilon`` and ``attack``, which say where each row comes from and which the fit
does not read. Rows have no ``run`` column: each is the final model of its own run,
and the fit groups rows of equal N into a curve.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence

from robnp._io import atomic_write_text
from robnp.errors import DataError

__all__ = ["RUNS_COLUMNS", "format_runs_table", "write_runs_table"]

RUNS_COLUMNS = ("N", "D", "loss", "accuracy", "flops", "dataset", "seed", "width",
                "epsilon", "attack")


def format_runs_table(rows: Sequence[Mapping]) -> str:
    """The rows as CSV text with a header (:data:`RUNS_COLUMNS`); floats written
    with ``repr``, so they read back exactly."""
    if not rows:
        raise DataError("the runs table has no rows")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(RUNS_COLUMNS)
    for row in rows:
        missing = [name for name in RUNS_COLUMNS if name not in row]
        if missing:
            raise DataError(f"runs table row {dict(row)!r} lacks {', '.join(missing)}")
        writer.writerow([repr(row[name]) if isinstance(row[name], float) else row[name]
                         for name in RUNS_COLUMNS])
    return buffer.getvalue()


def write_runs_table(rows: Sequence[Mapping], path):
    """Write :func:`format_runs_table` to ``path`` atomically; the path."""
    return atomic_write_text(path, format_runs_table(rows))
