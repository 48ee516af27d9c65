"""The native move path (StartMessageMoveTask) against a server that implements it.

moto answers HTTP 500 to StartMessageMoveTask, so the native path runs here against ElasticMQ
(an SQS-compatible server from Maven Central, fetched into the cache like Kafka): redrive,
ListDeadLetterSourceQueues, StartMessageMoveTask and ListMessageMoveTasks are implemented.
The same file checks the collector's numbers against this second implementation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import _obtain
from tests.harness import SqsBroker
from tests.support.elasticmq import start_elasticmq
from tests.support.reports import move_report

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def elasticmq() -> Iterator[SqsBroker]:
    """A private ElasticMQ server (skipped, or failed under MQTOP_REQUIRE_BROKERS=1)."""
    broker = _obtain("ElasticMQ", start_elasticmq)
    assert isinstance(broker, SqsBroker)
    yield broker
    broker.stop()


def _counts(client, url: str) -> tuple[int, int]:
    raw = client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(raw["ApproximateNumberOfMessages"]), int(
        raw["ApproximateNumberOfMessagesNotVisible"]
    )


def test_native_move_task_and_metrics(elasticmq: SqsBroker, write_config, run_cli, unique):
    client = elasticmq.client()
    prefix = unique("emq")
    dlq = client.create_queue(QueueName=f"{prefix}-dlq")["QueueUrl"]
    arn = client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    src = client.create_queue(
        QueueName=f"{prefix}-src",
        Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 1}),
        },
    )["QueueUrl"]
    try:
        attrs = {"trace": {"DataType": "String", "StringValue": "t-1"}}
        bodies = {f"job-{i}" for i in range(30)}
        for body in sorted(bodies):
            client.send_message(QueueUrl=src, MessageBody=body, MessageAttributes=attrs)
        for _ in range(3):  # receive past maxReceiveCount: the redrive policy moves them
            while client.receive_message(
                QueueUrl=src, MaxNumberOfMessages=10, VisibilityTimeout=0
            ).get("Messages"):
                pass
        assert _counts(client, dlq) == (30, 0) and _counts(client, src) == (0, 0)

        path = write_config(
            f"""
            interval: 1s
            brokers:
              - name: emq
                type: sqs
                region: us-east-1
                endpoint_url: "{elasticmq.endpoint_url}"
                access_key_id: testing
                secret_access_key: testing
                queue_name_prefix: "{prefix}"
            """
        )
        metrics = run_cli("metrics", "--config", str(path), "--format", "json")
        assert metrics.returncode == 0, metrics.stderr
        series = {s["queue"]: s for s in json.loads(metrics.stdout)["series"]}
        assert series[f"{prefix}-src"]["dlq"] == f"{prefix}-dlq"
        assert series[f"{prefix}-src"]["metrics"]["dlq_length"] == 30
        assert series[f"{prefix}-src"]["metrics"]["queue_length"] == 0
        assert series[f"{prefix}-src"]["metrics"]["publish_rate"] is None

        result = run_cli(
            "dlq",
            "replay",
            "emq",
            f"{prefix}-dlq",
            "--yes",
            "--format",
            "json",
            "--config",
            str(path),
        )
        assert result.returncode == 0, result.stderr
        report = move_report(result)
        assert report["destination"] == f"{prefix}-src"
        assert (report["moved"], report["failed"]) == (30, 0)
        assert any("native move task" in note for note in report["notes"])
        assert _counts(client, dlq) == (0, 0)
        back = []
        while True:
            batch = client.receive_message(
                QueueUrl=src,
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                VisibilityTimeout=60,
            ).get("Messages", [])
            if not batch:
                break
            back += batch
        assert {m["Body"] for m in back} == bodies and len(back) == 30
        assert all(m["MessageAttributes"] == attrs for m in back)
    finally:
        client.delete_queue(QueueUrl=src)
        client.delete_queue(QueueUrl=dlq)
