"""A Prometheus source, against a real Prometheus scraping two real ``mqtop serve`` (both over
Redis, clusters eu-1 and us-1, the same broker name): ``mqtop metrics`` and ``mqtop check`` read
the fleet from it, ``for:`` counts from Prometheus' history, a broker of the local config keeps
its identity (and actions), a source that is down or slow is a down broker within its deadline,
basic auth and TLS work against a real Prometheus, and no secret is printed."""

from __future__ import annotations

import json
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import harness
from tests.conftest import _obtain
from tests.fleet.conftest import BACKLOG, FOR, Fleet
from tests.harness import free_port
from tests.support import prometheus as prom

pytestmark = pytest.mark.broker


def series_of(doc: dict) -> dict[tuple[str, str], dict]:
    return {(s["broker"], s["queue"]): s for s in doc["series"]}


def test_metrics_reads_the_fleet(fleet: Fleet, run_cli):
    result = run_cli(
        "metrics", "--prometheus", fleet.prometheus.url, "--format", "json", timeout=60
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    series = series_of(doc)
    eu = series[("eu-1/cache", fleet.eu)]
    us = series[("us-1/cache", fleet.us)]
    assert eu["metrics"]["queue_length"] == BACKLOG and eu["kind"] == "list"
    assert us["metrics"]["queue_length"] == 7
    # a metric Redis lists do not expose stays null through Prometheus, never 0
    assert eu["metrics"]["in_flight"] is None
    brokers = {b["name"]: b for b in doc["brokers"]}
    assert brokers["prometheus"] == {"name": "prometheus", "type": "prometheus", "up": True,
                                     "error": None}  # fmt: skip
    assert brokers["eu-1/cache"]["type"] == "redis" and brokers["eu-1/cache"]["up"] is True

    # the Prometheus text format carries them too
    text = run_cli("metrics", "--prometheus", fleet.prometheus.url, "--format", "prometheus")
    assert f'broker="us-1/cache",queue="{fleet.us}"' in text.stdout


def test_a_local_broker_keeps_its_name_and_the_rest_is_read_only(
    fleet: Fleet, run_cli, write_config
):
    config = write_config(
        f"""
        interval: 500ms
        labels: {{cluster: eu-1}}
        brokers:
          - {{name: cache, type: redis, url: "{fleet.redis.url}", lists: ["{fleet.eu}"]}}
        sources:
          - {{type: prometheus, name: fleet, url: "{fleet.prometheus.url}",
              selector: '{{job="mqtop"}}'}}
        """
    )
    result = run_cli("metrics", "--config", str(config), "--format", "json", timeout=60)
    assert result.returncode == 0, result.stderr
    series = series_of(json.loads(result.stdout))
    mine = {k for k in series if fleet.prefix in k[1]}
    # eu-1's `cache` is the local broker (polled directly, not duplicated); us-1's is remote
    assert mine == {("cache", fleet.eu), ("us-1/cache", fleet.us)}
    # actions need a local broker: the remote one says why it cannot
    peek = run_cli("dlq", "peek", "--config", str(config), "us-1/cache", fleet.us)
    assert peek.returncode == 2
    assert "read-only" in peek.stderr and "Traceback" not in peek.stderr


def test_selector_limits_what_is_read(fleet: Fleet, run_cli, write_config):
    config = write_config(
        f"""
        sources:
          - {{type: prometheus, url: "{fleet.prometheus.url}", selector: '{{cluster=~"us-.*"}}'}}
        """
    )
    result = run_cli("metrics", "--config", str(config), "--format", "json", timeout=60)
    assert result.returncode == 0, result.stderr
    brokers = {b for b, _ in series_of(json.loads(result.stdout))}
    assert brokers == {"us-1/cache"}


def test_check_counts_for_from_prometheus_history(fleet: Fleet, run_cli, write_config):
    # wait until Prometheus holds FOR seconds (and a bit) of the backlog
    time.sleep(max(0.0, fleet.backlog_since + FOR + 4 - time.time()))
    config = write_config(
        f"""
        interval: 1s
        alerts:
          - {{name: Backlog, metric: queue_length, op: ">", threshold: 100, for: {FOR:g}s,
              match: {{queue: "{fleet.prefix}*"}}}}
          - {{name: LongBacklog, metric: queue_length, op: ">", threshold: 100, for: 1h,
              match: {{queue: "{fleet.prefix}*"}}}}
        """
    )
    started = time.monotonic()
    result = run_cli(
        "check", "--config", str(config), "--prometheus", fleet.prometheus.url,
        "--format", "json", timeout=60,
    )  # fmt: skip
    took = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    doc = json.loads(result.stdout)
    states = {(a["rule"], a["broker"], a["queue"]): a["state"] for a in doc["alerts"]}
    # two polls one second apart cannot make 12 s: the history read from Prometheus did
    assert states[("Backlog", "eu-1/cache", fleet.eu)] == "firing"
    assert states[("LongBacklog", "eu-1/cache", fleet.eu)] == "pending"
    assert not any(q == fleet.us for _, _, q in states)
    assert took < 30


def test_a_source_that_is_down_or_slow_is_a_down_broker(run_cli, write_config):
    closed = free_port()
    started = time.monotonic()
    result = run_cli("metrics", "--prometheus", f"http://127.0.0.1:{closed}", "--format", "json")
    assert result.returncode == 3
    assert json.loads(result.stdout)["brokers"][0]["up"] is False
    assert time.monotonic() - started < 20

    # a server that accepts and never answers: the deadline holds
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(silent.accept()[0])
            except OSError:
                pass

    threading.Thread(target=accept, daemon=True).start()
    try:
        port = silent.getsockname()[1]
        config = write_config(
            f"""
            interval: 500ms
            sources: [{{type: prometheus, url: "http://127.0.0.1:{port}", timeout: 1s}}]
            alerts: []
            """
        )
        started = time.monotonic()
        result = run_cli("check", "--config", str(config), "--format", "json", timeout=60)
        took = time.monotonic() - started
        assert result.returncode == 3, result.stdout + result.stderr
        doc = json.loads(result.stdout)
        assert any("prometheus" in e and "timed out" in e for e in doc["errors"]), doc
        assert took < 15
    finally:
        stop.set()
        for conn in held:
            conn.close()
        silent.close()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory) -> Iterator[tuple[prom.Prometheus, Path]]:
    """A Prometheus behind TLS (a test CA) and basic auth."""
    tmp = tmp_path_factory.mktemp("tls")
    harness.make_certificates(tmp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # bcrypt through libxcrypt: Prometheus' web config wants a bcrypt hash
    hashed = crypt.crypt("Guarded-Pass-4711", crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 10))
    server = _obtain(
        "Prometheus",
        lambda: prom.start_prometheus(
            scrape=[],
            web_config={
                "tls_server_config": {
                    "cert_file": str(tmp / "server.pem"),
                    "key_file": str(tmp / "server.key"),
                },
                "basic_auth_users": {"fleet": hashed},
            },
        ),
    )
    assert isinstance(server, prom.Prometheus)
    yield server, tmp
    server.stop()


