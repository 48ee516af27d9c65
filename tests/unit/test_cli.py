"""CLI behaviour that needs no broker: fast startup, exit codes, config commands."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "textual",
    "aiokafka",
    "pika",
    "boto3",
    "botocore",
    "httpx",
    "redis",
    "pydantic",
    "prometheus_client",
    "yaml",
)


def test_help_imports_nothing_heavy():
    code = (
        "import sys; from mqtop import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_version(run_cli):
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("mqtop ")


def test_usage_error_exit_2(run_cli):
    result = run_cli("metrics", "--format", "xml")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_config_validate_lists_every_problem(run_cli, write_config):
    path = write_config(
        """
        interval: nope
        brokers:
          - {name: x, type: redis, unknown_key: 1}
          - {name: y, type: kafka2}
        """
    )
    result = run_cli("config", "validate", str(path))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith(str(path) + ":")]
    assert len([line for line in lines if not line.endswith("problems")]) == 3, result.stderr
    assert f"{path}:1:11: interval:" in result.stderr
    assert f"{path}:3:28: brokers[0].unknown_key: unknown key" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_validate_ok(run_cli, write_config):
    path = write_config("brokers:\n  - {name: c, type: redis}\n")
    result = run_cli("config", "validate", str(path))
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_missing_config_file(run_cli):
    result = run_cli("metrics", "--config", "/nonexistent/mqtop.yaml")
    assert result.returncode == 2
    assert "no such config file" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_show_masks_secrets(run_cli, write_config):
    path = write_config(
        """
        brokers:
          - {name: c, type: redis, url: "redis://admin:Canary-9f3b@localhost:6379/0",
             password: "Another-Canary-77"}
        notify:
          - {type: webhook, url: "https://hooks.example/x?token=Tok-Canary-5"}
        """
    )
    result = run_cli("config", "show", "--config", str(path))
    assert result.returncode == 0, result.stderr
    for secret in ("Canary-9f3b", "Another-Canary-77", "Tok-Canary-5"):
        assert secret not in result.stdout + result.stderr
    assert "redis://admin:****@localhost:6379/0" in result.stdout


def test_config_lookup_env_var(run_cli, write_config):
    path = write_config("brokers:\n  - {name: fromenv, type: redis}\n", name="elsewhere.yaml")
    result = run_cli("config", "show", env={"MQTOP_CONFIG": str(path)})
    assert result.returncode == 0, result.stderr
    assert "fromenv" in result.stdout


def test_binary_config_file_exit_2(run_cli, tmp_path):
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"interval: 5s\n\xff\xfe\x00garbage")
    result = run_cli("config", "validate", str(path))
    assert result.returncode == 2
    assert "UTF-8" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_broker_for_dlq(run_cli, write_config):
    path = write_config("brokers:\n  - {name: c, type: redis}\n")
    result = run_cli("dlq", "peek", "nope", "q", "--config", str(path))
    assert result.returncode == 2
    assert "no broker named 'nope'" in result.stderr


def test_metrics_json_shape_with_no_reachable_broker(run_cli, write_config):
    from tests.harness import free_port

    port = free_port()
    path = write_config(
        f"interval: 100ms\ntimeout: 1s\nbrokers:\n  - {{name: d, type: redis, url: 'redis://127.0.0.1:{port}'}}\n"
    )
    result = run_cli("metrics", "--config", str(path), "--format", "json")
    assert result.returncode == 3
    doc = json.loads(result.stdout)
    assert set(doc) == {"time", "brokers", "series"}
    assert doc["brokers"][0]["up"] is False
    assert doc["series"] == []


def test_demo_help_describes_its_own_config_option_and_the_local_brokers_flag(run_cli):
    result = run_cli("demo", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    # -c is where the demo writes its config, not the config lookup of the other commands
    assert "-c PATH, --config PATH write the demo's generated config to PATH" in text
    assert "$MQTOP_CONFIG" not in text and "detect local brokers" not in text
    assert "--with-local-brokers also monitor brokers found on default local ports" in text
    assert "Self-contained: no other config is read and no other broker is monitored" in text
