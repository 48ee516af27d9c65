"""SQS names, queue attributes and messages: parsing what SQS returns, building what it takes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

REPLAY_ATTRIBUTE = "mqtop-replayed"
MAX_ATTRIBUTES = 10  # SQS limit of message attributes per message
BATCH_MAX = 10  # SQS limit of entries per batch call
BATCH_BYTES = 256 * 1024  # conservative payload budget per SendMessageBatch
FIFO_DEDUP_WINDOW_MS = 6 * 60 * 1000  # SQS deduplicates for 5 minutes; one minute of margin


# ---------------------------------------------------------------- names and attributes


def queue_name_of(url_or_arn: str) -> str:
    """The queue name of a queue URL or ARN."""
    if url_or_arn.startswith("arn:"):
        return url_or_arn.rsplit(":", 1)[-1]
    return url_or_arn.rstrip("/").rsplit("/", 1)[-1]


def arn_parts(arn: str) -> tuple[str, str, str] | None:
    """(region, account, name) of an SQS queue ARN, None when it is not one."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs":
        return None
    return parts[3], parts[4], parts[5]


def redrive_target(attributes: Mapping[str, str]) -> tuple[str | None, int | None]:
    """(DLQ ARN, maxReceiveCount) from a RedrivePolicy attribute."""
    raw = attributes.get("RedrivePolicy")
    if not raw:
        return None, None
    try:
        policy = json.loads(raw)
    except ValueError:
        return None, None
    if not isinstance(policy, dict):
        return None, None
    arn = policy.get("deadLetterTargetArn")
    count = policy.get("maxReceiveCount")
    try:
        max_receive = int(count) if count is not None else None
    except (TypeError, ValueError):
        max_receive = None
    return (arn if isinstance(arn, str) else None), max_receive


def int_attr(attributes: Mapping[str, str], name: str) -> int | None:
    """An integer queue attribute, None when absent or malformed."""
    value = attributes.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


# ---------------------------------------------------------------- messages


@dataclass(slots=True)
class Received:
    """One received SQS message."""

    id: str
    receipt: str
    body: str
    system: dict[str, str]
    attributes: dict[str, dict[str, Any]]

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Received:
        return cls(
            id=str(raw["MessageId"]),
            receipt=str(raw["ReceiptHandle"]),
            body=str(raw.get("Body", "")),
            system=dict(raw.get("Attributes", {})),
            attributes={k: dict(v) for k, v in raw.get("MessageAttributes", {}).items()},
        )

    def headers(self) -> dict[str, Any]:
        """Message attributes as name -> value (text, or bytes for Binary types)."""
        out: dict[str, Any] = {}
        for name, attr in self.attributes.items():
            if "StringValue" in attr:
                out[name] = attr["StringValue"]
            elif "BinaryValue" in attr:
                out[name] = bytes(attr["BinaryValue"])
        return out

    def size(self) -> int:
        """Bytes SQS counts against the message size limit (body plus attributes)."""
        total = len(self.body.encode("utf-8"))
        for name, attr in self.attributes.items():
            total += len(name.encode()) + len(str(attr.get("DataType", "")).encode())
            if "StringValue" in attr:
                total += len(str(attr["StringValue"]).encode("utf-8"))
            elif "BinaryValue" in attr:
                total += len(attr["BinaryValue"])
        return total


def _clean_attribute(attr: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"DataType": attr["DataType"]}
    if "StringValue" in attr:
        out["StringValue"] = attr["StringValue"]
    if "BinaryValue" in attr:
        out["BinaryValue"] = attr["BinaryValue"]
    return out


def fifo_dedup_id(message: Received, now_ms: int) -> str:
    """Deduplication id for a FIFO destination.

    The original id is kept once its 5-minute deduplication window is surely over: reusing it
    sooner (a quick replay back to the source) would make SQS drop the message silently. A
    younger message gets an id derived from its message id, stable across reruns, so a rerun
    after a crash is deduplicated too.
    """
    original = message.system.get("MessageDeduplicationId")
    sent = int_attr(message.system, "SentTimestamp")
    if original and sent is not None and now_ms - sent > FIFO_DEDUP_WINDOW_MS:
        return original
    digest = hashlib.sha256(f"mqtop:{message.id}:{original or ''}".encode()).hexdigest()
    return digest


def replay_marker(message: Received, source: str, when: str) -> dict[str, Any] | None:
    """The replay attribute to add, or None when the message already has 10 attributes."""
    previous = message.attributes.get(REPLAY_ATTRIBUTE)
    if previous is None and len(message.attributes) >= MAX_ATTRIBUTES:
        return None
    count = 1
    if previous is not None:
        try:
            count = int(json.loads(previous.get("StringValue", "{}")).get("count", 0)) + 1
        except (ValueError, AttributeError, TypeError):
            count = 1
    value = json.dumps({"from": source, "at": when, "count": count}, separators=(",", ":"))
    return {"DataType": "String", "StringValue": value}


def build_entry(
    index: int,
    message: Received,
    *,
    destination_fifo: bool,
    marker: dict[str, Any] | None,
    now_ms: int,
) -> dict[str, Any]:
    """A SendMessageBatch entry preserving body, attributes and FIFO ids."""
    attributes = {k: _clean_attribute(v) for k, v in message.attributes.items()}
    if marker is not None:
        attributes[REPLAY_ATTRIBUTE] = marker
    entry: dict[str, Any] = {"Id": str(index), "MessageBody": message.body}
    if attributes:
        entry["MessageAttributes"] = attributes
    trace = message.system.get("AWSTraceHeader")
    if trace:
        entry["MessageSystemAttributes"] = {
            "AWSTraceHeader": {"DataType": "String", "StringValue": trace}
        }
    if destination_fifo:
        # a standard source has no group: one group per message keeps them independent
        entry["MessageGroupId"] = message.system.get("MessageGroupId") or message.id
        entry["MessageDeduplicationId"] = fifo_dedup_id(message, now_ms)
    return entry


def entry_size(entry: Mapping[str, Any]) -> int:
    """Payload bytes of one batch entry (body and attributes)."""
    total = len(str(entry["MessageBody"]).encode("utf-8"))
    for name, attr in entry.get("MessageAttributes", {}).items():
        total += len(name.encode()) + len(str(attr["DataType"]).encode())
        total += len(str(attr.get("StringValue", "")).encode("utf-8"))
        total += len(attr.get("BinaryValue", b""))
    return total


def chunk_entries(
    entries: list[dict[str, Any]], size: int = BATCH_MAX
) -> list[list[dict[str, Any]]]:
    """Split entries into batches of at most ``size`` entries and BATCH_BYTES payload."""
    chunks: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    used = 0
    for entry in entries:
        nbytes = entry_size(entry)
        if current and (len(current) >= size or used + nbytes > BATCH_BYTES):
            chunks.append(current)
            current, used = [], 0
        current.append(entry)
        used += nbytes
    if current:
        chunks.append(current)
    return chunks
