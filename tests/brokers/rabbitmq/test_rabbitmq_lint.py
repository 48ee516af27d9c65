"""``mqtop lint`` on the real RabbitMQ: each rule with a topology that breaks it and one that
satisfies it, read through the management API (arguments and effective policies)."""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET

import pytest

from alerts.config import AlertRule
from collectors.rabbitmq.collector import RabbitMQOptions
from collectors.topology import Topology
from mqtop.lint.config import LintConfig
from mqtop.lint.runner import lint_topology
from mqtop.registry import get_plugin
from tests.support.rabbit import Rabbit, broker_config, rabbit_session, wait_until

pytestmark = pytest.mark.broker

EVERYTHING = [AlertRule(name="all", metric="queue_length", threshold=1)]


@pytest.fixture
def rabbit(rabbitmq_broker, unique):
    yield from rabbit_session(rabbitmq_broker, unique)


def read(rabbit: Rabbit, prefix: str) -> Topology:
    options = RabbitMQOptions(
        name="rabbit",
        url=rabbit.broker.amqp_url,
        management_url=rabbit.broker.management_url,
        include=[prefix + "*"],
    )
    factory = get_plugin("rabbitmq").topology
    assert factory is not None

    async def go() -> Topology:
        reader = factory(options)
        try:
            return await reader.read()
        finally:
            await reader.close()

    return asyncio.run(go())


def findings(rabbit: Rabbit, prefix: str) -> set[tuple[str, str]]:
    found, _ = lint_topology(read(rabbit, prefix), EVERYTHING, LintConfig())
    return {(f.rule, f.queue) for f in found}


def rules_for(found: set[tuple[str, str]], queue: str) -> set[str]:
    return {rule for rule, name in found if name == queue}


def test_no_dlx_by_argument_or_policy(rabbit: Rabbit) -> None:
    p = rabbit.unique("lint-nodlx")
    dlx = rabbit.exchange(p + ".dlx", "fanout")
    plain = rabbit.queue(p + ".plain")
    by_arg = rabbit.queue(p + ".arg", arguments={"x-dead-letter-exchange": dlx})
    by_policy = rabbit.queue(p + ".pol")
    parking = rabbit.queue(p + ".parking", arguments={"x-max-length": 1000})
    rabbit.bind(dlx, parking)
    rabbit.policy(p + "-dlx", f"^{p}\\.pol$", {"dead-letter-exchange": dlx})
    wait_until(lambda: rabbit.info(by_policy).get("policy") == p + "-dlx", what="policy applied")

    found = findings(rabbit, p)
    assert rules_for(found, plain) == {"rabbitmq-no-dlx"}
    assert rules_for(found, by_arg) == set()
    assert rules_for(found, by_policy) == set()  # the effective policy counts
    assert rules_for(found, parking) == set()  # a DLQ needs no DLX of its own


def test_quorum_queue_without_dlx(rabbit: Rabbit) -> None:
    p = rabbit.unique("lint-qq")
    dlx = rabbit.exchange(p + ".dlx", "fanout")
    bare = rabbit.queue(p + ".bare", arguments={"x-queue-type": "quorum", "x-delivery-limit": 5})
    safe = rabbit.queue(
        p + ".safe", arguments={"x-queue-type": "quorum", "x-dead-letter-exchange": dlx}
    )
    parking = rabbit.queue(p + ".parking", arguments={"x-message-ttl": 86_400_000})
    rabbit.bind(dlx, parking)

    found, _ = lint_topology(read(rabbit, p), EVERYTHING, LintConfig())
    bare_findings = [f for f in found if f.queue == bare]
    assert [f.rule for f in bare_findings] == ["rabbitmq-quorum-no-dlx"]
    assert "delivered 5 times are dropped" in bare_findings[0].message
    assert bare_findings[0].severity == "critical"
    assert not [f for f in found if f.queue in (safe, parking)]


