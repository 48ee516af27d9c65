"""``mqtop check`` against a real Redis server, through the real CLI (subprocess)."""

from __future__ import annotations

import json
import re
import time
import xml.etree.ElementTree as ET

import pytest
import redis

from tests.harness import RedisBroker, free_port

pytestmark = pytest.mark.broker


@pytest.fixture
def r(redis_broker: RedisBroker):
    client = redis.Redis(host=redis_broker.host, port=redis_broker.port)
    created: list[str] = []
    yield client, created
    if created:
        client.delete(*created)
    client.close()


def config(write_config, redis_broker: RedisBroker, prefix: str, alerts: str, extra: str = ""):
    return write_config(
        f"""
        interval: 300ms
        timeout: 2s
        {extra}
        brokers:
          - name: cache
            type: redis
            url: "{redis_broker.url}"
            lists: ["{prefix}*"]
            streams: ["{prefix}*"]
        alerts:
        {alerts}
        """
    )


BACKLOG = """
          - {name: Backlog, metric: queue_length, op: ">", threshold: 100, severity: warning}
"""


def test_backlog_above_threshold_fires_exit_1(r, redis_broker, write_config, run_cli, unique):
    client, created = r
    prefix = unique("chk") + ":"
    jobs, idle = prefix + "jobs", prefix + "idle"
    created += [jobs, idle]
    client.rpush(jobs, *range(250))
    client.rpush(idle, *range(3))
    path = config(write_config, redis_broker, prefix, BACKLOG)
    result = run_cli("check", "--config", str(path), "--once", "--format", "json")
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc) == {"status", "alerts", "errors"}
    assert doc["status"] == "firing" and doc["errors"] == []
    assert doc["alerts"] == [
        {
            "rule": "Backlog",
            "severity": "warning",
            "state": "firing",
            "broker": "cache",
            "queue": jobs,
            "group": None,
            "value": client.llen(jobs),
            "threshold": 100,
            "summary": f"cache/{jobs}: queue_length 250 > 100",
            "held_until": None,  # added to SPEC §5's keys: set while held (flap damping)
        }
    ]


def test_backlog_below_threshold_exit_0(r, redis_broker, write_config, run_cli, unique):
    client, created = r
    prefix = unique("chk") + ":"
    jobs = prefix + "jobs"
    created.append(jobs)
    client.rpush(jobs, *range(100))  # not > 100
    path = config(write_config, redis_broker, prefix, BACKLOG)
    result = run_cli("check", "--config", str(path), "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"status": "ok", "alerts": [], "errors": []}
    text = run_cli("check", "--config", str(path))
    assert text.returncode == 0
    assert text.stdout.strip().startswith("status: ok")


def test_unreachable_broker_exit_3(write_config, run_cli):
    port = free_port()
    path = write_config(
        f"""
        interval: 200ms
        timeout: 1s
        brokers:
          - {{name: gone, type: redis, url: "redis://:Pw-Canary-31@127.0.0.1:{port}/0"}}
        """
    )
    result = run_cli("check", "--config", str(path), "--format", "json")
    assert result.returncode == 3, result.stderr
    doc = json.loads(result.stdout)
    assert doc["status"] == "firing"  # BrokerDown fires; it maps to exit 3, not 1
    [alert] = doc["alerts"]
    assert alert["rule"] == "BrokerDown" and alert["severity"] == "critical"
    assert alert["broker"] == "gone" and alert["value"] is None
    [error] = doc["errors"]
    assert "'gone'" in error and "unreachable" in error
    assert "Pw-Canary-31" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_firing_wins_over_unreachable(r, redis_broker, write_config, run_cli, unique):
    client, created = r
    prefix = unique("chk") + ":"
    jobs = prefix + "jobs"
    created.append(jobs)
    client.rpush(jobs, *range(150))
    port = free_port()
    path = write_config(
        f"""
        interval: 300ms
        timeout: 1s
        brokers:
          - {{name: cache, type: redis, url: "{redis_broker.url}",
              lists: ["{prefix}*"], streams: ["{prefix}*"]}}
          - {{name: gone, type: redis, url: "redis://127.0.0.1:{port}/0"}}
        alerts:
          - {{name: Backlog, metric: queue_length, op: ">", threshold: 100}}
        """
    )
    result = run_cli("check", "--config", str(path), "--format", "json")
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)
    assert {a["rule"] for a in doc["alerts"]} == {"Backlog", "BrokerDown"}
    assert len(doc["errors"]) == 1


