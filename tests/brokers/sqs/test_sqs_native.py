"""Pure logic of the SQS actions: the native move task flow (stubbed client: moto does not
implement StartMessageMoveTask), the fallback decision, and the entry builders."""

from __future__ import annotations

import asyncio
import json

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.stub import Stubber

from collectors.base import MoveProgress, MoveRequest
from collectors.sqs import native as sqs_native
from collectors.sqs.actions import SQSActions
from collectors.sqs.codecs import (
    FIFO_DEDUP_WINDOW_MS,
    REPLAY_ATTRIBUTE,
    Received,
    build_entry,
    chunk_entries,
    fifo_dedup_id,
    replay_marker,
)
from collectors.sqs.native import follow_move_task, native_unsupported
from collectors.sqs.options import SQSMoveOptions, SQSOptions

SRC_URL = "https://sqs.eu-west-1.amazonaws.com/111122223333/orders-dlq"
DST_URL = "https://sqs.eu-west-1.amazonaws.com/111122223333/orders"
SRC_ARN = "arn:aws:sqs:eu-west-1:111122223333:orders-dlq"
DST_ARN = "arn:aws:sqs:eu-west-1:111122223333:orders"


def _client():
    return boto3.client(
        "sqs",
        region_name="eu-west-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="not-a-secret",
    )


def _attrs(arn: str, visible: int) -> dict:
    return {"Attributes": {"QueueArn": arn, "ApproximateNumberOfMessages": str(visible)}}


def _actions_with(client) -> SQSActions:
    actions = SQSActions(SQSOptions(name="aws", type="sqs", region="eu-west-1"))
    actions._client = client
    actions._native_client = client
    return actions


def test_native_move_task_request_and_follow(monkeypatch):
    monkeypatch.setattr(sqs_native, "TASK_POLL", 0.01)
    client = _client()
    stub = Stubber(client)
    stub.add_response("get_queue_url", {"QueueUrl": SRC_URL}, {"QueueName": "orders-dlq"})
    stub.add_response("get_queue_url", {"QueueUrl": DST_URL}, {"QueueName": "orders"})
    stub.add_response(
        "get_queue_attributes",
        _attrs(SRC_ARN, 120),
        {"QueueUrl": SRC_URL, "AttributeNames": ["All"]},
    )
    stub.add_response(
        "get_queue_attributes", _attrs(DST_ARN, 0), {"QueueUrl": DST_URL, "AttributeNames": ["All"]}
    )
    stub.add_response(
        "start_message_move_task",
        {"TaskHandle": "handle-1"},
        {"SourceArn": SRC_ARN, "DestinationArn": DST_ARN, "MaxNumberOfMessagesPerSecond": 50},
    )
    started = 1_700_000_000_000
    running = {
        "TaskHandle": "handle-1",
        "Status": "RUNNING",
        "SourceArn": SRC_ARN,
        "DestinationArn": DST_ARN,
        "StartedTimestamp": started,
        "ApproximateNumberOfMessagesMoved": 40,
        "ApproximateNumberOfMessagesToMove": 120,
    }
    older = {
        "Status": "COMPLETED",
        "SourceArn": SRC_ARN,
        "StartedTimestamp": started - 10**6,
        "ApproximateNumberOfMessagesMoved": 7,
        "ApproximateNumberOfMessagesToMove": 7,
    }
    done = {k: v for k, v in running.items() if k != "TaskHandle"}  # only RUNNING has a handle
    done.update(Status="COMPLETED", ApproximateNumberOfMessagesMoved=120)
    list_params = {"SourceArn": SRC_ARN, "MaxResults": 10}
    stub.add_response("list_message_move_tasks", {"Results": [running, older]}, list_params)
    stub.add_response("list_message_move_tasks", {"Results": [done, older]}, list_params)
    seen: list[MoveProgress] = []
    with stub:
        actions = _actions_with(client)
        request = MoveRequest("orders-dlq", "orders", "replay", options=SQSMoveOptions(rate=50))
        result = asyncio.run(actions.move(request, seen.append))
        stub.assert_no_pending_responses()
    assert (result.moved, result.failed, result.duplicates_possible) == (120, 0, 0)
    assert not result.errors
    assert any("StartMessageMoveTask" in note for note in result.notes)
    assert [(p.done, p.total) for p in seen] == [(40, 120), (120, 120)]


