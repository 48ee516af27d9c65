"""SQS move: mqtop's batched fallback mover vs a naive per-message boto3 loop.

Both move the same N messages (~200-byte bodies with two message attributes) from a queue to
an empty one on the same SQS endpoint in the same run; each result is checked body by body and
attribute by attribute, so a fast but lossy move cannot win. The naive loop is what a script
usually does: ReceiveMessage(1) -> SendMessage -> DeleteMessage per message. mqtop is told not
to use StartMessageMoveTask, so its batched fallback is what is measured; where the endpoint
implements the native task, its throughput is reported too (``sqs_native_msgs_per_s``).

The endpoint, in this order: MQTOP_TEST_SQS_ENDPOINT; ElasticMQ from Maven Central (a JVM
SQS server, see tests/support/elasticmq.py); a private moto server with its clock
helper replaced (see tests/support/sqs.py). Force one with MQTOP_BENCH_SQS=elasticmq|moto.
``sqs_endpoint_is_moto`` says which one ran. Three rounds on fresh queues, alternating which
side goes first; the figures are medians (the machine's load varies between runs). On moto
the ratio is lower: moto walks every stored message on each send and delete, a cost the naive
loop and the mover share.

    python benchmarks/bench_sqs.py [--quick]
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ATTRIBUTES = {
    "tenant": {"DataType": "String", "StringValue": "acme"},
    "attempt": {"DataType": "Number", "StringValue": "3"},
}


def _fill(client: Any, url: str, n: int) -> set[str]:
    bodies = [f"{i:06d}:" + "x" * 192 for i in range(n)]
    for at in range(0, n, 10):
        client.send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(j), "MessageBody": b, "MessageAttributes": ATTRIBUTES}
                for j, b in enumerate(bodies[at : at + 10])
            ],
        )
    return set(bodies)


def _read_all(client: Any, url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        batch = client.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            VisibilityTimeout=300,
            WaitTimeSeconds=1,
        ).get("Messages", [])
        if not batch:
            return out
        out.extend(batch)


def _check(client: Any, url: str, expected: set[str], marker: bool) -> None:
    got = _read_all(client, url)
    bodies = [m["Body"] for m in got]
    if len(bodies) != len(expected) or set(bodies) != expected:
        raise AssertionError(f"moved {len(bodies)} bodies, expected {len(expected)}")
    for message in got:
        attrs = dict(message.get("MessageAttributes", {}))
        if marker:
            attrs.pop("mqtop-replayed", None)
        if attrs != ATTRIBUTES:
            raise AssertionError(f"attributes changed: {attrs}")


def _naive(client: Any, src: str, dst: str) -> float:
    start = time.perf_counter()
    while True:
        got = client.receive_message(
            QueueUrl=src, MaxNumberOfMessages=1, MessageAttributeNames=["All"], WaitTimeSeconds=1
        ).get("Messages", [])
        if not got:
            break
        message = got[0]
        client.send_message(
            QueueUrl=dst,
            MessageBody=message["Body"],
            MessageAttributes=message.get("MessageAttributes", {}),
        )
        client.delete_message(QueueUrl=src, ReceiptHandle=message["ReceiptHandle"])
    return time.perf_counter() - start


def _mqtop(endpoint: str, src_name: str, dst_name: str, n: int, native: bool = False) -> float:
    from collectors.base import MoveRequest
    from collectors.sqs.actions import SQSActions
    from collectors.sqs.options import SQSOptions
    from mqtop.kernel.secrets import REDACTOR

    options = SQSOptions.model_validate(
        {
            "name": "bench",
            "type": "sqs",
            "region": "us-east-1",
            "endpoint_url": endpoint,
            "access_key_id": "testing",
            "secret_access_key": "testing",
            "native_move": native,  # off: the batched fallback is what is measured
        }
    )
    REDACTOR.clear()

    async def go() -> float:
        actions = SQSActions(options)
        try:
            await actions.count(src_name)  # client built outside the timed part, like boto3's
            start = time.perf_counter()
            result = await actions.move(
                MoveRequest(src_name, dst_name, "replay"), lambda progress: None
            )
            elapsed = time.perf_counter() - start
        finally:
            await actions.close()
        if (result.moved, result.failed) != (n, 0):
            raise AssertionError(f"mqtop moved {result.moved}, failed {result.failed}")
        used_native = any("native move task" in note for note in result.notes)
        if used_native != native:
            raise AssertionError(f"expected native={native}: {result.notes}")
        return elapsed

    return asyncio.run(go())


def _endpoint() -> tuple[str, Any, bool]:
    """(endpoint URL, broker to stop or None, is moto)."""
    endpoint = os.environ.get("MQTOP_TEST_SQS_ENDPOINT")
    if endpoint:
        return endpoint, None, False
    wanted = os.environ.get("MQTOP_BENCH_SQS", "")
    if wanted in ("", "elasticmq"):
        from tests.harness import BrokerUnavailable
        from tests.support.elasticmq import start_elasticmq

        try:
            broker = start_elasticmq()
            return broker.endpoint_url, broker, False
        except BrokerUnavailable:
            if wanted:
                raise
    from tests.support.sqs import start_fast_moto

    broker = start_fast_moto()
    return broker.endpoint_url, broker, True


def _supports_native(client: Any, url: str) -> bool:
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    try:
        client.list_message_move_tasks(SourceArn=arn["QueueArn"], MaxResults=1)
        return True
    except Exception:
        return False


def _round(client: Any, endpoint: str, n: int, mover_first: bool) -> tuple[float, float]:
    """One round on fresh queues: (mqtop seconds, naive seconds), both results checked."""
    token = uuid.uuid4().hex[:8]
    names = {k: f"mqtop-bench-{k}-{token}" for k in ("ms", "md", "ns", "nd")}
    urls = {k: client.create_queue(QueueName=v)["QueueUrl"] for k, v in names.items()}
    try:
        expected = _fill(client, urls["ms"], n)
        _fill(client, urls["ns"], n)
        times: dict[str, float] = {}
        for which in ("mqtop", "naive") if mover_first else ("naive", "mqtop"):
            if which == "mqtop":
                times[which] = _mqtop(endpoint, names["ms"], names["md"], n)
            else:
                times[which] = _naive(client, urls["ns"], urls["nd"])
        _check(client, urls["md"], expected, marker=True)
        _check(client, urls["nd"], expected, marker=False)
        return times["mqtop"], times["naive"]
    finally:
        _drop(client, urls.values())


def _drop(client: Any, urls: Any) -> None:
    for url in urls:
        try:
            client.delete_queue(QueueUrl=url)
        except Exception:
            pass  # best-effort cleanup


def run(quick: bool = False) -> dict[str, float]:
    """Move N messages both ways (N = 5,000; quick: 1,000), three alternating rounds on
    fresh queues; report the median ratio and throughputs."""
    import boto3
    from botocore.config import Config

    n = 1000 if quick else 5000
    endpoint, broker, is_moto = _endpoint()
    client = boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "max_attempts": 1}),
    )
    try:
        rounds = [_round(client, endpoint, n, mover_first=r % 2 == 0) for r in range(3)]
        out = {
            "sqs_move_vs_naive": round(statistics.median(nv / mq for mq, nv in rounds), 2),
            "sqs_move_msgs_per_s": round(statistics.median(n / mq for mq, _ in rounds), 1),
            "sqs_naive_msgs_per_s": round(statistics.median(n / nv for _, nv in rounds), 1),
            "sqs_endpoint_is_moto": 1.0 if is_moto else 0.0,
        }
        token = uuid.uuid4().hex[:8]
        src, dst = f"mqtop-bench-ts-{token}", f"mqtop-bench-td-{token}"
        urls = [client.create_queue(QueueName=q)["QueueUrl"] for q in (src, dst)]
        try:
            if _supports_native(client, urls[0]):
                expected = _fill(client, urls[0], n)
                native_s = _mqtop(endpoint, src, dst, n, native=True)
                _check(client, urls[1], expected, marker=False)
                out["sqs_native_msgs_per_s"] = round(n / native_s, 1)
        finally:
            _drop(client, urls)
    finally:
        if broker is not None:
            broker.stop()
    return out


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv[1:]), indent=2))
