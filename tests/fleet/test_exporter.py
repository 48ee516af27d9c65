"""``mqtop serve`` as an exporter: the real daemon's HTTP server at 50,000 series, target labels
on every series, HELP and TYPE for every family, gzip, cardinality controls, hostile names
(parsed back with prometheus_client's parser)."""

from __future__ import annotations

import argparse
import asyncio
import gzip
import http.client
import time
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mqtop.commands.serve import Daemon
from mqtop.config import Config
from mqtop.exposition import ExporterConfig
from mqtop.kernel.model import BrokerSnapshot, BrokerStatus, SeriesKey, SeriesSample
from mqtop.kernel.store import TimeSeriesStore

T0 = 1_800_000_000.0
METRICS = ("queue_length", "in_flight", "consumers", "latency_seconds", "dlq_length",
           "consumer_lag_messages", "consumer_lag_seconds", "publish_rate", "processing_rate",
           "error_rate")  # fmt: skip


def ingest(store: TimeSeriesStore, broker: str, samples: list[SeriesSample], t: float) -> None:
    store.ingest(
        BrokerSnapshot(broker=broker, type="kafka", time=t, up=True, duration=0.01,
                       series=tuple(samples)),
        interval=5.0,
    )  # fmt: skip


@pytest.fixture
def daemon(tmp_path, monkeypatch) -> Iterator[Daemon]:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    made: list[Daemon] = []

    def make(config: Config) -> Daemon:
        async def build() -> Daemon:
            return Daemon(argparse.Namespace(config=None, verbose=0), config)

        d = asyncio.run(build())
        d.listen("127.0.0.1", 0)
        made.append(d)
        return d

    yield make  # type: ignore[misc]
    for d in made:
        if d._http is not None:
            d._http.shutdown()
            d._http.server_close()


def get(d: Daemon, gzip_ok: bool = False) -> tuple[http.client.HTTPResponse, bytes, float]:
    assert d._http is not None
    port = d._http.server_address[1]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    started = time.perf_counter()
    conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"} if gzip_ok else {})
    response = conn.getresponse()
    body = response.read()
    took = time.perf_counter() - started
    conn.close()
    assert response.status == 200
    return response, body, took


