"""Celery on RabbitMQ: the rabbitmq broker type's collector and actions, seen as Celery's.

The numbers are RabbitMQ's (docs/rabbitmq.md). What Celery adds: its transient queues are
hidden unless ``show_internal`` (``celeryev.<uuid>`` event receivers, ``*.pidbox`` remote
control and its ``<uuid>.reply.celery.pidbox`` replies, and the ``rpc://`` result backend's
reply queues, named by a UUID), and peek names each message's task: Celery's message protocol
2 carries it in the ``task`` header, protocol 1 in the JSON body; it is shown as the ``class``
header, as for the other job libraries (``--filter header.class=app.tasks.send``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from collectors.base import (
    BrokerOptions,
    Collected,
    Collector,
    MessageActions,
    MessageFilter,
    MoveRequest,
    MoveResult,
    PeekedMessage,
    ProgressCallback,
)
from collectors.jobs.celery.options import CeleryOptions

UUID_GLOB = "????????-????-????-????-????????????"
TRANSIENT = ("celeryev.*", "*/celeryev.*", "*.pidbox", UUID_GLOB, "*/" + UUID_GLOB)
PASSED = ("cert_file", "key_file", "key_password", "tls_verify", "ca_file", "readonly")


def rabbitmq_options(options: CeleryOptions) -> BrokerOptions:
    """The rabbitmq broker type's options for Celery's RabbitMQ."""
    from collectors.rabbitmq import PLUGIN as RABBITMQ

    fields: dict[str, Any] = {
        "name": options.name,
        "url": options.url,
        "management_url": options.management_url,
        "include": options.include,
        "exclude": [*options.exclude, *(() if options.show_internal else TRANSIENT)],
        "dlq": options.dlq,
        "discover_every": options.discover_every,
        # the poll's budget: the collector divides it between the management API and AMQP
        "interval": options.interval,
        "timeout": options.timeout,
        **{name: getattr(options, name) for name in PASSED},
    }
    return RABBITMQ.options_model.model_validate(fields)


def task_name(headers: Mapping[str, Any], body: bytes) -> str | None:
    """The Celery task a message runs: protocol 2's ``task`` header, protocol 1's body."""
    task = headers.get("task")
    if isinstance(task, bytes):
        task = task.decode("utf-8", "replace")
    if isinstance(task, str) and task:
        return task
    if not body.startswith(b"{"):
        return None
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    task = parsed.get("task") if isinstance(parsed, dict) else None
    return task if isinstance(task, str) and task else None


def with_task(headers: Mapping[str, Any], body: bytes) -> Mapping[str, Any]:
    """The headers with the task name as ``class`` (unchanged when there is none)."""
    task = task_name(headers, body)
    return headers if task is None else {"class": task, **headers}


@dataclass(frozen=True, slots=True)
class TaskNamedFilter:
    """A ``--filter`` that sees the task name as ``header.class``, as peek shows it."""

    inner: MessageFilter

    def matches(
        self, body: bytes, headers: Mapping[str, Any], timestamp: float | None = None
    ) -> bool:
        return self.inner.matches(body, with_task(headers, body), timestamp)

    def __str__(self) -> str:
        return str(self.inner)  # journals and audit lines name the operator's own filter


class CeleryTaskActions:
    """RabbitMQ's message actions, with the task name in every peeked message."""

    def __init__(self, inner: MessageActions) -> None:
        self.inner = inner

    async def peek_warning(self, queue: str) -> str | None:
        return await self.inner.peek_warning(queue)

    async def peek(self, queue: str, count: int) -> list[PeekedMessage]:
        return [
            replace(m, headers=with_task(m.headers, m.body))
            for m in await self.inner.peek(queue, count)
        ]

    async def replay_target(self, dlq: str) -> str | None:
        return await self.inner.replay_target(dlq)

    async def count(self, queue: str) -> int | None:
        return await self.inner.count(queue)

    async def move(self, request: MoveRequest, progress: ProgressCallback) -> MoveResult:
        if request.filter is not None:
            request = replace(request, filter=TaskNamedFilter(request.filter))
        return await self.inner.move(request, progress)

    async def purge(self, queue: str) -> int | None:
        return await self.inner.purge(queue)

    async def close(self) -> None:
        await self.inner.close()


class CeleryOnRabbitMQ:
    """The rabbitmq collector for Celery's broker, its transient queues left out."""

    def __init__(self, options: CeleryOptions) -> None:
        from collectors.rabbitmq import PLUGIN as RABBITMQ

        self._options = options
        self.inner: Collector = RABBITMQ.create(rabbitmq_options(options))
        self._actions: MessageActions | None = None

    @property
    def options(self) -> CeleryOptions:
        return self._options

    async def connect(self) -> None:
        await self.inner.connect()

    async def collect(self) -> Collected:
        return await self.inner.collect()

    async def close(self) -> None:
        await self.inner.close()

    def actions(self) -> MessageActions | None:
        if self._actions is None:
            inner = self.inner.actions()
            self._actions = None if inner is None else CeleryTaskActions(inner)
        return self._actions


__all__ = [
    "CeleryOnRabbitMQ",
    "CeleryTaskActions",
    "TaskNamedFilter",
    "rabbitmq_options",
    "task_name",
]
