"""Notifiers against real local HTTP servers: payloads, retries, timeouts, isolation, secrets."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import logging
import time

import jsonschema
import pytest

from alerts.config import (
    AlertmanagerNotifier,
    SlackNotifier,
    StdoutNotifier,
    WebhookNotifier,
)
from alerts.model import Alert, AlertEvent, AlertState
from alerts.notifiers import Dispatcher, StdoutSink, build_notifier
from tests.harness import free_port
from tests.support.receiver import Receiver

# The part of Alertmanager's v2 OpenAPI spec (api/v2/openapi.yaml) that POST /api/v2/alerts
# accepts: postableAlerts = [postableAlert]; postableAlert = alert + startsAt/endsAt/annotations;
# alert = {labels (required), generatorURL}; labelSet = {string: string}.
LABEL_SET = {"type": "object", "additionalProperties": {"type": "string"}}
POSTABLE_ALERTS = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["labels"],
        "additionalProperties": False,
        "properties": {
            "labels": {**LABEL_SET, "minProperties": 1},
            "annotations": LABEL_SET,
            "startsAt": {"type": "string", "format": "date-time"},
            "endsAt": {"type": "string", "format": "date-time"},
            "generatorURL": {"type": "string", "format": "uri"},
        },
    },
}
LABEL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"


def parse_time(text: str) -> float:
    assert text.endswith("Z"), text
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def make_alert(state=AlertState.FIRING, queue="orders", **kw) -> Alert:
    now = time.time()
    base = dict(
        rule="QueueBacklog",
        severity="warning",
        state=state,
        broker="cache",
        queue=queue,
        group=None,
        value=1500.0,
        threshold=1000.0,
        summary=f"cache/{queue}: queue_length 1500 > 1000",
        labels={"team": "payments"},
        active_since=now - 90,
        fired_at=now - 30,
        resolved_at=now if state is AlertState.RESOLVED else None,
    )
    base.update(kw)
    return Alert(**base)


def firing_then_resolved(**kw) -> tuple[AlertEvent, AlertEvent]:
    firing = make_alert(**kw)
    resolved = make_alert(AlertState.RESOLVED, **kw)
    return (
        AlertEvent("firing", firing, time.time()),
        AlertEvent("resolved", resolved, resolved.resolved_at or 0.0),
    )


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def webhook(url: str, **kw):
    return WebhookNotifier.model_validate({"type": "webhook", "url": url, **kw})


async def test_webhook_firing_then_resolved_payload(receiver):
    config = webhook(receiver.url + "/hook", headers={"X-Token": "hdr-secret-123"})
    dispatcher = Dispatcher.from_config([config], backoff=0.01)
    dispatcher.start()
    firing, resolved = firing_then_resolved()
    dispatcher.notify([firing])
    dispatcher.notify([resolved])
    await dispatcher.aclose(grace=10)
    requests = receiver.wait_for(lambda rs: len(rs) == 2)
    assert [r.path for r in requests] == ["/hook", "/hook"]
    assert requests[0].headers["Content-Type"] == "application/json"
    assert requests[0].headers["X-Token"] == "hdr-secret-123"
    first, second = (r.json() for r in requests)
    assert first["status"] == "firing" and second["status"] == "resolved"
    [alert] = first["alerts"]
    assert alert["rule"] == "QueueBacklog" and alert["state"] == "firing"
    assert alert["value"] == 1500 and alert["threshold"] == 1000
    assert alert["broker"] == "cache" and alert["queue"] == "orders" and alert["group"] is None
    assert alert["labels"] == {"team": "payments"}
    assert second["alerts"][0]["state"] == "resolved"
    assert second["alerts"][0]["resolved_at"] is not None
    assert dispatcher.counts == {("webhook[0]", "sent"): 2}


async def test_webhook_retries_5xx_and_429_with_backoff(receiver):
    receiver.statuses = [500, 429, 503]
    dispatcher = Dispatcher.from_config([webhook(receiver.url, retries=3)], backoff=0.05)
    dispatcher.start()
    dispatcher.notify([firing_then_resolved()[0]])
    await dispatcher.aclose(grace=10)
    assert receiver.attempts == 4
    assert len(receiver.requests) == 1
    assert dispatcher.counts == {("webhook[0]", "sent"): 1}


async def test_webhook_4xx_is_not_retried(receiver, caplog):
    receiver.statuses = [400]
    dispatcher = Dispatcher.from_config([webhook(receiver.url, retries=3)], backoff=0.05)
    dispatcher.start()
    with caplog.at_level(logging.WARNING, logger="mqtop.alerts.notify"):
        dispatcher.notify([firing_then_resolved()[0]])
        await dispatcher.aclose(grace=10)
    assert receiver.attempts == 1
    assert dispatcher.counts == {("webhook[0]", "failed"): 1}
    assert "HTTP 400" in caplog.text


async def test_webhook_timeout_gives_up_and_logs(receiver, caplog):
    receiver.delay = 2.0
    dispatcher = Dispatcher.from_config(
        [webhook(receiver.url, retries=1, timeout="200ms")], backoff=0.01
    )
    dispatcher.start()
    with caplog.at_level(logging.WARNING, logger="mqtop.alerts.notify"):
        dispatcher.notify([firing_then_resolved()[0]])
        await dispatcher.aclose(grace=10)
    assert receiver.attempts == 2
    assert dispatcher.counts == {("webhook[0]", "failed"): 1}
    assert "timed out after 0.2s" in caplog.text


async def test_failing_notifier_never_blocks_the_others(receiver, caplog):
    dead_port = free_port()  # nothing listens here
    secret_path = "/services/T0001/B0001/SuperSecretToken42"
    dead = webhook(f"http://127.0.0.1:{dead_port}{secret_path}", retries=3)
    good = webhook(receiver.url + "/ok", retries=0)
    dispatcher = Dispatcher.from_config([dead, good], backoff=0.3)
    dispatcher.start()
    with caplog.at_level(logging.DEBUG):
        started = time.monotonic()
        firing, resolved = firing_then_resolved()
        dispatcher.notify([firing])
        dispatcher.notify([resolved])
        assert time.monotonic() - started < 0.5  # queued, not sent inline
        # the good receiver gets both while the dead one is still backing off
        await receiver.until(lambda rs: len(rs) == 2, timeout=10)
        assert dispatcher.counts.get(("webhook[0]", "failed"), 0) == 0
        await dispatcher.aclose(grace=30)
    assert dispatcher.counts[("webhook[0]", "failed")] == 2
    assert dispatcher.counts[("webhook[1]", "sent")] == 2
    assert "webhook[0]" in caplog.text and "retry" in caplog.text
    assert "SuperSecretToken42" not in caplog.text  # URLs (secrets) never logged
    assert f"127.0.0.1:{dead_port}" in caplog.text  # the address is


async def test_slack_payload_escapes_hostile_names(receiver):
    config = SlackNotifier.model_validate(
        {"type": "slack", "url": receiver.url + "/services/T/B/x", "channel": "#ops"}
    )
    dispatcher = Dispatcher.from_config([config], backoff=0.01)
    dispatcher.start()
    hostile = "q<!channel>&<http://evil|click>"
    firing, resolved = firing_then_resolved(queue=hostile, severity="critical")
    dispatcher.notify([firing, resolved])
    await dispatcher.aclose(grace=10)
    [request] = receiver.wait_for(lambda rs: len(rs) == 1)
    payload = request.json()
    assert payload["channel"] == "#ops"
    assert isinstance(payload["text"], str)
    assert "<!channel>" not in request.body.decode()
    assert "&lt;!channel&gt;&amp;&lt;http://evil|click&gt;" in payload["text"]
    first, second = payload["attachments"]
    assert first["title"] == "[FIRING] QueueBacklog (critical)"
    assert second["title"] == "[RESOLVED] QueueBacklog (critical)"
    assert first["color"] != second["color"]
    queue_field = next(f for f in first["fields"] if f["title"] == "queue")
    assert queue_field["value"] == "q&lt;!channel&gt;&amp;&lt;http://evil|click&gt;"


async def test_alertmanager_payload_matches_v2_schema(receiver):
    config = AlertmanagerNotifier.model_validate(
        {"type": "alertmanager", "url": receiver.url + "/", "resend_interval": "1s"}
    )
    dispatcher = Dispatcher.from_config([config], backoff=0.01)
    dispatcher.start()
    firing, resolved = firing_then_resolved(
        group="billing", labels={"team": "payments", "bad-name.x": "v"}
    )
    dispatcher.notify([firing])
    await dispatcher.drain(10)
    dispatcher.notify([resolved])
    await dispatcher.drain(10)
    # a still-firing alert is re-sent every resend_interval (Alertmanager expires alerts)
    dispatcher.sync([firing.alert], time.time())  # first call arms the timer
    dispatcher.sync([firing.alert], time.time() + 1.5)
    await dispatcher.aclose(grace=10)
    requests = receiver.wait_for(lambda rs: len(rs) == 3)
    assert {r.path for r in requests} == {"/api/v2/alerts"}
    bodies = [r.json() for r in requests]
    for body in bodies:
        jsonschema.validate(body, POSTABLE_ALERTS)
        for alert in body:
            for name in alert["labels"]:
                assert jsonschema.Draft7Validator({"pattern": LABEL_NAME}).is_valid(name), name
            starts, ends = parse_time(alert["startsAt"]), parse_time(alert["endsAt"])
            assert ends >= starts
    [fired], [gone], [again] = bodies
    assert fired["labels"] == {
        "alertname": "QueueBacklog",
        "severity": "warning",
        "source": "mqtop",
        "broker": "cache",
        "queue": "orders",
        "group": "billing",
        "team": "payments",
        "bad_name_x": "v",
    }
    assert fired["annotations"] == {
        "summary": "cache/orders: queue_length 1500 > 1000",
        "value": "1500",
        "threshold": "1000",
    }
    assert parse_time(fired["startsAt"]) == pytest.approx(firing.alert.fired_at, abs=0.01)
    assert parse_time(fired["endsAt"]) > time.time()  # firing: ends in the future
    # resolved: endsAt is the resolution time
    assert parse_time(gone["endsAt"]) == pytest.approx(resolved.alert.resolved_at, abs=0.01)
    assert again["labels"] == fired["labels"]


def test_stdout_json_lines_are_ascii_and_complete():
    stream = io.StringIO()
    sink = StdoutSink("stdout[0]", stream=stream)
    firing, resolved = firing_then_resolved(queue="q\x1b[31m\u202e")
    asyncio.run(sink.send([firing, resolved]))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert all(line.isascii() and "\x1b" not in line for line in lines)
    first = json.loads(lines[0])
    assert first["status"] == "firing" and first["queue"] == "q\x1b[31m\u202e"
    assert json.loads(lines[1])["status"] == "resolved"


def test_min_severity_filters_per_notifier(receiver):
    async def scenario():
        config = webhook(receiver.url, min_severity="critical")
        dispatcher = Dispatcher.from_config([config], backoff=0.01)
        dispatcher.start()
        dispatcher.notify([firing_then_resolved()[0]])  # warning: filtered out
        dispatcher.notify([firing_then_resolved(severity="critical")[0]])
        await dispatcher.aclose(grace=10)

    asyncio.run(scenario())
    [request] = receiver.requests
    assert request.json()["alerts"][0]["severity"] == "critical"


def test_notifier_urls_are_masked_in_config_display():
    config = SlackNotifier.model_validate(
        {"type": "slack", "url": "https://hooks.slack.com/services/T1/B2/TopSecretSlack"}
    )
    shown = json.dumps(config.model_dump(mode="json"))
    assert "TopSecretSlack" not in shown
    assert "hooks.slack.com" in shown
    notifier = build_notifier(config, 0)
    assert notifier.name == "slack[0]"


async def test_held_events_reach_every_receiver_saying_until_when(receiver):
    """A flapping alert held firing: the webhook, Slack and Alertmanager bodies say so."""
    until = time.time() + 540
    held = make_alert(
        value=0.0,
        summary="cache/orders: queue_length 0 ≤ 1000; held firing as flapping (fired 3 times "
        "in 10m) until 12:00:00Z if it stays so",
        held_until=until,
        reason="flapping",
    )
    event = AlertEvent("held", held, time.time())
    notifiers = [
        build_notifier(webhook(receiver.url + "/hook"), 0),
        build_notifier(
            SlackNotifier.model_validate({"type": "slack", "url": receiver.url + "/slack"}), 1
        ),
        build_notifier(
            AlertmanagerNotifier.model_validate({"type": "alertmanager", "url": receiver.url}), 2
        ),
    ]
    dispatcher = Dispatcher(notifiers)
    dispatcher.start()
    dispatcher.notify([event])
    requests = await receiver.until(lambda rs: len(rs) == 3)
    await dispatcher.aclose()
    by_path = {r.path: r.json() for r in requests}
    body = by_path["/hook"]
    assert body["status"] == "firing"  # the incident is not over
    [sent] = body["alerts"]
    assert (sent["status"], sent["state"], sent["reason"]) == ("held", "firing", "flapping")
    assert abs(parse_time(sent["held_until"]) - until) < 0.01
    assert sent["summary"] == held.summary and sent["value"] == 0
    assert by_path["/slack"]["text"].startswith("*[HELD] QueueBacklog (warning)*")
    [posted] = by_path["/api/v2/alerts"]
    assert abs(parse_time(posted["annotations"]["held_until"]) - until) < 0.01
    assert parse_time(posted["endsAt"]) > time.time()  # still active for Alertmanager
    jsonschema.validate(by_path["/api/v2/alerts"], POSTABLE_ALERTS)


async def test_target_labels_reach_webhook_slack_and_stdout(receiver):
    """The config's `labels:` (as `mqtop serve` passes them) are in every event's labels,
    under the rule's own: a rule label of the same name wins."""
    stream = io.StringIO()
    configs = [
        webhook(receiver.url + "/hook"),
        SlackNotifier.model_validate({"type": "slack", "url": receiver.url + "/slack"}),
        StdoutNotifier.model_validate({"type": "stdout"}),
    ]
    target = {"cluster": "eu-1", "env": "prod", "team": "platform"}
    dispatcher = Dispatcher.from_config(configs, backoff=0.01, stream=stream, labels=target)
    dispatcher.start()
    firing, resolved = firing_then_resolved(queue="orders<&>")
    dispatcher.notify([firing])
    dispatcher.notify([resolved])
    await dispatcher.aclose(grace=10)
    requests = receiver.wait_for(lambda rs: len(rs) == 4)
    expected = {"cluster": "eu-1", "env": "prod", "team": "payments"}  # the rule's team wins
    hooks = [r.json() for r in requests if r.path == "/hook"]
    assert [h["status"] for h in hooks] == ["firing", "resolved"]
    assert [h["alerts"][0]["labels"] for h in hooks] == [expected, expected]
    slack = [r.json() for r in requests if r.path == "/slack"]
    for payload in slack:
        fields = {f["title"]: f["value"] for f in payload["attachments"][0]["fields"]}
        assert fields["cluster"] == "eu-1" and fields["env"] == "prod"
        assert fields["team"] == "payments" and fields["queue"] == "orders&lt;&amp;&gt;"
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["status"] for line in lines] == ["firing", "resolved"]
    assert all(line["labels"] == expected for line in lines)
    # the event itself is unchanged: the rule's labels only
    assert firing.alert.labels == {"team": "payments"}


async def test_without_target_labels_events_carry_the_rule_labels_only(receiver):
    dispatcher = Dispatcher.from_config([webhook(receiver.url)], backoff=0.01, labels={})
    dispatcher.start()
    firing, _ = firing_then_resolved(labels={})
    dispatcher.notify([firing])
    await dispatcher.aclose(grace=10)
    [request] = receiver.wait_for(lambda rs: len(rs) == 1)
    assert request.json()["alerts"][0]["labels"] == {}
