"""SIGKILL in the middle of an SQS move of 2,000 messages: nothing is lost, a rerun finishes.

Large queues run on a private moto server whose clock helper is ``time.time()``: moto
recomputes every queue attribute (walking all stored messages, reading the clock for each)
whenever it stores a message, and its clock helper does timezone-aware datetime arithmetic,
which makes a 2,000-message queue take minutes on two cores. The replacement returns the same
values; the SQS implementation serving the API is moto's own. With MQTOP_TEST_SQS_ENDPOINT set,
that endpoint is used instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import (
    SqsBroker,
    visible_bodies,
)
from tests.support.reports import move_report
from tests.support.sqs import start_fast_moto

pytestmark = [pytest.mark.broker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
TOTAL = 2000


@pytest.fixture(scope="module")
def volume_sqs(sqs_broker: SqsBroker) -> Iterator[SqsBroker]:
    """An SQS endpoint for large queues (the configured one, else a fast private moto)."""
    if os.environ.get("MQTOP_TEST_SQS_ENDPOINT"):
        yield sqs_broker
        return
    broker = start_fast_moto()
    yield broker
    broker.stop()


def _count(client, url: str) -> tuple[int, int]:
    raw = client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(raw["ApproximateNumberOfMessages"]), int(
        raw["ApproximateNumberOfMessagesNotVisible"]
    )


def _bodies(client, url: str) -> list[str]:
    """Every message body of a queue, read without consuming (released at the end)."""
    return visible_bodies(client, url, visibility=120, wait=1)


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


def test_sigkill_mid_move_loses_nothing(volume_sqs: SqsBroker, write_config, unique, tmp_path):
    client = volume_sqs.client()
    prefix = unique("sqskill")
    src = client.create_queue(QueueName=f"{prefix}-dlq")["QueueUrl"]
    dst = client.create_queue(QueueName=f"{prefix}-work")["QueueUrl"]
    try:
        expected = {f"msg-{i:05d}:" + "p" * 200 for i in range(TOTAL)}
        ordered = sorted(expected)
        for at in range(0, TOTAL, 10):
            client.send_message_batch(
                QueueUrl=src,
                Entries=[
                    {"Id": str(j), "MessageBody": body}
                    for j, body in enumerate(ordered[at : at + 10])
                ],
            )
        assert _count(client, src) == (TOTAL, 0)
        visibility = 4
        path = write_config(
            f"""
            brokers:
              - name: aws
                type: sqs
                region: us-east-1
                endpoint_url: "{volume_sqs.endpoint_url}"
                access_key_id: testing
                secret_access_key: testing
                move_visibility_timeout: {visibility}s
            """
        )
        args = [
            "dlq",
            "move",
            "aws",
            f"{prefix}-dlq",
            f"{prefix}-work",
            "--yes",
            "--format",
            "json",
            "--config",
            str(path),
        ]

        proc = _cli(args, tmp_path)
        deadline = time.monotonic() + 120
        moved_at_kill = 0
        while time.monotonic() < deadline and proc.poll() is None:
            moved_at_kill = _count(client, dst)[0]
            if moved_at_kill >= 300:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
        assert 300 <= moved_at_kill < TOTAL, "the kill did not land mid-move"

        # after the killed run's visibility timeout every message is visible somewhere
        time.sleep(visibility + 1)
        in_src, in_dst = _bodies(client, src), _bodies(client, dst)
        assert expected <= set(in_src) | set(in_dst)
        duplicated = len(in_src) + len(in_dst) - TOTAL
        assert 0 <= duplicated <= 4 * 10  # at most the batches in flight (4 loops of 10)
        assert _count(client, src)[1] == 0 and _count(client, dst)[1] == 0

        rerun = _cli(args, tmp_path)
        out, err = rerun.communicate(timeout=300)
        assert rerun.returncode == 0, err
        assert "Traceback" not in err
        report = move_report(stdout=out, stderr=err)
        assert report["failed"] == 0 and report["moved"] == len(in_src)
        # the killed run left a journal: the rerun reports what may now be there twice
        assert duplicated <= report["duplicates_possible"] <= 40
        assert any("interrupted" in note for note in report["notes"])
        assert _count(client, src) == (0, 0)
        final = _bodies(client, dst)
        assert set(final) == expected
        assert len(final) - TOTAL <= 40
    finally:
        client.delete_queue(QueueUrl=src)
        client.delete_queue(QueueUrl=dst)