def test_dlx_routing_direct_fanout_topic_and_missing(rabbit: Rabbit) -> None:
    p = rabbit.unique("lint-route")
    direct = rabbit.exchange(p + ".direct", "direct")
    fanout_bound = rabbit.exchange(p + ".fan", "fanout")
    fanout_empty = rabbit.exchange(p + ".fan-empty", "fanout")
    topic = rabbit.exchange(p + ".topic", "topic")
    parking = rabbit.queue(p + ".parking", arguments={"x-max-length": 10})
    rabbit.bind(direct, parking, "dead")
    rabbit.bind(fanout_bound, parking)
    rabbit.bind(topic, parking, "dead.#")

    def source(suffix: str, exchange: str, key: str | None) -> str:
        args = {"x-dead-letter-exchange": exchange}
        if key is not None:
            args["x-dead-letter-routing-key"] = key
        return rabbit.queue(f"{p}.{suffix}", arguments=args)

    cases = {
        source("direct-ok", direct, "dead"): True,
        source("direct-bad", direct, "wrong"): False,
        source("fan-ok", fanout_bound, "any"): True,
        source("fan-bad", fanout_empty, "any"): False,
        source("topic-ok", topic, "dead.orders"): True,
        source("topic-bad", topic, "live.orders"): False,
        source("missing", p + ".no-such-exchange", "dead"): False,
        source("default-ok", "", parking): True,
        source("default-bad", "", p + ".nowhere"): False,
    }
    # a DLQ outside include still receives what the default exchange routes to it
    outside = rabbit.queue(rabbit.unique("lint-outside") + ".dlq", arguments={"x-max-length": 1})
    cases[source("default-outside", "", outside)] = True
    # without a dead-letter routing key messages keep their own key: the queue's name
    own_key = source("own", direct, None)
    rabbit.bind(direct, parking, own_key)
    cases[own_key] = True
    cases[source("own-bad", direct, None)] = False

    found = findings(rabbit, p)
    for queue, routed in cases.items():
        expected = set() if routed else {"rabbitmq-dlx-unroutable"}
        assert rules_for(found, queue) == expected, queue
    assert rules_for(found, parking) == set()


def test_dead_letter_queue_unbounded_and_backlog_without_consumer(rabbit: Rabbit) -> None:
    p = rabbit.unique("lint-dlq")
    dlx = rabbit.exchange(p + ".dlx", "direct")
    src_a = rabbit.queue(
        p + ".a", arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "a"}
    )
    src_b = rabbit.queue(
        p + ".b", arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "b"}
    )
    unbounded = rabbit.queue(p + ".parking-a")  # no naming convention: found by routing
    bounded = rabbit.queue(p + ".parking-b", arguments={"x-max-length": 100})
    rabbit.bind(dlx, unbounded, "a")
    rabbit.bind(dlx, bounded, "b")
    idle = rabbit.queue(p + ".idle", arguments={"x-dead-letter-exchange": dlx})
    rabbit.bind(dlx, unbounded, idle)
    conn = rabbit.connect()
    channel = conn.channel()
    channel.confirm_delivery()
    channel.basic_publish("", src_a, b"waiting")
    # a consumer on src_b (and nothing waiting): satisfied
    channel.basic_consume(src_b, lambda *a: None)
    wait_until(
        lambda: (
            rabbit.info(src_a).get("messages") == 1 and rabbit.info(src_b).get("consumers") == 1
        ),
        what="management stats",
    )

    found = findings(rabbit, p)
    assert rules_for(found, unbounded) == {"rabbitmq-dlq-unbounded"}
    assert rules_for(found, bounded) == set()
    assert rules_for(found, src_a) == {"rabbitmq-backlog-no-consumer"}
    assert rules_for(found, src_b) == set()
    assert rules_for(found, idle) == set()  # empty, no consumer: nothing waits


def test_cli_formats_exit_codes_and_suppression(rabbit: Rabbit, write_config, run_cli) -> None:
    p = rabbit.unique("lint-cli")
    plain = rabbit.queue(p + ".plain")
    broken = rabbit.queue(
        p + ".broken",
        arguments={"x-dead-letter-exchange": p + ".gone", "x-dead-letter-routing-key": "k"},
    )
    path = write_config(broker_config(rabbit.broker, [p + "*"]))

    result = run_cli("lint", "--config", str(path))
    assert result.returncode == 1, result.stderr
    assert "rabbitmq-dlx-unroutable" in result.stdout and "rabbitmq-no-dlx" in result.stdout
    assert result.stdout.splitlines()[0] == "rabbit:"

    result = run_cli("lint", "--config", str(path), "--format", "json", "--fail-on", "critical")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert {(f["rule"], f["queue"]) for f in data["findings"]} == {
        ("rabbitmq-dlx-unroutable", broken),
        ("rabbitmq-no-dlx", plain),
    }

    sarif = json.loads(run_cli("lint", "--config", str(path), "--format", "sarif").stdout)
    assert {r["ruleId"] for r in sarif["runs"][0]["results"]} == {
        "rabbitmq-dlx-unroutable",
        "rabbitmq-no-dlx",
    }
    junit = ET.fromstring(run_cli("lint", "--config", str(path), "--format", "junit").stdout)
    assert junit.get("failures") == "2"
    github = run_cli("lint", "--config", str(path), "--format", "github").stdout
    assert "::error title=mqtop lint rabbitmq-dlx-unroutable (critical)::" in github

    extra = f'lint:\n  ignore:\n    - {{rule: rabbitmq-no-dlx, queue: "{p}.*"}}\n'
    suppressed = write_config(broker_config(rabbit.broker, [p + "*"], extra=extra), "s.yaml")
    result = run_cli("lint", "--config", str(suppressed), "--format", "json")
    data = json.loads(result.stdout)
    assert [f["rule"] for f in data["findings"]] == ["rabbitmq-dlx-unroutable"]
    assert data["suppressed"] == 1
    # only a warning left below critical: exit 0
    both = (
        "lint:\n  ignore:\n    - rabbitmq-dlx-unroutable\n"
        f'    - {{rule: rabbitmq-no-dlx, queue: "{p}.*"}}\n'
    )
    clean = write_config(broker_config(rabbit.broker, [p + "*"], extra=both), "c.yaml")
    result = run_cli("lint", "--config", str(clean))
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip().endswith("2 suppressed)")


