"""Config: every problem reported with file:line:column, interpolation, durations, masking."""

from __future__ import annotations

import pytest

from mqtop.config import parse_text
from mqtop.kernel.durations import format_duration, parse_duration
from mqtop.kernel.secrets import REDACTOR, mask_url


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("5s", 5),
        ("1m", 60),
        ("1h", 3600),
        ("1m30s", 90),
        ("2d", 172800),
        (7, 7.0),
        ("1.5s", 1.5),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "5 seconds", "-1s", "1x", True, None, "s"])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_format_duration_round_trip():
    for seconds in (0.5, 5, 60, 90, 3600, 86400):
        assert parse_duration(format_duration(seconds)) == seconds


def test_valid_config_with_interpolation():
    config, problems = parse_text(
        """
interval: 2s
history: {retention: 1h}
brokers:
  - name: cache
    type: redis
    url: "redis://:${MQ_TEST_PW}@${MQ_TEST_HOST:-localhost}:6379/0"
    lists: ["jobs:*"]
alerts:
  - {name: Backlog, metric: queue_length, op: ">", threshold: 10, for: 30s}
""",
        "c.yaml",
        env={"MQ_TEST_PW": "s3cr3t-pw"},
    )
    assert problems == []
    assert config is not None
    assert config.interval == 2
    assert config.history.retention == 3600
    broker = config.broker("cache")
    assert broker.url.get_secret_value() == "redis://:s3cr3t-pw@localhost:6379/0"  # type: ignore[attr-defined]
    assert "s3cr3t-pw" not in repr(config)
    assert "s3cr3t-pw" not in str(config.to_display())
    assert config.alerts[0].for_ == 30
    assert not config.alerts_from_defaults


def test_defaults_when_no_alerts_section():
    config, problems = parse_text("brokers: []\n", "c.yaml", env={})
    assert problems == [] and config is not None
    assert config.alerts_from_defaults
    assert {r.name for r in config.alerts} == {
        "QueueBacklog",
        "HighErrorRate",
        "ConsumerLag",
        "DeadJobsGrowing",
        "DeadLettersArriving",
    }
    backlog = next(r for r in config.alerts if r.name == "QueueBacklog")
    assert (backlog.metric, backlog.op, backlog.threshold, backlog.for_) == (
        "queue_length",
        ">",
        1000,
        60,
    )


def test_every_problem_has_file_line_column():
    text = """interval: 5 seconds
histroy: {retention: 1h}
brokers:
  - name: cache
    type: redis
    url: "redis://:${NOPE_NOT_SET}@localhost:6379"
    listz: ["a"]
  - name: other
    type: nosuchbroker
alerts:
  - {name: A, metric: queue_lenght, threshold: 5}
"""
    config, problems = parse_text(text, "bad.yaml", env={})
    assert config is None
    assert len(problems) == 6, problems
    expected = [
        "bad.yaml:1:11: interval:",
        "bad.yaml:2:1: histroy: unknown key",
        "bad.yaml:6:10: brokers[0].url: environment variable ${NOPE_NOT_SET} is not set",
        "bad.yaml:7:5: brokers[0].listz: unknown key",
        "bad.yaml:9:11: brokers[1].type: unknown broker type 'nosuchbroker'",
        "bad.yaml:11:23: alerts[0].metric: unknown metric 'queue_lenght'",
    ]
    for line, prefix in zip(problems, expected, strict=True):
        assert line.startswith(prefix), (line, prefix)


def test_yaml_syntax_error_position():
    config, problems = parse_text("brokers:\n  - name: [unclosed\n", "x.yaml", env={})
    assert config is None
    assert len(problems) == 1
    assert problems[0].startswith("x.yaml:3:")


def test_duplicate_keys_and_broker_names():
    text = """interval: 1s
interval: 2s
brokers:
  - {name: a, type: redis}
  - {name: a, type: redis}
"""
    config, problems = parse_text(text, "d.yaml", env={})
    assert config is None
    assert any("d.yaml:2:1" in p and "duplicate key" in p for p in problems)
    assert any("d.yaml:5:" in p and "duplicate broker name" in p for p in problems)


def test_secrets_never_in_error_messages():
    text = """brokers:
  - {name: a, type: redis, url: "redis://user:TopSecret123@localhost:6379/0", scan_count: 1}
"""
    config, problems = parse_text(text, "s.yaml", env={})
    assert config is None
    assert problems
    assert all("TopSecret123" not in p for p in problems)


def test_mask_url_and_redactor():
    assert mask_url("amqp://guest:pw@host:5672/") == "amqp://guest:****@host:5672/"
    assert (
        mask_url("https://hooks.example/x?token=abc&x=1")
        == "https://hooks.example/x?token=****&x=1"
    )
    REDACTOR.register("canary-value-42")
    assert "canary-value-42" not in REDACTOR("error: auth failed for canary-value-42")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "- a\n- b\n",
        "just a string",
        "brokers: 5\n",
        "brokers:\n  - 5\n",
        "a: &x [*x]\n",
        "? [a, b]\n: 1\n",
        "\t- bad indent",
        "interval: !!python/object:os.system x\n",
    ],
)
def test_hostile_config_never_raises(text):
    config, problems = parse_text(text, "h.yaml", env={})
    assert config is not None or problems
    assert all(p.startswith("h.yaml") for p in problems)
