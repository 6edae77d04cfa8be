"""A crash-safe store of finished tasks: one SQLite file in the output directory.

Each finished task is committed in its own transaction the moment it arrives
(``synchronous=FULL``, rollback journal), so killing the process at any instant
leaves every committed task intact and nothing half-written. The store remembers
the fingerprint of the configuration it was created for and refuses to mix in
results of another.

An existing file is checked before anything is written to it: a file that is not
an SQLite database, a database with other tables, a store whose configuration is
missing or a stored task that cannot be read is a :class:`~robnp.errors.StoreError`,
and the file is left as it was. A store holding no finished task yet (a first run
that failed before its first task finished) locks nothing: a new run takes it over.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Mapping

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; concurrent sweeps are not detected
    fcntl = None

from .._io import ensure_writable_dir
from .._version import __version__
from ..errors import StoreError
from .config import StudyConfig, format_setting
from .tasks import TaskResult

__all__ = ["TaskStore", "STORE_NAME", "read_store", "study_config"]

STORE_NAME = "tasks.sqlite"

# table -> its columns, in order; a database with any other table is not a store.
_SCHEMA = {"meta": ("key", "value"), "tasks": ("key", "result")}
_REQUIRED_META = ("fingerprint", "config")


def _tables(connection: sqlite3.Connection, path: Path) -> dict[str, tuple[str, ...]]:
    """Tables of the database and their columns; a StoreError if it is not SQLite."""
    try:
        names = [row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite!_%' "
            "ESCAPE '!'")]
        return {name: tuple(row[1] for row in connection.execute(
                    "SELECT * FROM pragma_table_info(?)", (name,)))
                for name in names}
    except sqlite3.OperationalError as exc:  # locked by another process, unreadable
        raise StoreError(f"cannot read {path}: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a robnp task store ({exc}); move it away or "
                         f"choose another --out directory") from None


def _read(connection: sqlite3.Connection, path: Path, query: str) -> list[tuple]:
    """All rows of ``query``; a StoreError if the database cannot be read."""
    try:
        return connection.execute(query).fetchall()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a readable robnp task store: {exc}") from None


def _cause(exc: BaseException) -> str:
    """The reason an I/O call failed, without Python's decoration."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _result_type(config_type):
    """The class of the results a store of ``config_type`` holds: the configuration's
    ``result_type`` (the scaling study's), else the sweep's :class:`TaskResult`."""
    return getattr(config_type, "result_type", TaskResult)


def _parse_result(path: Path, key: str, text, result_type=TaskResult):
    try:
        result = result_type.from_json(text)
    except (ValueError, TypeError) as exc:
        if _earlier_format(text):
            raise StoreError(
                f"{path} was written by an earlier robnp, before evaluation records were "
                f"stored per attack; its tasks cannot be resumed: run the study into "
                f"another --out directory (robnp report still reads that directory's "
                f"results.json)") from None
        raise StoreError(f"{path} is damaged: stored task {key!r} is unreadable ({exc}); "
                         f"move the file away or choose another --out directory") from None
    if result.key != key:
        raise StoreError(f"{path} is damaged: stored task {key!r} holds the result of "
                         f"task {result.key!r}; move the file away or choose another "
                         f"--out directory")
    return result


def _earlier_format(text) -> bool:
    """A task stored by a robnp that kept the study's wide rows (``records``)
    instead of long-form evaluation records."""
    try:
        data = json.loads(text)
    except (ValueError, TypeError):
        return False
    return isinstance(data, dict) and set(data) == {"key", "records", "epochs", "final_loss",
                                                    "clean_acc", "seconds"}


def _stored_meta(connection: sqlite3.Connection, path: Path) -> tuple[dict, int, dict | None]:
    """``(meta records, finished task count, stored configuration)`` of a store,
    read without writing; a StoreError if the file is not a readable store."""
    tables = _tables(connection, path)
    if tables and tables != _SCHEMA:
        found = "; ".join(f"{name}({', '.join(columns)})"
                          for name, columns in sorted(tables.items()))
        raise StoreError(
            f"{path} is not a robnp task store (it holds {found}, not meta(key, value); "
            f"tasks(key, result)); move it away or choose another --out directory")
    stored = dict(_read(connection, path, "SELECT key, value FROM meta")) if tables else {}
    n_done = _read(connection, path, "SELECT COUNT(*) FROM tasks")[0][0] if tables else 0
    previous = None
    if stored or n_done:
        missing = [name for name in _REQUIRED_META if not isinstance(stored.get(name), str)]
        if missing:
            raise StoreError(
                f"{path} is damaged: its {' and '.join(missing)} record is missing; "
                f"move the file away or choose another --out directory")
        try:
            previous = json.loads(stored["config"])
        except ValueError:
            previous = None
        if not isinstance(previous, dict):
            raise StoreError(
                f"{path} is damaged: its stored configuration is unreadable; move the "
                f"file away or choose another --out directory")
    return stored, n_done, previous


