"""Every JSON document mqtop writes is strict JSON: a collector reporting Infinity (a plugin
installed through the entry-point group, as a third party would) gives ``null``, never the
bare ``Infinity`` / ``NaN`` tokens that strict parsers reject."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.support.receiver import Receiver
from tests.support.serve import Serve, alert_samples, scrape, wait_until

PLUGIN_MODULE = """
from typing import Literal
from collectors.base import BrokerOptions, Collected, CollectorPlugin
from mqtop.kernel.model import SeriesKey, SeriesSample

class HugeOptions(BrokerOptions):
    type: Literal["huge"] = "huge"

class HugeCollector:
    def __init__(self, options):
        self._options = options
        self.polls = 0
    @property
    def options(self):
        return self._options
    async def connect(self):
        pass
    async def collect(self):
        self.polls += 1
        key = SeriesKey(self._options.name, "overflow", None)
        values = {"queue_length": float("inf"), "consumers": float("-inf"),
                  "published_total": float("inf") if self.polls > 1 else 5.0}
        return Collected((SeriesSample(key=key, kind="queue", values=values),))
    async def close(self):
        pass
    def actions(self):
        return None

PLUGIN = CollectorPlugin(type="huge", options_model=HugeOptions, factory=HugeCollector)
"""


def strict(text: str):
    """Parse as a strict parser would: the non-standard constants are an error."""

    def refuse(token: str):
        raise AssertionError(f"non-standard JSON token {token} in {text[:300]!r}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "mqtop_huge_plugin.py").write_text(PLUGIN_MODULE)
    dist = site / "mqtop_huge_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mqtop-huge-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[mqtop.collectors]\nhuge = mqtop_huge_plugin:PLUGIN\n")
    out = {
        **os.environ,
        "PYTHONPATH": f"{site}{os.pathsep}{ROOT}",
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CONFIG_HOME": str(tmp_path / "config-home"),
    }
    out.pop("MQTOP_CONFIG", None)
    return out


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "huge.yaml"
    path.write_text(
        textwrap.dedent(
            """
            interval: 200ms
            brokers:
              - {name: big, type: huge}
            alerts:
              - {name: Backlog, metric: queue_length, op: ">", threshold: 1000}
            """
        )
        + extra
    )
    return path


def _mqtop(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mqtop", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_metrics_json_writes_null_for_non_finite_values(env, tmp_path):
    result = _mqtop(
        env, tmp_path, "metrics", "--config", str(_config(tmp_path)), "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    doc = strict(result.stdout)
    [series] = doc["series"]
    metrics = series["metrics"]
    assert metrics["queue_length"] is None and metrics["consumers"] is None
    assert metrics["publish_rate"] is None  # inf - 5 over the window is not a rate


def test_check_json_writes_null_for_a_non_finite_alert_value(env, tmp_path):
    config = _config(tmp_path)
    result = _mqtop(env, tmp_path, "check", "--config", str(config), "--format", "json")
    assert result.returncode == 1, result.stderr
    doc = strict(result.stdout)
    [alert] = doc["alerts"]
    assert alert["rule"] == "Backlog" and alert["value"] is None and alert["threshold"] == 1000


def test_serve_webhook_bodies_logs_and_stdout_are_strict(env, tmp_path):
    receiver = Receiver().start()
    hook = f"{receiver.url}/h"
    config = _config(
        tmp_path, f'notify:\n  - {{type: webhook, url: "{hook}"}}\n  - {{type: stdout}}\n'
    )
    serve = Serve(config, 0, tmp_path / "state", env={"PYTHONPATH": env["PYTHONPATH"]})
    try:
        port = serve.started()
        wait_until(lambda: alert_samples(scrape(port), "Backlog"), what="Backlog firing")
        [request] = receiver.wait_for(lambda rs: len(rs) >= 1)
    finally:
        code = serve.stop()
        receiver.stop()
    assert code == 0
    body = strict(request.body.decode())
    [alert] = body["alerts"]
    assert alert["status"] == "firing" and alert["value"] is None
    for line in serve.stdout_path.read_text().splitlines():  # the stdout notifier
        assert strict(line)["value"] is None
    logs = [strict(line) for line in serve.stderr_path.read_text().splitlines()]
    assert any(e.get("event") == "alert" and e["value"] is None for e in logs)
