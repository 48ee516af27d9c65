"""Silences: mute notifications of matching alerts until a time, persisted as a JSON file.

A silence names a rule (exact name or glob, ``*`` for every rule) and label matchers (glob per
label: ``broker``, ``queue``, ``group``, ``severity`` or any label a rule attaches). Silenced
alerts still move through their states and are shown as silenced; only notifications stop.
The file is shared by every mqtop process using the same state directory: it is re-read when
it changes on disk and written atomically.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import logging
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

log = logging.getLogger("mqtop.alerts.silences")

SILENCES_FILE = "silences.json"
_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Silence:
    """Mute alerts of ``rule`` whose labels match every matcher, until ``until`` (epoch s)."""

    id: str
    rule: str
    matchers: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    until: float = 0.0
    comment: str = ""
    created: float = 0.0

    def active(self, now: float) -> bool:
        """True while the silence has not expired."""
        return now < self.until

    def matches(self, rule: str, labels: Mapping[str, str | None]) -> bool:
        """True when ``rule`` and every matcher match (a missing label matches as empty)."""
        if not _glob(self.rule).match(rule):
            return False
        for name, pattern in self.matchers.items():
            if not _glob(pattern).match(labels.get(name) or ""):
                return False
        return True

    def to_json(self) -> dict[str, Any]:
        """Plain data for the file and for JSON output."""
        return {
            "id": self.id,
            "rule": self.rule,
            "matchers": dict(self.matchers),
            "until": self.until,
            "comment": self.comment,
            "created": self.created,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Silence:
        """Parse one persisted silence (raises ValueError/TypeError/KeyError when malformed)."""
        matchers = data.get("matchers") or {}
        if not isinstance(matchers, dict):
            raise ValueError("matchers must be a mapping")
        return cls(
            id=str(data["id"]),
            rule=str(data["rule"]),
            matchers=MappingProxyType({str(k): str(v) for k, v in matchers.items()}),
            until=float(data["until"]),
            comment=str(data.get("comment") or ""),
            created=float(data.get("created") or 0.0),
        )


_GLOB_CACHE: dict[str, re.Pattern[str]] = {}


def _glob(pattern: str) -> re.Pattern[str]:
    compiled = _GLOB_CACHE.get(pattern)
    if compiled is None:
        if len(_GLOB_CACHE) > 4096:
            _GLOB_CACHE.clear()
        compiled = re.compile(fnmatch.translate(pattern), re.DOTALL)
        _GLOB_CACHE[pattern] = compiled
    return compiled


def default_silences_path(silences_path: str | None, history_path: Path | None) -> Path:
    """``alerting.silences_path``, else next to the history file, else the state directory."""
    if silences_path:
        return Path(os.path.expanduser(silences_path))
    if history_path is not None:
        return history_path.parent / SILENCES_FILE
    from mqtop.kernel.paths import default_state_dir

    return default_state_dir() / SILENCES_FILE


class SilenceStore:
    """Silences kept in memory and, when ``path`` is set, in a JSON file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._silences: dict[str, Silence] = {}
        self._mtime: float | None = None
        self._checked = 0.0
        self.version = 0  # bumps on every change (cheap change detection)
        self._load()

    # -- persistence -----------------------------------------------------------------

    def _load(self) -> None:
        if self.path is None:
            return
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            if self._silences or self._mtime is not None:
                self._silences = {}
                self.version += 1
            self._mtime = None
            return
        except OSError as exc:
            log.warning("cannot read silences file %s: %s", self.path, exc.strerror or exc)
            return
        if self._mtime == stat.st_mtime:
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            entries = data.get("silences", []) if isinstance(data, dict) else []
            loaded = {}
            for entry in entries:
                try:
                    silence = Silence.from_json(entry)
                except (KeyError, TypeError, ValueError):
                    log.warning("ignoring a malformed silence in %s", self.path)
                    continue
                loaded[silence.id] = silence
        except (OSError, ValueError) as exc:
            log.warning("cannot read silences file %s: %s", self.path, exc)
            return
        self._silences = loaded
        self._mtime = stat.st_mtime
        self.version += 1

    def _save(self) -> None:
        if self.path is None:
            return
        payload = {"version": 1, "silences": [s.to_json() for s in self._silences.values()]}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".silences-", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(payload, handle, indent=2)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            self._mtime = self.path.stat().st_mtime
        except OSError as exc:
            log.warning("cannot write silences file %s: %s", self.path, exc.strerror or exc)

    def refresh(self, min_interval: float = 1.0) -> None:
        """Pick up changes another process wrote (checked at most every ``min_interval``)."""
        now = time.monotonic()
        with self._lock:
            if now - self._checked < min_interval:
                return
            self._checked = now
            self._load()

    # -- operations ------------------------------------------------------------------

    def add(
        self,
        rule: str,
        matchers: Mapping[str, str],
        until: float,
        comment: str = "",
        now: float | None = None,
    ) -> Silence:
        """Create and persist a silence."""
        if not rule:
            raise ValueError("a silence needs a rule name or pattern (use '*' for every rule)")
        created = time.time() if now is None else now
        if until <= created:
            raise ValueError("a silence must end in the future")
        silence = Silence(
            id=uuid.uuid4().hex[:12],
            rule=rule,
            matchers=MappingProxyType({str(k): str(v) for k, v in matchers.items()}),
            until=until,
            comment=comment,
            created=created,
        )
        with self._lock:
            self._load()
            self._silences[silence.id] = silence
            self.version += 1
            self._save()
        return silence

    def remove(self, silence_id: str) -> bool:
        """Delete a silence; False when there is none with that id."""
        with self._lock:
            self._load()
            if self._silences.pop(silence_id, None) is None:
                return False
            self.version += 1
            self._save()
            return True

    def prune(self, now: float) -> int:
        """Drop expired silences; return how many were dropped."""
        with self._lock:
            expired = [k for k, s in self._silences.items() if not s.active(now)]
            for key in expired:
                del self._silences[key]
            if expired:
                self.version += 1
                self._save()
            return len(expired)

    def active(self, now: float | None = None) -> list[Silence]:
        """Silences in force at ``now``, soonest to expire first."""
        now = time.time() if now is None else now
        with self._lock:
            out = [s for s in self._silences.values() if s.active(now)]
        out.sort(key=lambda s: (s.until, s.id))
        return out

    def match(self, rule: str, labels: Mapping[str, str | None], now: float) -> Silence | None:
        """The first active silence that mutes this alert, if any."""
        with self._lock:
            silences = list(self._silences.values())
        for silence in silences:
            if silence.active(now) and silence.matches(rule, labels):
                return silence
        return None

    def __len__(self) -> int:
        with self._lock:
            return len(self._silences)
