"""Alert states against a real Redis server through the real CLI: deleted queues, resolutions,
held (flapping) alerts, and `serve` publishing its counters with the alerts they count."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from tests.harness import RedisBroker
from tests.support.receiver import Receiver
from tests.support.serve import Serve, alert_samples, scrape, wait_until

pytestmark = pytest.mark.broker

GRACE = 3  # polls without a queue before it is removed (docs/dashboard.md)


def _serve_config(tmp_path: Path, redis_broker: RedisBroker, prefix: str, hook: str) -> Path:
    path = tmp_path / "mqtop.yaml"
    path.write_text(
        "interval: 300ms\n"
        "timeout: 2s\n"
        "brokers:\n"
        f'  - {{name: cache, type: redis, url: "{redis_broker.url}", streams: ["{prefix}*"],'
        f' lists: ["{prefix}*"]}}\n'
        "alerts:\n"
        '  - {name: Backlog, metric: queue_length, op: ">", threshold: 100}\n'
        "notify:\n"
        f'  - {{type: webhook, url: "{hook}", retries: 1}}\n'
    )
    return path


def _events(requests, state: str, prefix: str) -> list[dict]:
    """This test's alerts in that state (a receiver port may be reused while another test's
    daemon still posts to it)."""
    return [
        a
        for r in requests
        for a in r.json()["alerts"]
        if a["state"] == state and (a["queue"] or "").startswith(prefix)
    ]


def test_deleted_streams_leave_serve_and_their_alerts_resolve_with_that_reason(
    redis_broker: RedisBroker, unique, tmp_path
):
    client = redis.Redis(host=redis_broker.host, port=redis_broker.port)
    prefix = unique("gone") + ":"
    doomed = [f"{prefix}d{i}" for i in range(20)]
    drained = prefix + "drained"
    with client.pipeline() as pipe:
        for name in [*doomed, drained]:
            for n in range(150):
                pipe.xadd(name, {"n": n})
        pipe.execute()
    receiver = Receiver().start()
    serve = Serve(
        _serve_config(tmp_path, redis_broker, prefix, receiver.url + "/hook"),
        0,
        tmp_path / "state",
    )
    try:
        port = serve.started()
        wait_until(
            lambda: len(alert_samples(scrape(port), "Backlog")) == 21, what="21 Backlog alerts"
        )
        client.delete(*doomed)  # the queues are gone, not empty
        client.xtrim(drained, maxlen=7, approximate=False)  # this one drains below the threshold
        requests = receiver.wait_for(lambda rs: len(_events(rs, "resolved", prefix)) >= 21)
        samples = wait_until(
            lambda: (s := scrape(port)) and not s.get("mqtop_alert") and s, what="no alerts"
        )
        queues = {s.labels["queue"] for s in samples.get("mqtop_queue_length", [])}
        assert queues == {drained}  # the deleted streams left /metrics too
    finally:
        code = serve.stop()
        receiver.stop()
        client.delete(*doomed, drained)
        client.close()
    assert code == 0
    resolved = {a["queue"]: a for a in _events(requests, "resolved", prefix)}
    assert len(resolved) == len(_events(requests, "resolved", prefix)) == 21
    for name in doomed:
        assert resolved[name]["reason"] == "series_removed"
        assert resolved[name]["value"] is None
        assert resolved[name]["summary"] == (
            f"cache/{name}: no longer listed by the broker (removed after {GRACE} polls without it)"
        )
    # a resolution states what is true now, not the firing condition
    assert resolved[drained]["reason"] == "condition_false"
    assert resolved[drained]["summary"] == f"cache/{drained}: queue_length 7 ≤ 100"
    # no SeriesStale alert (nor its pop-up or notification) for a queue that was deleted
    every = _events(requests, "firing", prefix) + list(resolved.values())
    assert len(every) == 42 and {a["rule"] for a in every} == {"Backlog"}
    logs = serve.logs()
    assert not [e for e in logs if e.get("event") == "alert" and e["rule"] != "Backlog"]
    lines = [e["msg"] for e in logs if e.get("event") == "alert" and e["status"] == "resolved"]
    assert f"alert resolved: Backlog cache/{drained}: queue_length 7 ≤ 100" in lines


def test_check_reports_a_held_alert_with_when_it_clears(
    redis_broker: RedisBroker, write_config, unique
):
    """A flapping alert whose condition is false is held firing: `check` says so (JSON and
    text), with the time it will clear."""
    client = redis.Redis(host=redis_broker.host, port=redis_broker.port)
    stream = unique("held") + ":s"
    path = write_config(
        f"""
        interval: 300ms
        timeout: 2s
        alerting: {{flap_threshold: 2, flap_window: 10m}}
        brokers:
          - {{name: cache, type: redis, url: "{redis_broker.url}", streams: ["{stream}"],
             lists: []}}
        alerts:
          - {{name: Backlog, metric: queue_length, op: ">", threshold: 100, severity: info}}
        """
    )

    def add_backlog() -> None:
        with client.pipeline() as pipe:
            for n in range(150):
                pipe.xadd(stream, {"n": n})
            pipe.execute()

    def flap(lines: list[str], fired: threading.Event) -> None:
        # the flapping starts once check has seen the first firing (its start-up may be slow)
        if not fired.wait(20):
            return
        for maxlen in (0, None, 0):  # resolve, fire again, then false for good
            if maxlen is None:
                add_backlog()
            else:
                client.xtrim(stream, maxlen=maxlen, approximate=False)
            time.sleep(1.5)

    add_backlog()
    lines: list[str] = []
    fired = threading.Event()
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "XDG_STATE_HOME": str(path.parent / "state"), "PYTHONPATH": str(root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mqtop", "check", "--config", str(path), "--for", "12s",
         "--fail-on", "critical", "--format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("mqtop: firing"):
                fired.set()

    reader = threading.Thread(target=read_stderr)
    flapper = threading.Thread(target=flap, args=(lines, fired))
    reader.start()
    flapper.start()
    try:
        assert proc.stdout is not None
        stdout = proc.stdout.read()
        proc.wait(timeout=120)
    finally:
        proc.kill()
        reader.join()
        flapper.join()
        client.delete(stream)
        client.close()
    result = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, "".join(lines))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    [alert] = doc["alerts"]
    assert alert["state"] == "firing" and alert["value"] == 0
    assert alert["summary"].startswith(
        f"cache/{stream}: queue_length 0 ≤ 100; held firing as flapping (fired 2 times in 10m)"
    )
    held_until = time.mktime(time.strptime(alert["held_until"][:19], "%Y-%m-%dT%H:%M:%S"))
    assert 540 < held_until - time.mktime(time.gmtime()) <= 600
    # the watch mode's stderr says when it became held, in words
    held_lines = [line for line in result.stderr.splitlines() if line.startswith("mqtop: held")]
    assert held_lines and "held firing as flapping" in held_lines[-1], result.stderr
    assert held_lines[-1].endswith("if it stays so")


def test_serve_publishes_the_evaluation_count_with_the_alerts_it_counts(
    redis_broker: RedisBroker, unique, tmp_path
):
    """A scrape between an evaluation and the publication of its counters never sees firing
    alerts with ``mqtop_evaluations_total 0`` (seen once in CI on a loaded machine)."""
    from prometheus_client.parser import text_string_to_metric_families

    from mqtop.commands.serve import Daemon
    from mqtop.config import load_config_file

    client = redis.Redis(host=redis_broker.host, port=redis_broker.port)
    stream = unique("race") + ":s"
    with client.pipeline() as pipe:
        for n in range(150):
            pipe.xadd(stream, {"n": n})
        pipe.execute()
    path = tmp_path / "mqtop.yaml"
    path.write_text(
        "interval: 1s\n"
        "brokers:\n"
        f'  - {{name: cache, type: redis, url: "{redis_broker.url}", streams: ["{stream}"],'
        " lists: []}\n"
        "alerts:\n"
        '  - {name: Backlog, metric: queue_length, op: ">", threshold: 100}\n'
    )
    scrapes: list[tuple[float, int]] = []

    def scrape_now() -> None:
        text = daemon.metrics().decode()  # the /metrics body
        found = {f.name: f for f in text_string_to_metric_families(text)}
        evaluations = found["mqtop_evaluations"].samples[0].value
        firing = [s for s in found["mqtop_alert"].samples if s.labels["state"] == "firing"]
        scrapes.append((evaluations, len(firing)))

    async def main() -> None:
        await daemon.engine.poll_all()
        real_notify = daemon.dispatcher.notify

        def notify(events):  # runs after the evaluation, before the counters were published
            scrape_now()
            real_notify(events)

        daemon.dispatcher.notify = notify  # type: ignore[method-assign]
        daemon.evaluate()
        scrape_now()
        await daemon.engine.stop()

    try:
        daemon = Daemon(argparse.Namespace(config=str(path)), load_config_file(path))
        asyncio.run(main())
    finally:
        client.delete(stream)
        client.close()
    assert scrapes[-1] == (1, 1)  # after the cycle: one evaluation, one firing alert
    for evaluations, firing in scrapes:
        assert firing == 0 or evaluations >= 1, scrapes


def test_serve_logs_and_notifies_a_held_alert_once(redis_broker: RedisBroker, unique, tmp_path):
    """`serve`'s cycle (poll, evaluate, log, notify) on a stream that flaps: the hold is logged
    and sent once, with when it clears; the resolution later states the truth."""
    import logging

    from mqtop.commands.serve import Daemon
    from mqtop.config import load_config_file

    client = redis.Redis(host=redis_broker.host, port=redis_broker.port)
    stream = unique("flap") + ":s"
    receiver = Receiver().start()
    path = tmp_path / "mqtop.yaml"
    path.write_text(
        "interval: 1s\n"
        "alerting: {flap_threshold: 2, flap_window: 10m}\n"
        "brokers:\n"
        f'  - {{name: cache, type: redis, url: "{redis_broker.url}", streams: ["{stream}"],'
        " lists: []}\n"
        "alerts:\n"
        '  - {name: Backlog, metric: queue_length, op: ">", threshold: 100}\n'
        "notify:\n"
        f'  - {{type: webhook, url: "{receiver.url}/hook", retries: 1}}\n'
    )
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep()
    logging.getLogger("mqtop.serve").addHandler(keep)
    logging.getLogger("mqtop.serve").setLevel(logging.INFO)

    def fill() -> None:
        with client.pipeline() as pipe:
            for n in range(150):
                pipe.xadd(stream, {"n": n})
            pipe.execute()

    async def main() -> None:
        daemon.dispatcher.start()
        for step in (fill, "empty", fill, "empty", "empty"):
            if step == "empty":
                client.xtrim(stream, maxlen=0, approximate=False)
            else:
                step()
            await daemon.engine.poll_all()
            daemon.evaluate()
        await daemon.dispatcher.aclose(grace=10)
        await daemon.engine.stop()

    try:
        daemon = Daemon(argparse.Namespace(config=str(path)), load_config_file(path))
        asyncio.run(main())
    finally:
        logging.getLogger("mqtop.serve").removeHandler(keep)
        receiver.stop()
        client.delete(stream)
        client.close()
    sent = [(a["status"], a) for r in receiver.requests for a in r.json()["alerts"]]
    assert [status for status, _ in sent] == ["firing", "resolved", "firing", "held"]
    held = sent[-1][1]
    assert held["state"] == "firing" and held["reason"] == "flapping" and held["value"] == 0
    assert held["held_until"] is not None
    assert held["summary"].startswith(
        f"cache/{stream}: queue_length 0 ≤ 100; held firing as flapping (fired 2 times in 10m)"
    )
    assert sent[1][1]["summary"] == f"cache/{stream}: queue_length 0 ≤ 100"
    logged = [r.getMessage() for r in records if r.getMessage().startswith("alert held:")]
    assert logged == [f"alert held: Backlog {held['summary']}"]
    [alert] = daemon.health.alerts  # /metrics shows it still firing, as it is
    assert alert.state.value == "firing" and alert.held_until is not None
