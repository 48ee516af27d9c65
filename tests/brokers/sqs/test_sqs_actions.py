"""SQS dlq peek / replay / move / purge against a real SQS API (moto_server), via the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness import SqsBroker
from tests.support.reports import move_report

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
    for url in created:
        client.delete_queue(QueueUrl=url)


def _arn(client, url: str) -> str:
    return client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]


def _counts(client, url: str) -> tuple[int, int]:
    raw = client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(raw["ApproximateNumberOfMessages"]), int(
        raw["ApproximateNumberOfMessagesNotVisible"]
    )


def _drain(client, url: str) -> list[dict]:
    """Receive (and delete) every message of a queue, in order."""
    out: list[dict] = []
    while True:
        batch = client.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if not batch:
            return out
        out.extend(batch)
        client.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)
            ],
        )


def _dead_letter(client, url: str, rounds: int) -> None:
    for _ in range(rounds):
        while client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
            "Messages"
        ):
            pass


def _config(write_config, broker: SqsBroker, prefix: str, extra: str = "") -> Path:
    return write_config(
        f"""
        audit_log: audit.jsonl
        brokers:
          - name: aws
            type: sqs
            region: us-east-1
            endpoint_url: "{broker.endpoint_url}"
            access_key_id: testing
            secret_access_key: testing
            queue_name_prefix: "{prefix}"
            move_visibility_timeout: 5s
            {extra}
        """
    )


def _redrive_pair(client, make, prefix: str, fifo: bool = False) -> tuple[str, str]:
    suffix = ".fifo" if fifo else ""
    extra = {"FifoQueue": "true"} if fifo else {}
    dlq = make(f"{prefix}-jobs-dlq{suffix}", **extra)
    policy = json.dumps({"deadLetterTargetArn": _arn(client, dlq), "maxReceiveCount": 1})
    src = make(f"{prefix}-jobs{suffix}", RedrivePolicy=policy, **extra)
    return src, dlq


ATTRS = {
    "trace": {"DataType": "String", "StringValue": "abc-123"},
    "retries": {"DataType": "Number", "StringValue": "3"},
    "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff\x1b[31m"},
    "kind": {"DataType": "String.custom", "StringValue": "order\u202eevil"},
}


def test_peek_shows_messages_and_leaves_them(sqs, sqs_broker, write_config, run_cli, unique):
    client, make = sqs
    prefix = unique("sqspk")
    src, dlq = _redrive_pair(client, make, prefix)
    client.send_message(QueueUrl=src, MessageBody='{"order": 1}', MessageAttributes=ATTRS)
    client.send_message(QueueUrl=src, MessageBody="\x1b]0;pwned\x07 plain")
    _dead_letter(client, src, 2)
    assert _counts(client, dlq) == (2, 0)

    path = _config(write_config, sqs_broker, prefix)
    result = run_cli("dlq", "peek", "aws", f"{prefix}-jobs-dlq", "--format", "json", "-n", "5")
    result = run_cli(
        "dlq",
        "peek",
        "aws",
        f"{prefix}-jobs-dlq",
        "--format",
        "json",
        "-n",
        "5",
        "--config",
        str(path),
    )
    assert result.returncode == 0, result.stderr
    assert "ApproximateReceiveCount" in result.stderr  # side effect told first
    assert "no RedrivePolicy" in result.stderr  # the DLQ itself dead-letters nowhere
    peeked = {m["body"]: m for m in json.loads(result.stdout)}
    assert set(peeked) == {'{"order": 1}', "\x1b]0;pwned\x07 plain"}
    first = peeked['{"order": 1}']
    assert first["headers"]["trace"] == "abc-123"
    assert first["headers"]["retries"] == "3"
    assert first["headers"]["blob"] == {"base64": "AP8bWzMxbQ=="}
    assert first["properties"]["attribute_types"] == {
        "retries": "Number",
        "blob": "Binary",
        "kind": "String.custom",
    }
    # moto does not set DeadLetterQueueSourceArn: the queue dead-lettering here is named, but
    # no reason or receive count is claimed for a message SQS did not say it moved
    assert first["death"] == {"reason": None, "count": None, "original_queue": f"{prefix}-jobs"}
    # the messages are visible again at once, nothing consumed
    assert _counts(client, dlq) == (2, 0)

    table = run_cli("dlq", "peek", "aws", f"{prefix}-jobs-dlq", "--config", str(path))
    assert table.returncode == 0, table.stderr
    assert "\x1b" not in table.stdout and "\u202e" not in table.stdout
    assert f"{prefix}-jobs" in table.stdout
    assert _counts(client, dlq) == (2, 0)

    # the source has a RedrivePolicy: the warning says receiving can dead-letter, and where to
    source = run_cli("dlq", "peek", "aws", f"{prefix}-jobs", "--config", str(path))
    assert source.returncode == 0, source.stderr
    assert "maxReceiveCount 1" in source.stderr
    assert f"dead-letter queue {prefix}-jobs-dlq" in source.stderr


def test_replay_restores_bodies_and_attributes(
    sqs, sqs_broker, write_config, run_cli, unique, tmp_path
):
    client, make = sqs
    prefix = unique("sqsrp")
    src, dlq = _redrive_pair(client, make, prefix)
    bodies = [f"order-{i}" for i in range(25)]
    for i, body in enumerate(bodies):
        attrs = dict(ATTRS) if i % 2 == 0 else {}
        client.send_message(QueueUrl=src, MessageBody=body, MessageAttributes=attrs)
    _dead_letter(client, src, 2)
    assert _counts(client, dlq)[0] == 25

    path = _config(write_config, sqs_broker, prefix)
    refused = run_cli("dlq", "replay", "aws", f"{prefix}-jobs-dlq", "--config", str(path))
    assert refused.returncode == 2 and "--yes" in refused.stderr  # no terminal, no --yes
    assert _counts(client, dlq)[0] == 25

    result = run_cli(
        "dlq",
        "replay",
        "aws",
        f"{prefix}-jobs-dlq",
        "--yes",
        "--format",
        "json",
        "--config",
        str(path),
    )
    assert result.returncode == 0, result.stderr
    report = move_report(result)
    assert report["source"] == f"{prefix}-jobs-dlq" and report["destination"] == f"{prefix}-jobs"
    assert (report["moved"], report["failed"], report["skipped"]) == (25, 0, 0)
    assert report["duplicates_possible"] == 0 and report["dry_run"] is False
    assert any("StartMessageMoveTask" in n for n in report["notes"])  # moto: fallback used
    assert _counts(client, dlq) == (0, 0)

    back = _drain(client, src)
    assert sorted(m["Body"] for m in back) == sorted(bodies)
    for message in back:
        attrs = message.get("MessageAttributes", {})
        marker = json.loads(attrs.pop("mqtop-replayed")["StringValue"])
        assert marker["from"] == f"{prefix}-jobs-dlq" and marker["count"] == 1
        index = int(message["Body"].split("-")[1])
        assert attrs == (ATTRS if index % 2 == 0 else {}), message["Body"]

    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert audit[-1]["action"] == "replay" and audit[-1]["count"] == 25
    assert audit[-1]["result"] == "ok"


def test_fifo_round_trip_keeps_groups_and_order(sqs, sqs_broker, write_config, run_cli, unique):
    """Dead letters of a FIFO queue go back in group order, none dropped as duplicates.

    The dead letters carry the deduplication ids their originals were sent with (as SQS
    redrive keeps them). Resending an id inside its 5-minute window is dropped silently (on
    AWS even after the original was consumed; moto while the original is still queued, as
    here), so the replay must not reuse them.
    """
    client, make = sqs
    prefix = unique("sqsff")
    src, dlq = _redrive_pair(client, make, prefix, fifo=True)
    order = []
    for i in range(12):
        group = f"g{i % 3}"
        body = f"{group}:{i}"
        attrs = {"seq": {"DataType": "Number", "StringValue": str(i)}}
        client.send_message(
            QueueUrl=src,
            MessageBody=body,
            MessageGroupId=group,
            MessageDeduplicationId=f"dedup-{i}",
            MessageAttributes=attrs,
        )
        client.send_message(
            QueueUrl=dlq,
            MessageBody=body,
            MessageGroupId=group,
            MessageDeduplicationId=f"dedup-{i}",
            MessageAttributes=attrs,
        )
        order.append((group, body))
    # the endpoint does deduplicate: the same id again now is dropped
    client.send_message(
        QueueUrl=src, MessageBody="again", MessageGroupId="g0", MessageDeduplicationId="dedup-0"
    )
    assert _counts(client, src) == (12, 0)

    path = _config(write_config, sqs_broker, prefix)
    result = run_cli(
        "dlq",
        "replay",
        "aws",
        f"{prefix}-jobs-dlq.fifo",
        "--yes",
        "--format",
        "json",
        "--config",
        str(path),
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["moved"], report["failed"]) == (12, 0)
    assert _counts(client, dlq) == (0, 0)
    everything = _drain(client, src)
    assert len(everything) == 24
    back = [m for m in everything if "mqtop-replayed" in m.get("MessageAttributes", {})]
    assert len(back) == 12
    for message in back:
        group = message["Attributes"]["MessageGroupId"]
        assert message["Body"].startswith(group + ":")
        assert message["MessageAttributes"]["seq"]["StringValue"] == message["Body"].split(":")[1]
        assert message["Attributes"]["MessageDeduplicationId"] != "dedup-" + message["Body"][3:]
    for group in ("g0", "g1", "g2"):
        got = [m["Body"] for m in back if m["Attributes"]["MessageGroupId"] == group]
        assert got == [body for g, body in order if g == group]


def test_partial_batch_failure_reported_and_kept(
    sqs, sqs_broker, write_config, run_cli, unique, tmp_path
):
    client, make = sqs
    prefix = unique("sqspf")
    dlq = make(f"{prefix}-dead")
    small = make(f"{prefix}-small", MaximumMessageSize="1024")
    for i in range(9):
        client.send_message(QueueUrl=dlq, MessageBody=f"fits-{i}")
    client.send_message(QueueUrl=dlq, MessageBody="B" * 3000)

    path = _config(write_config, sqs_broker, prefix)
    result = run_cli(
        "dlq",
        "move",
        "aws",
        f"{prefix}-dead",
        f"{prefix}-small",
        "--yes",
        "--format",
        "json",
        "--config",
        str(path),
    )
    assert result.returncode == 3, result.stderr
    report = move_report(result)
    assert (report["moved"], report["failed"]) == (9, 1)
    assert report["errors"] and "1024" in report["errors"][0]
    # the big one is back in the source, visible; the rest arrived, without a replay marker
    assert _counts(client, dlq) == (1, 0)
    left = _drain(client, dlq)
    assert [m["Body"] for m in left] == ["B" * 3000]
    moved = _drain(client, small)
    assert sorted(m["Body"] for m in moved) == sorted(f"fits-{i}" for i in range(9))
    assert all("mqtop-replayed" not in m.get("MessageAttributes", {}) for m in moved)
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert audit[-1]["result"] == "partial" and audit[-1]["details"]["failed"] == 1


def test_filter_limit_dry_run_and_attribute_limit(sqs, sqs_broker, write_config, run_cli, unique):
    client, make = sqs
    prefix = unique("sqsfl")
    src = make(f"{prefix}-src")
    dst = make(f"{prefix}-dst")
    full = {f"a{i}": {"DataType": "String", "StringValue": str(i)} for i in range(10)}
    for i in range(20):
        kind = "refund" if i % 2 else "order"
        labelled = {"kind": {"DataType": "String", "StringValue": kind}}
        client.send_message(
            QueueUrl=src,
            MessageBody=json.dumps({"kind": kind, "n": i}),
            MessageAttributes=full if i == 1 else labelled,
        )
    path = _config(write_config, sqs_broker, prefix)
    base = ["--config", str(path), "--format", "json"]

    dry = run_cli(
        "dlq", "replay", "aws", f"{prefix}-src", "--to", f"{prefix}-dst", "--dry-run", *base
    )
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["moved"] == 20 and json.loads(dry.stdout)["dry_run"] is True
    dry_f = run_cli(
        "dlq",
        "replay",
        "aws",
        f"{prefix}-src",
        "--to",
        f"{prefix}-dst",
        "--dry-run",
        "--filter",
        "json.kind=refund",
        *base,
    )
    assert dry_f.returncode == 0, dry_f.stderr
    assert (json.loads(dry_f.stdout)["moved"], json.loads(dry_f.stdout)["skipped"]) == (10, 10)
    assert _counts(client, src) == (20, 0) and _counts(client, dst) == (0, 0)

    limited = run_cli(
        "dlq",
        "replay",
        "aws",
        f"{prefix}-src",
        "--to",
        f"{prefix}-dst",
        "--yes",
        "--filter",
        "header.kind=refund",
        "--limit",
        "4",
        *base,
    )
    assert limited.returncode == 0, limited.stderr
    assert json.loads(limited.stdout)["moved"] == 4
    assert _counts(client, src) == (16, 0) and _counts(client, dst) == (4, 0)

    rest = run_cli(
        "dlq",
        "replay",
        "aws",
        f"{prefix}-src",
        "--to",
        f"{prefix}-dst",
        "--yes",
        "--filter",
        "header.kind=refund",
        *base,
    )
    assert rest.returncode == 0, rest.stderr
    report = json.loads(rest.stdout)
    # the refund with 10 attributes has no header.kind: it is skipped like the orders
    assert (report["moved"], report["skipped"]) == (5, 11)
    assert _counts(client, src) == (11, 0)
    all_rest = run_cli(
        "dlq",
        "replay",
        "aws",
        f"{prefix}-src",
        "--to",
        f"{prefix}-dst",
        "--yes",
        "--filter",
        "json.kind=refund",
        *base,
    )
    report = move_report(all_rest)
    assert report["moved"] == 1
    assert any("10 attributes" in n for n in report["notes"])
    moved = _drain(client, dst)
    kinds = [json.loads(m["Body"])["kind"] for m in moved]
    assert kinds == ["refund"] * 10
    crowded = [m for m in moved if json.loads(m["Body"])["n"] == 1]
    assert crowded[0]["MessageAttributes"] == full  # not an 11th attribute
    left = _drain(client, src)
    assert sorted(json.loads(m["Body"])["n"] for m in left) == list(range(0, 20, 2))


def test_readonly_purge_and_errors(sqs, sqs_broker, write_config, run_cli, unique, tmp_path):
    client, make = sqs
    prefix = unique("sqspu")
    q = make(f"{prefix}-q")
    for i in range(7):
        client.send_message(QueueUrl=q, MessageBody=str(i))
    ro = _config(write_config, sqs_broker, prefix, "readonly: true")
    refused = run_cli("dlq", "purge", "aws", f"{prefix}-q", "--yes", "--config", str(ro))
    assert refused.returncode == 2 and "readonly" in refused.stderr
    assert _counts(client, q) == (7, 0)

    path = _config(write_config, sqs_broker, prefix)
    missing = run_cli("dlq", "peek", "aws", f"{prefix}-nope", "--config", str(path))
    assert missing.returncode == 2 and "no queue" in missing.stderr
    assert "Traceback" not in missing.stderr
    for bad in ("bad name!\x1b[2J", "arn:aws:s3:::bucket"):
        invalid = run_cli("dlq", "peek", "aws", bad, "--config", str(path))
        assert invalid.returncode == 2, invalid.stderr
        assert "Traceback" not in invalid.stderr and "\x1b" not in invalid.stderr
    no_target = run_cli("dlq", "replay", "aws", f"{prefix}-q", "--yes", "--config", str(path))
    assert no_target.returncode == 2 and "--to" in no_target.stderr
    kafka_flag = run_cli(
        "dlq",
        "move",
        "aws",
        f"{prefix}-q",
        f"{prefix}-q2",
        "--yes",
        "--keep-partition",
        "--config",
        str(path),
    )
    assert kafka_flag.returncode == 2, kafka_flag.stderr
    assert "--keep-partition: not supported by sqs brokers" in kafka_flag.stderr

    purged = run_cli(
        "dlq", "purge", "aws", f"{prefix}-q", "--yes", "--format", "json", "--config", str(path)
    )
    assert purged.returncode == 0, purged.stderr
    assert json.loads(purged.stdout) == {"queue": f"{prefix}-q", "purged": 7}
    assert _counts(client, q) == (0, 0)
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert audit[-1]["action"] == "purge" and audit[-1]["count"] == 7


def test_fifo_failure_holds_back_the_rest_of_its_group(
    sqs, sqs_broker, write_config, run_cli, unique
):
    """A FIFO message that cannot be sent keeps the later messages of its group behind it."""
    client, make = sqs
    prefix = unique("sqsfh")
    dlq = make(f"{prefix}-dead.fifo", FifoQueue="true")
    dst = make(f"{prefix}-small.fifo", FifoQueue="true", MaximumMessageSize="1024")
    for i, (group, body) in enumerate(
        [("g1", "first"), ("g1", "X" * 3000), ("g1", "third"), ("g2", "other")]
    ):
        client.send_message(
            QueueUrl=dlq, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=str(i)
        )
    path = _config(write_config, sqs_broker, prefix)
    result = run_cli(
        "dlq",
        "move",
        "aws",
        f"{prefix}-dead.fifo",
        f"{prefix}-small.fifo",
        "--yes",
        "--format",
        "json",
        "--config",
        str(path),
    )
    assert result.returncode == 3, result.stderr
    report = move_report(result)
    assert (report["moved"], report["failed"]) == (2, 2)
    assert any("held back" in e for e in report["errors"])
    moved = sorted(m["Body"] for m in _drain(client, dst))
    assert moved == ["first", "other"]
    left = _drain(client, dlq)
    assert [m["Body"] for m in left] == ["X" * 3000, "third"]  # still in order