def test_alert_coverage_and_unreachable_broker(rabbit: Rabbit, write_config, run_cli) -> None:
    p = rabbit.unique("lint-cov")
    dlx = rabbit.exchange(p + ".dlx", "fanout")
    watched = rabbit.queue(p + ".orders", arguments={"x-dead-letter-exchange": dlx})
    unwatched = rabbit.queue(p + ".billing", arguments={"x-dead-letter-exchange": dlx})
    parking = rabbit.queue(p + ".orders.dlq", arguments={"x-max-length": 5})
    rabbit.bind(dlx, parking)
    alerts = (
        "alerts:\n"
        f'  - {{name: Backlog, metric: queue_length, op: ">", threshold: 10, '
        f'match: {{queue: "{p}.orders*"}}}}\n'
    )
    path = write_config(broker_config(rabbit.broker, [p + "*"], extra=alerts))
    result = run_cli("lint", "--config", str(path), "--format", "json")
    data = json.loads(result.stdout)
    assert {(f["rule"], f["queue"]) for f in data["findings"]} == {("alert-uncovered", unwatched)}
    assert result.returncode == 1
    assert watched not in {f["queue"] for f in data["findings"]}

    down = write_config(
        "brokers:\n  - {name: gone, type: rabbitmq, url: 'amqp://guest:guest@127.0.0.1:1/', "
        "management_url: 'http://127.0.0.1:1'}\n",
        "down.yaml",
    )
    result = run_cli("lint", "--config", str(down), "--format", "json")
    assert result.returncode == 3, result.stderr
    assert "gone" in json.loads(result.stdout)["errors"][0]
    assert run_cli("lint", "--config", str(down), "--broker", "nope").returncode == 2


def test_serve_exports_lint_findings(rabbit: Rabbit, write_config, tmp_path) -> None:
    from tests.support.serve import Serve, scrape
    from tests.support.serve import wait_until as wait_for

    p = rabbit.unique("lint-serve")
    plain = rabbit.queue(p + ".plain")
    dlx = rabbit.exchange(p + ".dlx", "fanout")
    safe = rabbit.queue(p + ".safe", arguments={"x-dead-letter-exchange": dlx})
    parking = rabbit.queue(p + ".parking", arguments={"x-max-length": 10})
    rabbit.bind(dlx, parking)
    path = write_config(broker_config(rabbit.broker, [p + "*"]))
    serve = Serve(path, 0, tmp_path / "serve")
    try:
        port = serve.started()

        def lint_samples() -> list:
            return scrape(port).get("mqtop_lint_findings", [])

        samples = wait_for(lint_samples, 60, "lint findings exported")
        assert [(s.labels["rule"], s.labels["queue"], s.value) for s in samples] == [
            ("rabbitmq-no-dlx", plain, 1.0)
        ]
        assert samples[0].labels["severity"] == "warning"
        assert samples[0].labels["broker"] == "rabbit"
        assert {safe, parking}.isdisjoint(s.labels["queue"] for s in samples)
    finally:
        assert serve.stop() == 0


def test_hostile_queue_names_are_escaped(rabbit: Rabbit, write_config, run_cli) -> None:
    p = rabbit.unique("lint-evil")
    evil = rabbit.queue(p + ".evil\x1b[2J\u202eboom")
    path = write_config(broker_config(rabbit.broker, [p + "*"]))
    for fmt in ("text", "github", "junit"):
        result = run_cli("lint", "--config", str(path), "--format", fmt)
        assert result.returncode == 1, result.stderr
        assert "\x1b" not in result.stdout and "\u202e" not in result.stdout, fmt
        assert p + ".evil\\x1b[2J\\u202eboom" in result.stdout, fmt
    data = json.loads(run_cli("lint", "--config", str(path), "--format", "json").stdout)
    assert [f["queue"] for f in data["findings"]] == [evil]  # the name itself, JSON-escaped
    sarif = run_cli("lint", "--config", str(path), "--format", "sarif").stdout
    assert "\x1b" not in sarif
