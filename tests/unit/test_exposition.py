"""Exporter settings and the pure parts of the exposition (no broker, no server)."""

from __future__ import annotations

import gzip

import pytest

from alerts.model import Alert, AlertState
from alerts.notifiers import alertmanager_alert
from mqtop.config import parse_text
from mqtop.exposition import Exposition, accepts_gzip, escape_value, exposition_text
from mqtop.kernel.model import BrokerStatus, SeriesKey, SeriesView


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, False),
        ("", False),
        ("gzip", True),
        ("deflate, gzip;q=1.0, *;q=0.5", True),
        ("gzip;q=0", False),
        ("identity", False),
        ("*", True),
        ("br;q=1, gzip;q=0.001", True),
    ],
)
def test_accepts_gzip(header, expected):
    assert accepts_gzip(header) is expected


def test_escape_value():
    assert escape_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert escape_value("plain") == "plain"


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ("{broker: x}", "used by mqtop or Prometheus itself"),
        ("{job: x}", "used by mqtop or Prometheus itself"),
        ('{"__x": y}', "reserved"),
        ('{"a-b": y}', "not a Prometheus label name"),
        ('{"9a": y}', "not a Prometheus label name"),
    ],
)
def test_bad_target_labels_are_config_errors(labels, message):
    config, problems = parse_text(f"interval: 5s\nlabels: {labels}\n", "c.yaml")
    assert config is None
    assert len(problems) == 1 and problems[0].startswith("c.yaml:2:") and message in problems[0]


def test_exporter_settings_are_checked():
    config, problems = parse_text("exporter: {metrics: [queue_length, nope], bogus: 1}\n", "c.yaml")
    assert config is None
    assert any("unknown metric(s) ['nope']" in p for p in problems)
    assert any("unknown key 'bogus'" in p for p in problems)
    config, problems = parse_text("labels: {cluster: eu-1}\nexporter: {partitions: true}\n")
    assert config is not None and config.labels == {"cluster": "eu-1"}
    assert config.exporter.partitions and config.to_display()["labels"] == {"cluster": "eu-1"}


def _view(queue: str, value: float | None, stale: bool = False) -> SeriesView:
    return SeriesView(
        key=SeriesKey("b", queue, None),
        kind="list",
        dlq=None,
        metrics={"queue_length": value},
        info={},
        updated=1.0,
        stale=stale,
    )


def test_null_and_stale_values_are_omitted_never_zero():
    text = exposition_text(
        [BrokerStatus(name="b", type="redis", address="x", up=None)],
        [_view("known", 0.0), _view("unknown", None), _view("gone", 5.0, stale=True)],
    )
    lines = [line for line in text.splitlines() if line.startswith("mqtop_queue_length{")]
    assert lines == ['mqtop_queue_length{broker="b",queue="known",group=""} 0.0']
    # a broker not polled yet has no mqtop_up sample (BrokerDown is `mqtop_up == 0`)
    assert "\nmqtop_up{" not in text and "# TYPE mqtop_up gauge" in text


def test_rendering_is_cached_per_generation_and_gzip_is_one_stream():
    exposition = Exposition({"cluster": "x"})
    calls = []

    def views():
        calls.append(1)
        return [_view("q", 1.0)]

    first = exposition.render([], views, 1)
    exposition.render([], views, 1)
    assert len(calls) == 1
    packed = exposition.render([], views, 1, compress=True)
    assert (
        gzip.decompress(packed).split(b"# HELP mqtop_scrape")[0]
        == first.split(b"# HELP mqtop_scrape")[0]
    )
    exposition.render([], views, 2)
    assert len(calls) == 2


def test_alertmanager_alerts_carry_the_target_labels_under_the_rules():
    alert = Alert(
        rule="QueueBacklog", severity="warning", state=AlertState.FIRING, broker="r",
        queue="q", group=None, value=5.0, threshold=1.0, summary="s",
        labels={"team": "t", "cluster": "from-rule"}, fired_at=1.0,
    )  # fmt: skip
    doc = alertmanager_alert(alert, False, 2.0, 3.0, {"cluster": "eu-1", "env": "prod"})
    assert doc["labels"] == {
        "cluster": "from-rule", "env": "prod", "team": "t", "alertname": "QueueBacklog",
        "severity": "warning", "source": "mqtop", "broker": "r", "queue": "q",
    }  # fmt: skip


def test_cached_families_are_rendered_once_per_state_and_compressed_with_the_rest():
    from prometheus_client.core import GaugeMetricFamily

    from mqtop.exposition import CachedFamilies

    exposition = Exposition({"cluster": "x"})
    calls: list[str] = []

    def families(state: tuple[str, ...]) -> CachedFamilies:
        def collect():
            calls.append("collect")
            family = GaugeMetricFamily("mqtop_alert", "alerts", labels=["rule"])
            for rule in state:
                family.add_metric([rule], 1.0)
            yield family

        return CachedFamilies("alerts", state, collect)

    first_state = ("A", "B")
    views = lambda: [_view("q", 1.0)]  # noqa: E731
    plain = exposition.render([], views, 1, collectors=[families(first_state)])
    packed = exposition.render([], views, 1, collectors=[families(first_state)], compress=True)
    assert calls == ["collect"]  # the same state: rendered once, gzip made from the same text
    text = gzip.decompress(packed).decode()
    assert 'mqtop_alert{rule="A",cluster="x"} 1.0\n' in text
    assert text.split("# HELP mqtop_scrape")[0] == plain.decode().split("# HELP mqtop_scrape")[0]
    assert exposition.last_series == 2 + 2 + 4  # value and info of q, two alerts, self part
    changed = exposition.render([], views, 1, collectors=[families(("C",))])
    assert calls == ["collect", "collect"]
    assert 'rule="C"' in changed.decode() and 'rule="A"' not in changed.decode()
