"""``mqtop serve`` as a subprocess, and reading its /metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(port: int) -> dict[str, list]:
    """Samples by name, parsed with the Prometheus text parser."""
    status, text = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def wait_until(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (OSError, AssertionError):
            last = None
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Serve:
    """``python -m mqtop serve`` in a subprocess."""

    def __init__(
        self, config: Path, port: int, state: Path, env: dict[str, str] | None = None
    ) -> None:
        self.port = port
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "XDG_STATE_HOME": str(state),
            "XDG_CONFIG_HOME": str(state / "config-home"),
            **(env or {}),
        }
        env.pop("MQTOP_CONFIG", None)
        self.stderr_path = state / "serve.err"
        self.stdout_path = state / "serve.out"
        state.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mqtop",
                "serve",
                "--config",
                str(config),
                "--metrics-port",
                str(port),
            ],
            stdout=self.stdout_path.open("w"),
            stderr=self.stderr_path.open("w"),
            env=env,
            cwd=state,
        )

    def started(self, timeout: float = 60.0) -> int:
        """Wait for the "serving" log line and return the port bound (start with port 0 to
        let the kernel choose one: no race with other tests for a "free" port)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                entries = self.logs()
            except ValueError:  # a line being written
                entries = []
            for entry in entries:
                if entry.get("msg") == "serving":
                    self.port = int(entry["port"])
                    return self.port
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}: {self.logs()}")
            time.sleep(0.05)
        raise AssertionError("serve did not start")

    def logs(self) -> list[dict]:
        return [json.loads(line) for line in self.stderr_path.read_text().splitlines() if line]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


def alert_samples(samples: dict[str, list], rule: str) -> list:
    return [s for s in samples.get("mqtop_alert", []) if s.labels["rule"] == rule]
