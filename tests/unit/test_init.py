"""`mqtop init`: a starter config from the brokers listening on default local ports."""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path

import pytest

from alerts.config import DEFAULT_RULES
from mqtop.commands.init import starter_config, write_starter
from mqtop.config import parse_text
from mqtop.kernel.errors import UsageError

DEFAULT_PORTS = {"redis": 6379, "rabbitmq": 5672, "kafka": 9092, "sqs": 4566, "activemq": 8161}


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _uncomment(text: str) -> str:
    """Turn the commented broker examples into live YAML."""
    out = []
    for line in text.splitlines():
        if line.startswith("  # - name:") or line.startswith("  #   "):
            line = "  " + line[4:]
        out.append(line)
    return "\n".join(out).replace("brokers: []", "brokers:")


def test_init_writes_the_detected_brokers(run_cli, tmp_path):
    expected = {name for name, port in DEFAULT_PORTS.items() if _listening(port)}
    if _listening(15672):
        expected.add("rabbitmq")
    result = run_cli("init")
    assert result.returncode == 0, result.stderr
    path = tmp_path / "mqtop.yaml"
    text = path.read_text()
    assert text.startswith("# mqtop configuration, written by `mqtop init`")

    # loads as-is through the normal lookup (./mqtop.yaml) with the default rules
    validate = run_cli("config", "validate")
    assert validate.returncode == 0, validate.stderr
    brokers = f"{len(expected)} broker{'' if len(expected) == 1 else 's'}"
    assert f"({brokers}, {len(DEFAULT_RULES)} rules, 1 notifier)" in validate.stdout
    config, problems = parse_text(text, str(path), env={})
    assert config is not None, problems
    assert {b.name for b in config.brokers} == expected
    assert [(r.name, r.threshold, r.for_) for r in config.alerts] == [
        ("QueueBacklog", 1000, 60.0),
        ("HighErrorRate", 0.05, 0.0),
        ("ConsumerLag", 60, 0.0),
        ("DeadJobsGrowing", 0, 0.0),
        ("DeadLettersArriving", 0, 0.0),
    ]
    summary = result.stdout.splitlines()[0]
    assert summary.startswith("wrote mqtop.yaml: brokers: ")
    for name in expected:
        assert name in summary
    # a password is never written out: it comes from the environment with a default
    assert "guest:guest@" not in text
    if "rabbitmq" in expected:
        assert "${RABBITMQ_PASSWORD:-guest}" in text


def test_init_refuses_to_overwrite_without_force(run_cli, tmp_path):
    path = tmp_path / "mqtop.yaml"
    path.write_text("interval: 7s\n")
    result = run_cli("init")
    assert result.returncode == 2
    assert "mqtop.yaml already exists; use --force to overwrite it" in result.stderr
    assert "Traceback" not in result.stderr
    assert path.read_text() == "interval: 7s\n"

    forced = run_cli("init", "--force")
    assert forced.returncode == 0, forced.stderr
    assert path.read_text().startswith("# mqtop configuration")
    assert not list(tmp_path.glob(".mqtop.yaml.*.tmp"))


def test_init_to_the_user_config_path(run_cli, tmp_path):
    """`mqtop init ~/.config/mqtop/config.yaml` creates the directory; lookup then finds it."""
    target = tmp_path / "config-home" / "mqtop" / "config.yaml"  # run_cli's XDG_CONFIG_HOME
    result = run_cli("init", str(target))
    assert result.returncode == 0, result.stderr
    assert target.is_file()
    assert f"mqtop --config {target}" in result.stdout
    shown = run_cli("config", "show")  # no ./mqtop.yaml: found by the lookup order
    assert shown.returncode == 0, shown.stderr
    assert "QueueBacklog" in shown.stdout


def test_init_into_a_directory_is_a_usage_error(run_cli, tmp_path):
    (tmp_path / "conf").mkdir()
    result = run_cli("init", "conf")
    assert result.returncode == 2
    assert "conf: is a directory" in result.stderr


def test_nothing_detected_still_writes_a_valid_config(tmp_path):
    path = tmp_path / "mqtop.yaml"
    config = write_starter(path, force=False, detector=lambda: [])
    assert config.brokers == []
    assert len(config.alerts) == len(DEFAULT_RULES)
    assert "brokers: []" in path.read_text()
    with pytest.raises(UsageError, match="already exists"):
        write_starter(path, force=False, detector=lambda: [])


@pytest.mark.parametrize(
    "detected_types", [[], ["redis"], ["redis", "rabbitmq", "kafka", "sqs", "activemq"]]
)
def test_commented_examples_are_valid_once_uncommented(detected_types):
    entries = {
        "redis": {"name": "redis", "type": "redis", "url": "redis://127.0.0.1:6379/0"},
        "rabbitmq": {
            "name": "rabbitmq",
            "type": "rabbitmq",
            "url": "amqp://guest:guest@127.0.0.1:5672/",
            "management_url": "http://127.0.0.1:15672",
        },
        "kafka": {"name": "kafka", "type": "kafka", "bootstrap_servers": "127.0.0.1:9092"},
        "sqs": {
            "name": "sqs",
            "type": "sqs",
            "region": "us-east-1",
            "endpoint_url": "http://127.0.0.1:4566",
        },
        "activemq": {
            "name": "activemq",
            "type": "activemq",
            "jolokia_url": "http://127.0.0.1:8161/console/jolokia",
            "user": "admin",
            "password": "admin",
        },
    }
    text = starter_config([entries[t] for t in detected_types], today=dt.date(2030, 1, 2))
    assert "written by `mqtop init` on 2030-01-02" in text
    config, problems = parse_text(text, "starter", env={})
    assert config is not None, problems
    assert [b.name for b in config.brokers] == detected_types

    live = _uncomment(text)
    config, problems = parse_text(live, "uncommented", env={})
    assert config is not None, (problems, live)
    assert sorted(b.type for b in config.brokers) == sorted(entries)
    for broker in config.brokers:
        if broker.name in detected_types:
            assert broker.readonly is False


def test_written_file_is_exactly_what_was_validated(tmp_path):
    path = tmp_path / "nested" / "dir" / "mqtop.yaml"
    detected = [{"name": "kafka", "type": "kafka", "bootstrap_servers": "127.0.0.1:9092"}]
    config = write_starter(path, force=False, detector=lambda: detected)
    assert config.source == str(path)
    assert [b.name for b in config.brokers] == ["kafka"]
    reparsed, problems = parse_text(Path(path).read_text(), str(path), env={})
    assert reparsed is not None, problems
    assert reparsed.to_display() == config.to_display()
