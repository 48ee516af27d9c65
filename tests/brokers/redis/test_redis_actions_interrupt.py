"""SIGINT / SIGTERM / SIGHUP in the middle of a Redis move: it stops within one batch.

The CLI runs as a real subprocess against a private redis-server (the test pauses that
server's writes, which must not slow anyone else's Redis). While the move runs, writes are
paused with ``CLIENT PAUSE … WRITE``: the move is then blocked inside one batch (a script call
Redis holds back). The signal arrives during that batch; the server is resumed; the batch in
flight completes and the move stops there: exactly one batch more than before the signal,
nothing lost, the report printed, a ``partial`` audit record, exit 130 / 143.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests import harness
from tests.conftest import ROOT, _obtain
from tests.support.reports import move_report

pytestmark = [pytest.mark.broker, pytest.mark.slow]
BATCH = 100


@pytest.fixture(scope="module")
def private_redis(redis_broker) -> Iterator[harness.RedisBroker]:
    """A redis-server of this module's own (CLIENT PAUSE pauses every client of a server)."""
    broker = _obtain("redis-server", harness.start_redis)
    assert isinstance(broker, harness.RedisBroker)
    yield broker
    broker.stop()


def _start(args: list[str], tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "PYTHONPATH": str(ROOT)}
    env.pop("MQTOP_CONFIG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "mqtop", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )


def _wait(condition: Callable[[], bool], proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"the move ended before {what}: {err.decode()[-800:]}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def _interrupt_mid_batch(
    client: redis.Redis, proc: subprocess.Popen[bytes], sig: int, moved_so_far: Callable[[], int]
) -> int:
    """Hold the move inside a batch, signal it, resume; the count moved before the signal."""
    _wait(lambda: moved_so_far() >= 20 * BATCH, proc, "the move got going")
    client.execute_command("CLIENT", "PAUSE", 20_000, "WRITE")
    try:
        time.sleep(0.5)  # the batch sent before the pause has landed; the next one is held
        before = moved_so_far()
        assert proc.poll() is None, "the move finished before it could be interrupted"
        os.kill(proc.pid, sig)
        time.sleep(0.5)
        # a batch in flight cannot be abandoned half-way: the process waits for it
        assert proc.poll() is None, "the process left with a batch in flight"
        assert moved_so_far() == before
    finally:
        client.execute_command("CLIENT", "UNPAUSE")
    return before


def _audit(tmp_path: Path) -> list[dict]:
    path = tmp_path / "state" / "mqtop" / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(
    ("sig", "code"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 143)],
    ids=["SIGINT", "SIGTERM", "SIGHUP"],
)
def test_signal_stops_a_list_move_within_one_batch(
    private_redis, write_config, unique, tmp_path, sig, code
):
    client = redis.Redis(host=private_redis.host, port=private_redis.port)
    src, dst = unique("int") + ":jobs:dead", unique("int") + ":jobs"
    total = 30_000
    items = [f"{i:06d}".encode() + b"\x00\xff" for i in range(total)]
    for start in range(0, total, 5000):
        client.lpush(src, *items[start : start + 5000])
    path = write_config(
        f"""
        brokers:
          - {{name: cache, type: redis, url: "{private_redis.url}", lists: [], streams: []}}
        """
    )
    proc = _start(
        ["dlq", "move", "cache", src, dst, "--yes", "--batch", str(BATCH), "--format", "json",
         "--config", str(path)],
        tmp_path,
    )  # fmt: skip
    try:
        before = _interrupt_mid_batch(client, proc, sig, lambda: int(client.llen(dst)))
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err.decode()[-800:]
    in_src, in_dst = client.lrange(src, 0, -1), client.lrange(dst, 0, -1)
    # stopped at the end of the batch that was in flight: exactly one batch more
    assert len(in_dst) == before + BATCH
    assert Counter(in_src) + Counter(in_dst) == Counter(items)  # nothing lost or doubled
    assert in_dst[::-1] == items[: len(in_dst)]
    doc = move_report(stdout=out.decode(), stderr=err.decode())
    assert doc["moved"] == len(in_dst) and doc["failed"] == 0
    assert any(n.startswith("interrupted") for n in doc["notes"]), doc["notes"]
    assert f"interrupted by {signal.Signals(sig).name}" in err.decode()
    (record,) = _audit(tmp_path)
    assert record["result"] == "partial" and record["count"] == len(in_dst)
    assert record["details"]["interrupted"] is True
    client.delete(src, dst)
    client.close()


def test_sigterm_stops_a_stream_move_within_one_batch(
    private_redis, write_config, unique, tmp_path
):
    client = redis.Redis(host=private_redis.host, port=private_redis.port)
    src, dst = unique("int") + ":events:dead", unique("int") + ":events"
    total = 20_000
    pipe = client.pipeline(transaction=False)
    for i in range(total):
        pipe.xadd(src, {"n": str(i)})
    pipe.execute()
    path = write_config(
        f"""
        brokers:
          - {{name: cache, type: redis, url: "{private_redis.url}", lists: [], streams: []}}
        """
    )
    proc = _start(
        ["dlq", "move", "cache", src, dst, "--yes", "--batch", str(BATCH), "--config", str(path)],
        tmp_path,
    )
    try:
        before = _interrupt_mid_batch(client, proc, signal.SIGTERM, lambda: int(client.xlen(dst)))
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err.decode()[-800:]
    moved = [f[b"n"] for _, f in client.xrange(dst)]
    left = [f[b"n"] for _, f in client.xrange(src)]
    assert len(moved) == before + BATCH
    assert moved + left == [str(i).encode() for i in range(total)]  # in order, nothing lost
    text = out.decode()
    assert f"moved {len(moved)} message(s)" in text and "note: interrupted" in text
    (record,) = _audit(tmp_path)
    assert record["result"] == "partial" and record["count"] == len(moved)
    client.delete(src, dst)
    client.close()
