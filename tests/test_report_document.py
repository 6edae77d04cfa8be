"""Specification of robnp.report and robnp._io: loading, writing, regenerating."""

import json
import os

import numpy as np
import pytest

from robnp import _io, report
from robnp.report import document
from study_records import study_records
from robnp.errors import DataError, RobnpError, StoreError

SEEDS = (3, 5)
WIDTHS = (8, 16, 32)
EPSILONS = (0.1, 0.3)
CONFIG = {"datasets": [{"name": "circles", "noise": 0.1}], "hidden_widths": list(WIDTHS),
          "epsilons": list(EPSILONS), "seeds": list(SEEDS), "depth": 2, "input_dim": 2,
          "pgd_steps": 10, "pgd_step_fraction": 0.25}
ENVIRONMENT = {"python": "3.11", "numpy": "2", "numba": "0.60", "scipy": "1.14",
               "platform": "Linux", "robnp": "0.1.0"}


def make_records():
    def clean(dataset, seed, width):
        return 0.9 + 0.01 * SEEDS.index(seed)

    def robust(attack, dataset, seed, width, eps):
        fgsm = clean(dataset, seed, width) - eps - 0.01 * WIDTHS.index(width)
        return fgsm - (0.02 if attack == "pgd" else 0.0)

    return study_records(("circles",), SEEDS, WIDTHS, EPSILONS, clean=clean, robust=robust,
                         final_loss=0.25, task_seconds=1.0)


def no_constants(name):
    raise AssertionError(f"JSON holds {name}")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """An output directory written once by write_report, shared read-only."""
    out_dir = tmp_path_factory.mktemp("report")
    doc = document.build_results(make_records(), CONFIG, ENVIRONMENT)
    paths = report.write_report(doc, out_dir)
    return out_dir, doc, paths


# --------------------------------------------------------------------------
# load_results
# --------------------------------------------------------------------------

def test_load_results_on_empty_directory_raises_store_error(tmp_path):
    with pytest.raises(StoreError, match="no results.json"):
        report.load_results(tmp_path)


def test_load_results_on_missing_directory_raises_store_error(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        report.load_results(tmp_path / "nowhere")


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2, 3]", "not a robnp results document"),
    ('{"results": [], "environment": {}}', "'config'"),
    ('{"results": [], "config": {}, "x": NaN}', "NaN"),
])
def test_load_results_rejects_what_is_not_a_results_document(tmp_path, content, message):
    (tmp_path / "results.json").write_text(content)
    with pytest.raises(DataError, match=message):
        report.load_results(tmp_path)


def test_a_json_error_reads_as_a_sentence(tmp_path):
    (tmp_path / "results.json").write_text('{"results": [], "config": {"a": "unterminated')
    with pytest.raises(DataError) as info:
        report.load_results(tmp_path)
    assert "at at" not in str(info.value) and "(line 1, column" in str(info.value)


def test_load_errors_are_one_line_robnp_errors(tmp_path):
    (tmp_path / "results.json").write_text("{\n\n oops")
    with pytest.raises(RobnpError) as info:
        report.load_results(tmp_path)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------
# write_report and regenerate
# --------------------------------------------------------------------------

def test_write_report_round_trips_without_nan(written):
    out_dir, doc, paths = written
    assert set(paths) == {"results", "clean_vs_robust", "robustness_gap", "param_scaling"}
    assert all(path.is_file() and path.parent == out_dir for path in paths.values())
    text = (out_dir / "results.json").read_text()
    assert json.loads(text, parse_constant=no_constants) == doc
    assert report.load_results(out_dir) == doc
    leftovers = [p.name for p in out_dir.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_regenerate_recomputes_derived_parts_from_records(written, tmp_path):
    out_dir, doc, _ = written
    stale = json.loads((out_dir / "results.json").read_text())
    stale["aggregated"] = []
    stale["dataset_summaries"] = {}
    stale["summary"] = {}
    stale["notes"] = "kept as is"
    (tmp_path / "results.json").write_text(json.dumps(stale))

    regenerated = report.regenerate(tmp_path)

    assert regenerated["aggregated"] == doc["aggregated"]
    assert regenerated["dataset_summaries"] == doc["dataset_summaries"]
    assert regenerated["summary"] == doc["summary"]
    assert regenerated["environment"] == ENVIRONMENT
    assert regenerated["notes"] == "kept as is"
    assert report.load_results(tmp_path) == regenerated
    for name in ("clean_vs_robust.png", "robustness_gap.png", "param_scaling.png"):
        assert (tmp_path / name).stat().st_size > 4096


def test_regenerate_without_results_raises(tmp_path):
    with pytest.raises(StoreError):
        report.regenerate(tmp_path)


# --------------------------------------------------------------------------
# atomic writes
# --------------------------------------------------------------------------

def test_unserializable_object_leaves_old_file_intact(tmp_path):
    path = tmp_path / "results.json"
    _io.atomic_write_json(path, {"version": 1})
    with pytest.raises(DataError):
        _io.atomic_write_json(path, {"version": 2, "bad": object()})
    assert json.loads(path.read_text()) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_non_finite_number_is_refused_and_located(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("old")
    with pytest.raises(DataError, match=r"\$\.rows\[1\]\.r"):
        _io.atomic_write_json(path, {"rows": [{"r": 0.5}, {"r": float("nan")}]})
    assert path.read_text() == "old"


def test_failure_during_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    path.write_text("old")

    def failing_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_io.os, "fsync", failing_fsync)
    with pytest.raises(StoreError, match="No space left"):
        _io.atomic_write_text(path, "new content")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_write_into_missing_directory_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        _io.atomic_write_bytes(tmp_path / "missing" / "x.bin", b"data")


def test_json_writer_accepts_numpy_values(tmp_path):
    path = _io.atomic_write_json(tmp_path / "x.json",
                                 {"a": np.float32(0.5), "b": np.int64(3), "c": np.arange(3)})
    assert json.loads(path.read_text()) == {"a": 0.5, "b": 3, "c": [0, 1, 2]}


def test_new_files_get_ordinary_permissions(tmp_path):
    path = _io.atomic_write_text(tmp_path / "x.txt", "hello")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_atomic_savefig_writes_a_png_by_extension(tmp_path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2))
    fig.subplots().plot([0, 1], [1, 0])
    path = _io.atomic_savefig(fig, tmp_path / "line.png", dpi=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["line.png"]
