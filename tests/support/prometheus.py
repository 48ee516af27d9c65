"""Private Prometheus and Alertmanager processes on free loopback ports, and ``promtool``.

Debian's ``prometheus`` (2.42, ships ``promtool``) and ``prometheus-alertmanager`` (0.25) run
as plain processes: ``prometheus --config.file F --storage.tsdb.path D --web.listen-address
127.0.0.1:PORT``. Missing binaries raise ``harness.BrokerUnavailable``, so the fixtures' skip-or-
fail rule (tests/conftest.py ``_obtain``) applies: in CI they fail, never skip.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests import harness

INSTALL = "apt-get install --no-install-recommends prometheus prometheus-alertmanager"


def binary(name: str, *alternatives: str) -> str:
    """Path of an installed binary (or BrokerUnavailable saying how to install it)."""
    for candidate in (name, *alternatives):
        found = shutil.which(candidate)
        if found:
            return found
    raise harness.BrokerUnavailable(f"{name} is not installed ({INSTALL})")


def promtool() -> str:
    """Path of promtool."""
    return binary("promtool")


def check_rules(path: Path) -> subprocess.CompletedProcess[str]:
    """``promtool check rules PATH``."""
    return subprocess.run(
        [promtool(), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def unit_test_rules(path: Path) -> subprocess.CompletedProcess[str]:
    """``promtool test rules PATH`` (a unit-test file naming the rule files)."""
    return subprocess.run(
        [promtool(), "test", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=path.parent,
    )


def _get(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


@dataclass
class Prometheus:
    """A private Prometheus server; stopped (and its data removed) by ``stop``."""

    port: int
    workdir: Path
    managed: harness.Managed
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>``; the ``data`` of a success answer."""
        query = urllib.parse.urlencode(params)
        doc = _get(f"{self.url}/api/v1/{path}" + (f"?{query}" if query else ""))
        assert doc.get("status") == "success", doc
        return doc["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query: the result vector."""
        return list(self.api("query", query=expr)["result"])

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (pending and firing)."""
        return list(self.api("alerts")["alerts"])

    def targets_up(self) -> dict[str, str]:
        """Health of every active target by scrape URL."""
        return {t["scrapeUrl"]: t["health"] for t in self.api("targets")["activeTargets"]}

    def stop(self) -> None:
        self.managed.stop()


def start_prometheus(
    scrape: list[dict[str, Any]],
    rule_files: list[Path] | None = None,
    alertmanagers: list[str] | None = None,
    interval: str = "1s",
    web_config: dict[str, Any] | None = None,
    timeout: float = 60.0,
    backfill: Path | None = None,
) -> Prometheus:
    """Start Prometheus with these scrape configs, rule files and Alertmanager addresses
    (and ``backfill``: an OpenMetrics file of history, turned into blocks by promtool)."""
    exe = binary("prometheus")
    workdir = Path(tempfile.mkdtemp(prefix="mqtop-prometheus-"))
    if backfill is not None:
        data = workdir / "data"
        subprocess.run(
            [promtool(), "tsdb", "create-blocks-from", "openmetrics", str(backfill), str(data)],
            check=True,
            capture_output=True,
            timeout=600,
        )
    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": scrape,
    }
    if rule_files:
        config["rule_files"] = [str(p) for p in rule_files]
    if alertmanagers:
        config["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]
        }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    port = harness.free_port()
    cmd = [
        exe,
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    scheme = "http"
    if web_config is not None:
        (workdir / "web.yml").write_text(yaml.safe_dump(web_config))
        cmd.append(f"--web.config.file={workdir / 'web.yml'}")
        if "tls_server_config" in web_config:
            scheme = "https"
    proc, log = harness._spawn(cmd, workdir, log_name="prometheus.log")
    managed = harness.Managed(proc, workdir)
    ready = f"{scheme}://127.0.0.1:{port}/-/ready"

    def is_ready() -> bool:
        if web_config is not None:
            return harness.port_open("127.0.0.1", port)
        return harness.http_ok(ready)

    try:
        harness.wait_for(is_ready, timeout, "prometheus", proc, log)
    except harness.BrokerUnavailable:
        managed.stop()
        raise
    return Prometheus(port, workdir, managed)


@dataclass
class Alertmanager:
    """A private Alertmanager (no clustering)."""

    port: int
    workdir: Path
    managed: harness.Managed

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert Alertmanager holds (``/api/v2/alerts``)."""
        return list(_get(f"{self.url}/api/v2/alerts"))

    def stop(self) -> None:
        self.managed.stop()


def start_alertmanager(
    webhook_url: str, group_wait: str = "0s", timeout: float = 60.0
) -> Alertmanager:
    """Start Alertmanager routing every alert to ``webhook_url`` (one group per alert)."""
    exe = binary("prometheus-alertmanager", "alertmanager")
    workdir = Path(tempfile.mkdtemp(prefix="mqtop-alertmanager-"))
    config = {
        "route": {
            "receiver": "hook",
            "group_by": ["..."],  # every label set is its own group: one notification each
            "group_wait": group_wait,
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {"name": "hook", "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}
        ],
    }
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    port = harness.free_port()
    cmd = [
        exe,
        f"--config.file={workdir / 'alertmanager.yml'}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # no gossip port: a private, single instance
    ]
    proc, log = harness._spawn(cmd, workdir, log_name="alertmanager.log")
    managed = harness.Managed(proc, workdir)
    try:
        harness.wait_for(
            lambda: harness.http_ok(f"http://127.0.0.1:{port}/-/ready"),
            timeout,
            "alertmanager",
            proc,
            log,
        )
    except harness.BrokerUnavailable:
        managed.stop()
        raise
    return Alertmanager(port, workdir, managed)


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.25) -> Any:
    """Poll ``predicate()`` until it returns something truthy; AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (OSError, urllib.error.URLError, AssertionError, KeyError):
            last = None
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
