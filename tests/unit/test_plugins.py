"""Third-party collectors plug in through the ``mqtop.collectors`` entry-point group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PLUGIN_MODULE = """
from typing import Literal
from pydantic import Field
from collectors.base import BrokerOptions, Collected, CollectorPlugin, MoveOptions
from mqtop.kernel.model import SeriesKey, SeriesSample

class DummyOptions(BrokerOptions):
    type: Literal["dummy"] = "dummy"
    depth: int = 3

class DummyCollector:
    def __init__(self, options):
        self._options = options
    @property
    def options(self):
        return self._options
    async def connect(self):
        pass
    async def collect(self):
        key = SeriesKey(self._options.name, "only-queue", None)
        return Collected((SeriesSample(key=key, kind="queue",
                                       values={"queue_length": self._options.depth}),))
    async def close(self):
        pass
    def actions(self):
        return None

class DummyMoveOptions(MoveOptions):
    priority_lane: int | None = Field(None, description="Dummy: the lane to move into")

PLUGIN = CollectorPlugin(
    type="dummy", options_model=DummyOptions, factory=DummyCollector,
    move_options=DummyMoveOptions,
)
"""


def _install_fake_distribution(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "mqtop_dummy_plugin.py").write_text(PLUGIN_MODULE)
    dist = site / "mqtop_dummy_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: mqtop-dummy-plugin\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[mqtop.collectors]\ndummy = mqtop_dummy_plugin:PLUGIN\n"
    )
    return site


def test_entry_point_plugin_is_listed_validated_and_polled(tmp_path):
    site = _install_fake_distribution(tmp_path)
    config = tmp_path / "c.yaml"
    config.write_text(
        textwrap.dedent(
            """
            interval: 100ms
            brokers:
              - {name: d1, type: dummy, depth: 42}
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{ROOT}"}
    out = subprocess.run(
        [sys.executable, "-m", "mqtop", "metrics", "--config", str(config), "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["series"][0]["queue"] == "only-queue"
    assert doc["series"][0]["metrics"]["queue_length"] == 42

    config.write_text("brokers:\n  - {name: d1, type: dummy, depth: lots}\n")
    out = subprocess.run(
        [sys.executable, "-m", "mqtop", "config", "validate", str(config)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=tmp_path,
    )
    assert out.returncode == 2
    assert f"{config}:2:36: brokers[0].depth:" in out.stderr


def test_unknown_type_names_installed_ones(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("brokers:\n  - {name: x, type: zeromq}\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "mqtop", "config", "validate", str(config)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert out.returncode == 2
    assert "unknown broker type 'zeromq' (installed: " in out.stderr
    assert "redis" in out.stderr


def test_plugin_declares_its_own_move_option(tmp_path):
    """A third-party broker's move option becomes a flag of ``dlq move``, refused elsewhere."""
    site = _install_fake_distribution(tmp_path)
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{ROOT}"}

    def mqtop(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mqtop", *args],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            cwd=tmp_path,
        )

    helped = mqtop("dlq", "move", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "--priority-lane" in helped.stdout and "[dummy]" in helped.stdout
    assert "--keep-partition" in helped.stdout  # the built-in brokers' options are there too
    config = tmp_path / "c.yaml"
    config.write_text("brokers:\n  - {name: r, type: redis, url: 'redis://127.0.0.1:1/0'}\n")
    refused = mqtop(
        "dlq", "move", "r", "a", "b", "--priority-lane", "2", "--yes", "--config", str(config)
    )
    assert refused.returncode == 2, refused.stderr
    assert "--priority-lane: not supported by redis brokers (its move options: --batch)" in (
        refused.stderr
    )
