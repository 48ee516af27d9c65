"""SIGKILL in the middle of a Redis move: nothing is lost, nothing is doubled, a rerun finishes.

The CLI runs as a real subprocess; the test watches the destination grow and kills the process
with SIGKILL part-way, then checks every message against Redis's own contents.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import redis

from tests.conftest import ROOT
from tests.harness import RedisBroker

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def _start(args: list[str], tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "PYTHONPATH": str(ROOT),
    }
    env.pop("MQTOP_CONFIG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "mqtop", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )


def _kill_when(proc: subprocess.Popen[bytes], ready, timeout: float = 60) -> None:
    """SIGKILL the process as soon as ``ready()`` is true; fail if it finished first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            assert proc.returncode == -signal.SIGKILL
            return
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"the move finished before it could be killed: {err.decode()[-500:]}")
        time.sleep(0.002)
    proc.kill()
    pytest.fail("the move never started")


@pytest.fixture
def r(redis_broker: RedisBroker):
    client = redis.Redis(host=redis_broker.host, port=redis_broker.port)
    created: list[str] = []
    yield client, created
    if created:
        client.delete(*created)
    client.close()


def _config(write_config, broker: RedisBroker) -> Path:
    return write_config(
        f"""
        brokers:
          - {{name: cache, type: redis, url: "{broker.url}", lists: [], streams: []}}
        """
    )


def test_sigkill_mid_list_move_of_50000_items(
    r, redis_broker, write_config, run_cli, unique, tmp_path
):
    client, created = r
    src, dst = unique("kill") + ":jobs:dead", unique("kill") + ":jobs"
    created += [src, dst]
    total = 50_000
    items = [f"{i:06d}".encode() + b"\x00\xff" * (i % 5) for i in range(total)]
    pipe = client.pipeline(transaction=False)
    for start in range(0, total, 5000):
        pipe.lpush(src, *items[start : start + 5000])
    pipe.execute()
    path = _config(write_config, redis_broker)

    proc = _start(
        [
            "dlq",
            "replay",
            "cache",
            src,
            "--yes",
            "--batch",
            "10",
            "--format",
            "json",
            "--config",
            str(path),
        ],
        tmp_path,
    )
    _kill_when(proc, lambda: client.llen(dst) >= 2000)

    in_src, in_dst = client.lrange(src, 0, -1), client.lrange(dst, 0, -1)
    assert 0 < len(in_dst) < total
    # every item is in exactly one place, and both halves keep the original order
    assert Counter(in_src) + Counter(in_dst) == Counter(items)
    assert in_dst[::-1] == items[: len(in_dst)]
    assert in_src[::-1] == items[len(in_dst) :]

    result = run_cli(
        "dlq", "replay", "cache", src, "--yes", "--format", "json", "--config", str(path)
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["moved"] == total - len(in_dst) and doc["failed"] == 0
    assert not client.exists(src)
    assert client.lrange(dst, 0, -1)[::-1] == items


def test_sigkill_mid_stream_move_of_20000_entries(
    r, redis_broker, write_config, run_cli, unique, tmp_path
):
    client, created = r
    src, dst = unique("kill") + ":events:dead", unique("kill") + ":archive"
    created += [src, dst]
    total = 20_000
    pipe = client.pipeline(transaction=False)
    for i in range(total):
        pipe.xadd(src, {"n": str(i), "payload": b"\x00\xfe" + str(i).encode()})
    ids = [x.decode() for x in pipe.execute()]
    client.xgroup_create(src, "dlq-readers", id="0")
    client.xreadgroup("dlq-readers", "r1", {src: ">"}, count=5000)
    path = _config(write_config, redis_broker)

    proc = _start(
        [
            "dlq",
            "move",
            "cache",
            src,
            dst,
            "--yes",
            "--batch",
            "10",
            "--format",
            "json",
            "--config",
            str(path),
        ],
        tmp_path,
    )
    _kill_when(proc, lambda: client.xlen(dst) >= 1000)

    left = [(i.decode(), f[b"n"]) for i, f in client.xrange(src)]
    moved = [f[b"n"] for _, f in client.xrange(dst)]
    assert 0 < len(moved) < total
    assert Counter(n for _, n in left) + Counter(moved) == Counter(
        str(i).encode() for i in range(total)
    )
    assert moved == [str(i).encode() for i in range(len(moved))]  # in order, no duplicate
    assert [i for i, _ in left] == ids[len(moved) :]  # the rest untouched, same ids
    pending = client.xpending(src, "dlq-readers")["pending"]
    assert pending == max(0, 5000 - len(moved))  # moved entries were acknowledged too

    result = run_cli(
        "dlq", "move", "cache", src, dst, "--yes", "--format", "json", "--config", str(path)
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["moved"] == total - len(moved) and doc["duplicates_possible"] == 0
    assert client.xlen(src) == 0 and client.xpending(src, "dlq-readers")["pending"] == 0
    final = client.xrange(dst)
    assert [f[b"n"] for _, f in final] == [str(i).encode() for i in range(total)]
    assert all(f[b"payload"] == b"\x00\xfe" + f[b"n"] for _, f in final)
