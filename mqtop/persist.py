"""Optional SQLite (WAL) persistence of the time-series store at ``history.path``.

Raw rows are kept for the store's ``recent`` window and closed rollup buckets for the whole
retention, so a restart (or a later ``mqtop check``) sees the same history the running process
had. Writes are buffered from store updates and flushed in batches (one transaction each);
callers run :meth:`HistoryDB.flush` in a thread so the event loop never waits on disk.

A damaged file (not a database, truncated, corrupt pages) never stops monitoring: it is moved
aside as ``<path>.corrupt-<UTC time>`` (with its ``-wal`` / ``-shm``), a warning says so, and
history starts empty. A write that fails because the disk is full raises
:class:`HistoryWriteError` saying "disk full" (the rows of that batch are dropped from the
file; the in-memory store keeps them).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import os
import sqlite3
import threading
import time
from array import array
from pathlib import Path

from mqtop.kernel.errors import ConfigError
from mqtop.kernel.model import BrokerSnapshot, SeriesKey
from mqtop.kernel.store import TimeSeriesStore

log = logging.getLogger("mqtop.history")

SCHEMA_VERSION = "1"  # rollup blobs are float32 (min|inc, max, avg, last) per metric
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    broker TEXT NOT NULL,
    queue TEXT NOT NULL,
    grp TEXT NOT NULL,          -- '' when the series has no group
    has_group INTEGER NOT NULL,
    kind TEXT NOT NULL,
    dlq TEXT,
    UNIQUE (broker, queue, grp, has_group)
);
CREATE TABLE IF NOT EXISTS layout (id INTEGER PRIMARY KEY, metrics TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS raw (
    series_id INTEGER NOT NULL,
    t REAL NOT NULL,
    layout_id INTEGER NOT NULL,
    vals BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS raw_t ON raw (t);
CREATE TABLE IF NOT EXISTS rollup (
    series_id INTEGER NOT NULL,
    t REAL NOT NULL,
    layout_id INTEGER NOT NULL,
    vals BLOB NOT NULL,
    PRIMARY KEY (series_id, t)
);
CREATE INDEX IF NOT EXISTS rollup_t ON rollup (t);
"""


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


class HistoryWriteError(Exception):
    """History could not be written (its message is the whole explanation)."""


def _error_name(exc: BaseException) -> str:
    return str(getattr(exc, "sqlite_errorname", "") or "")


def is_corrupt(exc: BaseException) -> bool:
    """The file is damaged: not a database, or corrupt pages (a truncated file, ...)."""
    return isinstance(exc, sqlite3.DatabaseError) and _error_name(exc).startswith(
        ("SQLITE_CORRUPT", "SQLITE_NOTADB")
    )


def is_disk_full(exc: BaseException) -> bool:
    """SQLite could not write because the disk (or the file system's quota) is full."""
    return _error_name(exc).startswith("SQLITE_FULL") or "disk is full" in str(exc)


