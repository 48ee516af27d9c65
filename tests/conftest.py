"""Shared fixtures: real brokers on loopback, unique names, running the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import harness

REQUIRE = os.environ.get("MQTOP_REQUIRE_BROKERS") == "1"
ROOT = Path(__file__).resolve().parent.parent


def _obtain(name: str, finder: Callable[[], object]) -> object:
    try:
        return finder()
    except harness.BrokerUnavailable as exc:
        if REQUIRE:
            pytest.fail(
                f"{name} is required (MQTOP_REQUIRE_BROKERS=1) but unavailable: {exc}",
                pytrace=False,
            )
        # reached only when MQTOP_REQUIRE_BROKERS is unset (a developer laptop): skip, loudly
        reason = f"!!! {name} unavailable, broker test SKIPPED (MQTOP_REQUIRE_BROKERS unset): {exc}"
        pytest.skip(reason)  # never in CI: MQTOP_REQUIRE_BROKERS=1 failed above


@pytest.fixture(scope="session")
def redis_broker() -> Iterator[harness.RedisBroker]:
    """A real Redis server."""
    broker = _obtain("Redis", harness.find_redis)
    assert isinstance(broker, harness.RedisBroker)
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def rabbitmq_broker() -> Iterator[harness.RabbitBroker]:
    """A real RabbitMQ node with the management plugin."""
    broker = _obtain("RabbitMQ", harness.find_rabbitmq)
    assert isinstance(broker, harness.RabbitBroker)
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[harness.KafkaBroker]:
    """A real Kafka broker (Apache Kafka KRaft; tansu only when allowed)."""
    broker = _obtain("Kafka", harness.find_kafka)
    assert isinstance(broker, harness.KafkaBroker)
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def sqs_broker() -> Iterator[harness.SqsBroker]:
    """A real SQS API endpoint (moto_server)."""
    broker = _obtain("SQS (moto_server)", harness.find_sqs)
    assert isinstance(broker, harness.SqsBroker)
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def artemis_broker() -> Iterator[object]:
    """Apache ActiveMQ Artemis with its console's Jolokia (tests/support/activemq.py)."""
    from tests.support import activemq

    broker = _obtain("ActiveMQ Artemis", activemq.find_artemis)
    assert isinstance(broker, activemq.ActiveMQBroker)
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def activemq_classic_broker() -> Iterator[object]:
    """Apache ActiveMQ Classic (embedded) with the Jolokia JVM agent."""
    from tests.support import activemq

    broker = _obtain("ActiveMQ Classic", activemq.find_classic)
    assert isinstance(broker, activemq.ActiveMQBroker)
    yield broker
    broker.stop()


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Make names unique per test run (brokers are shared between runs)."""
    token = uuid.uuid4().hex[:10]

    def make(prefix: str = "t") -> str:
        return f"mqtop-test-{prefix}-{token}"

    return make


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write a YAML config (dedented) into a temp file and return its path."""

    def write(text: str, name: str = "mqtop.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return write


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``python -m mqtop ARGS`` in a subprocess (isolated state dir)."""

    def run(
        *args: str,
        timeout: float = 120,
        env: dict[str, str] | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        full_env = {
            **os.environ,
            "XDG_STATE_HOME": str(tmp_path / "state"),
            "XDG_CONFIG_HOME": str(tmp_path / "config-home"),
            "PYTHONPATH": str(ROOT),
            **(env or {}),
        }
        full_env.pop("MQTOP_CONFIG", None) if "MQTOP_CONFIG" not in (env or {}) else None
        return subprocess.run(
            [sys.executable, "-m", "mqtop", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            cwd=tmp_path,
            input=input,
            check=False,
        )

    return run
