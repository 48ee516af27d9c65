"""SIGKILL `mqtop dlq move` mid-way: nothing is lost, duplicates stay within one window,
and the next run finishes the job (and says duplicates are possible)."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time

import pika
import pytest

from collectors.rabbitmq.collector import RabbitMQOptions
from tests.conftest import ROOT
from tests.support.rabbit import Rabbit, broker_config, rabbit_session, ready_ids, wait_until
from tests.support.reports import move_report

pytestmark = [pytest.mark.broker, pytest.mark.slow]

TOTAL = 10_000
WINDOW = RabbitMQOptions.model_fields["move_window"].default  # at most this many twice


@pytest.fixture
def rabbit(rabbitmq_broker, unique):
    yield from rabbit_session(rabbitmq_broker, unique)


def _ids(rabbit: Rabbit, queue: str) -> list[str]:
    """message_id of every ready message, read without consuming (requeued on close)."""
    conn = rabbit.connect()
    try:
        return ready_ids(conn, queue)
    finally:
        conn.close()
        rabbit.connections.remove(conn)


def test_sigkill_mid_move_loses_nothing_and_rerun_finishes(
    rabbit: Rabbit, rabbitmq_broker, write_config, run_cli, tmp_path
):
    p = rabbit.unique("kill")
    src = rabbit.queue(p + ".src")
    dst = rabbit.queue(p + ".dst")
    conn = rabbit.connect()
    channel = conn.channel()
    body = b"k" * 512
    for i in range(TOTAL):
        channel.basic_publish(
            "", src, body, pika.BasicProperties(message_id=f"k{i:05d}", delivery_mode=2)
        )
    wait_until(lambda: rabbit.ready(src) == TOTAL, 60, "source filled")
    path = write_config(broker_config(rabbitmq_broker, [p + "*"]))
    env = {
        **os.environ,
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CONFIG_HOME": str(tmp_path / "config-home"),
        "PYTHONPATH": str(ROOT),
    }
    env.pop("MQTOP_CONFIG", None)
    args = ["dlq", "move", "--config", str(path), "rabbit", src, dst, "--yes", "--format", "json"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mqtop", *args],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    watch = conn.channel()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if watch.queue_declare(dst, passive=True).method.message_count >= 1500:
                break
            time.sleep(0.01)
        assert proc.poll() is None, proc.communicate()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    # the broker requeues what the killed mover had not acked
    def settled() -> bool:
        ok = watch.queue_declare(src, passive=True).method
        moved = watch.queue_declare(dst, passive=True).method.message_count
        return ok.consumer_count == 0 and ok.message_count + moved >= TOTAL

    wait_until(settled, 30, "requeue after the kill")
    in_src, in_dst = _ids(rabbit, src), _ids(rabbit, dst)
    assert 0 < len(in_dst) < TOTAL, "the kill did not land mid-way"
    assert set(in_src) | set(in_dst) == {f"k{i:05d}" for i in range(TOTAL)}  # nothing lost
    duplicates = len(set(in_src) & set(in_dst))
    assert duplicates <= WINDOW
    assert len(in_src) == len(set(in_src)) and len(in_dst) == len(set(in_dst))

    rerun = run_cli(*args)
    assert rerun.returncode == 0, rerun.stderr
    doc = move_report(rerun)
    assert doc["moved"] == len(in_src) and doc["failed"] == 0
    assert doc["duplicates_possible"] >= duplicates
    assert doc["duplicates_possible"] <= WINDOW
    assert any("interrupted" in note for note in doc.get("notes", []))
    print(
        f"killed after {len(in_dst)} moved; {duplicates} in both queues; "
        f"rerun moved {doc['moved']}, reported duplicates_possible {doc['duplicates_possible']}"
    )
    assert rabbit.ready(src) == 0
    final = collections.Counter(_ids(rabbit, dst))
    assert set(final) == {f"k{i:05d}" for i in range(TOTAL)}
    assert sum(final.values()) == TOTAL + duplicates
    assert max(final.values()) <= 2