def test_basic_auth_and_tls_against_a_real_prometheus(guarded, run_cli, write_config):
    server, certs = guarded
    url = f"https://127.0.0.1:{server.port}"

    def check(source: str) -> tuple[int, dict, str]:
        config = write_config(f"sources:\n  - {source}\nalerts: []\n")
        result = run_cli("metrics", "--config", str(config), "--format", "json", timeout=60)
        shown = run_cli("config", "show", "--config", str(config))
        return result.returncode, json.loads(result.stdout), result.stderr + shown.stdout

    ok = (
        f'{{type: prometheus, url: "{url}", ca_file: "{certs / "ca.pem"}", '
        '"basic_auth": {username: fleet, password: Guarded-Pass-4711}}'
    )
    code, doc, text = check(ok)
    assert code == 0 and doc["brokers"][0]["up"] is True, doc
    assert "Guarded-Pass-4711" not in text

    code, doc, text = check(ok.replace("Guarded-Pass-4711", "Wrong-Pass-0815"))
    assert code == 3 and "401" in doc["brokers"][0]["error"], doc
    assert "Wrong-Pass-0815" not in json.dumps(doc) + text

    # the server's certificate is not trusted without the test CA: verification is on
    code, doc, _ = check(ok.replace(f', ca_file: "{certs / "ca.pem"}"', ""))
    assert code == 3 and "CERTIFICATE_VERIFY_FAILED" in doc["brokers"][0]["error"].upper()

    # credentials in the URL are masked too
    code, doc, text = check(
        f'{{type: prometheus, url: "https://fleet:Guarded-Pass-4711@127.0.0.1:{server.port}", '
        f'ca_file: "{certs / "ca.pem"}"}}'
    )
    assert code == 0, doc
    assert "Guarded-Pass-4711" not in json.dumps(doc) + text


