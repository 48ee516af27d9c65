"""Queue health of SQS (moto_server) driven by a real boto3 consumer: SQS has no consumer
registry and, without CloudWatch, no counters, so only the work (visible + in flight)
shrinking shows consumption: receiving without deleting is not progress."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.harness import SqsBroker
from tests.support.health import Until, watch_view

pytestmark = [pytest.mark.broker, pytest.mark.timeout(60)]


async def watch(
    engine: Any, queue: str, until: Until, limit: float
) -> tuple[list[str | None], Any]:
    return await watch_view(engine, "aws", queue, until, limit)


def test_sqs_stop_receive_without_delete_and_draining(sqs_broker: SqsBroker, write_config, unique):
    from mqtop.config import load_config_file
    from mqtop.engine import Engine

    client = sqs_broker.client()
    queue = unique("health")
    url = client.create_queue(QueueName=queue)["QueueUrl"]
    try:
        for i in range(3):
            client.send_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(j), "MessageBody": f"m{i}-{j}"} for j in range(10)],
            )
        path = write_config(
            f"""
            interval: 0.5s
            brokers:
              - name: aws
                type: sqs
                region: us-east-1
                endpoint_url: "{sqs_broker.endpoint_url}"
                access_key_id: testing
                secret_access_key: "s3cr3t-key-never-printed"
                queue_name_prefix: "{queue}"
                group_status_window: 3s
            """
        )
        engine = Engine(load_config_file(path))

        async def scenario() -> dict[str, Any]:
            out: dict[str, Any] = {}
            try:
                out["idle"], view = await watch(engine, queue, lambda s, v: s == "STOP", 10)
                out["reason"] = view.info["status_reason"]
                # a consumer receives 10 and never deletes them: they only move to in flight
                got = client.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=120
                ).get("Messages", [])
                out["received"] = len(got)
                out["held"], view = await watch(
                    engine, queue, lambda s, v: v.metrics["in_flight"] and s is not None, 5
                )
                out["held_view"] = dict(view.metrics)
                # it deletes what it holds and works the queue off
                for m in got:
                    client.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

                def drain(status: str | None, view: Any) -> bool:
                    batch = client.receive_message(QueueUrl=url, MaxNumberOfMessages=3)
                    for m in batch.get("Messages", []):
                        client.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
                    return status == "OK"

                out["draining"], view = await watch(engine, queue, drain, 10)
                out["draining_reason"] = view.info["status_reason"]
            finally:
                await engine.close()
            return out

        out = asyncio.run(scenario())
    finally:
        client.delete_queue(QueueUrl=url)
    assert out["idle"][0] is None and "STALL" not in out["idle"], out  # a window first
    assert "does not tell consumers" in out["reason"]
    assert out["received"] > 0
    # received but not deleted: visible fell, in flight rose, the work did not shrink
    assert out["held"][-1] == "STOP", out
    assert out["held_view"]["in_flight"] == out["received"], out
    assert out["held_view"]["consumers"] is None  # SQS has no consumer registry
    assert out["draining"][-1] == "OK" and out["draining_reason"] in ("draining", "consuming")
