"""The distributed path end to end, with real components only: two ``mqtop serve`` (Redis with
``cluster: eu-1``, RabbitMQ with ``cluster: us-1``), a real Prometheus scraping both with the
exported rules loaded, a real Alertmanager receiving from Prometheus and from serve's own
Alertmanager notifier, delivering to a local webhook receiver. A backlog on one cluster fires
in both paths with the same labels, and resolves in both."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import ROOT, _obtain
from tests.harness import RabbitBroker, RedisBroker, free_port
from tests.support import prometheus as prom
from tests.support.rabbit import Rabbit, rabbit_session
from tests.support.receiver import Receiver
from tests.support.serve import Serve

pytestmark = pytest.mark.broker

RULE = "FleetBacklog"
TARGET_ONLY = {"job", "instance"}  # added by Prometheus to every scraped series
SERVE_ONLY = {"source"}  # added by serve's Alertmanager notifier


@pytest.fixture
def rabbit(rabbitmq_broker: RabbitBroker, unique) -> Iterator[Rabbit]:
    yield from rabbit_session(rabbitmq_broker, unique)


def serve_config(path: Path, cluster: str, broker: str, prefix: str, am: str) -> Path:
    path.write_text(
        "interval: 1s\n"
        "timeout: 4s\n"
        f"labels: {{cluster: {cluster}, env: test}}\n"
        f"brokers:\n{broker}"
        "alerts:\n"
        f'  - {{name: {RULE}, metric: queue_length, op: ">", threshold: 50, severity: critical,\n'
        f'     match: {{queue: "{prefix}*"}}, labels: {{team: fleet}},\n'
        '     summary: "{series} holds {value} messages"}\n'
        "notify:\n"
        f'  - {{type: alertmanager, url: "{am}", resend_interval: 2s, retries: 5}}\n'
    )
    return path


def notified(receiver: Receiver, status: str) -> list[dict]:
    """Alerts of our rule that Alertmanager delivered with this status."""
    return [
        alert
        for request in receiver.requests
        for alert in request.json().get("alerts", [])
        if alert["labels"].get("alertname") == RULE and alert["status"] == status
    ]


def by_path(alerts: list[dict]) -> tuple[list[dict], list[dict]]:
    """(from Prometheus, from serve)."""
    return (
        [a for a in alerts if "job" in a["labels"]],
        [a for a in alerts if a["labels"].get("source") == "mqtop"],
    )


def test_backlog_fires_in_both_paths_with_the_same_labels(
    redis_broker: RedisBroker, rabbit: Rabbit, unique, tmp_path
):
    started = time.monotonic()
    prefix = unique("fleet")
    client = redis.Redis(host=redis_broker.host, port=redis_broker.port)
    backlog = f"{prefix}:jobs"
    quiet = rabbit.queue(f"{prefix}.orders")
    rabbit.api(
        "POST",
        "exchanges/%2F/amq.default/publish",
        {"properties": {}, "routing_key": quiet, "payload": "x", "payload_encoding": "string"},
    )
    receiver = Receiver().start()
    procs: list = []
    try:
        am = _obtain("Alertmanager", lambda: prom.start_alertmanager(receiver.url + "/am"))
        assert isinstance(am, prom.Alertmanager)
        procs.append(am)
        eu = serve_config(
            tmp_path / "eu.yaml",
            "eu-1",
            f'  - {{name: cache, type: redis, url: "{redis_broker.url}", lists: ["{prefix}*"]}}\n',
            prefix,
            am.url,
        )
        broker = rabbit.broker
        us = serve_config(
            tmp_path / "us.yaml",
            "us-1",
            f'  - {{name: rabbit, type: rabbitmq, url: "{broker.amqp_url}",\n'
            f'     management_url: "{broker.management_url}", include: ["{prefix}*"]}}\n',
            prefix,
            am.url,
        )
        rules = tmp_path / "rules" / "mqtop.yml"
        rules.parent.mkdir()
        command = ["rules", "export", "--config", str(eu), "-o", str(rules)]
        exported = subprocess.run(
            [sys.executable, "-m", "mqtop", *command],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        )
        assert exported.returncode == 0, exported.stderr
        ports = {"eu-1": free_port(), "us-1": free_port()}
        serves = {
            "eu-1": Serve(eu, ports["eu-1"], tmp_path / "state-eu"),
            "us-1": Serve(us, ports["us-1"], tmp_path / "state-us"),
        }
        procs.extend(serves.values())
        server = _obtain(
            "Prometheus",
            lambda: prom.start_prometheus(
                scrape=[
                    {
                        "job_name": "mqtop",
                        "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in ports.values()]}],
                    }
                ],
                rule_files=[rules],
                alertmanagers=[am.address],
                interval="1s",
            ),
        )
        assert isinstance(server, prom.Prometheus)
        procs.append(server)

        # Prometheus sees both clusters' series (both serves answer, both brokers are up)
        def both_up() -> dict[str, float]:
            found = {r["metric"]["cluster"]: float(r["value"][1]) for r in server.query("mqtop_up")}
            return found if found == {"eu-1": 1.0, "us-1": 1.0} else {}

        prom.wait_until(both_up, 30, "mqtop_up from both clusters in Prometheus")
        loaded = server.api("rules")["groups"][0]["rules"]
        assert {r["name"] for r in loaded} >= {RULE, "BrokerDown", "GroupStalled"}

        # a backlog on one cluster only
        client.rpush(backlog, *range(120))
        firing = receiver.wait_for(lambda _: all(by_path(notified(receiver, "firing"))), timeout=40)
        assert firing
        from_prometheus, from_serve = by_path(notified(receiver, "firing"))
        p_labels = {k: v for k, v in from_prometheus[0]["labels"].items() if k not in TARGET_ONLY}
        s_labels = {k: v for k, v in from_serve[0]["labels"].items() if k not in SERVE_ONLY}
        assert (
            p_labels
            == s_labels
            == {
                "alertname": RULE,
                "severity": "critical",
                "team": "fleet",
                "cluster": "eu-1",
                "env": "test",
                "broker": "cache",
                "queue": backlog,
            }
        )
        assert from_serve[0]["annotations"]["summary"] == f"cache/{backlog} holds 120 messages"
        assert from_prometheus[0]["annotations"]["summary"] == f"cache/{backlog} holds 120 messages"
        # only the cluster with the backlog; nothing else fired
        delivered = notified(receiver, "firing")
        assert {a["labels"]["cluster"] for a in delivered} == {"eu-1"}
        assert all(a["labels"]["queue"] == backlog for a in delivered)
        names = {
            a["labels"].get("alertname")
            for r in receiver.requests
            for a in r.json().get("alerts", [])
        }
        assert "BrokerDown" not in names
        # Prometheus holds the value serve exported, with the target labels
        value = server.query(f'mqtop_queue_length{{cluster="eu-1",queue="{backlog}"}}')
        assert [float(v["value"][1]) for v in value] == [120.0]

        # the backlog drains: both paths resolve
        client.delete(backlog)
        receiver.wait_for(lambda _: all(by_path(notified(receiver, "resolved"))), timeout=40)
        assert time.monotonic() - started < 90
    finally:
        client.delete(backlog)
        for proc in reversed(procs):
            proc.stop()
        receiver.stop()