class HistoryDB:
    """Persists a store's history in SQLite and restores it on start."""

    def __init__(self, path: Path, store: TimeSeriesStore) -> None:
        self.path = path
        self.store = store
        self._lock = threading.Lock()
        self._pending: list[BrokerSnapshot] = []
        self._series_ids: dict[tuple[str, str, str, int], int] = {}
        self._layout_ids: dict[tuple[str, ...], int] = {}
        self.warnings: list[str] = []  # what was repaired (for the dashboard to show)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._db = self._open()
            except sqlite3.DatabaseError as exc:
                if not is_corrupt(exc):
                    raise
                self._set_aside(str(exc))
                self._db = self._open()
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(
                [f"history.path {path}: cannot open the history database: {exc}"]
            ) from None
        store.collect_closed_buckets = True
        self._unsubscribe = store.subscribe(self._on_snapshot)

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,)
            )
        except BaseException:
            db.close()
            raise
        return db

    def _set_aside(self, reason: str) -> None:
        """Move a damaged database file (and its WAL) aside; history starts empty."""
        stamp = dt.datetime.now(tz=dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while target.exists() or target.is_symlink():  # never replace an earlier one
            n += 1
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
        for suffix in ("", "-wal", "-shm"):
            source = Path(str(self.path) + suffix)
            with contextlib.suppress(FileNotFoundError):
                os.replace(source, Path(str(target) + suffix))
        self._series_ids.clear()
        self._layout_ids.clear()
        message = (
            f"history.path {self.path}: the history database is damaged ({reason}); "
            f"moved it aside to {target} and started with empty history"
        )
        self.warnings.append(message)
        log.warning("%s", message)

    def _recover(self, exc: sqlite3.Error) -> None:
        """Replace a database found damaged while in use by a new, empty one."""
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        self._set_aside(str(exc))
        self._db = self._open()

    def _on_snapshot(self, snapshot: BrokerSnapshot) -> None:
        if snapshot.up and snapshot.series:
            with self._lock:
                self._pending.append(snapshot)

    # -- ids -------------------------------------------------------------------------

    def _series_id(self, key: SeriesKey, kind: str, dlq: str | None) -> int:
        ident = (key.broker, key.queue, key.group or "", 0 if key.group is None else 1)
        found = self._series_ids.get(ident)
        if found is not None:
            return found
        row = self._db.execute(
            "SELECT id FROM series WHERE broker=? AND queue=? AND grp=? AND has_group=?", ident
        ).fetchone()
        if row is None:
            cur = self._db.execute(
                "INSERT INTO series (broker, queue, grp, has_group, kind, dlq) "
                "VALUES (?,?,?,?,?,?)",
                (*ident, kind, dlq),
            )
            found = int(cur.lastrowid or 0)
        else:
            found = int(row[0])
        self._series_ids[ident] = found
        return found

    def _layout_id(self, metrics: tuple[str, ...]) -> int:
        found = self._layout_ids.get(metrics)
        if found is not None:
            return found
        text = ",".join(metrics)
        self._db.execute("INSERT OR IGNORE INTO layout (metrics) VALUES (?)", (text,))
        row = self._db.execute("SELECT id FROM layout WHERE metrics=?", (text,)).fetchone()
        found = int(row[0])
        self._layout_ids[metrics] = found
        return found

    # -- writing ---------------------------------------------------------------------

    def flush(self, now: float | None = None) -> int:
        """Write buffered rows and closed buckets; prune expired data. Returns rows written."""
        with self._lock:
            pending, self._pending = self._pending, []
        buckets = self.store.take_closed_buckets()
        now = time.time() if now is None else now
        written = 0
        with self._lock:
            try:
                self._db.execute("BEGIN")
                raw_rows = []
                for snapshot in pending:
                    for sample in snapshot.series:
                        metrics = tuple(sorted(sample.values))
                        vals = array("d", [_nan(sample.values[m]) for m in metrics])
                        raw_rows.append(
                            (
                                self._series_id(sample.key, sample.kind, sample.dlq),
                                snapshot.time,
                                self._layout_id(metrics),
                                vals.tobytes(),
                            )
                        )
                self._db.executemany(
                    "INSERT INTO raw (series_id, t, layout_id, vals) VALUES (?,?,?,?)", raw_rows
                )
                roll_rows = []
                for key, metrics, start, agg in buckets:
                    view = self.store.view(key)
                    kind = view.kind if view is not None else ""
                    dlq = view.dlq if view is not None else None
                    roll_rows.append(
                        (
                            self._series_id(key, kind, dlq),
                            start,
                            self._layout_id(metrics),
                            agg.tobytes(),
                        )
                    )
                self._db.executemany(
                    "INSERT OR REPLACE INTO rollup (series_id, t, layout_id, vals) "
                    "VALUES (?,?,?,?)",
                    roll_rows,
                )
                self._db.execute("DELETE FROM raw WHERE t < ?", (now - self.store.recent,))
                self._db.execute("DELETE FROM rollup WHERE t < ?", (now - self.store.retention,))
                self._db.execute("COMMIT")
                written = len(raw_rows) + len(roll_rows)
            except sqlite3.Error as exc:
                # SQLite may have rolled back by itself (a full disk does): a second ROLLBACK
                # would fail with "no transaction is active" and hide the real cause
                if self._db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                if is_disk_full(exc):
                    raise HistoryWriteError(
                        f"disk full: cannot write {self.path} ({exc}); new samples are kept "
                        "in memory only until there is room again"
                    ) from None
                if is_corrupt(exc):
                    self._recover(exc)
                    return 0
                raise
        return written

    # -- reading ---------------------------------------------------------------------

    def load(self, now: float | None = None) -> int:
        """Fill the store with persisted history within retention. Returns rows loaded."""
        now = time.time() if now is None else now
        try:
            rows = self._read(now)
        except sqlite3.DatabaseError as exc:
            if not is_corrupt(exc):
                raise
            with self._lock:
                self._recover(exc)
            return 0
        return self._restore(*rows)

    def _read(
        self, now: float
    ) -> tuple[
        dict[int, tuple[str, ...]],
        dict[int, tuple[SeriesKey, str, str | None]],
        list[tuple[int, float, int, bytes]],
        list[tuple[int, float, int, bytes]],
    ]:
        with self._lock:
            layouts = {
                int(i): tuple(m.split(",")) if m else ()
                for i, m in self._db.execute("SELECT id, metrics FROM layout")
            }
            series: dict[int, tuple[SeriesKey, str, str | None]] = {}
            for sid, broker, queue, grp, has_group, kind, dlq in self._db.execute(
                "SELECT id, broker, queue, grp, has_group, kind, dlq FROM series"
            ):
                series[int(sid)] = (SeriesKey(broker, queue, grp if has_group else None), kind, dlq)
            rollups = self._db.execute(
                "SELECT series_id, t, layout_id, vals FROM rollup WHERE t >= ? ORDER BY t",
                (now - self.store.retention,),
            ).fetchall()
            raws = self._db.execute(
                "SELECT series_id, t, layout_id, vals FROM raw WHERE t >= ? ORDER BY t",
                (now - self.store.recent,),
            ).fetchall()
        return layouts, series, rollups, raws

    def _restore(
        self,
        layouts: dict[int, tuple[str, ...]],
        series: dict[int, tuple[SeriesKey, str, str | None]],
        rollups: list[tuple[int, float, int, bytes]],
        raws: list[tuple[int, float, int, bytes]],
    ) -> int:
        collecting = self.store.collect_closed_buckets
        self.store.collect_closed_buckets = False  # do not write back what we just read
        try:
            count = 0
            for sid, t, layout_id, blob in rollups:
                info = series.get(int(sid))
                metrics = layouts.get(int(layout_id))
                if info is None or metrics is None:
                    continue
                agg = array("f")
                agg.frombytes(blob)
                self.store.load_bucket(info[0], info[1], metrics, float(t), agg)
                count += 1
            for sid, t, layout_id, blob in raws:
                info = series.get(int(sid))
                metrics = layouts.get(int(layout_id))
                if info is None or metrics is None:
                    continue
                vals = array("d")
                vals.frombytes(blob)
                values = {m: (None if v != v else v) for m, v in zip(metrics, vals, strict=False)}
                self.store.load_row(info[0], info[1], info[2], float(t), values)
                count += 1
            self.store.take_closed_buckets()
        finally:
            self.store.collect_closed_buckets = collecting
        return count

    def close(self) -> None:
        """Stop listening to the store and close the database."""
        self._unsubscribe()
        with self._lock:
            self._db.close()
