"""The input of the scaling analysis: one row per training run or checkpoint.

A table has the columns

``N``
    parameter count of the model (> 0);
``D``
    number of training samples seen (> 0);
``loss``
    the loss being modelled, for robnp the adversarial test loss (> 0);
``quality`` (optional)
    data quality, higher is better; the paper uses Quality = 1/FID.  ``inf``
    means perfect data.  Without the column every row has infinite quality.
    A column ``fid`` may be given instead and is converted to 1/FID;
``flops`` (optional)
    training FLOPs (> 0).  Without it FLOPs = k N D with k = ``flops_per_nd``;
``run`` (optional)
    a label shared by the checkpoints of one run.  Without it every row is its
    own run;
``accuracy`` (optional)
    accuracy paired with ``loss``, used for the loss-to-accuracy map;
``train_fraction`` (optional)
    where in its run a checkpoint was taken, in (0, 1]. With it, the parametric
    fits (Approaches 2 and 3) use only the rows at 1, the end of each run's
    schedule, and Approach 1 every row (its training curves); without it every row
    counts as a finished run.

Tables come from CSV or JSON files (:func:`read_table`) or from arrays
(:func:`make_table`).  Both return a validated, immutable :class:`RunTable`.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from robnp.errors import ConfigError, DataError

#: FLOPs per parameter per training sample when the table gives none: the
#: forward + backward estimate 6ND of Kaplan et al. (2020) and Hoffmann et al.
#: (2022).  Adversarial training costs more (the paper measures k = 7822 for its
#: WideResNets with 10-step PGD), so pass the value that fits your runs.
DEFAULT_FLOPS_PER_ND = 6.0

REQUIRED_COLUMNS = ("N", "D", "loss")
OPTIONAL_COLUMNS = ("quality", "fid", "flops", "run", "accuracy", "train_fraction")


def _as_positive(name: str, values, *, allow_inf: bool = False) -> np.ndarray:
    """Coerce a column to float64 and check that every entry is positive."""
    try:
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        bad = _first_unparsable(values)
        raise DataError(f"column {name!r}: value {bad!r} is not a number") from None
    nan = np.flatnonzero(np.isnan(arr))
    if nan.size:
        raise DataError(f"column {name!r}: row {nan[0] + 1} is NaN (missing or not a number)")
    bad = arr <= 0 if allow_inf else ~(np.isfinite(arr) & (arr > 0))
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        allowed = "(0, inf]" if allow_inf else "(0, inf)"
        raise DataError(f"column {name!r}: row {i + 1} has value {float(arr[i])!r}; "
                        f"allowed range is {allowed}")
    return arr


def _first_unparsable(values):
    for v in values:
        try:
            float(v)
        except (TypeError, ValueError):
            return v
    return values


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr = np.ascontiguousarray(arr)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True)
class RunTable:
    """A validated table of runs.

    All arrays have shape ``(n_rows,)`` and are read-only; numeric ones are
    float64.

    Attributes
    ----------
    N, D, loss, flops, quality : ndarray of shape (n_rows,)
        Parameters, samples seen, loss, training FLOPs and data quality
        (``inf`` for perfect data).
    run : ndarray of shape (n_rows,), dtype str
        Run labels; ``row-<i>`` when the table has no ``run`` column.
    accuracy : ndarray of shape (n_rows,) or None
        Accuracy paired with ``loss``, if the table has that column.
    flops_per_nd : float
        k in FLOPs = k N D, used to turn a FLOPs budget into N and D.
    flops_per_nd_source : {"given", "inferred", "default"}
        Where ``flops_per_nd`` came from: the caller, the ``flops`` column
        (geometric mean of flops / (N D)), or :data:`DEFAULT_FLOPS_PER_ND`.
    has_quality, has_flops, has_run : bool
        Which optional columns the table had.
    source : str or None
        File the table was read from.
    """

    N: np.ndarray
    D: np.ndarray
    loss: np.ndarray
    flops: np.ndarray
    quality: np.ndarray
    run: np.ndarray
    accuracy: np.ndarray | None
    flops_per_nd: float
    flops_per_nd_source: str
    has_quality: bool
    has_flops: bool
    has_run: bool
    source: str | None = field(default=None, compare=False)
    train_fraction: np.ndarray | None = None

    def final(self) -> "RunTable":
        """The rows that end their run (``train_fraction`` 1), or every row when the
        table has no such column: what the parametric fits take."""
        if self.train_fraction is None:
            return self
        return self.take(self.train_fraction == 1.0)

    @property
    def n_rows(self) -> int:
        return int(self.N.shape[0])

    def run_codes(self) -> np.ndarray:
        """Integer code of each row's run, shape (n_rows,), codes 0..n_runs-1."""
        _, codes = np.unique(self.run, return_inverse=True)
        return codes.reshape(-1)

    @property
    def n_runs(self) -> int:
        return int(np.unique(self.run).size)

    def curve_codes(self) -> np.ndarray:
        """Integer code of the training curve each row belongs to, shape (n_rows,).

        A curve is a run when the table has a ``run`` column.  Without one,
        rows with the same N and quality form a curve (loss against FLOPs at a
        fixed model size), which is the natural reading of a table of final
        losses.
        """
        if self.has_run:
            return self.run_codes()
        keys = np.stack([self.N, np.where(np.isinf(self.quality), -1.0, self.quality)], axis=1)
        _, codes = np.unique(keys, axis=0, return_inverse=True)
        return codes.reshape(-1)

    def quality_levels(self) -> np.ndarray:
        """Distinct quality values, ascending (``inf`` last), shape (n_levels,)."""
        return np.unique(self.quality)

    def reference_quality(self) -> float:
        """The quality results are reported at by default: the highest finite
        level, or ``inf`` when every row has infinite quality."""
        levels = self.quality_levels()
        finite = levels[np.isfinite(levels)]
        return float(finite.max()) if finite.size else math.inf

    def take(self, rows) -> "RunTable":
        """A table made of the given rows (a boolean mask or integer indices)."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        acc = None if self.accuracy is None else _readonly(self.accuracy[rows])
        fraction = None if self.train_fraction is None else _readonly(self.train_fraction[rows])
        return replace(self, N=_readonly(self.N[rows]), D=_readonly(self.D[rows]),
                       loss=_readonly(self.loss[rows]), flops=_readonly(self.flops[rows]),
                       quality=_readonly(self.quality[rows]), run=_readonly(self.run[rows]),
                       accuracy=acc, train_fraction=fraction)

    def flops_relative_error(self) -> float:
        """Largest |k N D / flops - 1| over the rows (0 when FLOPs were computed)."""
        if not self.has_flops:
            return 0.0
        return float(np.max(np.abs(self.flops_per_nd * self.N * self.D / self.flops - 1.0)))


def make_table(N, D, loss, *, quality=None, flops=None, run=None, accuracy=None,
               flops_per_nd=None, source=None, train_fraction=None) -> RunTable:
    """Validate columns given as arrays and build a :class:`RunTable`.

    Parameters
    ----------
    N, D, loss : array_like of shape (n_rows,)
        Parameters, training samples seen, loss; all finite and > 0.
    quality : array_like of shape (n_rows,), optional
        Data quality (> 0, ``inf`` allowed).  Default: ``inf`` for every row.
    flops : array_like of shape (n_rows,), optional
        Training FLOPs (finite, > 0).  Default: ``flops_per_nd * N * D``.
    run : array_like of shape (n_rows,), optional
        Run labels (converted to str).  Default: each row is its own run.
    accuracy : array_like of shape (n_rows,), optional
        Finite accuracies paired with ``loss``.
    flops_per_nd : float, optional
        k in FLOPs = k N D.  Default: inferred from ``flops`` when given,
        else :data:`DEFAULT_FLOPS_PER_ND`.
    train_fraction : array_like of shape (n_rows,), optional
        Where in its run each row was taken, in (0, 1].
    source : str, optional
        Where the table came from (for messages and the report).

    Returns
    -------
    RunTable

    Raises
    ------
    DataError
        For NaN, non-positive or non-numeric values, or columns of different
        lengths.
    ConfigError
        For a non-positive or non-finite ``flops_per_nd``.
    """
    N = _as_positive("N", N)
    n_rows = N.shape[0]
    if n_rows == 0:
        raise DataError("the table has no rows")
    columns = {"N": N, "D": _as_positive("D", D), "loss": _as_positive("loss", loss)}
    if quality is not None:
        columns["quality"] = _as_positive("quality", quality, allow_inf=True)
    if flops is not None:
        columns["flops"] = _as_positive("flops", flops)
    if accuracy is not None:
        try:
            acc = np.asarray(accuracy, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise DataError(f"column 'accuracy': value {_first_unparsable(accuracy)!r} "
                            "is not a number") from None
        if not np.all(np.isfinite(acc)):
            i = int(np.flatnonzero(~np.isfinite(acc))[0])
            raise DataError(f"column 'accuracy': row {i + 1} has value {float(acc[i])!r}; must be finite")
        columns["accuracy"] = acc
    if train_fraction is not None:
        fraction = _as_positive("train_fraction", train_fraction)
        above = np.flatnonzero(fraction > 1)
        if above.size:
            raise DataError(f"column 'train_fraction': row {above[0] + 1} has value "
                            f"{float(fraction[above[0]])!r}; allowed range is (0, 1]")
        columns["train_fraction"] = fraction
    if run is not None:
        runs = np.asarray([str(r).strip() for r in np.asarray(run, dtype=object).reshape(-1)])
        empty = np.flatnonzero(runs == "")
        if empty.size:
            raise DataError(f"column 'run': row {empty[0] + 1} is empty")
        columns["run"] = runs
    for name, values in columns.items():
        if values.shape[0] != n_rows:
            raise DataError(f"column {name!r} has {values.shape[0]} rows, column 'N' has {n_rows}")

    if flops_per_nd is not None:
        k = float(flops_per_nd)
        if not (math.isfinite(k) and k > 0):
            raise ConfigError(f"flops_per_nd must be finite and > 0, got {flops_per_nd!r}")
        k_source = "given"
    elif flops is not None:
        # Geometric mean: the natural centre of a ratio that spans decades.
        k = float(np.exp(np.mean(np.log(columns["flops"] / (N * columns["D"])))))
        k_source = "inferred"
    else:
        k, k_source = DEFAULT_FLOPS_PER_ND, "default"

    flops_arr = columns["flops"] if flops is not None else k * N * columns["D"]
    quality_arr = columns.get("quality", np.full(n_rows, np.inf))
    run_arr = columns.get("run", np.asarray([f"row-{i}" for i in range(n_rows)]))
    acc_arr = columns.get("accuracy")
    return RunTable(
        N=_readonly(N), D=_readonly(columns["D"]), loss=_readonly(columns["loss"]),
        flops=_readonly(flops_arr), quality=_readonly(quality_arr), run=_readonly(run_arr),
        accuracy=None if acc_arr is None else _readonly(acc_arr),
        flops_per_nd=k, flops_per_nd_source=k_source,
        has_quality=quality is not None, has_flops=flops is not None, has_run=run is not None,
        source=source,
        train_fraction=(None if train_fraction is None
                        else _readonly(columns["train_fraction"])),
    )


def _records_from_csv(path: Path) -> tuple[list[str], list[dict]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None:
            raise DataError(f"{path}: the file is empty (no header row)")
        header = [name.strip() for name in reader.fieldnames]
        rows = []
        for row in reader:
            if None in row:
                raise DataError(f"{path}: line {reader.line_num} has more fields than the header")
            rows.append({k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items()})
    return header, rows


def _records_from_json(path: Path) -> tuple[list[str], list[dict]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg}; line {exc.lineno}, "
                        f"column {exc.colno})") from None
    if isinstance(doc, dict) and "rows" in doc:
        doc = doc["rows"]
    if isinstance(doc, dict):
        # Column-oriented: {"N": [...], "D": [...], ...}
        if not all(isinstance(v, list) for v in doc.values()):
            raise DataError(f"{path}: a JSON object must map column names to lists")
        lengths = {len(v) for v in doc.values()}
        if len(lengths) > 1:
            raise DataError(f"{path}: JSON columns have different lengths {sorted(lengths)}")
        n = lengths.pop() if lengths else 0
        return list(doc), [{k: doc[k][i] for k in doc} for i in range(n)]
    if isinstance(doc, list):
        if not all(isinstance(r, dict) for r in doc):
            raise DataError(f"{path}: a JSON list must contain one object per row")
        header = []
        for r in doc:
            header.extend(k for k in r if k not in header)
        return header, doc
    raise DataError(f"{path}: expected a list of rows or an object of columns")


def _json_number(value):
    """Map JSON's spellings of missing or infinite values to floats."""
    if value is None or value == "":
        return math.nan
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def read_table(path, *, flops_per_nd=None) -> RunTable:
    """Read a CSV or JSON table of runs.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.csv`` file with a header row, or a ``.json`` file holding a list
        of row objects, an object of column lists, or ``{"rows": [...]}``.
    flops_per_nd : float, optional
        k in FLOPs = k N D (see :func:`make_table`).

    Returns
    -------
    RunTable

    Raises
    ------
    DataError
        If the file is missing, unreadable, of an unknown type, lacks a
        required column, or holds invalid values.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise DataError(f"{path}: unknown table format {suffix or '(none)'!r}; use .csv or .json")
    try:
        header, records = (_records_from_csv if suffix == ".csv" else _records_from_json)(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the file ({exc})") from None

    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DataError(f"{path}: missing required column(s) {', '.join(map(repr, missing))}; "
                        f"found {', '.join(map(repr, header)) or 'none'}")
    if not records:
        raise DataError(f"{path}: the table has no rows")

    def column(name):
        values = [_json_number(r.get(name, "")) for r in records]
        return [math.nan if v == "" else v for v in values]

    quality = None
    if "quality" in header:
        quality = column("quality")
    elif "fid" in header:
        fid = np.asarray(column("fid"), dtype=object)
        try:
            fid = fid.astype(np.float64)
        except (TypeError, ValueError):
            raise DataError(f"column 'fid': value {_first_unparsable(fid)!r} is not a number") from None
        bad = np.flatnonzero(np.isnan(fid) | (fid < 0) | np.isinf(fid))
        if bad.size:
            raise DataError(f"column 'fid': row {bad[0] + 1} has value {float(fid[bad[0]])!r}; "
                            "allowed range is [0, inf)")
        with np.errstate(divide="ignore"):
            quality = 1.0 / fid  # FID = 0 is perfect data: infinite quality
    run = None
    if "run" in header:
        run = [r.get("run", "") for r in records]
        run = ["" if v is None else v for v in run]
    return make_table(
        column("N"), column("D"), column("loss"),
        quality=quality,
        flops=column("flops") if "flops" in header else None,
        run=run,
        accuracy=column("accuracy") if "accuracy" in header else None,
        flops_per_nd=flops_per_nd,
        source=str(path),
        train_fraction=column("train_fraction") if "train_fraction" in header else None,
    )