def read_store(out_dir, *, with_results: bool = True, config_type=StudyConfig
               ) -> tuple[StudyConfig, dict[str, TaskResult]] | None:
    """The configuration and finished tasks stored in ``out_dir``, or None when it
    holds no store with a finished task. Reads only; a file that is not a readable
    store is a :class:`~robnp.errors.StoreError` and is left as it was. With
    ``with_results=False`` the tasks are not read (an empty dict is returned).
    ``config_type`` is the kind of study expected (the sweep's :class:`StudyConfig`,
    or the scaling study's configuration, :mod:`robnp.scaling.study`)."""
    path = Path(out_dir) / STORE_NAME
    if not path.is_file():
        return None
    try:
        connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot read {path}: {exc}") from None
    try:
        _, n_done, previous = _stored_meta(connection, path)
        if not n_done:
            return None
        try:
            config = config_type.from_dict(previous)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StoreError(f"{path}: its stored configuration is not one this robnp "
                             f"version can read ({exc})") from None
        result_type = _result_type(config_type)
        results = {key: _parse_result(path, key, text, result_type) for key, text in
                   _read(connection, path, "SELECT key, result FROM tasks")
                   } if with_results else {}
    finally:
        connection.close()
    return config, results


def study_config(values: Mapping[str, Any], out_dir=None, *, resume: bool = False,
                 source: str = "options",
                 option_names: Mapping[str, str] | None = None) -> StudyConfig:
    """The configuration a run into ``out_dir`` takes from the settings ``values``
    (field names as keys, as :meth:`StudyConfig.from_mapping` takes them).

    Without ``resume``, or when ``out_dir`` holds no store with a finished task, it
    is ``StudyConfig.from_mapping(values)``. With ``resume`` it is the stored
    configuration, and every setting given must agree with it: otherwise a
    :class:`~robnp.errors.StoreError` names each disagreeing setting (as
    ``option_names`` spells it, e.g. ``{"seeds": "--seeds"}``; by default its name
    with dashes), the value given and the stored one.
    """
    if resume and (out_dir is None or not (Path(out_dir) / STORE_NAME).is_file()):
        raise StoreError(f"nothing to resume: {out_dir} holds no {STORE_NAME}; run without "
                         f"--resume to start the study there")
    found = read_store(out_dir, with_results=False) if resume else None
    if found is None:
        return StudyConfig.from_mapping(values, source=source)
    stored = found[0]
    given = StudyConfig.from_mapping(
        {**{name: getattr(stored, name) for name in StudyConfig.field_names()}, **values},
        source=source)
    names = option_names or {}
    differences = [
        f"{names.get(name, name.replace('_', '-'))} {format_setting(getattr(given, name))} "
        f"differs from the stored {name.replace('_', '-')} "
        f"{format_setting(getattr(stored, name))}"
        for name in given.differences(stored)]
    if differences:
        raise StoreError(f"{out_dir} holds a different configuration: "
                         f"{'; '.join(differences)}; drop those options to continue it, "
                         f"or choose another --out directory")
    return stored


