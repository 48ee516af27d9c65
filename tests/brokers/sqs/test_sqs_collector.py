"""SQS collector against a real SQS API (moto_server), through the real CLI pipeline."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest

from tests.harness import SqsBroker, free_port

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


def _attrs(client, url: str) -> dict[str, int]:
    raw = client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return {k: int(v) for k, v in raw.items() if k.startswith("ApproximateNumberOf")}


def _config(write_config, broker: SqsBroker, prefix: str, extra: str = "") -> object:
    return write_config(
        f"""
        interval: 1s
        brokers:
          - name: aws
            type: sqs
            region: us-east-1
            endpoint_url: "{broker.endpoint_url}"
            access_key_id: testing
            secret_access_key: "s3cr3t-key-never-printed"
            queue_name_prefix: "{prefix}"
            {extra}
        """
    )


def _series(doc: dict, queue: str) -> dict:
    matches = [s for s in doc["series"] if s["queue"] == queue]
    assert len(matches) == 1, (queue, [s["queue"] for s in doc["series"]])
    return matches[0]


def _dead_letter(client, url: str, rounds: int) -> None:
    """Receive everything ``rounds`` times without deleting (VisibilityTimeout 0)."""
    for _ in range(rounds):
        while client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
            "Messages"
        ):
            pass


def test_metrics_match_attributes_and_redrive(sqs, sqs_broker, write_config, run_cli, unique):
    client, make = sqs
    prefix = unique("sqsm")
    dlq = make(f"{prefix}-orders-dlq")
    src = make(
        f"{prefix}-orders",
        RedrivePolicy=json.dumps({"deadLetterTargetArn": _arn(client, dlq), "maxReceiveCount": 2}),
    )
    other = make(f"{prefix}-audit")
    # 6 messages exceed maxReceiveCount and move to the DLQ (receiving is what moves them)
    for i in range(6):
        client.send_message(QueueUrl=src, MessageBody=f"poison-{i}")
    _dead_letter(client, src, 3)
    assert _attrs(client, dlq)["ApproximateNumberOfMessages"] == 6
    assert _attrs(client, src)["ApproximateNumberOfMessages"] == 0
    # then 5 fresh messages: 2 in flight, 3 waiting; one delayed message elsewhere
    for i in range(5):
        client.send_message(QueueUrl=src, MessageBody=f"ok-{i}")
    client.receive_message(QueueUrl=src, MaxNumberOfMessages=2, VisibilityTimeout=300)
    client.send_message(QueueUrl=other, MessageBody="later", DelaySeconds=600)
    client.send_message(QueueUrl=other, MessageBody="now")

    path = _config(write_config, sqs_broker, prefix)
    result = run_cli("metrics", "--config", str(path), "--format", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["brokers"] == [{"name": "aws", "type": "sqs", "up": True, "error": None}]

    s_src = _series(doc, f"{prefix}-orders")
    want = _attrs(client, src)
    assert s_src["kind"] == "standard"
    assert s_src["dlq"] == f"{prefix}-orders-dlq"
    m = s_src["metrics"]
    assert m["queue_length"] == want["ApproximateNumberOfMessages"] == 3
    assert m["consumer_lag_messages"] == 3
    assert m["in_flight"] == want["ApproximateNumberOfMessagesNotVisible"] == 2
    assert m["dlq_length"] == _attrs(client, dlq)["ApproximateNumberOfMessages"] == 6
    # SQS keeps no counters, message ages or consumer lists: null, never 0
    for metric in (
        "publish_rate",
        "processing_rate",
        "error_rate",
        "latency_seconds",
        "consumers",
        "consumer_lag_seconds",
    ):
        assert m[metric] is None, metric

    s_dlq = _series(doc, f"{prefix}-orders-dlq")
    assert s_dlq["dlq"] is None
    assert s_dlq["metrics"]["queue_length"] == 6
    assert s_dlq["metrics"]["dlq_length"] is None
    s_other = _series(doc, f"{prefix}-audit")
    assert s_other["metrics"]["queue_length"] == 1  # the delayed message is not waiting yet
    assert s_other["metrics"]["dlq_length"] is None

    queues = run_cli("queues", "--config", str(path), "--format", "json")
    assert queues.returncode == 0, queues.stderr
    listed = {q["queue"]: q for q in json.loads(queues.stdout)}
    assert set(listed) == {f"{prefix}-orders", f"{prefix}-orders-dlq", f"{prefix}-audit"}
    assert listed[f"{prefix}-orders"]["dlq"] == f"{prefix}-orders-dlq"
    assert "s3cr3t-key-never-printed" not in result.stdout + result.stderr + queues.stdout


def test_dlq_mapping_both_ways_and_extras(sqs, sqs_broker, write_config, unique):
    """Reverse mapping via ListDeadLetterSourceQueues; a DLQ outside the prefix is still
    measured; FIFO flag and delayed count are reported as info."""
    from collectors.sqs.collector import SQSCollector
    from collectors.sqs.options import SQSOptions
    from mqtop.config import load_config_file

    client, make = sqs
    prefix = unique("sqsmap")
    outside = unique("elsewhere") + "-dead"  # not matched by the prefix
    dead = make(outside)
    dead_arn = _arn(client, dead)
    policy = json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": 1})
    a = make(f"{prefix}-a", RedrivePolicy=policy)
    make(f"{prefix}-b", RedrivePolicy=policy)
    make(f"{prefix}-skip-me")
    fifo_dlq = make(f"{prefix}-f-dlq.fifo", FifoQueue="true")
    make(
        f"{prefix}-f.fifo",
        FifoQueue="true",
        RedrivePolicy=json.dumps(
            {"deadLetterTargetArn": _arn(client, fifo_dlq), "maxReceiveCount": 3}
        ),
    )
    client.send_message(QueueUrl=a, MessageBody="x")
    _dead_letter(client, a, 2)
    client.send_message(QueueUrl=a, MessageBody="y", DelaySeconds=300)

    path = _config(write_config, sqs_broker, prefix, 'exclude: ["*-skip-*"]')
    options = load_config_file(path).broker("aws")
    assert isinstance(options, SQSOptions)

    async def collect():
        collector = SQSCollector(options)
        try:
            await collector.connect()
            return await collector.collect()
        finally:
            await collector.close()

    collected = asyncio.run(collect())
    by_name = {s.key.queue: s for s in collected.series}
    assert set(by_name) == {
        f"{prefix}-a",
        f"{prefix}-b",
        f"{prefix}-f-dlq.fifo",
        f"{prefix}-f.fifo",
    }
    sa = by_name[f"{prefix}-a"]
    assert sa.dlq == outside
    assert sa.values["dlq_length"] == 1 == _attrs(client, dead)["ApproximateNumberOfMessages"]
    assert sa.info["delayed"] == 1
    assert sa.info["max_receive_count"] == 1
    assert sa.info["dlq_source"] == "redrive_policy"
    assert by_name[f"{prefix}-b"].values["dlq_length"] == 1
    fifo = by_name[f"{prefix}-f.fifo"]
    assert fifo.kind == "fifo" and fifo.info["fifo"] is True
    assert fifo.dlq == f"{prefix}-f-dlq.fifo"
    assert fifo.values["dlq_length"] == 0
    # reverse: the FIFO DLQ lists its source (ListDeadLetterSourceQueues)
    assert by_name[f"{prefix}-f-dlq.fifo"].info["dlq_of"] == [f"{prefix}-f.fifo"]
    sources = client.list_dead_letter_source_queues(QueueUrl=dead)["queueUrls"]
    assert sorted(u.rsplit("/", 1)[-1] for u in sources) == [f"{prefix}-a", f"{prefix}-b"]
    assert not collected.warnings


def test_cloudwatch_rates_latency_and_error_rate(sqs, sqs_broker, write_config, unique):
    """With cloudwatch: true the rates, the oldest message's age and (for a DLQ with one
    source) the dead-lettered share come from GetMetricData."""
    import boto3

    from collectors.sqs.collector import SQSCollector
    from collectors.sqs.options import SQSOptions
    from mqtop.config import load_config_file

    client, make = sqs
    prefix = unique("sqscw")
    busy, idle, shared = f"{prefix}-busy", f"{prefix}-idle", f"{prefix}-shared"
    dlq = make(f"{busy}-dlq")
    make(
        busy,
        RedrivePolicy=json.dumps({"deadLetterTargetArn": _arn(client, dlq), "maxReceiveCount": 3}),
    )
    shared_dlq = make(f"{shared}-dlq")
    shared_policy = json.dumps(
        {"deadLetterTargetArn": _arn(client, shared_dlq), "maxReceiveCount": 3}
    )
    make(shared, RedrivePolicy=shared_policy)
    make(f"{shared}-2", RedrivePolicy=shared_policy)
    make(idle)
    cloudwatch = boto3.client(
        "cloudwatch",
        endpoint_url=sqs_broker.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    minute = dt.datetime.now(tz=dt.UTC).replace(second=0, microsecond=0)

    def point(queue: str, metric: str, ago: int, value: float) -> dict:
        return {
            "MetricName": metric,
            "Dimensions": [{"Name": "QueueName", "Value": queue}],
            "Timestamp": minute - dt.timedelta(minutes=ago),
            "Value": value,
        }

    data = []
    # an older minute and a newer one: the newest complete minute wins
    for ago, sent, deleted, age in ((4, 60.0, 30.0, 10.0), (2, 150.0, 90.0, 42.0)):
        for queue in (busy, shared):
            data += [
                point(queue, "NumberOfMessagesSent", ago, sent),
                point(queue, "NumberOfMessagesDeleted", ago, deleted),
                point(queue, "ApproximateAgeOfOldestMessage", ago, age),
            ]
    # the DLQ grew from 10 to 26 messages in the last minute while 4 were deleted from it:
    # 20 dead letters against 90 processed
    for queue in (f"{busy}-dlq", f"{shared}-dlq"):
        for ago, visible, invisible in ((3, 10.0, 0.0), (2, 25.0, 1.0)):
            data += [
                point(queue, "ApproximateNumberOfMessagesVisible", ago, visible),
                point(queue, "ApproximateNumberOfMessagesNotVisible", ago, invisible),
                point(queue, "ApproximateNumberOfMessagesDelayed", ago, 0.0),
            ]
        data.append(point(queue, "NumberOfMessagesDeleted", 2, 4.0))
    for at in range(0, len(data), 20):
        cloudwatch.put_metric_data(Namespace="AWS/SQS", MetricData=data[at : at + 20])

    path = _config(write_config, sqs_broker, prefix, "cloudwatch: true")
    options = load_config_file(path).broker("aws")
    assert isinstance(options, SQSOptions)

    async def collect():
        collector = SQSCollector(options)
        try:
            await collector.connect()
            return await collector.collect()
        finally:
            await collector.close()

    collected = asyncio.run(collect())
    by_name = {s.key.queue: s.values for s in collected.series}
    assert by_name[busy]["publish_rate"] == pytest.approx(150.0 / 60)
    assert by_name[busy]["processing_rate"] == pytest.approx(90.0 / 60)
    assert by_name[busy]["latency_seconds"] == pytest.approx(42.0)
    assert by_name[busy]["error_rate"] == pytest.approx(20 / (20 + 90))
    # the same numbers, but its DLQ also serves another queue: the share cannot be known
    assert by_name[shared]["processing_rate"] == pytest.approx(90.0 / 60)
    assert by_name[shared]["error_rate"] is None
    # no datapoints for the idle queue: unknown, not zero
    for metric in ("publish_rate", "processing_rate", "latency_seconds", "error_rate"):
        assert by_name[idle][metric] is None, metric
    assert not collected.warnings


def test_cloudwatch_without_data_says_why_once(sqs, sqs_broker, write_config, run_cli, unique):
    """An endpoint whose GetMetricData answers with no datapoint for any queue (moto keeps no
    SQS metrics): the CloudWatch metrics stay null, and one warning per poll says why."""
    from collectors.sqs.collector import SQSCollector
    from collectors.sqs.options import SQSOptions
    from mqtop.config import load_config_file

    _, make = sqs
    prefix = unique("sqsnocw")
    make(f"{prefix}-a")
    make(f"{prefix}-b")
    path = _config(write_config, sqs_broker, prefix, "cloudwatch: true")

    table = run_cli("metrics", "--config", str(path))
    assert table.returncode == 0, table.stderr
    warned = [line for line in table.stdout.splitlines() if "cloudwatch:" in line]
    assert len(warned) == 1, table.stdout
    assert "no datapoint for any of the 2 queue(s)" in warned[0]
    assert "publish_rate" in warned[0]

    options = load_config_file(path).broker("aws")
    assert isinstance(options, SQSOptions)

    async def two_polls():
        collector = SQSCollector(options)
        try:
            await collector.connect()
            return await collector.collect(), await collector.collect()
        finally:
            await collector.close()

    first, second = asyncio.run(two_polls())
    for collected in (first, second):  # CloudWatch read once, the reason kept while it holds
        assert len(collected.warnings) == 1 and "no datapoint" in collected.warnings[0]
        for series in collected.series:
            for metric in ("publish_rate", "processing_rate", "latency_seconds", "error_rate"):
                assert series.values[metric] is None, metric


def test_unreachable_endpoint_one_line_exit_3(write_config, run_cli):
    port = free_port()
    path = write_config(
        f"""
        interval: 200ms
        timeout: 3s
        brokers:
          - name: gone
            type: sqs
            region: eu-west-1
            endpoint_url: "http://127.0.0.1:{port}"
            access_key_id: AKIDEXAMPLE
            secret_access_key: "wJalrXUtnFEMI-very-secret"
        """
    )
    result = run_cli("metrics", "--config", str(path), "--format", "json")
    assert result.returncode == 3, result.stderr
    doc = json.loads(result.stdout)
    assert doc["brokers"][0]["up"] is False and doc["brokers"][0]["error"]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert "wJalrXUtnFEMI-very-secret" not in result.stdout + result.stderr

    shown = run_cli("config", "show", str(path))
    assert "wJalrXUtnFEMI-very-secret" not in shown.stdout + shown.stderr


def test_bad_options_are_config_errors(write_config, run_cli):
    path = write_config(
        """
        brokers:
          - name: aws
            type: sqs
            region: not a region
            endpoint_url: "ftp://example"
            access_key_id: AKIDONLY
            max_parallel: 0
        """
    )
    result = run_cli("config", "validate", str(path))
    assert result.returncode == 2
    text = result.stdout + result.stderr
    for needle in ("region", "endpoint_url", "max_parallel"):
        assert needle in text, text
    assert "Traceback" not in text
