"""``mqtop lint`` on a real SQS API (moto_server): each rule broken and satisfied, read
from the queues' attributes."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.harness import SqsBroker

pytestmark = pytest.mark.broker


@pytest.fixture
def sqs(sqs_broker: SqsBroker):
    client = sqs_broker.client()
    created: list[str] = []

    def make(name: str, **attributes: str) -> str:
        url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        created.append(url)
        return url

    yield client, make
    for url in reversed(created):
        client.delete_queue(QueueUrl=url)


def _arn(client, url: str) -> str:
    attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return str(attributes["Attributes"]["QueueArn"])


def _redrive(client, url: str, count: int) -> str:
    return json.dumps({"deadLetterTargetArn": _arn(client, url), "maxReceiveCount": str(count)})


def _lint(run_cli, write_config, broker: SqsBroker, prefix: str, *args: str):
    path = write_config(
        f"""
        brokers:
          - name: aws
            type: sqs
            region: us-east-1
            endpoint_url: "{broker.endpoint_url}"
            access_key_id: testing
            secret_access_key: "s3cr3t-key-never-printed"
            queue_name_prefix: "{prefix}"
        """
    )
    result = run_cli("lint", "--config", str(path), "--format", "json", *args)
    assert "s3cr3t" not in result.stdout + result.stderr
    return result, json.loads(result.stdout)


def _found(data: dict) -> set[tuple[str, str]]:
    return {(f["rule"], f["queue"]) for f in data["findings"]}


def test_redrive_receive_count_and_retention(sqs, sqs_broker, unique, run_cli, write_config):
    client, make = sqs
    p = unique("lint-sqs")
    long_dlq = make(p + "-good-dlq", MessageRetentionPeriod="1209600")
    make(
        p + "-good",
        MessageRetentionPeriod="345600",
        RedrivePolicy=_redrive(client, long_dlq, 5),
    )
    make(p + "-bare")
    short_dlq = make(p + "-hasty-dlq", MessageRetentionPeriod="345600")
    make(
        p + "-hasty",
        MessageRetentionPeriod="345600",
        RedrivePolicy=_redrive(client, short_dlq, 1),
    )

    # a DLQ outside queue_name_prefix is still read (by name)
    elsewhere = make(unique("lint-sqsout") + "-dlq", MessageRetentionPeriod="60")
    make(
        p + "-far",
        MessageRetentionPeriod="345600",
        RedrivePolicy=_redrive(client, elsewhere, 3),
    )

    result, data = _lint(run_cli, write_config, sqs_broker, p)
    assert result.returncode == 1, result.stderr
    assert _found(data) == {
        ("sqs-no-redrive", p + "-bare"),
        ("sqs-max-receive-count-1", p + "-hasty"),
        ("sqs-dlq-retention", p + "-hasty"),
        ("sqs-dlq-retention", p + "-far"),
    }
    assert data["brokers"] == ["aws"]


def test_dlq_of_another_type(sqs, sqs_broker, unique, run_cli, write_config):
    client, make = sqs
    p = unique("lint-sqsfifo")
    fifo_dlq = make(p + "-dlq.fifo", FifoQueue="true", MessageRetentionPeriod="1209600")
    std_dlq = make(p + "-dlq", MessageRetentionPeriod="1209600")
    make(
        p + "-ok.fifo",
        FifoQueue="true",
        MessageRetentionPeriod="345600",
        RedrivePolicy=_redrive(client, fifo_dlq, 4),
    )
    try:
        make(
            p + "-mixed",
            MessageRetentionPeriod="345600",
            RedrivePolicy=_redrive(client, fifo_dlq, 4),
        )
    except ClientError as exc:  # an endpoint that refuses it, as AWS does
        pytest.fail(f"the endpoint refused a standard queue with a FIFO DLQ: {exc}")
    make(
        p + "-std",
        MessageRetentionPeriod="345600",
        RedrivePolicy=_redrive(client, std_dlq, 4),
    )

    result, data = _lint(run_cli, write_config, sqs_broker, p, "--fail-on", "critical")
    assert result.returncode == 1
    assert _found(data) == {("sqs-dlq-type-mismatch", p + "-mixed")}
    assert data["findings"][0]["severity"] == "critical"
