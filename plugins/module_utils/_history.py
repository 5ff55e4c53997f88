# Copyright: (c) 2026, madengine maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The results history, and ``relative_change`` computed from it.

Every result row perf_collect writes is also kept here, whole (extras included), so the
history outlives perf.csv's fixed header. ``relative_change`` of a new SUCCESS row is its
performance against the mean of the last ``WINDOW`` successful results of the same model,
metric and gpu_architecture, as a signed percentage rounded to 2 places (empty when there
is no such history). The history is read before the new rows go in, so results of one run
never compare with each other.

Storage sits behind ``ResultsHistory`` (``recent``, ``add``, ``begin``/``commit``/``rollback``,
``needs_seed``/``seed``, ``close``); ``open_history`` picks the backend from the location.
Today that is SQLite (stdlib, WAL mode, one file beside perf.csv); a PostgreSQL backend
only has to implement the same few methods. A history that has never been initialised
(a new file) is seeded from perf.csv's successful rows, in file order, so an existing
perf.csv keeps its past.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from urllib.parse import quote
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

from ansible_collections.madengine.core.plugins.module_utils._errors import InvalidInputError
from ansible_collections.madengine.core.plugins.module_utils._perfcsv import to_float

WINDOW = 5
DEFAULT_NAME = "madengine_history.db"
SCHEMA_VERSION = 1
BUSY_TIMEOUT = 60.0  # seconds a connection waits for another process's lock

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_at REAL NOT NULL,
    source TEXT NOT NULL,
    model TEXT NOT NULL,
    metric TEXT NOT NULL DEFAULT '',
    gpu_architecture TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    performance REAL,
    machine_name TEXT NOT NULL DEFAULT '',
    row_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_series
    ON results (model, metric, gpu_architecture, status, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class ResultsHistory(Protocol):
    location: str

    def needs_seed(self) -> bool: ...
    def seed(self, rows: Iterable[Mapping[str, Any]]) -> int: ...
    def begin(self) -> None: ...
    def recent(self, model: str, metric: str, gpu_architecture: str, limit: int = WINDOW) -> list[float]: ...
    def add(self, rows: Iterable[Mapping[str, Any]], source: str = "perf_collect") -> int: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...


def _while_locked(action: Callable[[], Any], timeout: float = BUSY_TIMEOUT) -> Any:
    """Run ``action``, again while SQLite answers that the database is locked.

    The busy timeout waits out most locks, but SQLite answers some conflicts at once instead
    of waiting (switching a new file to WAL while other processes open it, for one).
    """
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def _key(value: Any) -> str:
    return "" if value is None else str(value).strip()


class SqliteHistory:
    """The history in one SQLite file (``":memory:"`` for a throw-away one, e.g. check mode)."""

    def __init__(self, path: str, *, read_only: bool = False):
        self.location = path
        self.read_only = read_only
        try:
            if read_only:
                # immutable=1 leaves no -wal/-shm files behind; a live -wal needs a real reader.
                flag = "mode=ro" if os.path.exists(path + "-wal") else "immutable=1"
                self._db = sqlite3.connect(f"file:{quote(os.path.abspath(path))}?{flag}", uri=True,
                                           timeout=BUSY_TIMEOUT, isolation_level=None)
            else:
                self._db = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
                if path != ":memory:":
                    _while_locked(lambda: self._db.execute("PRAGMA journal_mode=WAL"))
                _while_locked(lambda: self._db.executescript(_SCHEMA))
            self._db.execute("SELECT count(*) FROM results").fetchone()
        except sqlite3.DatabaseError as exc:
            raise InvalidInputError(
                f"the results history {path} cannot be used: {exc}", where="history_db",
                fix="Point history_db at a madengine history database or at a new file") from None

    def needs_seed(self) -> bool:
        if self.read_only:
            return False
        row = self._db.execute("SELECT value FROM meta WHERE key = 'initialized'").fetchone()
        return row is None

    def seed(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Mark the history initialised, keeping the successful ``rows`` (perf.csv's) as its past."""
        kept = [r for r in rows if _key(r.get("status")).upper() == "SUCCESS"
                and to_float(r.get("performance")) is not None]
        count = self.add(kept, source="perf.csv")
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('initialized', ?)", (str(time.time()),))
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        return count

    def begin(self) -> None:
        if not self.read_only:
            self._db.execute("BEGIN IMMEDIATE")

    def recent(self, model: str, metric: str, gpu_architecture: str, limit: int = WINDOW) -> list[float]:
        cursor = self._db.execute(
            "SELECT performance FROM results WHERE model = ? AND metric = ? AND gpu_architecture = ?"
            " AND status = 'SUCCESS' AND performance IS NOT NULL ORDER BY id DESC LIMIT ?",
            (_key(model), _key(metric), _key(gpu_architecture), int(limit)))
        return [float(value) for (value,) in cursor.fetchall()]

    def add(self, rows: Iterable[Mapping[str, Any]], source: str = "perf_collect") -> int:
        now = time.time()
        records = [(now, source, _key(r.get("model")), _key(r.get("metric")),
                    _key(r.get("gpu_architecture")), _key(r.get("status")).upper(),
                    to_float(r.get("performance")), _key(r.get("machine_name")),
                    json.dumps(dict(r), default=str, sort_keys=True))
                   for r in rows]
        self._db.executemany(
            "INSERT INTO results (recorded_at, source, model, metric, gpu_architecture, status,"
            " performance, machine_name, row_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", records)
        return len(records)

    def commit(self) -> None:
        if self._db.in_transaction:
            self._db.execute("COMMIT")

    def rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def close(self) -> None:
        self._db.close()


def open_history(location: str, *, check_mode: bool = False,
                 seed_rows: Iterable[Mapping[str, Any]] | None = None) -> ResultsHistory:
    """The history at ``location`` (a file path; a database URL once a backend exists).

    In check mode nothing is created or written: an existing file is opened read-only, a
    missing one is stood in for by an in-memory history seeded from ``seed_rows``.
    """
    if "://" in location:
        scheme = location.split("://", 1)[0]
        raise InvalidInputError(
            f"results history backend {scheme!r} is not supported yet", where="history_db",
            fix="Give a file path for the SQLite history (default <output_dir>/madengine_history.db)")
    if os.path.isdir(location):
        raise InvalidInputError(f"{location} is a directory, not a history database file",
                                where="history_db", fix="Give a file path")
    if check_mode:
        if os.path.exists(location) and os.path.getsize(location):
            history: ResultsHistory = SqliteHistory(location, read_only=True)
            if not _initialized(history):
                history.close()
                history = _in_memory(seed_rows)
            return history
        return _in_memory(seed_rows)
    parent = os.path.dirname(os.path.abspath(location))
    if not os.path.isdir(parent):
        raise InvalidInputError(f"the folder of the results history {location} does not exist",
                                where="history_db", fix="Create it or choose another history_db")
    return SqliteHistory(location)


def _initialized(history: ResultsHistory) -> bool:
    db = getattr(history, "_db")
    try:
        return db.execute("SELECT 1 FROM meta WHERE key = 'initialized'").fetchone() is not None
    except sqlite3.DatabaseError:
        return False


def _in_memory(seed_rows: Iterable[Mapping[str, Any]] | None) -> ResultsHistory:
    history = SqliteHistory(":memory:")
    history.seed(seed_rows or [])
    return history


def relative_change(value: float | None, past: Sequence[float]) -> float | None:
    """Signed percentage of ``value`` against the mean of ``past``; None without a basis."""
    if value is None or not past:
        return None
    mean = sum(past) / len(past)
    if mean == 0:
        return None
    return round((value - mean) / abs(mean) * 100.0, 2)


def fill_relative_change(rows: Sequence[dict], history: ResultsHistory, window: int = WINDOW) -> None:
    """Set ``relative_change`` on every SUCCESS row from the history as it was before them."""
    cache: dict = {}
    for row in rows:
        if row.get("status") != "SUCCESS":
            continue
        key = (_key(row.get("model")), _key(row.get("metric")), _key(row.get("gpu_architecture")))
        if key not in cache:
            cache[key] = history.recent(*key, limit=window)
        row["relative_change"] = relative_change(to_float(row.get("performance")), cache[key])