def test_native_move_task_failure_is_reported():
    async def list_tasks():
        return {
            "Results": [
                {
                    "TaskHandle": "h",
                    "Status": "FAILED",
                    "StartedTimestamp": 5,
                    "ApproximateNumberOfMessagesMoved": 30,
                    "ApproximateNumberOfMessagesToMove": 100,
                    "FailureReason": "AWS.SimpleQueueService.KmsAccessDenied",
                }
            ]
        }

    async def cancel():
        raise AssertionError("a finished task is not cancelled")

    request = MoveRequest("a-dlq", "a", "replay")
    result = asyncio.run(
        follow_move_task(
            list_tasks,
            cancel,
            request=request,
            handle="h",
            started=0.0,
            progress=lambda p: None,
            poll=0.0,
        )
    )
    assert (result.moved, result.failed) == (30, 70)
    assert "KmsAccessDenied" in result.errors[0]


def test_interrupted_native_task_is_cancelled():
    calls: list[str] = []

    async def list_tasks():
        calls.append("list")
        return {
            "Results": [
                {
                    "TaskHandle": "h",
                    "Status": "RUNNING",
                    "StartedTimestamp": 5,
                    "ApproximateNumberOfMessagesMoved": 1,
                }
            ]
        }

    async def cancel():
        calls.append("cancel")
        return {"ApproximateNumberOfMessagesMoved": 1}

    async def scenario():
        request = MoveRequest("a-dlq", "a", "replay")
        task = asyncio.ensure_future(
            follow_move_task(
                list_tasks,
                cancel,
                request=request,
                handle="h",
                started=0.0,
                progress=lambda p: None,
                poll=0.01,
            )
        )
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert calls[-1] == "cancel" and "list" in calls


def _client_error(status: int, code: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "StartMessageMoveTask",
    )


def test_fallback_decision():
    assert native_unsupported(_client_error(500, "500"))  # moto: not implemented
    assert native_unsupported(_client_error(400, "UnsupportedOperation"))
    assert native_unsupported(_client_error(400, "InvalidParameterValue"))  # not a DLQ
    assert native_unsupported(_client_error(403, "AccessDenied"))  # the fallback may be allowed
    assert not native_unsupported(_client_error(400, "RequestThrottled"))
    assert not native_unsupported(EndpointConnectionError(endpoint_url="https://x"))


def _message(**system: str) -> Received:
    return Received(id="m-1", receipt="r", body="body", system=dict(system), attributes={})


def test_fifo_dedup_id_never_reuses_a_fresh_id():
    now = 1_800_000_000_000
    fresh = _message(MessageDeduplicationId="d-1", SentTimestamp=str(now - 60_000))
    old = _message(
        MessageDeduplicationId="d-1", SentTimestamp=str(now - FIFO_DEDUP_WINDOW_MS - 1000)
    )
    derived = fifo_dedup_id(fresh, now)
    assert derived != "d-1" and len(derived) <= 128
    assert fifo_dedup_id(fresh, now + 5) == derived  # stable: a rerun is deduplicated
    assert fifo_dedup_id(old, now) == "d-1"  # its window is over: kept
    entry = build_entry(3, _message(), destination_fifo=True, marker=None, now_ms=now)
    assert entry["MessageGroupId"] == "m-1"  # standard source: one group per message
    assert entry["Id"] == "3" and entry["MessageBody"] == "body"


def test_replay_marker_counts_and_respects_the_attribute_limit():
    message = _message()
    first = replay_marker(message, "q-dlq", "2024-01-01T00:00:00Z")
    assert first is not None and json.loads(first["StringValue"])["count"] == 1
    message.attributes[REPLAY_ATTRIBUTE] = first
    for i in range(9):
        message.attributes[f"a{i}"] = {"DataType": "String", "StringValue": "v"}
    again = replay_marker(message, "q-dlq", "2024-01-02T00:00:00Z")
    assert again is not None and json.loads(again["StringValue"])["count"] == 2
    del message.attributes[REPLAY_ATTRIBUTE]
    message.attributes["a9"] = {"DataType": "String", "StringValue": "v"}
    assert replay_marker(message, "q-dlq", "2024-01-02T00:00:00Z") is None


def test_chunks_respect_count_and_bytes():
    entries = [{"Id": str(i), "MessageBody": "x" * 100_000} for i in range(7)]
    chunks = chunk_entries(entries)
    assert [len(c) for c in chunks] == [2, 2, 2, 1]  # 256 KiB budget
    small = [{"Id": str(i), "MessageBody": "y"} for i in range(23)]
    assert [len(c) for c in chunk_entries(small)] == [10, 10, 3]
    assert [len(c) for c in chunk_entries(small, 4)] == [4, 4, 4, 4, 4, 3]
