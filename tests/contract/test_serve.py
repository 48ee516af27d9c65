"""``mqtop serve`` as a subprocess against real Redis and a real local webhook receiver:
Prometheus /metrics parsed with prometheus_client's parser, SIGHUP reload, SIGTERM exit 0."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
from pathlib import Path

import pytest
import redis

from tests.harness import RedisBroker, free_port
from tests.support.receiver import Receiver
from tests.support.serve import Serve, alert_samples, http_get, scrape, wait_until

pytestmark = pytest.mark.broker


def test_serve_metrics_notifications_reload_and_clean_stop(
    redis_broker: RedisBroker, write_config, unique, tmp_path
):
    client = redis.Redis(host=redis_broker.host, port=redis_broker.port)
    prefix = unique("serve") + ":"
    jobs = prefix + "jobs"
    client.rpush(jobs, *range(300))
    receiver = Receiver().start()
    hook = receiver.url + "/hooks/T0/B0/Serve-Secret-Token-77"
    history = tmp_path / "state" / "history.db"
    port = free_port()

    def write(*extra_rules: str) -> Path:
        rules = "\n".join(
            ['  - {name: Backlog, metric: queue_length, op: ">", threshold: 100}']
            + [f"  - {rule}" for rule in extra_rules]
        )
        path = tmp_path / "mqtop.yaml"
        path.write_text(
            "interval: 300ms\n"
            "timeout: 2s\n"
            f'history: {{path: "{history}"}}\n'
            "brokers:\n"
            f'  - {{name: cache, type: redis, url: "{redis_broker.url}",'
            f' lists: ["{prefix}*"], streams: ["{prefix}*"]}}\n'
            f"alerts:\n{rules}\n"
            "notify:\n"
            f'  - {{type: webhook, url: "{hook}", retries: 1}}\n'
        )
        return path

    config = write()
    serve = Serve(config, port, tmp_path / "state")
    try:
        samples = wait_until(
            lambda: (s := scrape(port)) and alert_samples(s, "Backlog") and s,
            what="Backlog alert in /metrics",
        )
        # metric values match Redis' own numbers
        [length] = [s for s in samples["mqtop_queue_length"] if s.labels["queue"] == jobs]
        assert length.value == client.llen(jobs) == 300
        assert length.labels == {"broker": "cache", "queue": jobs, "group": ""}
        assert [s.value for s in samples["mqtop_broker_up"]] == [1.0]
        [alert] = alert_samples(samples, "Backlog")
        assert alert.labels["state"] == "firing" and alert.labels["queue"] == jobs
        assert alert.value == 1.0
        firing = {s.labels["severity"]: s.value for s in samples["mqtop_alerts_firing"]}
        assert firing["warning"] == 1.0
        assert samples["mqtop_evaluations_total"][0].value >= 1
        assert samples["mqtop_broker_consecutive_failures"][0].value == 0

        # the webhook receiver got the firing notification
        requests = receiver.wait_for(lambda rs: len(rs) >= 1)
        first = requests[0].json()
        assert first["status"] == "firing"
        assert first["alerts"][0]["rule"] == "Backlog"
        assert first["alerts"][0]["value"] == 300

        status, body = http_get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200
        health = json.loads(body)
        assert health["status"] == "ok" and health["brokers"]["cache"]["up"] is True

        # SIGHUP picks up a new rule without a restart
        write('{name: AnyBacklog, metric: queue_length, op: ">", threshold: 1, severity: critical}')
        serve.proc.send_signal(signal.SIGHUP)
        samples = wait_until(
            lambda: (s := scrape(port)) and alert_samples(s, "AnyBacklog") and s,
            what="the new rule after SIGHUP",
        )
        reloads = {s.labels["result"]: s.value for s in samples["mqtop_config_reloads_total"]}
        assert reloads == {"success": 1.0, "failure": 0.0}
        assert alert_samples(samples, "Backlog")  # old state kept

        # a broken config on SIGHUP is refused; the daemon keeps running the old one
        config.write_text("interval: [oops\n")
        serve.proc.send_signal(signal.SIGHUP)
        wait_until(
            lambda: any(
                s.labels["result"] == "failure" and s.value == 1.0
                for s in scrape(port)["mqtop_config_reloads_total"]
            ),
            what="failed reload counted",
        )
        assert serve.proc.poll() is None

        # the backlog drains: resolved notifications follow
        client.delete(jobs)

        def resolved_rules(requests) -> list[str]:
            return [
                alert["rule"]
                for request in requests
                for alert in request.json()["alerts"]
                if alert["state"] == "resolved"
            ]

        requests = receiver.wait_for(lambda rs: len(resolved_rules(rs)) >= 2)
        resolved = resolved_rules(requests)
        assert sorted(resolved) == ["AnyBacklog", "Backlog"]
        wait_until(lambda: not scrape(port).get("mqtop_alert"), what="no active alerts")
    finally:
        code = serve.stop()
        receiver.stop()
        client.delete(jobs)
        client.close()
    assert code == 0
    logs = serve.logs()
    assert {"serving", "config reloaded", "stopped"} <= {entry["msg"] for entry in logs}
    assert any(e.get("event") == "alert" and e.get("status") == "resolved" for e in logs)
    everything = serve.stderr_path.read_text() + serve.stdout_path.read_text()
    assert "Serve-Secret-Token-77" not in everything
    # SIGTERM flushed the history database
    with sqlite3.connect(history) as db:
        rows = db.execute("SELECT COUNT(*) FROM raw").fetchone()[0]
    assert rows > 0


def test_serve_port_in_use_exit_2(write_config, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        config = write_config("brokers:\n  - {name: c, type: redis}\n")
        serve = Serve(config, port, tmp_path / "state")
        code = serve.proc.wait(timeout=30)
    assert code == 2
    err = serve.stderr_path.read_text()
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert "Traceback" not in err
