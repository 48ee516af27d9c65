"""HTTP clients build a TLS context only for https:// endpoints.

A plain-HTTP endpoint never uses TLS, and loading the CA bundle costs 0.1-0.4 s of CPU per
client on a busy machine: building a context (or loading CA certificates) for an http:// URL
fails these tests. An https:// endpoint still verifies the server certificate by default.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any

import pytest

from collectors.activemq.jolokia import Jolokia
from collectors.activemq.options import ActiveMQOptions
from collectors.rabbitmq.api import ManagementApi
from collectors.rabbitmq.options import RabbitMQOptions
from collectors.rabbitmq.topology import RabbitMQTopologyReader
from mqtop.sources.config import PrometheusSource
from mqtop.sources.prometheus import SourceReader


def _refuse(*_args: Any, **_kwargs: Any) -> Any:
    raise AssertionError("a TLS context or CA bundle was built for a plain-HTTP endpoint")


@pytest.fixture
def no_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building a default context or loading CA certificates raises."""
    monkeypatch.setattr(ssl, "create_default_context", _refuse)
    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", _refuse)
    monkeypatch.setattr(ssl.SSLContext, "load_default_certs", _refuse)


@pytest.fixture
def contexts(monkeypatch: pytest.MonkeyPatch) -> list[ssl.SSLContext]:
    """The default contexts built (each still loads its CA certificates)."""
    built: list[ssl.SSLContext] = []
    real = ssl.create_default_context

    def spy(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        context = real(*args, **kwargs)
        built.append(context)
        return context

    monkeypatch.setattr(ssl, "create_default_context", spy)
    return built


def _verifying(built: list[ssl.SSLContext]) -> None:
    assert built, "no TLS context was built for an https:// endpoint"
    assert all(c.verify_mode == ssl.CERT_REQUIRED and c.check_hostname for c in built)


def _rabbitmq(management_url: str) -> RabbitMQOptions:
    return RabbitMQOptions(name="r", url="amqp://h/", management_url=management_url)


def _management_api(url: str) -> Callable[[], None]:
    def run() -> None:
        api = ManagementApi(_rabbitmq(url))
        api.open()
        asyncio.run(api.close())

    return run


def _topology_reader(url: str) -> Callable[[], None]:
    def run() -> None:
        reader = RabbitMQTopologyReader(_rabbitmq(url))
        reader._client()
        asyncio.run(reader.close())

    return run


def _prometheus(url: str) -> Callable[[], None]:
    def run() -> None:
        config = PrometheusSource.model_validate({"type": "prometheus", "url": url})
        reader = SourceReader(config, (), {}, interval=5.0)
        reader._get_client()
        asyncio.run(reader.aclose())

    return run


def _jolokia(url: str) -> Callable[[], None]:
    def run() -> None:
        client = Jolokia(ActiveMQOptions(name="a", jolokia_url=url))

        async def cycle() -> None:
            await client.open()
            await client.close()

        asyncio.run(cycle())

    return run


CLIENTS = {
    "rabbitmq-management": (_management_api, "{scheme}://h:15672"),
    "rabbitmq-topology": (_topology_reader, "{scheme}://h:15672"),
    "prometheus": (_prometheus, "{scheme}://p:9090"),
    "activemq-jolokia": (_jolokia, "{scheme}://h:8161/api/jolokia"),
}


@pytest.mark.parametrize("client", list(CLIENTS))
def test_plain_http_builds_no_tls_context(client: str, no_tls: None) -> None:
    make, url = CLIENTS[client]
    make(url.format(scheme="http"))()  # raises if a context or CA bundle is built


@pytest.mark.parametrize("client", list(CLIENTS))
def test_https_verifies_by_default(client: str, contexts: list[ssl.SSLContext]) -> None:
    make, url = CLIENTS[client]
    make(url.format(scheme="https"))()
    _verifying(contexts)
