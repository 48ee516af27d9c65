"""Shared helpers for the RabbitMQ tests: topology setup/cleanup and cross-checks.

Everything is created with unique names through the management API and deleted at the end
(the broker is shared). No test lives here.
"""

from __future__ import annotations

import time
import urllib.error
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pika

from tests.harness import RabbitBroker


def q(vhost: str) -> str:
    """URL-encode a vhost (or any name) for the management API."""
    return quote(vhost, safe="")


def wait_until(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``check()`` until it returns something truthy (management stats lag ~5 s)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def ready_ids(conn: pika.BlockingConnection, queue: str) -> list[str]:
    """message_id of every ready message of ``queue``, read without consuming: everything is
    requeued when the channel closes (the caller owns the connection)."""
    channel = conn.channel()
    expected = channel.queue_declare(queue, passive=True).method.message_count
    ids: list[str] = []
    if expected:
        channel.basic_qos(prefetch_count=0)
        for method, props, _ in channel.consume(queue, auto_ack=False, inactivity_timeout=2.0):
            if method is None:
                break
            ids.append(props.message_id)
            if len(ids) >= expected:
                break
    channel.close()  # everything unacked goes back
    return ids


class Rabbit:
    """Creates topology on the shared broker and removes it afterwards."""

    def __init__(self, broker: RabbitBroker, unique: Callable[[str], str]) -> None:
        self.broker = broker
        self.unique = unique
        self.queues: list[tuple[str, str]] = []
        self.exchanges: list[tuple[str, str]] = []
        self.policies: list[tuple[str, str]] = []
        self.vhosts: list[str] = []
        self.connections: list[pika.BlockingConnection] = []

    # -- topology ----------------------------------------------------------------------

    def api(self, method: str, path: str, body: object | None = None) -> Any:
        return self.broker.api(method, path, body)

    def vhost(self, prefix: str = "vh") -> str:
        name = self.unique(prefix)
        self.api("PUT", f"vhosts/{q(name)}", {})
        self.api(
            "PUT",
            f"permissions/{q(name)}/{q(self.broker.user)}",
            {"configure": ".*", "write": ".*", "read": ".*"},
        )
        self.vhosts.append(name)
        return name

    def queue(
        self,
        name: str,
        vhost: str = "/",
        arguments: dict[str, Any] | None = None,
        durable: bool = True,
    ) -> str:
        self.api(
            "PUT",
            f"queues/{q(vhost)}/{q(name)}",
            {"durable": durable, "auto_delete": False, "arguments": arguments or {}},
        )
        self.queues.append((vhost, name))
        return name

    def exchange(self, name: str, kind: str = "direct", vhost: str = "/") -> str:
        self.api(
            "PUT",
            f"exchanges/{q(vhost)}/{q(name)}",
            {"type": kind, "durable": True, "auto_delete": False},
        )
        self.exchanges.append((vhost, name))
        return name

    def bind(self, exchange: str, queue: str, key: str = "", vhost: str = "/") -> None:
        self.api("POST", f"bindings/{q(vhost)}/e/{q(exchange)}/q/{q(queue)}", {"routing_key": key})

    def bind_exchange(self, source: str, destination: str, key: str = "", vhost: str = "/") -> None:
        self.api(
            "POST",
            f"bindings/{q(vhost)}/e/{q(source)}/e/{q(destination)}",
            {"routing_key": key},
        )

    def policy(self, name: str, pattern: str, definition: dict[str, Any], vhost: str = "/") -> None:
        self.api(
            "PUT",
            f"policies/{q(vhost)}/{q(name)}",
            {"pattern": pattern, "definition": definition, "apply-to": "queues", "priority": 10},
        )
        self.policies.append((vhost, name))

    def info(self, name: str, vhost: str = "/") -> dict[str, Any]:
        data = self.api("GET", f"queues/{q(vhost)}/{q(name)}")
        assert isinstance(data, dict)
        return data

    # -- AMQP --------------------------------------------------------------------------

    def connect(self, vhost: str = "/") -> pika.BlockingConnection:
        conn = pika.BlockingConnection(
            pika.ConnectionParameters(
                host=self.broker.host,
                port=self.broker.amqp_port,
                virtual_host=vhost,
                credentials=pika.PlainCredentials(self.broker.user, self.broker.password),
            )
        )
        self.connections.append(conn)
        return conn

    def ready(self, name: str, vhost: str = "/") -> int:
        """Ready messages now (passive declare: exact, not the 5 s stats)."""
        conn = self.connect(vhost)
        try:
            return int(conn.channel().queue_declare(name, passive=True).method.message_count)
        finally:
            conn.close()
            self.connections.remove(conn)

    def drain(self, name: str, vhost: str = "/") -> list[tuple[Any, Any, bytes]]:
        """Consume (and ack) every message of a queue."""
        conn = self.connect(vhost)
        out = []
        try:
            channel = conn.channel()
            while True:
                method, props, body = channel.basic_get(name, auto_ack=True)
                if method is None:
                    break
                out.append((method, props, body))
        finally:
            conn.close()
            self.connections.remove(conn)
        return out

    def snapshot_ids(self, name: str, vhost: str = "/") -> list[str]:
        """message_id of every ready message, without consuming (get, then requeue)."""
        conn = self.connect(vhost)
        ids = []
        try:
            channel = conn.channel()
            while True:
                method, props, _ = channel.basic_get(name, auto_ack=False)
                if method is None:
                    break
                ids.append(props.message_id)
            channel.basic_nack(delivery_tag=0, multiple=True, requeue=True)
        finally:
            conn.close()
            self.connections.remove(conn)
        return ids

    # -- cleanup -----------------------------------------------------------------------

    def cleanup(self) -> None:
        for conn in self.connections:
            try:
                if conn.is_open:
                    conn.close()
            except Exception:
                pass
        for vhost, name in self.policies:
            self._delete(f"policies/{q(vhost)}/{q(name)}")
        for vhost, name in self.queues:
            self._delete(f"queues/{q(vhost)}/{q(name)}")
        for vhost, name in self.exchanges:
            self._delete(f"exchanges/{q(vhost)}/{q(name)}")
        for vhost in self.vhosts:
            self._delete(f"vhosts/{q(vhost)}")

    def _delete(self, path: str) -> None:
        try:
            self.api("DELETE", path)
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise


def rabbit_session(broker: RabbitBroker, unique: Callable[[str], str]) -> Iterator[Rabbit]:
    """Body of each test module's ``rabbit`` fixture: a helper, cleaned up afterwards."""
    helper = Rabbit(broker, unique)
    try:
        yield helper
    finally:
        helper.cleanup()


def broker_config(
    broker: RabbitBroker,
    include: list[str],
    extra: str = "",
    management: bool = True,
    interval: str = "1s",
) -> str:
    """YAML for one rabbitmq broker named ``rabbit``."""
    mgmt = f'\n    management_url: "{broker.management_url}"' if management else ""
    inc = ", ".join(f'"{p}"' for p in include)
    return (
        f"interval: {interval}\n"
        "brokers:\n"
        "  - name: rabbit\n"
        "    type: rabbitmq\n"
        f'    url: "{broker.amqp_url}"{mgmt}\n'
        f"    include: [{inc}]\n"
        f"{extra}"
    )
