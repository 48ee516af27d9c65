"""Interrupting a replay / move: SIGINT, SIGTERM or SIGHUP stop it between batches.

For a broker whose actions declare ``stops_between_batches = True`` (they honour
``MoveRequest.stop``), the signal only sets the request's stop flag: the batch in flight
completes, the broker returns what it moved, and the command prints it, audits it as
``partial`` and exits 130 (SIGINT) or 143 (SIGTERM; SIGHUP, a closed terminal, is handled as a
termination request). Other brokers keep the default signal behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from types import TracebackType
from typing import Any

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 143}


class MoveInterrupt:
    """A context, inside a running event loop, during which signals ask a move to stop."""

    def __init__(self, actions: object) -> None:
        self.stop = threading.Event()
        self.enabled = bool(getattr(actions, "stops_between_batches", False))
        self.signum: int | None = None  # the first signal received
        self._installed: list[tuple[int, Any]] = []

    def _on_signal(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum
        self.stop.set()

    def __enter__(self) -> MoveInterrupt:
        if not self.enabled:
            return self
        loop = asyncio.get_running_loop()
        for sig in EXIT_CODES:
            previous = signal.getsignal(sig)
            try:
                loop.add_signal_handler(sig, self._on_signal, int(sig))
            except (NotImplementedError, RuntimeError, ValueError):
                continue
            self._installed.append((sig, previous))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        for sig, previous in self._installed:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
            with contextlib.suppress(Exception):
                signal.signal(sig, previous)  # e.g. asyncio.run's own SIGINT handler
        self._installed.clear()

    @property
    def name(self) -> str | None:
        """The received signal's name (``SIGTERM``), None when there was none."""
        return None if self.signum is None else signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int | None:
        """130 / 143 after a signal, None without one."""
        return None if self.signum is None else EXIT_CODES[signal.Signals(self.signum)]


__all__ = ["EXIT_CODES", "MoveInterrupt"]
