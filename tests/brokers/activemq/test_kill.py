"""SIGKILL of mqtop in the middle of moving 10,000 messages loses none (both flavors)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.support.activemq import ActiveMQBroker, broker_config, wait_count

pytestmark = [pytest.mark.broker, pytest.mark.slow]

TOTAL = 10_000


def _cli(args: list[str], tmp_path: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CONFIG_HOME": str(tmp_path / "config-home"),
        "PYTHONPATH": str(ROOT),
    }
    env.pop("MQTOP_CONFIG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "mqtop", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def _send_many(amq: ActiveMQBroker, queue: str, bodies: list[str]) -> None:
    conn = amq.stomp()
    try:
        extra = {"destination-type": "ANYCAST"} if amq.flavor == "artemis" else {}
        for text in bodies:
            conn.send(amq.destination(queue), text, headers={"persistent": "true", **extra})
    finally:
        conn.disconnect()


def test_sigkill_mid_move_loses_nothing(
    amq: ActiveMQBroker, unique: Callable[[str], str], write_config: Any, tmp_path: Path
) -> None:
    src, dst = unique("kill-src"), unique("kill-dst")
    for name in (src, dst):
        amq.create_queue(name, dlq_per_queue=False)
    try:
        expected = [f"msg-{i:05d}" for i in range(TOTAL)]
        _send_many(amq, src, expected)
        assert wait_count(amq, src, TOTAL, timeout=60) == TOTAL
        path = broker_config(write_config, amq, move_batch=100)
        args = ["dlq", "move", "amq", src, dst, "--yes", "--format", "json", "--config", str(path)]

        proc = _cli(args, tmp_path)
        moved_at_kill = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            moved_at_kill = amq.count(dst)
            if moved_at_kill >= 500:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
        assert 500 <= moved_at_kill < TOTAL, "the kill did not land mid-move"

        # the broker finishes the operation it was running; nothing is lost or doubled
        time.sleep(1)
        in_src, in_dst = amq.count(src), amq.count(dst)
        assert in_src + in_dst == TOTAL and in_dst < TOTAL, (in_src, in_dst)

        rerun = _cli(args, tmp_path)
        out, err = rerun.communicate(timeout=300)
        assert rerun.returncode == 0, err
        assert '"moved": ' + str(in_src) in out and '"failed": 0' in out
        assert amq.count(src) == 0
        bodies = Counter(frame.body for frame in amq.drain(dst, TOTAL))
        assert set(bodies) == set(expected)
        assert max(bodies.values()) == 1  # no duplicates either
    finally:
        amq.cleanup(src, dst)
