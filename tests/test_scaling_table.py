"""Input tables of the scaling analysis: formats, defaults and every bad input."""

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from robnp.errors import ConfigError, DataError
from robnp.scaling import DEFAULT_FLOPS_PER_ND, make_table, read_table
from robnp._io import atomic_write_text, ensure_writable_dir as ensure_out_dir

GOOD_ROWS = [
    {"N": 100, "D": 1000, "loss": 1.5, "quality": 0.5, "run": "a", "accuracy": 0.4},
    {"N": 100, "D": 2000, "loss": 1.3, "quality": 0.5, "run": "a", "accuracy": 0.45},
    {"N": 400, "D": 1000, "loss": 1.2, "quality": "inf", "run": "b", "accuracy": 0.5},
]


def write_csv(path, rows, columns=None):
    columns = columns or list(rows[0])
    lines = [",".join(columns)] + [",".join(str(r.get(c, "")) for c in columns) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_and_json_give_the_same_table(tmp_path):
    from_csv = read_table(write_csv(tmp_path / "t.csv", GOOD_ROWS))
    (tmp_path / "rows.json").write_text(json.dumps(GOOD_ROWS))
    columns = {k: [r[k] for r in GOOD_ROWS] for k in GOOD_ROWS[0]}
    (tmp_path / "cols.json").write_text(json.dumps(columns))
    (tmp_path / "wrapped.json").write_text(json.dumps({"rows": GOOD_ROWS}))
    for name in ("rows.json", "cols.json", "wrapped.json"):
        other = read_table(tmp_path / name)
        for col in ("N", "D", "loss", "quality", "flops", "accuracy"):
            np.testing.assert_array_equal(getattr(other, col), getattr(from_csv, col))
        assert list(other.run) == ["a", "a", "b"]
    assert from_csv.quality[2] == math.inf
    assert from_csv.n_runs == 2


def test_defaults_without_optional_columns(tmp_path):
    rows = [{k: r[k] for k in ("N", "D", "loss")} for r in GOOD_ROWS]
    t = read_table(write_csv(tmp_path / "t.csv", rows))
    assert np.all(np.isinf(t.quality)) and not t.has_quality
    assert t.flops_per_nd == DEFAULT_FLOPS_PER_ND and t.flops_per_nd_source == "default"
    np.testing.assert_allclose(t.flops, DEFAULT_FLOPS_PER_ND * t.N * t.D)
    assert t.n_runs == t.n_rows  # every row its own run
    assert t.accuracy is None
    t7 = read_table(tmp_path / "t.csv", flops_per_nd=7822)
    np.testing.assert_allclose(t7.flops, 7822 * t7.N * t7.D)
    assert t7.flops_per_nd_source == "given"


def test_flops_column_gives_inferred_k(tmp_path):
    rows = [{"N": r["N"], "D": r["D"], "loss": r["loss"], "flops": 10 * r["N"] * r["D"]} for r in GOOD_ROWS]
    t = read_table(write_csv(tmp_path / "t.csv", rows))
    assert t.flops_per_nd == pytest.approx(10.0)
    assert t.flops_per_nd_source == "inferred"
    assert t.flops_relative_error() == pytest.approx(0.0, abs=1e-12)


def test_fid_column_becomes_quality(tmp_path):
    rows = [{"N": 1, "D": 2, "loss": 1, "fid": 0}, {"N": 1, "D": 3, "loss": 1, "fid": 4}]
    t = read_table(write_csv(tmp_path / "t.csv", rows))
    assert t.quality[0] == math.inf and t.quality[1] == pytest.approx(0.25)


def test_curves_group_by_model_size_without_run_column():
    t = make_table([10, 10, 20, 20], [1, 2, 1, 2], [1, 1, 1, 1])
    codes = t.curve_codes()
    assert codes[0] == codes[1] and codes[2] == codes[3] and codes[0] != codes[2]


@pytest.mark.parametrize("column", ["N", "D", "loss"])
def test_missing_required_column(tmp_path, column):
    rows = [{k: v for k, v in r.items() if k != column} for r in GOOD_ROWS]
    with pytest.raises(DataError, match=f"missing required column.*'{column}'"):
        read_table(write_csv(tmp_path / "t.csv", rows))


@pytest.mark.parametrize("column,value,pattern", [
    ("N", 0, r"column 'N': row 2 has value 0.0; allowed range is \(0, inf\)"),
    ("D", -5, r"column 'D': row 2 has value -5.0"),
    ("loss", 0, r"column 'loss': row 2"),
    ("flops", -1, r"column 'flops': row 2"),
    ("quality", 0, r"column 'quality': row 2 has value 0.0; allowed range is \(0, inf\]"),
    ("N", "nan", r"column 'N': row 2 is NaN"),
    ("loss", "", r"column 'loss': row 2 is NaN"),
    ("D", "inf", r"column 'D': row 2 has value inf"),
    ("loss", "abc", r"column 'loss': value 'abc' is not a number"),
])
def test_bad_values_name_column_row_and_range(tmp_path, column, value, pattern):
    rows = [dict(r, flops=6 * r["N"] * r["D"]) for r in GOOD_ROWS]
    rows[1][column] = value
    with pytest.raises(DataError, match=pattern):
        read_table(write_csv(tmp_path / "t.csv", rows))


def test_bad_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_table(tmp_path / "missing.csv")
    (tmp_path / "t.txt").write_text("N,D,loss\n1,2,3\n")
    with pytest.raises(DataError, match="unknown table format"):
        read_table(tmp_path / "t.txt")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_table(tmp_path / "bad.json")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        read_table(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("N,D,loss\n")
    with pytest.raises(DataError, match="no rows"):
        read_table(tmp_path / "header.csv")
    (tmp_path / "ragged.json").write_text(json.dumps({"N": [1, 2], "D": [1], "loss": [1, 2]}))
    with pytest.raises(DataError, match="different lengths"):
        read_table(tmp_path / "ragged.json")


def test_bad_flops_per_nd_and_empty_run():
    with pytest.raises(ConfigError, match="flops_per_nd must be finite and > 0, got 0"):
        make_table([1], [1], [1], flops_per_nd=0)
    with pytest.raises(ConfigError, match="flops_per_nd"):
        make_table([1], [1], [1], flops_per_nd=float("nan"))
    with pytest.raises(DataError, match="column 'run': row 2 is empty"):
        make_table([1, 2], [1, 2], [1, 2], run=["a", " "])
    with pytest.raises(DataError, match="column 'D' has 1 rows, column 'N' has 2"):
        make_table([1, 2], [1], [1, 2])


def test_table_is_immutable():
    t = make_table([1, 2], [1, 2], [1, 2])
    with pytest.raises(ValueError):
        t.N[0] = 5


def test_atomic_write_and_out_dir(tmp_path):
    out = ensure_out_dir(tmp_path / "a" / "b")
    assert out.is_dir()
    target = atomic_write_text(out / "x.json", "{}\n")
    assert target.read_text() == "{}\n"
    assert [p.name for p in out.iterdir()] == ["x.json"]  # no temporary left behind
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="not a directory"):
        ensure_out_dir(tmp_path / "file")


def test_unwritable_out_dir(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    # chmod does not stop root, so the failing write is also simulated.
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    try:
        with pytest.raises(ConfigError, match="is not writable: Permission denied"):
            ensure_out_dir(locked)
    finally:
        locked.chmod(0o700)


def test_out_dir_under_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="cannot create output directory"):
        ensure_out_dir(tmp_path / "file" / "sub")


def test_scaling_needs_neither_numba_nor_matplotlib():
    """robnp.scaling uses only robnp.errors from the rest of robnp, and no numba.

    The parent package is replaced by a bare namespace so that whatever
    ``robnp/__init__.py`` imports does not count; numba and matplotlib are
    made unimportable.
    """
    root = Path(__file__).resolve().parents[1]
    code = textwrap.dedent(f"""
        import sys, types
        sys.modules["numba"] = None
        sys.modules["matplotlib"] = None
        pkg = types.ModuleType("robnp")
        pkg.__path__ = [{str(root / 'robnp')!r}]
        sys.modules["robnp"] = pkg
        import numpy as np
        import robnp.scaling as s
        t = s.make_table(np.repeat([1e2, 1e3, 1e4], 4), np.tile([1e3, 1e4, 1e5, 1e6], 3),
                         np.linspace(2, 1, 12))
        s.fit_approach2(t, s.FitConfig(grid="small"))
        loaded = sorted(m for m in sys.modules if m.startswith("robnp.") and not m.startswith("robnp.scaling"))
        print(loaded)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['robnp.errors']"
