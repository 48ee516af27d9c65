"""The Prometheus source's pure parts: naming remote brokers, hostile answers, history rows,
the backfill plan (no server)."""

from __future__ import annotations

import pytest

from alerts.config import AlertRule
from mqtop.kernel.model import SeriesKey
from mqtop.sources.config import PrometheusSource
from mqtop.sources.prometheus import Backfill, SourceError, SourceReader, backfill_plan


def reader(local=(), labels=None, **options) -> SourceReader:
    config = PrometheusSource.model_validate(
        {"type": "prometheus", "url": "http://p:9090", **options}
    )
    return SourceReader(config, local, labels or {}, interval=5.0)


def entry(name: str, value: object, **labels: str) -> dict:
    return {"metric": {"__name__": f"mqtop_{name}", **labels}, "value": [1.0, value]}


def test_remote_brokers_are_named_by_cluster_and_local_ones_are_skipped():
    r = reader(local=["cache"], labels={"cluster": "eu-1"})
    parsed = r._parse_instant(
        {
            "resultType": "vector",
            "result": [
                entry("queue_length", "5", broker="cache", queue="q", cluster="eu-1"),
                entry("queue_length", "7", broker="cache", queue="q", cluster="us-1", job="j"),
                entry("queue_info", "1", broker="cache", queue="q", cluster="us-1", kind="list",
                      dlq="q.dlq"),
                entry("broker_up", "1", broker="cache", cluster="us-1", type="redis"),
                entry("queue_length", "3", broker="cache", queue="q"),  # no cluster: "cache"
            ],
        }
    )  # fmt: skip
    assert parsed.local == 1
    assert set(parsed.remotes) == {"us-1/cache", "prometheus/cache"}
    snapshots = {s.broker: s for s in r._snapshots(parsed, 10.0)}
    us = snapshots["us-1/cache"]
    assert us.up and us.type == "redis"
    (sample,) = us.series
    assert sample.key == SeriesKey("us-1/cache", "q", None)
    assert (sample.kind, sample.dlq, sample.values["queue_length"]) == ("list", "q.dlq", 7.0)
    assert "read-only" in sample.info["read_only"]


def test_hostile_answers_are_skipped_not_fatal():
    r = reader()
    parsed = r._parse_instant(
        {
            "result": [
                "nonsense",
                {"metric": "x", "value": [1, "2"]},
                {"metric": {"__name__": "mqtop_queue_length", "broker": 5}, "value": [1, "2"]},
                entry("queue_length", "NaN", broker="b", queue="nan"),
                entry("queue_length", "+Inf", broker="b", queue="inf"),
                entry("queue_length", "x", broker="b", queue="text"),
                entry("queue_length", "4", broker="b"),  # no queue label
                entry("queue_length", "1e3", broker="b", queue="ok\x1b[31m", group="g"),
            ]
        }
    )
    assert parsed.skipped == 4
    values = {k.queue: v["queue_length"] for k, v in parsed.series["b"].items()}
    # a value that is not a finite number is null (unknown), never 0
    assert values == {"nan": None, "inf": None, "text": None, "ok\x1b[31m": 1000.0}
    with pytest.raises(SourceError):
        r._parse_instant({"resultType": "matrix"})


def test_a_remote_broker_that_is_down_or_gone():
    r = reader()
    first = r._parse_instant({"result": [entry("up", "0", broker="b")]})
    (down,) = r._snapshots(first, 1.0)
    assert down.up is False and "mqtop_up 0" in (down.error or "")
    (gone,) = r._snapshots(r._parse_instant({"result": []}), 2.0)
    assert gone.broker == "b" and gone.up is False and "no longer" in (gone.error or "")


def test_history_rows_merge_by_series_and_time():
    r = reader()
    rows: dict = {}
    data = {
        "result": [
            {"metric": {"__name__": "mqtop_queue_length", "broker": "b", "queue": "q"},
             "values": [[10, "1"], [20, "2"], ["bad"], [30, "NaN"]]},
            {"metric": {"__name__": "mqtop_consumers", "broker": "b", "queue": "q"},
             "values": [[20, "3"]]},
        ]
    }  # fmt: skip
    r._parse_history(data, rows)
    key = SeriesKey("b", "q", None)
    assert rows == {
        (key, 10.0): {"queue_length": 1.0},
        (key, 20.0): {"queue_length": 2.0, "consumers": 3.0},
        (key, 30.0): {"queue_length": None},
    }


def test_backfill_plan_and_selector():
    rules = [
        AlertRule.model_validate({"name": "a", "metric": "queue_length", "threshold": 1,
                                  "for": "10m"}),
        AlertRule.model_validate({"name": "b", "metric": "error_rate", "threshold": 1,
                                  "function": "avg", "window": "5m", "for": "1m"}),
        AlertRule.model_validate({"name": "c", "metric": "consumers", "threshold": 1}),
    ]  # fmt: skip
    # per metric, its own span (for + window + two intervals), not the longest of all rules
    assert backfill_plan(rules, 5.0) == (
        Backfill("error_rate", 370.0),
        Backfill("queue_length", 610.0),
    )
    assert backfill_plan(rules[2:], 5.0) == ()
    r = reader()
    assert r._backfill_query(Backfill("queue_length", 70.0)) == (
        '{__name__=~"mqtop_(?:queue_length)"}'
    )


def test_backfill_plan_turns_match_globs_into_label_matchers():
    rules = [
        AlertRule.model_validate({"name": "a", "metric": "dlq_length", "threshold": 0,
                                  "function": "increase", "window": "10m",
                                  "match": {"kind": "jobs", "queue": "orders.*"}}),
        AlertRule.model_validate({"name": "b", "metric": "queue_length", "threshold": 1,
                                  "for": "1m", "match": {"broker": "eu"}}),
        # matches every queue_length series over a longer span: b's narrower read is dropped
        AlertRule.model_validate({"name": "c", "metric": "queue_length", "threshold": 9,
                                  "for": "2m"}),
        # ... but not d's, which needs more history than c reads
        AlertRule.model_validate({"name": "d", "metric": "queue_length", "threshold": 9,
                                  "for": "5m", "match": {"queue": "x"}}),
    ]  # fmt: skip
    plan = backfill_plan(rules, 5.0)
    assert plan == (
        Backfill("dlq_length", 610.0, r'queue=~"(?s)orders\\..*"', 'kind="jobs"'),
        Backfill("queue_length", 310.0, 'queue="x"'),
        Backfill("queue_length", 130.0),
    )
    r = reader(selector='{env="prod"}')
    assert r._backfill_query(plan[0]) == (
        r'{__name__=~"mqtop_(?:dlq_length)", env="prod", queue=~"(?s)orders\\..*"}'
        ' and ignoring(kind, dlq) {__name__=~"mqtop_(?:queue_info)", env="prod", kind="jobs"}'
    )


def test_selector():
    r = reader(selector='{cluster=~"eu-.*", env="prod"}')
    assert r.selector(["queue_length"], ['queue="a\\"b"']) == (
        '{__name__=~"mqtop_(?:queue_length)", cluster=~"eu-.*", env="prod", queue="a\\"b"}'
    )
