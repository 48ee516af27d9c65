"""`mqtop demo`: the embedded servers, the workload, the headless pipeline, clean shutdown.

The end-to-end tests run the real CLI as a subprocess. The demo needs no external broker and by
default monitors nothing else; with ``--with-local-brokers`` the brokers already listening on
default local ports (the shared test brokers) are monitored too, read-only, and the tests check
that they were picked up exactly when their port answers.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

DEFAULT_PORTS = {"redis": 6379, "rabbitmq": 5672, "kafka": 9092, "sqs": 4566}
RQ = importlib.util.find_spec("rq") is not None  # the demo extra installs it


def _env(tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CONFIG_HOME": str(tmp_path / "config-home"),
    }
    env.pop("MQTOP_CONFIG", None)
    return env


class Demo:
    """A running `mqtop demo --headless` whose JSON lines are collected as they come."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mqtop", "demo", "--headless", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**_env(tmp_path), **(env or {})},
            cwd=tmp_path,
        )
        self.lines: list[dict[str, Any]] = []
        self.stderr = ""
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            doc = json.loads(raw)  # every stdout line is one JSON document
            with self._cond:
                self.lines.append(doc)
                self._cond.notify_all()

    def wait_for(self, predicate, timeout: float) -> Any:
        """Wait until ``predicate(lines)`` returns something truthy; return it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = predicate(self.lines)
                if found:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not found):
                    if self.proc.poll() is not None:
                        found = predicate(self.lines)
                        if found:
                            return found
                    raise AssertionError(
                        f"timed out; {len(self.lines)} lines; stderr: {self.read_stderr()}"
                    )
                self._cond.wait(min(remaining, 0.5))

    def finish(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        self._reader.join(timeout=10)
        return code

    def read_stderr(self) -> str:
        if self.proc.poll() is not None and self.proc.stderr is not None and not self.stderr:
            self.stderr = self.proc.stderr.read()
        return self.stderr

    @property
    def started(self) -> dict[str, Any]:
        return next(x for x in self.lines if x.get("event") == "demo_started")

    @property
    def snapshots(self) -> list[dict[str, Any]]:
        return [x for x in self.lines if "series" in x]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _assert_nothing_left(started: dict[str, Any], within: float = 10.0) -> None:
    """Every process the demo started is gone and every port it opened is closed."""
    pids = list(started["pids"].values())
    ports = list(started["ports"])
    assert "backend" in started["pids"] and ports
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids) and not any(_listening(p) for p in ports):
            return
        time.sleep(0.2)
    left = [p for p in pids if _alive(p)]
    open_ports = [p for p in ports if _listening(p)]
    raise AssertionError(f"left behind: processes {left}, ports {open_ports}")


def _series(snapshot: dict[str, Any], broker: str, queue: str, group: str | None = None):
    for s in snapshot["series"]:
        if s["broker"] == broker and s["queue"] == queue and s["group"] == group:
            return s
    return None


def _up(snapshot: dict[str, Any], broker: str) -> bool:
    return any(b["name"] == broker and b["up"] for b in snapshot["brokers"])


def _cli(tmp_path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mqtop", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(tmp_path),
        cwd=tmp_path,
        check=False,
    )


@dataclass
class DemoRun:
    """What one 30 s headless demo run printed and what was checked while it ran."""

    lines: list[dict[str, Any]]
    code: int
    stderr: str
    started: dict[str, Any]
    expected_local: set[str]
    config_path: Path
    config_shown: str
    peeked: list[dict[str, Any]]
    dead_list: list[bytes]
    leftovers: str | None
    replays: dict[str, subprocess.CompletedProcess[str]]
    audit: list[str]

    @property
    def snapshots(self) -> list[dict[str, Any]]:
        return [x for x in self.lines if "series" in x]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> DemoRun:
    """`mqtop demo --headless --duration 30s --config PATH --with-local-brokers`, run once for
    this module."""
    import redis

    tmp_path = tmp_path_factory.mktemp("demo")
    config_path = tmp_path / "demo.yaml"
    expected_local = {f"local-{name}" for name, port in DEFAULT_PORTS.items() if _listening(port)}
    demo = Demo(tmp_path, "--duration", "30s", "--config", str(config_path), "--with-local-brokers")
    try:
        started = demo.wait_for(
            lambda lines: next((x for x in lines if x.get("event") == "demo_started"), None), 60
        )
        shown = _cli(tmp_path, "--config", str(config_path), "config", "show")
        assert shown.returncode == 0, shown.stderr
        # the DLQ browser has something to replay: peek the dead invoices through the CLI
        # while the demo runs, and read the Redis server's own list right after
        demo.wait_for(
            lambda lines: any(
                (s := _series(x, "demo-redis", "jobs:invoices"))
                and (s["metrics"]["dlq_length"] or 0) >= 1
                for x in lines
                if "series" in x
            ),
            30,
        )
        # ...and RQ's failed registry (receipts failed while the renderer was down)
        if RQ:
            demo.wait_for(
                lambda lines: any(
                    (s := _series(x, "demo-rq", "receipts"))
                    and (s["metrics"]["dlq_length"] or 0) >= 1
                    for x in lines
                    if "series" in x
                ),
                30,
            )
        # ...and the Kafka dead-letter topic too, before replaying it below
        demo.wait_for(
            lambda lines: any(
                (s := _series(x, "demo-kafka", "orders", "payment-service"))
                and (s["metrics"]["dlq_length"] or 0) >= 1
                for x in lines
                if "series" in x
            ),
            30,
        )
        peek = _cli(
            tmp_path,
            "--config",
            str(config_path),
            "dlq",
            "peek",
            "demo-redis",
            "jobs:invoices:dead",
            "--format",
            "json",
        )
        assert peek.returncode == 0, peek.stderr
        client = redis.Redis.from_url(started["endpoints"]["redis"])
        try:
            dead_list = client.lrange("jobs:invoices:dead", 0, -1)
        finally:
            client.close()
        replays = {
            broker: _cli(
                tmp_path,
                "--config",
                str(config_path),
                "dlq",
                "replay",
                broker,
                dlq,
                "--yes",
                "--format",
                "json",
            )
            for broker, dlq in (
                ("demo-redis", "jobs:invoices:dead"),
                ("demo-kafka", "orders.DLT"),
                *((("demo-rq", "receipts:failed"),) if RQ else ()),
            )
        }
        code = demo.finish(timeout=90)
    finally:
        demo.kill()
    try:
        _assert_nothing_left(started)
        leftovers = None
    except AssertionError as exc:
        leftovers = str(exc)
    return DemoRun(
        lines=demo.lines,
        code=code,
        stderr=demo.read_stderr(),
        started=started,
        expected_local=expected_local,
        config_path=config_path,
        config_shown=shown.stdout,
        peeked=json.loads(peek.stdout),
        dead_list=dead_list,
        leftovers=leftovers,
        replays=replays,
        audit=(tmp_path / "state" / "mqtop" / "audit.jsonl").read_text().splitlines(),
    )


def test_demo_exits_0_after_the_duration_and_leaves_nothing(demo_run):
    assert demo_run.code == 0, demo_run.stderr
    assert set(demo_run.started["pids"]) == {"backend", "kafka", *(["rq-worker"] if RQ else [])}
    assert len(demo_run.started["ports"]) == 3
    assert demo_run.lines[-1] == {"event": "demo_stopped", "reason": "duration", "exit_code": 0}
    assert demo_run.leftovers is None, demo_run.leftovers
    assert 18 <= len(demo_run.snapshots) <= 32, len(demo_run.snapshots)  # one per 1 s poll, 30 s


def test_demo_config_names_the_servers_and_local_brokers_read_only(demo_run):
    started = demo_run.started
    assert {"demo-sqs", "demo-redis", "demo-kafka"} <= set(started["brokers"])
    assert ("demo-rq" in started["brokers"]) == RQ
    # with --with-local-brokers, brokers on default local ports are monitored too, read-only
    assert {b for b in started["brokers"] if b.startswith("local-")} == demo_run.expected_local
    assert started["config"] == str(demo_run.config_path)
    assert demo_run.config_path.read_text().startswith("# mqtop demo config")
    for name in demo_run.expected_local:
        block = demo_run.config_shown.split(f"name: {name}", 1)[1].split("- name:", 1)[0]
        assert "readonly: true" in block, block
    # the snapshots carry every configured broker
    assert [b["name"] for b in demo_run.snapshots[-1]["brokers"]] == started["brokers"]


def test_dlq_browser_has_messages_to_replay(demo_run):
    peeked = demo_run.peeked
    assert peeked and len(demo_run.dead_list) >= len(peeked)
    raw_ids = {json.loads(r)["order_id"] for r in demo_run.dead_list}
    assert {json.loads(p["body"])["order_id"] for p in peeked} <= raw_ids
    # dead-lettered because of bad data, after the retries, kept as queued
    assert all(json.loads(p["body"])["vat_id"] == "XX-INVALID" for p in peeked)
    assert any(
        (s["metrics"]["dlq_length"] or 0) > 0 for x in demo_run.snapshots for s in x["series"]
    )


def _replayed(demo_run: DemoRun, broker: str, dlq: str, destination: str) -> None:
    result = demo_run.replays[broker]
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["source"] == dlq and report["destination"] == destination
    assert report["moved"] >= 1 and report["failed"] == 0
    audited = [json.loads(line) for line in demo_run.audit]
    assert any(
        a["broker"] == broker and a["action"] == "replay" and a["result"] == "ok" for a in audited
    ), audited


def test_redis_dead_letters_replay(demo_run):
    _replayed(demo_run, "demo-redis", "jobs:invoices:dead", "jobs:invoices")


def test_rq_failed_receipts_replay(demo_run):
    assert RQ, "rq is not installed: pip install -e '.[demo]'"
    _replayed(demo_run, "demo-rq", "receipts:failed", "receipts")


def test_kafka_dead_letters_replay(demo_run):
    _replayed(demo_run, "demo-kafka", "orders.DLT", "orders")


def test_redis_series_are_live(demo_run):
    snaps = demo_run.snapshots
    assert any(_up(s, "demo-redis") for s in snaps)
    # the invoice re-run pushed the list over the threshold; the dead list is mapped
    peak = max(
        (s["metrics"]["queue_length"] or 0)
        for x in snaps
        if (s := _series(x, "demo-redis", "jobs:invoices"))
    )
    assert peak > 1000
    last = snaps[-1]
    invoices = _series(last, "demo-redis", "jobs:invoices")
    assert invoices["dlq"] == "jobs:invoices:dead" and invoices["metrics"]["dlq_length"] >= 1
    stream = _series(last, "demo-redis", "events:orders", "fulfillment")
    assert stream["metrics"]["consumers"] == 2
    assert stream["metrics"]["publish_rate"] > 0
    assert _series(last, "demo-redis", "notify:orders")["metrics"]["consumers"] == 1


def test_sqs_series_are_live(demo_run):
    snaps = demo_run.snapshots
    assert any(_up(s, "demo-sqs") for s in snaps)
    emails = _series(snaps[-1], "demo-sqs", "email-notifications")
    assert emails["dlq"] == "email-notifications-dlq"  # from the RedrivePolicy
    assert emails["metrics"]["queue_length"] is not None
    assert emails["metrics"]["in_flight"] is not None


def test_kafka_series_are_live(demo_run):
    snaps = demo_run.snapshots
    up = [s for s in snaps if _up(s, "demo-kafka")]
    assert up
    topic = [
        s for x in up for s in x["series"] if s["broker"] == "demo-kafka" and s["queue"] == "orders"
    ]
    assert topic and all(s["dlq"] == "orders.DLT" for s in topic)
    assert any(v is not None for s in topic for v in s["metrics"].values())


def test_kafka_group_lag_is_live(demo_run):
    groups = {
        s["group"]: s
        for x in demo_run.snapshots
        for s in x["series"]
        if s["broker"] == "demo-kafka" and s["queue"] == "orders" and s["group"]
    }
    assert {"payment-service", "analytics"} <= set(groups), sorted(groups)
    for group in ("payment-service", "analytics"):
        metrics = groups[group]["metrics"]
        assert metrics["consumer_lag_messages"] is not None
        assert metrics["consumers"] == 1
        # Burrow-style status once the group has been watched a little
        statuses = {
            s.get("status")
            for x in demo_run.snapshots
            for s in x["series"]
            if s["broker"] == "demo-kafka" and s["group"] == group
        }
        assert statuses & {"OK", "WARN"}, statuses
    # the analytics group stalls at 20 s: by the end it is behind, payments keep up
    last = {
        s["group"]: s
        for s in demo_run.snapshots[-1]["series"]
        if s["broker"] == "demo-kafka" and s["queue"] == "orders" and s["group"]
    }
    assert last["analytics"]["metrics"]["publish_rate"] > 0


def test_an_alert_fires_on_the_burst(demo_run):
    alerts = [x for x in demo_run.lines if x.get("event") == "alert"]
    backlog = [
        a
        for a in alerts
        if a["rule"] == "QueueBacklog" and a["broker"] == "demo-redis" and a["status"] == "firing"
    ]
    assert backlog, [(a["rule"], a["broker"], a["queue"]) for a in alerts]
    assert backlog[0]["queue"] == "jobs:invoices" and backlog[0]["value"] > 1000
    # names stay readable: no demo value is mistaken for a secret and masked
    assert backlog[0]["summary"].startswith("demo-redis/jobs:invoices: queue_length ")
    scenario = [x["scenario"] for x in demo_run.lines if x.get("event") == "scenario"]
    assert scenario[0] == "invoice_batch"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_every_server(tmp_path, sig):
    """SIGTERM / Ctrl-C: exit 0 after stopping the backend, tansu and every port."""
    demo = Demo(tmp_path)
    try:
        demo.wait_for(lambda lines: len([x for x in lines if "series" in x]) >= 2, 60)
        started = demo.started
        # self-contained by default: brokers on default local ports are left alone
        demos = {"demo-kafka", "demo-redis", "demo-sqs", *(["demo-rq"] if RQ else [])}
        assert sorted(started["brokers"]) == sorted(demos)
        last = [x for x in demo.lines if "series" in x][-1]
        assert {s["broker"] for s in last["series"]} <= demos
        demo.proc.send_signal(sig)
        code = demo.finish(timeout=40)
    finally:
        demo.kill()
    assert code == 0, demo.read_stderr()
    assert demo.lines[-1]["event"] == "demo_stopped"
    assert demo.lines[-1]["reason"] == "signal"
    _assert_nothing_left(started, within=5)
    assert not Path(started["config"]).parent.exists()  # the temporary config is removed


def test_killed_demo_leaves_nothing_behind(tmp_path):
    """SIGKILL of `mqtop demo` itself: the backend notices and stops tansu and the servers."""
    demo = Demo(tmp_path)
    try:
        demo.wait_for(lambda lines: any("series" in x for x in lines), 60)
        started = demo.started
        os.kill(demo.proc.pid, signal.SIGKILL)
        demo.proc.wait(timeout=10)
    finally:
        demo.kill()
    _assert_nothing_left(started, within=40)  # the backend sees stdin close, stops the servers
    # the temporary directory (config, logs) went with the backend
    workdir = Path(started["config"]).parent
    assert workdir.name.startswith("mqtop-demo-")
    deadline = time.monotonic() + 10
    while workdir.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not workdir.exists()


def test_backend_death_is_reported_with_exit_3(tmp_path):
    """The servers dying under the demo: exit 3 with the reason, and tansu goes with them."""
    demo = Demo(tmp_path)
    try:
        demo.wait_for(lambda lines: any("series" in x for x in lines), 60)
        started = demo.started
        os.kill(started["pids"]["backend"], signal.SIGKILL)
        code = demo.finish(timeout=40)
    finally:
        demo.kill()
    assert code == 3
    assert demo.lines[-1]["reason"] == "the demo servers stopped unexpectedly"
    assert "mqtop demo: the demo servers stopped unexpectedly" in demo.read_stderr()
    _assert_nothing_left(started, within=10)


def test_without_tansu_the_demo_runs_on_sqs_and_redis(tmp_path):
    """No Kafka-compatible broker available: a warning, and the pipeline runs without it."""
    demo = Demo(tmp_path, "--duration", "8s", env={"CALF_TANSU_BIN": str(tmp_path / "none")})
    try:
        code = demo.finish(timeout=60)
    finally:
        demo.kill()
    assert code == 0, demo.read_stderr()
    started = demo.started
    assert "demo-kafka" not in started["brokers"]
    assert {"demo-sqs", "demo-redis"} <= set(started["brokers"])
    assert started["endpoints"]["kafka"] is None
    assert any(w.startswith("kafka: ") for w in started["warnings"])
    assert "mqtop demo: kafka: " in demo.read_stderr()
    # orders still flow: paid inline, then emailed (SQS) and invoiced (Redis)
    last = demo.snapshots[-1]
    stream = _series(last, "demo-redis", "events:orders", "fulfillment")
    assert stream["metrics"]["publish_rate"] > 0
    assert _series(last, "demo-sqs", "email-notifications") is not None
    _assert_nothing_left(started)


def test_missing_demo_packages_are_named(monkeypatch, capsys):
    import importlib.util

    from mqtop.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("moto", "fakeredis") else real(name, *a),
    )
    assert main(["demo", "--headless", "--duration", "1s"]) == 2
    err = capsys.readouterr().err
    # from this checkout, never by name from an index (an unrelated `mqtop` is on PyPI)
    assert f"pip install '{ROOT}[demo]'" in err
    assert "'mqtop[demo]'" not in err
    assert "missing: moto[server], fakeredis" in err


# ---------------------------------------------------------------- usage errors (fast)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration", "0"], "--duration: the duration must be greater than 0"),
        (["--duration", "soon"], "--duration: invalid duration"),
        (["--duration", "30d"], "--duration: at most"),
    ],
)
def test_bad_duration_is_a_usage_error(tmp_path, args, message):
    result = _cli(tmp_path, "demo", "--headless", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_refuses_to_overwrite_a_real_config(tmp_path):
    mine = tmp_path / "mqtop.yaml"
    mine.write_text("interval: 5s\n")
    result = _cli(tmp_path, "demo", "--headless", "--duration", "1s", "--config", str(mine))
    assert result.returncode == 2
    assert "exists and is not a demo config" in result.stderr
    assert mine.read_text() == "interval: 5s\n"


def test_dashboard_needs_a_terminal(tmp_path):
    result = _cli(tmp_path, "demo", "--duration", "1s")
    assert result.returncode == 2
    assert "use `mqtop demo --headless`" in result.stderr
