"""Lint rules are pure functions over a topology: each rule broken and satisfied with
hand-made topologies; suppressions; every output format parsed back."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from alerts.config import AlertRule
from collectors.topology import Binding, DeadLetter, Exchange, QueueTopology, Topology
from mqtop.config import parse_text
from mqtop.lint.catalogue import BY_ID, RULES
from mqtop.lint.config import LintConfig
from mqtop.lint.kafka import recommended_min_insync
from mqtop.lint.rabbitmq import Router, dead_letter_queues, topic_matches
from mqtop.lint.report import render
from mqtop.lint.runner import LintReport, lint_topology, sort_findings

EVERYTHING = [AlertRule(name="all", metric="queue_length", threshold=1)]


def rules_of(
    topology: Topology, alert_rules: list[AlertRule] | None = None
) -> set[tuple[str, str]]:
    findings, _ = lint_topology(topology, alert_rules or EVERYTHING, LintConfig())
    return {(f.rule, f.queue) for f in findings}


def rabbit(*queues: QueueTopology, exchanges=(), bindings=()) -> Topology:  # type: ignore[no-untyped-def]
    return Topology("r", "rabbitmq", tuple(queues), tuple(exchanges), tuple(bindings))


def q(name: str, **kw) -> QueueTopology:  # type: ignore[no-untyped-def]
    kw.setdefault("kind", "classic")
    kw.setdefault("consumers", 1)
    kw.setdefault("messages", 0)
    return QueueTopology(name=name, local_name=name, **kw)


DLX = Exchange("dlx", "direct")


def test_topic_matching() -> None:
    assert topic_matches("a.*", "a.b") and not topic_matches("a.*", "a.b.c")
    assert topic_matches("#", "") and topic_matches("a.#", "a") and topic_matches("#.c", "a.b.c")
    assert not topic_matches("a.b", "a.c")


def test_no_dlx_broken_and_satisfied() -> None:
    topology = rabbit(
        q("plain"),
        q("safe", dead_letter=DeadLetter("dlx", "safe")),
        q("safe.dlq", consumers=1),
        exchanges=[DLX],
        bindings=[Binding("dlx", "safe.dlq", "queue", "safe")],
    )
    assert rules_of(topology) == {("rabbitmq-no-dlx", "plain")}


def test_temporary_stream_and_server_named_queues_need_no_dlx() -> None:
    topology = rabbit(q("tmp", temporary=True), q("s", kind="stream"), q("amq.gen-x"))
    assert rules_of(topology) == set()


def test_quorum_without_dlx_says_what_happens() -> None:
    findings, _ = lint_topology(
        rabbit(q("qq", kind="quorum", delivery_limit=20), q("qq2", kind="quorum")),
        EVERYTHING,
        LintConfig(),
    )
    words = {f.queue: f.message for f in findings if f.rule == "rabbitmq-quorum-no-dlx"}
    assert "delivered 20 times are dropped" in words["qq"]
    assert "redelivered forever" in words["qq2"]


@pytest.mark.parametrize(
    ("kind", "binding_key", "dl_key", "routed"),
    [
        ("direct", "k", "k", True),
        ("direct", "k", "other", False),
        ("topic", "orders.#", "orders.dead", True),
        ("topic", "orders.*", "billing.dead", False),
        ("fanout", "ignored", "anything", True),
    ],
)
def test_dlx_routing_by_exchange_type(
    kind: str, binding_key: str, dl_key: str, routed: bool
) -> None:
    topology = rabbit(
        q("src", dead_letter=DeadLetter("dlx", dl_key)),
        q("dead", consumers=1),
        exchanges=[Exchange("dlx", kind)],
        bindings=[Binding("dlx", "dead", "queue", binding_key)],
    )
    assert (("rabbitmq-dlx-unroutable", "src") in rules_of(topology)) is not routed


def test_dlx_without_routing_key_uses_the_queue_name_and_direct_binding_keys() -> None:
    topology = rabbit(
        q("src", dead_letter=DeadLetter("dlx"), bound_keys=(("in", "orders.new"),)),
        q("dead", consumers=1),
        exchanges=[DLX, Exchange("in", "direct")],
        bindings=[Binding("dlx", "dead", "queue", "orders.new")],
    )
    assert rules_of(topology) == set()
    broken = rabbit(
        q("src", dead_letter=DeadLetter("dlx")),
        q("dead", consumers=1),
        exchanges=[DLX],
        bindings=[Binding("dlx", "dead", "queue", "something-else")],
    )
    assert ("rabbitmq-dlx-unroutable", "src") in rules_of(broken)


def test_dlx_missing_exchange_alternate_exchange_e2e_and_default_exchange() -> None:
    missing = rabbit(q("src", dead_letter=DeadLetter("gone", "k")))
    assert ("rabbitmq-dlx-unroutable", "src") in rules_of(missing)
    via_ae = rabbit(
        q("src", dead_letter=DeadLetter("dlx", "k")),
        q("dead", consumers=1),
        exchanges=[Exchange("dlx", "direct", alternate_exchange="ae"), Exchange("ae", "fanout")],
        bindings=[Binding("ae", "dead", "queue", "")],
    )
    assert rules_of(via_ae) == set()
    e2e = rabbit(
        q("src", dead_letter=DeadLetter("dlx", "k")),
        q("dead", consumers=1),
        exchanges=[DLX, Exchange("hop", "topic")],
        bindings=[Binding("dlx", "hop", "exchange", "k"), Binding("hop", "dead", "queue", "#")],
    )
    assert rules_of(e2e) == set()
    default_ok = rabbit(q("src", dead_letter=DeadLetter("", "dead")), q("dead", consumers=1))
    assert rules_of(default_ok) == set()
    default_broken = rabbit(q("src", dead_letter=DeadLetter("", "nowhere")))
    assert ("rabbitmq-dlx-unroutable", "src") in rules_of(default_broken)


def test_headers_exchange_is_not_judged() -> None:
    topology = rabbit(
        q("src", dead_letter=DeadLetter("h", "k")),
        exchanges=[Exchange("h", "headers")],
    )
    assert Router(topology).route("/", "h", "k").certain is False
    assert rules_of(topology) == set()


def test_dlq_unbounded_and_backlog_without_consumer() -> None:
    base = [
        q("src", dead_letter=DeadLetter("dlx", "k")),
    ]
    exchanges = [DLX]
    bindings = [Binding("dlx", "parking", "queue", "k")]
    broken = rabbit(
        *base, q("parking", consumers=0, messages=5), exchanges=exchanges, bindings=bindings
    )
    assert dead_letter_queues(broken) == {"parking"}
    assert rules_of(broken) == {("rabbitmq-dlq-unbounded", "parking")}
    bounded = rabbit(
        *base, q("parking", consumers=0, max_length=1000), exchanges=exchanges, bindings=bindings
    )
    assert rules_of(bounded) == set()
    backlog = rabbit(
        q("work", consumers=0, messages=3, dead_letter=DeadLetter("", "work.dlq")),
        q("work.dlq", consumers=1),
    )
    assert rules_of(backlog) == {("rabbitmq-backlog-no-consumer", "work")}


def sqs_topology(*queues: QueueTopology) -> Topology:
    return Topology("aws", "sqs", tuple(queues))


def sq(name: str, fifo: bool = False, **kw) -> QueueTopology:  # type: ignore[no-untyped-def]
    return QueueTopology(name=name, kind="fifo" if fifo else "standard", **kw)


def test_sqs_rules() -> None:
    good = sqs_topology(
        sq(
            "a",
            dead_letter=DeadLetter("a-dlq", source="redrive", max_receive_count=5),
            retention_seconds=345600,
        ),
        sq("a-dlq", retention_seconds=1209600),
    )
    assert rules_of(good) == set()
    bad = sqs_topology(
        sq("none"),
        sq("one", dead_letter=DeadLetter("d1", max_receive_count=1), retention_seconds=60),
        sq("d1", retention_seconds=60),
        sq("f.fifo", fifo=True, dead_letter=DeadLetter("d2", max_receive_count=3)),
        sq("d2"),
    )
    assert rules_of(bad) == {
        ("sqs-no-redrive", "none"),
        ("sqs-max-receive-count-1", "one"),
        ("sqs-dlq-retention", "one"),
        ("sqs-dlq-type-mismatch", "f.fifo"),
    }


def kt(name: str, **kw) -> QueueTopology:  # type: ignore[no-untyped-def]
    kw.setdefault("replication_factor", 3)
    kw.setdefault("min_insync_replicas", 2)
    kw.setdefault("consumer_groups", ("g",))
    return QueueTopology(name=name, kind="topic", **kw)


def test_kafka_rules_and_single_broker_honesty() -> None:
    cluster3 = Topology(
        "k",
        "kafka",
        (
            kt("orders"),
            kt("orders.DLT", unbounded_retention=True, consumer_groups=()),
            kt("orders.DLT2.DLT", unbounded_retention=True),
            kt("thin", replication_factor=1, min_insync_replicas=1),
            kt("loose", min_insync_replicas=1),
            kt("tight", min_insync_replicas=3),
        ),
        cluster_size=3,
    )
    assert rules_of(cluster3) == {
        ("kafka-dlt-unbounded", "orders.DLT"),
        ("kafka-replication", "thin"),
        ("kafka-min-insync", "loose"),
        ("kafka-min-insync", "tight"),
    }
    single = Topology(
        "k", "kafka", (kt("t", replication_factor=1, min_insync_replicas=1),), cluster_size=1
    )
    assert rules_of(single) == set()
    assert recommended_min_insync(2) == (1, 1)
    assert recommended_min_insync(5) == (2, 4)


def test_alert_coverage() -> None:
    topology = rabbit(
        q("orders", dead_letter=DeadLetter("", "orders.dlq")),
        q("orders.dlq"),
        q("billing", dead_letter=DeadLetter("", "orders.dlq")),
    )
    only_orders = [
        AlertRule(name="o", metric="queue_length", threshold=1, match={"queue": "orders*"})
    ]
    assert rules_of(topology, only_orders) == {("alert-uncovered", "billing")}
    other_broker = [AlertRule(name="o", metric="queue_length", threshold=1, match={"broker": "x"})]
    assert len(rules_of(topology, other_broker)) == 3


def test_suppression_by_rule_queue_and_broker() -> None:
    topology = rabbit(q("cache.a"), q("orders"))
    config = LintConfig.model_validate(
        {"ignore": [{"rule": "rabbitmq-no-dlx", "queue": "cache.*"}]}
    )
    findings, suppressed = lint_topology(topology, EVERYTHING, config)
    assert [(f.rule, f.queue) for f in findings] == [("rabbitmq-no-dlx", "orders")]
    assert suppressed == 1
    everywhere = LintConfig.model_validate({"ignore": ["rabbitmq-*"]})
    assert lint_topology(topology, EVERYTHING, everywhere) == ([], 2)
    other = LintConfig.model_validate({"ignore": [{"rule": "rabbitmq-no-dlx", "broker": "x"}]})
    assert len(lint_topology(topology, EVERYTHING, other)[0]) == 2


def test_config_lint_section_is_validated_with_positions() -> None:
    text = (
        "lint:\n  ignore:\n    - no-such-rule\n"
        "    - {rule: sqs-no-redrive, queue: 'a*', bogus: 1}\n"
    )
    config, problems = parse_text(text, "c.yaml")
    assert config is None
    assert any(
        p.startswith("c.yaml:3:") and "no lint rule matches 'no-such-rule'" in p for p in problems
    )
    assert any(p.startswith("c.yaml:4:") and "unknown key 'bogus'" in p for p in problems)
    ok, problems = parse_text("lint: {ignore: [kafka-replication]}\n", "c.yaml")
    assert problems == [] and ok is not None
    assert ok.lint.ignore[0].rule == "kafka-replication" and ok.lint.ignore[0].queue == "*"


def test_every_rule_is_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "lint.md").read_text()
    for rule in RULES:
        assert f"`{rule.id}`" in doc, rule.id
        assert rule.source in doc, rule.id
        assert rule.fix


HOSTILE = "evil\x1b[31m\u202equeue"


def sample_report() -> LintReport:
    topology = rabbit(q(HOSTILE), q("qq", kind="quorum"))
    findings, _ = lint_topology(topology, EVERYTHING, LintConfig())
    return LintReport(
        findings=sort_findings(findings),
        brokers=["r"],
        queues=2,
        errors=["broker 'x' could not be read: boom"],
    )


def test_text_is_grouped_and_escaped() -> None:
    text = render(sample_report(), "text", "warning")
    assert "\x1b" not in text and "\u202e" not in text
    assert "evil\\x1b[31m\\u202equeue" in text
    assert text.splitlines()[0] == "r:"
    assert text.splitlines()[-1].startswith("status: failing (2 finding(s) at or above warning")


def test_json_is_strict_and_complete() -> None:
    data = json.loads(render(sample_report(), "json", "critical"))
    assert data["status"] == "failing"
    assert {f["rule"] for f in data["findings"]} == {"rabbitmq-no-dlx", "rabbitmq-quorum-no-dlx"}
    assert data["findings"][0].keys() == {"rule", "severity", "broker", "queue", "message", "fix"}
    assert data["errors"] == ["broker 'x' could not be read: boom"]
    assert HOSTILE in {f["queue"] for f in data["findings"]}  # escaped by JSON, not altered


def test_junit_counts_failures_at_fail_on() -> None:
    root = ET.fromstring(render(sample_report(), "junit", "critical"))
    assert root.get("tests") == "3" and root.get("failures") == "1" and root.get("errors") == "1"
    failures = root.findall(".//failure")
    assert [f.get("type") for f in failures] == ["critical"]


def test_github_annotations() -> None:
    lines = render(sample_report(), "github", "warning").splitlines()
    assert lines[0].startswith("::error title=mqtop lint rabbitmq-quorum-no-dlx (critical)::")
    assert lines[1].startswith("::warning title=mqtop lint rabbitmq-no-dlx (warning)::")
    assert "\x1b" not in lines[1]
    assert lines[2].startswith("::error title=mqtop lint broker unreadable::")
    notices = render(sample_report(), "github", "critical").splitlines()
    assert notices[1].startswith("::notice ")


def test_sarif_structure() -> None:
    data = json.loads(render(sample_report(), "sarif", "warning"))
    assert data["version"] == "2.1.0" and len(data["runs"]) == 1
    run = data["runs"][0]
    ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert ids == [r.id for r in RULES] and len(set(ids)) == len(ids)
    for result in run["results"]:
        rule = run["tool"]["driver"]["rules"][result["ruleIndex"]]
        assert rule["id"] == result["ruleId"]
        assert (
            result["level"]
            == {"critical": "error", "warning": "warning"}[BY_ID[result["ruleId"]].severity]
        )
        assert result["message"]["text"]
        logical = result["locations"][0]["logicalLocations"][0]
        assert logical["fullyQualifiedName"].startswith("r/")
    assert run["invocations"][0]["executionSuccessful"] is False


def test_default_exchange_dlq_outside_include_is_routed() -> None:
    topology = Topology(
        "r",
        "rabbitmq",
        (q("orders", dead_letter=DeadLetter("", "orders.dlq")),),
        all_queues=frozenset({"orders", "orders.dlq"}),
    )
    assert rules_of(topology) == set()
    vhosted = Topology(
        "r",
        "rabbitmq",
        (QueueTopology("v/a", "classic", "a", "v", consumers=1, dead_letter=DeadLetter("", "d")),),
        all_queues=frozenset({"v/a", "v/d"}),
    )
    assert rules_of(vhosted) == set()


async def test_serve_exporter_keeps_an_unreadable_brokers_last_findings(monkeypatch) -> None:
    from prometheus_client.core import Metric

    from collectors.rabbitmq.collector import RabbitMQOptions
    from mqtop.lint import exporter
    from mqtop.lint.model import Finding

    a = RabbitMQOptions(name="a", management_url="http://127.0.0.1:1")
    b = RabbitMQOptions(name="b", management_url="http://127.0.0.1:1")
    first = Finding("rabbitmq-no-dlx", "warning", "a", "qa", "m", "f")
    second = Finding("rabbitmq-no-dlx", "warning", "b", "qb", "m", "f")
    answers = [
        LintReport(findings=[first, second], brokers=["a", "b"]),
        LintReport(findings=[], brokers=["a"], errors=["broker 'b' could not be read: x"]),
    ]

    async def fake_run_lint(brokers, rules, config):  # type: ignore[no-untyped-def]
        assert [x.name for x in brokers] == ["a", "b"]
        return answers.pop(0)

    monkeypatch.setattr(exporter, "run_lint", fake_run_lint)
    lint = exporter.LintExporter([a, b], EVERYTHING, LintConfig())
    await lint.run_once()
    assert lint.findings() == [first, second]
    await lint.run_once()  # a is clean now; b could not be read: its findings stay
    assert lint.findings() == [second]
    (family,) = list(lint.collect())
    assert isinstance(family, Metric) and family.name == "mqtop_lint_findings"
    assert [(s.labels, s.value) for s in family.samples] == [
        ({"rule": "rabbitmq-no-dlx", "severity": "warning", "broker": "b", "queue": "qb"}, 1.0)
    ]


def test_kafka_topic_decoding_unknown_groups_are_not_none() -> None:
    from collectors.kafka.topology import decode_topic

    configs = {"retention.ms": "-1", "retention.bytes": "-1", "min.insync.replicas": "1"}
    described = {"partitions": [{"replicas": [1, 2]}, {"replicas": [1]}]}
    unknown = decode_topic("t.DLT", described, configs, None)
    assert unknown.unbounded_retention and unknown.replication_factor == 1
    assert rules_of(Topology("k", "kafka", (unknown,), cluster_size=1)) == set()
    none = decode_topic("t.DLT", described, configs, ())
    assert rules_of(Topology("k", "kafka", (none,), cluster_size=1)) == {
        ("kafka-dlt-unbounded", "t.DLT")
    }
    compacted = decode_topic("t.DLT", None, {**configs, "cleanup.policy": "compact"}, ())
    assert not compacted.unbounded_retention