class TaskStore:
    """Finished tasks of one study configuration, keyed by :attr:`Task.key`.

    Use as a context manager; :meth:`open` creates or checks the store.
    """

    def __init__(self, connection: sqlite3.Connection, path: Path, config: StudyConfig,
                 lock: int | None = None):
        self._db = connection
        self._lock = lock
        self.path = path
        self.config = config

    @classmethod
    def open(cls, out_dir, config: StudyConfig, *, resume: bool) -> "TaskStore":
        """Open the store in ``out_dir`` for ``config``.

        A new store is created when none exists, and an existing one holding no
        finished task is taken over. One holding finished tasks is reused only
        with ``resume=True`` and only for the same configuration. Otherwise, and
        when the file is not a readable store, a :class:`~robnp.errors.StoreError`
        explains what to do, and nothing stored is touched.
        """
        out_dir = Path(out_dir)
        path = out_dir / STORE_NAME
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create results store in {out_dir}: {exc}") from None
        lock = _lock_directory(out_dir)
        try:
            try:
                existed = path.exists()
                if existed and not path.is_file():
                    raise StoreError(f"{path} is not a file; choose another --out directory")
                connection = sqlite3.connect(path, timeout=30, isolation_level=None)
            except (OSError, sqlite3.Error) as exc:
                raise StoreError(f"cannot create results store in {out_dir}: {exc}") from None
            try:
                cls._check(connection, path, out_dir, config, resume)
            except BaseException:
                connection.close()
                if not existed:  # the empty file connecting created, refused before use
                    path.unlink(missing_ok=True)
                raise
        except BaseException:
            _unlock(lock)
            raise
        return cls(connection, path, config, lock)

    @staticmethod
    def _check(connection, path: Path, out_dir: Path, config: StudyConfig, resume: bool):
        """Check an existing store (reads only), then create or take it over if it
        holds no finished task."""
        stored, n_done, previous = _stored_meta(connection, path)
        connection.execute("PRAGMA synchronous=FULL")
        if n_done:
            if not resume:
                raise StoreError(
                    f"{out_dir} already holds a study ({n_done} task(s) stored); pass "
                    f"--resume to continue it, or choose another --out directory")
            if stored["fingerprint"] != config.fingerprint():
                raise StoreError(
                    f"{out_dir} holds results of a different configuration (differs in: "
                    f"{', '.join(_differences(config, previous)) or 'settings'}); "
                    f"use another --out directory")
            for key, text in _read(connection, path, "SELECT key, result FROM tasks"):
                _parse_result(path, key, text, _result_type(type(config)))
            return
        # No finished task: nothing to lose, so (re)write the configuration.
        if (out_dir / "results.json").exists():
            raise StoreError(
                f"{out_dir} already holds a results.json without stored tasks; "
                f"choose another --out directory rather than overwrite it")
        try:
            with connection:
                connection.execute("BEGIN")
                for name, columns in _SCHEMA.items():
                    connection.execute(
                        f"CREATE TABLE IF NOT EXISTS {name} "
                        f"({columns[0]} TEXT PRIMARY KEY, {columns[1]} TEXT NOT NULL)")
                connection.execute("DELETE FROM meta")
                connection.executemany(
                    "INSERT INTO meta VALUES (?, ?)",
                    [("fingerprint", config.fingerprint()),
                     ("config", json.dumps(config.to_dict())),
                     ("robnp_version", __version__)])
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write results store {path}: {exc}") from None

    def done_keys(self) -> set[str]:
        return {row[0] for row in _read(self._db, self.path, "SELECT key FROM tasks")}

    def put(self, result: TaskResult) -> None:
        """Store one finished task durably (committed before returning)."""
        text = result.to_json()
        try:
            with self._db:
                self._db.execute("BEGIN")
                self._db.execute("INSERT OR REPLACE INTO tasks VALUES (?, ?)",
                                 (result.key, text))
        except sqlite3.Error as exc:
            # The transaction is rolled back: every task committed before is intact.
            raise StoreError(
                f"cannot write results store {self.path}: {_cause(exc)}; the tasks "
                f"stored before are intact, free the space or fix the directory and "
                f"rerun with --resume") from None

    def results(self) -> dict[str, TaskResult]:
        result_type = _result_type(type(self.config))
        return {key: _parse_result(self.path, key, text, result_type)
                for key, text in _read(self._db, self.path, "SELECT key, result FROM tasks")}

    def close(self) -> None:
        self._db.close()
        _unlock(self._lock)
        self._lock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _lock_directory(out_dir: Path) -> int | None:
    """Hold an exclusive advisory lock on ``out_dir`` for as long as its store is
    open, so that a second sweep cannot take over (or add to) a store whose run is
    still going, even before that run has finished its first task. The operating
    system drops the lock when the process ends, however it ends."""
    if fcntl is None:
        return None
    try:
        fd = os.open(out_dir, os.O_RDONLY)
    except OSError:
        return None  # a directory that cannot be opened for reading: no lock, as on Windows
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreError(f"{out_dir} is in use by another robnp sweep; wait for it to end "
                         f"or choose another --out directory") from None
    except OSError:  # a file system without locks: run unlocked, as on Windows
        os.close(fd)
        return None
    return fd


def _unlock(lock: int | None) -> None:
    if lock is not None:
        os.close(lock)  # closing the descriptor releases its lock


def _differences(config: StudyConfig, previous: dict) -> list[str]:
    """Settings in which ``config`` differs from a stored configuration; empty when
    the stored one cannot be read as a configuration of this robnp version."""
    try:
        return config.differences(type(config).from_dict(previous))
    except (ValueError, KeyError, TypeError, AttributeError):
        return []


def check_writable(out_dir) -> None:
    """A clear error now, rather than after hours of training, if ``out_dir`` cannot
    be created or written."""
    ensure_writable_dir(out_dir)
