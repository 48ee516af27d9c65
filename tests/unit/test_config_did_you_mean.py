"""A misspelt config key is reported with the key it most likely meant."""

from __future__ import annotations

import subprocess
import sys

from mqtop.config import validate_data
from mqtop.yamlpos import load_located


def _problems(text: str) -> list[str]:
    _config, problems = validate_data(load_located(text), env={})
    return [p.message for p in problems]


def test_typos_get_a_suggestion_at_every_level():
    messages = _problems(
        "intervall: 5s\n"
        "brokers:\n"
        '  - {name: r, type: redis, url: "redis://localhost:6379/0", lissts: ["a*"]}\n'
        "alerts:\n"
        "  - {name: X, metric: queue_length, threshold: 1, severty: warning}\n"
        "alerting: {flap_windw: 5m}\n"
    )
    assert "unknown key 'intervall' (did you mean 'interval'?)" in messages
    assert "unknown key 'lissts' (did you mean 'lists'?)" in messages
    assert "unknown key 'severty' (did you mean 'severity'?)" in messages
    assert "unknown key 'flap_windw' (did you mean 'flap_window'?)" in messages


def test_no_suggestion_when_nothing_is_close():
    (message,) = _problems("zebra: 1\n")
    assert message == "unknown key 'zebra'"


def test_config_validate_prints_the_suggestion(tmp_path):
    path = tmp_path / "mqtop.yaml"
    path.write_text("intervall: 5s\n")
    done = subprocess.run(
        [sys.executable, "-m", "mqtop", "config", "validate", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert f"{path}:1:1: intervall: unknown key 'intervall' (did you mean 'interval'?)" in (
        done.stdout + done.stderr
    )
