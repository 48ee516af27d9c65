"""``mqtop init [PATH] [--force]``: write a starter config from the brokers found locally.

Brokers answering on their default local ports (Redis 6379, RabbitMQ 5672/15672, Kafka 9092,
an SQS emulator on 4566, an ActiveMQ web console's Jolokia on 8161) become entries; the others
are left as commented examples. The shipped alert rules are written out so they can be
edited. The file is validated by loading it back before it replaces anything; an existing file
is kept unless ``--force`` (exit 2).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from alerts.config import DEFAULT_RULES
from mqtop.config import Config, load_config_file
from mqtop.kernel.errors import EXIT_OK, UsageError

Detector = Callable[[], list[dict[str, Any]]]

# Commented examples for brokers that were not found (valid once uncommented).
EXAMPLES: dict[str, str] = {
    "redis": """\
  # - name: redis
  #   type: redis
  #   url: "redis://localhost:6379/0"
  #   lists: ["*"]                # list keys used as queues (LPUSH/BRPOP)
  #   streams: ["*"]              # streams, one series per consumer group
  #   channels: []                # pub/sub channels (subscriber counts only)
""",
    "rabbitmq": """\
  # - name: rabbitmq
  #   type: rabbitmq
  #   url: "amqp://guest:${RABBITMQ_PASSWORD:-guest}@localhost:5672/"
  #   management_url: "http://localhost:15672"   # metrics come from the management API
  #   exclude: ["amq.*"]
""",
    "kafka": """\
  # - name: kafka
  #   type: kafka
  #   bootstrap_servers: "localhost:9092"
  #   groups: ["*"]               # consumer groups whose lag is watched
""",
    "sqs": """\
  # - name: sqs
  #   type: sqs
  #   region: us-east-1           # credentials: the standard AWS chain (env, profile, role)
  #   include: ["*"]
""",
    "activemq": """\
  # - name: activemq
  #   type: activemq              # Artemis or Classic (detected); metrics through Jolokia
  #   jolokia_url: "http://localhost:8161/console/jolokia"   # Classic: .../api/jolokia
  #   user: admin
  #   password: "${ACTIVEMQ_PASSWORD:-admin}"
""",
}

ENTRY_COMMENTS: dict[str, str] = {
    "redis": "Redis on 127.0.0.1:6379",
    "rabbitmq": "RabbitMQ on 127.0.0.1:5672",
    "kafka": "Kafka on 127.0.0.1:9092",
    "sqs": "an SQS endpoint (LocalStack?) on 127.0.0.1:4566",
    "activemq": "an ActiveMQ web console (Jolokia) on 127.0.0.1:8161",
}


def _entry(broker: dict[str, Any]) -> dict[str, Any]:
    """A detected broker as it goes into the file (password read from the environment)."""
    entry = dict(broker)
    if entry.get("type") == "rabbitmq" and isinstance(entry.get("url"), str):
        entry["url"] = entry["url"].replace("guest:guest@", "guest:${RABBITMQ_PASSWORD:-guest}@", 1)
    if entry.get("type") == "activemq" and entry.get("password") == "admin":
        entry["password"] = "${ACTIVEMQ_PASSWORD:-admin}"  # noqa: S105 - read from the env
    entry["readonly"] = False
    return entry


_PLAIN = re.compile(r"^(?:[A-Za-z][A-Za-z0-9_.-]*|\d+(?:ms|s|m|h|d))$")
_RESERVED = frozenset({"true", "false", "yes", "no", "on", "off", "null", "y", "n"})


def _scalar(value: Any) -> str:
    """A YAML scalar: plain when unambiguous, else double-quoted (JSON escapes are YAML's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _RESERVED:
        return text
    return json.dumps(text)


def _value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) + "}"
    return _scalar(value)


def _broker_block(entry: dict[str, Any]) -> list[str]:
    """A broker entry in block style, one key per line."""
    lines = []
    for index, (key, value) in enumerate(entry.items()):
        prefix = "  - " if index == 0 else "    "
        lines.append(f"{prefix}{key}: {_value(value)}")
    return lines


