"""A crash-safe store of finished tasks: one SQLite file in the output directory.

Each finished task is committed in its own transaction the moment it arrives
(``synchronous=FULL``, rollback journal), so killing the process at any instant
leaves every committed task intact and nothing half-written. The store remembers
the fingerprint of the configuration it was created for and refuses to mix in
results of another.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from .._io import ensure_writable_dir
from .._version import __version__
from ..errors import StoreError
from .config import StudyConfig
from .tasks import TaskResult

__all__ = ["TaskStore", "STORE_NAME"]

STORE_NAME = "tasks.sqlite"


class TaskStore:
    """Finished tasks of one study configuration, keyed by :attr:`Task.key`.

    Use as a context manager; :meth:`open` creates or checks the store.
    """

    def __init__(self, connection: sqlite3.Connection, path: Path, config: StudyConfig):
        self._db = connection
        self.path = path
        self.config = config

    @classmethod
    def open(cls, out_dir, config: StudyConfig, *, resume: bool) -> "TaskStore":
        """Open the store in ``out_dir`` for ``config``.

        A new store is created when none exists. An existing one is reused only
        with ``resume=True`` and only for the same configuration; otherwise a
        :class:`~robnp.errors.StoreError` explains what to do, and nothing stored
        is touched.
        """
        out_dir = Path(out_dir)
        path = out_dir / STORE_NAME
        exists = path.exists()
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(path, timeout=30, isolation_level=None)
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            connection.execute("CREATE TABLE IF NOT EXISTS tasks "
                               "(key TEXT PRIMARY KEY, result TEXT NOT NULL)")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot create results store in {out_dir}: {exc}") from None
        try:
            stored = dict(connection.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            connection.close()
            raise StoreError(f"{path} is not a readable robnp store: {exc}") from None
        n_done = connection.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
        if exists and stored:
            if not resume:
                connection.close()
                raise StoreError(
                    f"{out_dir} already holds a study ({n_done} task(s) stored); pass "
                    f"--resume to continue it, or choose another --out directory")
            if stored.get("fingerprint") != config.fingerprint():
                previous = StudyConfig.from_dict(json.loads(stored["config"]))
                connection.close()
                raise StoreError(
                    f"{out_dir} holds results of a different configuration (differs in: "
                    f"{', '.join(config.differences(previous)) or 'settings'}); "
                    f"use another --out directory")
        else:
            if (out_dir / "results.json").exists():
                connection.close()
                raise StoreError(
                    f"{out_dir} already holds a results.json without a task store; "
                    f"choose another --out directory rather than overwrite it")
            with connection:
                connection.execute("BEGIN")
                connection.executemany(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                    [("fingerprint", config.fingerprint()),
                     ("config", json.dumps(config.to_dict())),
                     ("robnp_version", __version__)])
        return cls(connection, path, config)

    def done_keys(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT key FROM tasks")}

    def put(self, result: TaskResult) -> None:
        """Store one finished task durably (committed before returning)."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("INSERT OR REPLACE INTO tasks VALUES (?, ?)",
                             (result.key, result.to_json()))

    def results(self) -> dict[str, TaskResult]:
        return {key: TaskResult.from_json(text)
                for key, text in self._db.execute("SELECT key, result FROM tasks")}

    def close(self) -> None:
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def check_writable(out_dir) -> None:
    """A clear error now, rather than after hours of training, if ``out_dir`` cannot
    be created or written."""
    ensure_writable_dir(out_dir)