async def test_a_charts_metrics_are_read_in_one_range_query(fleet: Fleet):
    """The detail view asks for each charted metric at once: one query_range answers them
    all, with the points each one-metric query gives (and a metric without data is empty)."""
    import asyncio

    from mqtop.kernel.model import SeriesKey
    from mqtop.sources.config import PrometheusSource
    from mqtop.sources.prometheus import SourceReader

    reader = SourceReader(
        PrometheusSource(type="prometheus", name="fleet", url=fleet.prometheus.url)
    )
    try:
        result = await reader.poll(time.time())
        assert any(s.broker == "us-1/cache" for s in result.snapshots)
        key = SeriesKey("us-1/cache", fleet.us)
        end = time.time()
        metrics = ["queue_length", "consumers", "consumer_lag_seconds", "in_flight"]
        together = await asyncio.gather(
            *(reader.history(key, m, end - 600, end, 120) for m in metrics)
        )
        assert reader.history_queries == 1
        alone = [await reader.history(key, m, end - 600, end, 120) for m in metrics]
        assert reader.history_queries == 1 + len(metrics)
        assert together == alone
        assert together[0] and {v for _, v in together[0]} == {7.0}
        assert [] in together  # Redis lists have no consumer lag: no points, not zeros
    finally:
        await reader.aclose()


async def test_the_first_polls_history_reads_only_the_series_the_rules_match(fleet: Fleet):
    """The history read for `for:` follows the rules' match: a `kind` match (a join with
    mqtop_queue_info in Prometheus) and a queue glob select the one queue, a kind no queue has
    reads nothing."""
    import asyncio

    from alerts.config import AlertRule
    from mqtop.sources.config import PrometheusSource
    from mqtop.sources.prometheus import SourceReader, backfill_plan

    def plan(match: dict[str, str]):
        rule = {"name": "a", "metric": "queue_length", "threshold": 1, "for": "30s"}
        return backfill_plan([AlertRule.model_validate({**rule, "match": match})], 5.0)

    reader = SourceReader(
        PrometheusSource(type="prometheus", name="fleet", url=fleet.prometheus.url)
    )
    # Prometheus holds some scrapes of the fleet (a fresh one has none to read back)
    await asyncio.sleep(max(0.0, fleet.backlog_since + 20 - time.time()))
    try:
        first = await reader.poll(time.time())
        kinds = {s.key.queue: s.kind for snap in first.snapshots for s in snap.series}
        kind = kinds[fleet.eu]
        reader.backfilled = False
        eu = await reader.poll(time.time(), plan({"kind": kind, "queue": f"{fleet.prefix}:e*"}))
        assert eu.history, "no history read"
        assert {key.queue for key, *_ in eu.history} == {fleet.eu}
        assert {row["queue_length"] for *_, row in eu.history} == {float(BACKLOG)}
        reader.backfilled = False
        nothing = await reader.poll(time.time(), plan({"kind": f"{kind}-no-such-kind"}))
        assert nothing.history == ()
    finally:
        await reader.aclose()
