"""Fixtures for the fleet tests: promtool, Prometheus and Alertmanager (skip-or-fail rule)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from tests.conftest import _obtain
from tests.harness import RedisBroker, free_port
from tests.support import prometheus
from tests.support import prometheus as prom
from tests.support.serve import Serve


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path of ``promtool`` (Debian ``prometheus``)."""
    found = _obtain("promtool", prometheus.promtool)
    assert isinstance(found, str)
    return found


BACKLOG = 120
FOR = 12.0  # seconds of history the check's rule needs


@dataclass
class Fleet:
    prometheus: prom.Prometheus
    prefix: str
    redis: RedisBroker
    backlog_since: float

    @property
    def eu(self) -> str:
        return f"{self.prefix}:eu"

    @property
    def us(self) -> str:
        return f"{self.prefix}:us"


@pytest.fixture(scope="module")
def fleet(redis_broker: RedisBroker, tmp_path_factory) -> Iterator[Fleet]:
    prefix = f"mqtop-test-source-{uuid.uuid4().hex[:10]}"
    tmp = tmp_path_factory.mktemp("fleet")
    client = redis.Redis(host=redis_broker.host, port=redis_broker.port)
    client.rpush(f"{prefix}:eu", *range(BACKLOG))
    client.rpush(f"{prefix}:us", *range(7))
    since = time.time()
    procs: list = []
    try:
        ports = []
        for cluster, key in (("eu-1", f"{prefix}:eu"), ("us-1", f"{prefix}:us")):
            path = tmp / f"{cluster}.yaml"
            path.write_text(
                "interval: 500ms\n"
                f"labels: {{cluster: {cluster}}}\n"
                f'brokers: [{{name: cache, type: redis, url: "{redis_broker.url}", '
                f'lists: ["{key}*"]}}]\n'
                "alerts: []\n"
            )
            port = free_port()
            procs.append(Serve(path, port, tmp / f"state-{cluster}"))
            ports.append(port)
        server = _obtain(
            "Prometheus",
            lambda: prom.start_prometheus(
                scrape=[
                    {
                        "job_name": "mqtop",
                        "scrape_interval": "500ms",
                        "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in ports]}],
                    }
                ],
                interval="1s",
            ),
        )
        assert isinstance(server, prom.Prometheus)
        procs.append(server)
        prom.wait_until(
            lambda: len(server.query(f'mqtop_queue_length{{queue=~"{prefix}.*"}}')) == 2,
            30,
            "both clusters' series in Prometheus",
        )
        yield Fleet(server, prefix, redis_broker, since)
    finally:
        client.delete(f"{prefix}:eu", f"{prefix}:us")
        for proc in reversed(procs):
            proc.stop()
