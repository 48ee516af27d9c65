"""Refusals by real brokers are one clear line and exit 3: wrong password, Origin policy."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.activemq import ActiveMQBroker

pytestmark = pytest.mark.broker


def config(write_config: Callable[[str], Path], amq: ActiveMQBroker, **extra: str) -> Path:
    """A config with one ActiveMQ broker (YAML accepts JSON's flow style)."""
    broker = {
        "name": "amq",
        "type": "activemq",
        "jolokia_url": amq.jolokia_url,
        "user": amq.user,
        "password": amq.password,
        **extra,
    }
    return write_config("brokers:\n  - " + json.dumps(broker) + "\n")


def one_line(result: Any) -> str:
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return str(lines[0])


@pytest.mark.parametrize("command", ["metrics", "peek"])
def test_wrong_password_is_one_line(
    amq: ActiveMQBroker, write_config: Callable[[str], Path], run_cli: Any, command: str
) -> None:
    path = config(write_config, amq, password="not-the-password")
    args = ["metrics", "--format", "json"] if command == "metrics" else ["dlq", "peek", "amq", "x"]
    line = one_line(run_cli(*args, "--config", str(path)))
    assert "refused the credentials" in line
    assert "not-the-password" not in line


@pytest.mark.parametrize("command", ["metrics", "peek"])
def test_origin_refusal_is_one_line(
    amq: ActiveMQBroker, write_config: Callable[[str], Path], run_cli: Any, command: str
) -> None:
    path = config(write_config, amq, origin="http://elsewhere.example:8161")
    args = ["metrics", "--format", "json"] if command == "metrics" else ["dlq", "peek", "amq", "x"]
    line = one_line(run_cli(*args, "--config", str(path)))
    assert "refused the Origin header 'http://elsewhere.example:8161'" in line
    assert "set origin:" in line


def test_default_origin_is_accepted(
    amq: ActiveMQBroker, write_config: Callable[[str], Path], run_cli: Any
) -> None:
    """The default Origin (the URL's own address) passes the broker's strict CORS check."""
    path = config(write_config, amq)
    result = run_cli("queues", "--format", "json", "--config", str(path))
    assert result.returncode == 0, result.stderr


def test_an_alias_of_the_source_is_the_same_queue(
    artemis_broker: ActiveMQBroker,
    unique: Callable[[str], str],
    write_config: Callable[[str], Path],
    run_cli: Any,
) -> None:
    """``address/queue`` and ``queue`` name one Artemis queue: the dead-letter service sees two
    names, the broker resolves them to one MBean and refuses in the service's words (exit 2)."""
    from tests.support.activemq import wait_count

    amq = artemis_broker
    queue = unique("alias")
    amq.create_queue(queue)
    try:
        amq.send(queue, ["a", "b"])
        assert wait_count(amq, queue, 2) == 2
        amq.dead_letter(queue, 2)
        dlq = f"DLQ.{queue}"
        assert wait_count(amq, dlq, 2) == 2
        path = config(write_config, amq)
        for extra in ([], ["--filter", "body:a"]):
            result = run_cli("dlq", "move", "amq", dlq, f"mqtop.DLA/{dlq}", *extra, "--yes",
                             "--config", str(path))  # fmt: skip
            assert result.returncode == 2, (result.stdout, result.stderr)
            assert "source and destination are the same queue" in result.stderr
            assert "Traceback" not in result.stderr
        assert amq.count(dlq) == 2
    finally:
        amq.cleanup(queue)
