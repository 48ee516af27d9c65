"""A damaged or full history database never stops monitoring (real SQLite files)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

import mqtop.persist
from mqtop.kernel.model import BrokerSnapshot, SeriesKey, SeriesSample
from mqtop.kernel.store import TimeSeriesStore
from mqtop.persist import HistoryDB

NOW = 1_800_000_000.0


def _fill(store: TimeSeriesStore, db: HistoryDB, polls: int, start: float = NOW - 300) -> None:
    for i in range(polls):
        samples = tuple(
            SeriesSample(SeriesKey("b", f"q{j}", None), "list", {"queue_length": float(i)})
            for j in range(20)
        )
        store.ingest(BrokerSnapshot("b", "x", start + i, True, 0.01, samples))
        if i % 50 == 49:
            db.flush(now=start + i)
    db.flush(now=start + polls)


def _aside(path: Path) -> list[Path]:
    """The damaged database files moved aside (their -wal / -shm go with them)."""
    found = path.parent.glob(path.name + ".corrupt-*")
    return sorted(p for p in found if not p.name.endswith(("-wal", "-shm")))


def _check_fresh(path: Path, db: HistoryDB, store: TimeSeriesStore) -> None:
    """The new database works: rows written now are read back by a new process."""
    _fill(store, db, 10, start=NOW - 5)
    db.close()
    again = TimeSeriesStore(interval=1.0)
    reopened = HistoryDB(path, again)
    assert reopened.load(now=NOW + 10) >= 10 * 20  # the raw rows (plus closed rollups)
    assert reopened.warnings == []
    reopened.close()


def test_a_file_that_is_not_a_database_is_moved_aside(tmp_path):
    path = tmp_path / "history.db"
    junk = os.urandom(64 * 1024)
    path.write_bytes(junk)
    store = TimeSeriesStore(interval=1.0)
    db = HistoryDB(path, store)
    [aside] = _aside(path)
    assert aside.read_bytes() == junk  # kept for inspection, not deleted
    [warning] = db.warnings
    assert "is damaged (file is not a database)" in warning
    assert f"moved it aside to {aside}" in warning and "empty history" in warning
    assert db.load(now=NOW) == 0
    _check_fresh(path, db, store)


def test_a_truncated_database_is_moved_aside(tmp_path):
    path = tmp_path / "history.db"
    store = TimeSeriesStore(interval=1.0)
    db = HistoryDB(path, store)
    _fill(store, db, 300)
    db.close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.truncate(size // 2)
    store = TimeSeriesStore(interval=1.0)
    db = HistoryDB(path, store)
    assert db.load(now=NOW) == 0
    assert len(_aside(path)) == 1
    [warning] = db.warnings
    assert "is damaged (database disk image is malformed)" in warning
    _check_fresh(path, db, store)


def test_a_full_disk_says_disk_full_and_writing_resumes(tmp_path, monkeypatch):
    """SQLITE_FULL, simulated with a page limit on the connection (a tmpfs test is in
    tests/contract/test_history_files.py)."""
    connections: list[sqlite3.Connection] = []
    real_connect = sqlite3.connect

    def connect(*args, **kwargs):
        conn = real_connect(*args, **kwargs)
        connections.append(conn)
        return conn

    monkeypatch.setattr(mqtop.persist.sqlite3, "connect", connect)
    path = tmp_path / "history.db"
    store = TimeSeriesStore(interval=1.0)
    db = HistoryDB(path, store)
    [conn] = connections
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    samples = tuple(
        SeriesSample(SeriesKey("b", f"q{j}", None), "list", {"queue_length": 1.0})
        for j in range(500)
    )
    store.ingest(BrokerSnapshot("b", "x", NOW, True, 0.01, samples))
    with pytest.raises(Exception) as caught:
        db.flush(now=NOW)
    message = str(caught.value)
    assert type(caught.value).__name__ == "HistoryWriteError"
    assert message.startswith(f"disk full: cannot write {path}")
    assert "no transaction is active" not in message
    conn.execute("PRAGMA max_page_count = 1073741823")  # room again
    store.ingest(BrokerSnapshot("b", "x", NOW + 1, True, 0.01, samples))
    assert db.flush(now=NOW + 1) == 500
    db.close()


def test_damaged_files_moved_aside_in_the_same_second_are_all_kept(tmp_path):
    path = tmp_path / "history.db"
    for n in range(3):
        path.write_bytes(b"junk %d" % n * 4096)
        HistoryDB(path, TimeSeriesStore(interval=1.0)).close()
    kept = sorted(p.read_bytes()[:6] for p in _aside(path))
    assert kept == [b"junk 0", b"junk 1", b"junk 2"]