def families(text: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_fifty_thousand_series_well_under_a_second(daemon):
    d = daemon(Config(labels={"cluster": "eu-1", "env": "prod"}))
    for broker in ("a", "b"):
        samples = [
            SeriesSample(
                key=SeriesKey(broker, f"q{i:05d}", None),
                kind="queue",
                values={m: float(i) for m in METRICS},
            )
            for i in range(2_500)
        ]
        ingest(d.store, broker, samples, T0)
        d.engine.statuses[broker] = BrokerStatus(
            name=broker, type="redis", address="x", up=broker == "a", last_duration=0.25
        )
    response, body, took = get(d)
    text = body.decode()
    parsed = families(text)
    values = sum(len(parsed[f"mqtop_{m}"].samples) for m in METRICS)  # type: ignore[attr-defined]
    assert values == 50_000
    assert took < 1.0, f"/metrics at 50,000 series took {took:.3f}s"
    assert response.getheader("Content-Type").startswith("text/plain; version=0.0.4")
    # every family has HELP and TYPE, every sample the target labels
    for family in parsed.values():
        name = family.name + ("_total" if family.type == "counter" else "")  # type: ignore[attr-defined]
        assert f"# HELP {name} " in text and f"# TYPE {name} " in text, name
        for sample in family.samples:  # type: ignore[attr-defined]
            assert sample.labels.get("cluster") == "eu-1", sample
            assert sample.labels.get("env") == "prod", sample
    up = {s.labels["broker"]: s.value for s in parsed["mqtop_up"].samples}  # type: ignore[attr-defined]
    assert up == {"a": 1.0, "b": 0.0}
    poll = parsed["mqtop_broker_poll_duration_seconds"].samples  # type: ignore[attr-defined]
    assert {s.value for s in poll} == {0.25}
    info = parsed["mqtop_queue_info"].samples  # type: ignore[attr-defined]
    assert len(info) == 5_000 and info[0].labels["kind"] == "queue"
    # the second scrape reports the first one's duration and size
    _, body2, warm = get(d)
    again = families(body2.decode())
    scrape = again["mqtop_scrape_duration_seconds"].samples[0].value  # type: ignore[attr-defined]
    assert 0 < scrape < 1.0
    samples = again["mqtop_scrape_samples"].samples[0].value  # type: ignore[attr-defined]
    assert samples >= 55_000
    assert warm < 1.0

    # gzip when asked: the same document, much smaller
    response, packed, took = get(d, gzip_ok=True)
    assert response.getheader("Content-Encoding") == "gzip"
    assert took < 1.0
    unpacked = gzip.decompress(packed).decode()
    assert len(packed) * 5 < len(unpacked)
    assert families(unpacked).keys() == parsed.keys()
    assert len(families(unpacked)["mqtop_queue_length"].samples) == 5_000  # type: ignore[attr-defined]


def test_cardinality_controls_and_partitions(daemon):
    partitions = [
        {"partition": p, "end_offset": 100 + p, "committed": 90, "lag": 10 + p, "lag_seconds": None}
        for p in range(3)
    ]
    samples = [
        SeriesSample(SeriesKey("k", "orders", "g1"), "topic", {"queue_length": 33.0},
                     info={"partitions": partitions}),
        SeriesSample(SeriesKey("k", "amq.internal", None), "topic", {"queue_length": 1.0}),
        SeriesSample(SeriesKey("k", "billing", None), "topic", {"queue_length": 2.0,
                                                                "consumers": 4.0}),
    ]  # fmt: skip

    d = daemon(Config())
    ingest(d.store, "k", samples, T0)
    parsed = families(get(d)[1].decode())
    assert len(parsed["mqtop_queue_length"].samples) == 3  # type: ignore[attr-defined]
    assert "mqtop_partition_lag_messages" not in parsed  # off by default

    d2 = daemon(
        Config(
            exporter=ExporterConfig(
                exclude=["*/amq.*"], include=["k/*"], metrics=["queue_length"], partitions=True
            )
        )
    )
    ingest(d2.store, "k", samples, T0)
    parsed = families(get(d2)[1].decode())
    queues = {s.labels["queue"] for s in parsed["mqtop_queue_length"].samples}  # type: ignore[attr-defined]
    assert queues == {"orders", "billing"}
    assert "mqtop_consumers" not in parsed
    lag = parsed["mqtop_partition_lag_messages"].samples  # type: ignore[attr-defined]
    assert sorted((s.labels["partition"], s.value) for s in lag) == [
        ("0", 10.0), ("1", 11.0), ("2", 12.0)
    ]  # fmt: skip
    assert all(s.labels["group"] == "g1" for s in lag)
    assert not parsed["mqtop_partition_lag_seconds"].samples  # type: ignore[attr-defined]  # null: absent


def test_hostile_names_round_trip(daemon):
    names = ['a"b', "back\\slash", "new\nline", "{{ printf }}", "ünï €", "tab\tand\x01ctl"]
    d = daemon(Config(labels={"cluster": 'eu "1"\\'}))
    ingest(
        d.store,
        "k",
        [SeriesSample(SeriesKey("k", n, n), "queue", {"queue_length": 1.0}) for n in names],
        T0,
    )
    parsed = families(get(d)[1].decode())
    samples = parsed["mqtop_queue_length"].samples  # type: ignore[attr-defined]
    assert sorted(s.labels["queue"] for s in samples) == sorted(names)
    assert all(s.labels["group"] == s.labels["queue"] for s in samples)
    assert {s.labels["cluster"] for s in samples} == {'eu "1"\\'}