def test_fail_on_critical_ignores_warnings(r, redis_broker, write_config, run_cli, unique):
    client, created = r
    prefix = unique("chk") + ":"
    jobs = prefix + "jobs"
    created.append(jobs)
    client.rpush(jobs, *range(150))
    path = config(write_config, redis_broker, prefix, BACKLOG)
    result = run_cli("check", "--config", str(path), "--fail-on", "critical", "--format", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["status"] == "ok"
    assert [a["state"] for a in doc["alerts"]] == ["firing"]  # reported, not failing


def test_for_rule_pending_on_once_then_firing_in_watch_mode(
    r, redis_broker, write_config, run_cli, unique
):
    client, created = r
    prefix = unique("chk") + ":"
    jobs = prefix + "jobs"
    created.append(jobs)
    client.rpush(jobs, *range(500))
    slow = """
          - {name: SlowBacklog, metric: queue_length, op: ">", threshold: 100, for: 30s,
             severity: critical}
    """
    path = config(write_config, redis_broker, prefix, slow)
    once = run_cli("check", "--config", str(path), "--once", "--format", "json")
    assert once.returncode == 0, once.stderr  # one look (two polls 300 ms apart) < 30 s
    [pending] = json.loads(once.stdout)["alerts"]
    assert pending["state"] == "pending" and pending["value"] == 500

    alerts = """
          - {name: SlowBacklog, metric: queue_length, op: ">", threshold: 100, for: 2s,
             severity: critical}
    """
    path = config(write_config, redis_broker, prefix, alerts)

    started = time.monotonic()
    watch = run_cli("check", "--config", str(path), "--for", "60s", "--format", "json")
    elapsed = time.monotonic() - started
    assert watch.returncode == 1, watch.stderr
    [alert] = json.loads(watch.stdout)["alerts"]
    assert alert["state"] == "firing" and alert["rule"] == "SlowBacklog"
    # the watch reported pending first, then firing, and stopped as soon as it fired
    lines = [line for line in watch.stderr.splitlines() if "SlowBacklog" in line]
    assert [line.split()[1] for line in lines] == ["pending", "firing"], watch.stderr
    assert elapsed < 60


def test_watch_mode_without_alerts_runs_until_the_deadline(
    r, redis_broker, write_config, run_cli, unique
):
    client, created = r
    prefix = unique("chk") + ":"
    jobs = prefix + "jobs"
    created.append(jobs)
    client.rpush(jobs, "x")
    path = config(write_config, redis_broker, prefix, BACKLOG)
    started = time.monotonic()
    result = run_cli("check", "--config", str(path), "--for", "2s")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started >= 2.0
    assert "status: ok" in result.stdout


def test_persisted_history_covers_for_on_once(
    r, redis_broker, write_config, run_cli, unique, tmp_path
):
    client, created = r
    prefix = unique("chk") + ":"
    jobs = prefix + "jobs"
    created.append(jobs)
    client.rpush(jobs, *range(500))
    alerts = """
          - {name: SlowBacklog, metric: queue_length, op: ">", threshold: 100, for: 4s}
    """
    history = tmp_path / "hist" / "history.db"
    path = config(
        write_config, redis_broker, prefix, alerts, extra=f"history: {{path: '{history}'}}"
    )
    first = run_cli("check", "--config", str(path), "--format", "json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["alerts"][0]["state"] == "pending"
    assert history.exists()
    time.sleep(4.0)
    second = run_cli("check", "--config", str(path), "--format", "json")
    assert second.returncode == 1, second.stderr
    assert json.loads(second.stdout)["alerts"][0]["state"] == "firing"


def test_dlq_not_empty_ci_recipe(r, redis_broker, write_config, run_cli, unique, tmp_path):
    """The docs/ci.md recipe: fail when a dead-letter queue holds anything."""
    client, created = r
    prefix = unique("dlq") + ":"
    orders, dead = prefix + "orders", prefix + "orders:dead"
    created += [orders, dead]
    client.rpush(orders, "a")
    alerts = """
          - name: DeadLetters
            metric: dlq_length
            op: ">"
            threshold: 0
            severity: critical
            summary: "{broker}/{queue} has {value} dead letters"
    """
    path = config(write_config, redis_broker, prefix, alerts)
    ok = run_cli("check", "--config", str(path), "--fail-on", "critical", "--format", "github")
    assert ok.returncode == 0, ok.stderr
    client.rpush(dead, "poison-1", "poison-2")
    report = tmp_path / "annotations.txt"
    bad = run_cli(
        "check",
        "--config",
        str(path),
        "--fail-on",
        "critical",
        "--format",
        "github",
        "--output",
        str(report),
    )
    assert bad.returncode == 1, bad.stderr
    expected = f"::error title=mqtop DeadLetters (critical)::cache/{orders} has 2 dead letters"
    assert expected in bad.stdout.splitlines()
    assert report.read_text() == bad.stdout


def test_junit_one_testcase_per_rule_and_series(r, redis_broker, write_config, run_cli, unique):
    client, created = r
    prefix = unique("junit") + ":"
    big, small = prefix + "big", prefix + "small"
    created += [big, small]
    client.rpush(big, *range(200))
    client.rpush(small, "x")
    alerts = """
          - {name: Backlog, metric: queue_length, op: ">", threshold: 100}
          - {name: HasConsumers, metric: consumers, op: "<", threshold: 1}
    """
    path = config(write_config, redis_broker, prefix, alerts)
    result = run_cli("check", "--config", str(path), "--format", "junit")
    assert result.returncode == 1, result.stderr
    root = ET.fromstring(result.stdout)
    assert root.tag == "testsuites"
    cases = {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}
    assert set(cases) == {
        ("mqtop.Backlog", f"cache/{big}"),
        ("mqtop.Backlog", f"cache/{small}"),
        ("mqtop.HasConsumers", f"cache/{big}"),
        ("mqtop.HasConsumers", f"cache/{small}"),
        ("mqtop.BrokerDown", "cache"),
    }
    failure = cases[("mqtop.Backlog", f"cache/{big}")].find("failure")
    assert failure is not None and failure.get("type") == "warning"
    assert "200" in failure.get("message")
    assert cases[("mqtop.Backlog", f"cache/{small}")].find("failure") is None
    # lists expose no consumer count: null is skipped, never compared as 0
    assert cases[("mqtop.HasConsumers", f"cache/{small}")].find("skipped") is not None
    assert root.get("failures") == "1" and root.get("tests") == "5"


def test_hostile_queue_names_are_escaped(r, redis_broker, write_config, run_cli, unique):
    client, created = r
    prefix = unique("evil") + ":"
    evil = prefix + "q\n::error::pwned\x1b[31m"
    created.append(evil)
    client.rpush(evil, *range(150))
    path = config(write_config, redis_broker, prefix, BACKLOG)
    gh = run_cli("check", "--config", str(path), "--format", "github")
    assert gh.returncode == 1
    assert "\x1b" not in gh.stdout
    assert not any(line.startswith("::error::pwned") for line in gh.stdout.splitlines())
    junit = run_cli("check", "--config", str(path), "--format", "junit")
    ET.fromstring(junit.stdout)  # still well-formed XML
    assert "\x1b" not in junit.stdout
    text = run_cli("check", "--config", str(path))
    assert "\x1b" not in text.stdout and "\\x1b" in text.stdout


def test_usage_and_config_errors_exit_2(write_config, run_cli, tmp_path):
    path = write_config(
        """
        brokers:
          - {name: c, type: redis}
        alerts:
          - {name: X, metric: queue_lenght, threshold: 1}
        """
    )
    bad_config = run_cli("check", "--config", str(path))
    assert bad_config.returncode == 2
    assert re.search(r"mqtop\.yaml:\d+:\d+: alerts\[0\]\.metric", bad_config.stderr)
    good = write_config("brokers:\n  - {name: c, type: redis}\n", name="ok.yaml")
    bad_for = run_cli("check", "--config", str(good), "--for", "soon")
    assert bad_for.returncode == 2 and "--for" in bad_for.stderr
    bad_output = run_cli("check", "--config", str(good), "--output", str(tmp_path / "no/x"))
    assert bad_output.returncode == 2 and "--output" in bad_output.stderr
    for result in (bad_config, bad_for, bad_output):
        assert "Traceback" not in result.stderr


def test_shipped_default_rules_when_config_has_no_alerts(
    r, redis_broker, write_config, run_cli, unique
):
    client, created = r
    prefix = unique("dflt") + ":"
    jobs = prefix + "jobs"
    created.append(jobs)
    client.rpush(jobs, *range(1500))
    path = write_config(
        f"""
        interval: 300ms
        brokers:
          - {{name: cache, type: redis, url: "{redis_broker.url}",
              lists: ["{prefix}*"], streams: ["{prefix}*"]}}
        """
    )
    result = run_cli("check", "--config", str(path), "--format", "json")
    # QueueBacklog (> 1000 for 1m) cannot fire on one look: pending, exit 0
    assert result.returncode == 0, result.stderr
    [alert] = json.loads(result.stdout)["alerts"]
    assert (alert["rule"], alert["state"], alert["value"]) == ("QueueBacklog", "pending", 1500)
    text = run_cli("check", "--config", str(path))
    assert "(shipped default rules)" in text.stdout