def starter_config(detected: Iterable[dict[str, Any]], today: dt.date | None = None) -> str:
    """The commented starter config for these detected broker entries."""
    detected = list(detected)
    day = (today or dt.datetime.now(dt.UTC).date()).isoformat()
    found_types = {b.get("type") for b in detected}
    out = [
        f"# mqtop configuration, written by `mqtop init` on {day}.",
        "# Check it with `mqtop config validate`; see docs/configuration.md for every key.",
        "# Durations: 500ms, 5s, 1m, 1h. ${VAR} and ${VAR:-default} read the environment.",
        "",
        "# How often every broker is polled.",
        "interval: 5s",
        "",
        "# The embedded time-series store; set `path` to keep history across restarts.",
        "history:",
        "  retention: 24h",
        "  # path: ~/.local/state/mqtop/history.db",
        "",
    ]
    if detected:
        names = ", ".join(str(b.get("name")) for b in detected)
        out.append(f"# Found listening on default local ports: {names}.")
        out.append("# `readonly: true` makes mqtop refuse replay, move and purge on a broker.")
        out.append("brokers:")
        for broker in detected:
            comment = ENTRY_COMMENTS.get(str(broker.get("type")))
            if comment:
                out.append(f"  # {comment}")
            out += _broker_block(_entry(broker))
    else:
        out.append("# No broker answered on a default local port: uncomment one example below")
        out.append("# (and delete the `[]`).")
        out.append("brokers: []")
    missing = [t for t in EXAMPLES if t not in found_types]
    if missing:
        if detected:
            out.append("  # More brokers (uncomment to use):")
        for broker_type in missing:
            out.append(EXAMPLES[broker_type].rstrip("\n"))
    out += [
        "",
        "# Alert rules: the shipped defaults. A rule takes `match` (glob per label), `for`,",
        "# `function` + `window` (rate, increase, avg, max), `labels` and a `summary` template.",
        "alerts:",
    ]
    for rule in DEFAULT_RULES:
        out.append(f"  - {_value(dict(rule))}")
    out += [
        "",
        "# Where alert events go (`mqtop serve`): stdout, webhook, slack or alertmanager.",
        "notify:",
        "  - {type: stdout}",
        '  # - {type: webhook, url: "https://hooks.example/mqtop"}',
        '  # - {type: slack, url: "${SLACK_WEBHOOK_URL}"}',
        '  # - {type: alertmanager, url: "http://localhost:9093"}',
        "",
    ]
    return "\n".join(out)


def usable_brokers(detected: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Detected entries whose collector is installed."""
    from mqtop.registry import get_plugin

    out = []
    for entry in detected:
        try:
            get_plugin(str(entry.get("type")))
        except UsageError:
            continue
        out.append(entry)
    return out


def _default_detector() -> list[dict[str, Any]]:
    from mqtop.detect import detect_brokers

    return detect_brokers()


def write_starter(path: Path, force: bool, detector: Detector = _default_detector) -> Config:
    """Write and validate the starter config at ``path``; return it loaded."""
    if path.is_dir():
        raise UsageError(f"{path}: is a directory")
    if path.exists() and not force:
        raise UsageError(f"{path} already exists; use --force to overwrite it")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise UsageError(f"{parent}: is not a directory")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {parent}: {exc.strerror or exc}") from None
    text = starter_config(usable_brokers(detector()))
    tmp = parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        try:
            tmp.write_text(text)
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
        # validate before anything is replaced: a starter that does not load is a bug
        config = load_config_file(tmp, env={})
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return config.model_copy(update={"source": str(path)})


def run(args: argparse.Namespace) -> int:
    """Write the starter config (exit 2 if it exists and ``--force`` was not given)."""
    path = Path(os.path.expanduser(getattr(args, "path", None) or "mqtop.yaml"))
    config = write_starter(path, bool(getattr(args, "force", False)))
    names = [b.name for b in config.brokers]
    found = ", ".join(names) if names else "none found on default local ports"
    print(f"wrote {path}: brokers: {found}; {len(config.alerts)} alert rules")
    hint = "mqtop" if path == Path("mqtop.yaml") else f"mqtop --config {path}"
    print(f"next: `mqtop config validate {path}`, then `{hint}`")
    return EXIT_OK
