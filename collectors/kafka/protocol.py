"""Kafka requests that aiokafka 0.14 lacks or decodes wrongly, built on its protocol classes.

* ConsumerGroupDescribe (API 69, v0, flexible): groups of the KIP-848 protocol, which the
  classic DescribeGroups reports as ``Dead`` with no members. The schema is Kafka's
  ConsumerGroupDescribe{Request,Response}.json.
* DescribeGroups pinned to v2: aiokafka 0.14 decodes v3 answers with the v2 schema, which
  breaks as soon as a request names two groups.

Only the client (:mod:`collectors.kafka.wire`) loads this module, so aiokafka is imported here
at the top.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from aiokafka.protocol.abstract import AbstractType
from aiokafka.protocol.admin import DescribeGroupsRequest_v2
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    Boolean,
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)


class Uuid(AbstractType[bytes]):  # type: ignore[misc]
    """A 16-byte UUID (topic ids), kept as bytes."""

    @classmethod
    def encode(cls, value: bytes) -> bytes:
        return value

    @classmethod
    def decode(cls, data: BytesIO) -> bytes:
        return data.read(16)


_TEXT = CompactString("utf-8")
_ASSIGNMENT = Schema(
    (
        "topic_partitions",
        CompactArray(
            ("topic_id", Uuid),
            ("topic_name", _TEXT),
            ("partitions", CompactArray(Int32)),
            ("tags", TaggedFields),
        ),
    ),
    ("tags", TaggedFields),
)


class ConsumerGroupDescribeResponse_v0(Response):  # type: ignore[misc]
    """ConsumerGroupDescribe answer: per group, its state, members and their assignments."""

    API_KEY = 69
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "groups",
            CompactArray(
                ("error_code", Int16),
                ("error_message", _TEXT),
                ("group_id", _TEXT),
                ("group_state", _TEXT),
                ("group_epoch", Int32),
                ("assignment_epoch", Int32),
                ("assignor_name", _TEXT),
                (
                    "members",
                    CompactArray(
                        ("member_id", _TEXT),
                        ("instance_id", _TEXT),
                        ("rack_id", _TEXT),
                        ("member_epoch", Int32),
                        ("client_id", _TEXT),
                        ("client_host", _TEXT),
                        ("subscribed_topic_names", CompactArray(_TEXT)),
                        ("subscribed_topic_regex", _TEXT),
                        ("assignment", _ASSIGNMENT),
                        ("target_assignment", _ASSIGNMENT),
                        ("tags", TaggedFields),
                    ),
                ),
                ("authorized_operations", Int32),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class ConsumerGroupDescribeRequest_v0(RequestStruct):  # type: ignore[misc]
    """ConsumerGroupDescribe v0 on the wire."""

    FLEXIBLE_VERSION = True
    API_KEY = 69
    API_VERSION = 0
    RESPONSE_TYPE = ConsumerGroupDescribeResponse_v0
    SCHEMA = Schema(
        ("group_ids", CompactArray(_TEXT)),
        ("include_authorized_operations", Boolean),
        ("tags", TaggedFields),
    )


class ConsumerGroupDescribe(Request[ConsumerGroupDescribeRequest_v0]):  # type: ignore[misc]
    """Describe KIP-848 groups by name."""

    API_KEY = 69

    def __init__(self, names: list[str]) -> None:
        self._names = names

    def build(self, request_struct_class: type[ConsumerGroupDescribeRequest_v0]) -> Any:
        return request_struct_class(self._names, False, {})


class DescribeGroupsV2(Request[DescribeGroupsRequest_v2]):  # type: ignore[misc]
    """DescribeGroups, never above version 2 (see the module docstring)."""

    API_KEY = 15

    def __init__(self, names: list[str]) -> None:
        self._names = names

    def build(self, request_struct_class: type[DescribeGroupsRequest_v2]) -> Any:
        return request_struct_class(self._names)
