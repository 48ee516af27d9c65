"""Secret canary: unique secrets in the config must appear nowhere mqtop writes.

The config carries one fresh canary per kind of secret:
* a Redis ACL user's password in the URL (a private Redis where that user is real, so the
  working paths run), and a wrong ``password:`` for a second Redis broker (the failure path);
* a wrong password in the RabbitMQ AMQP and management URLs (authentication fails);
* a webhook URL token and a webhook ``Authorization`` header (alerts really get delivered);
* the SQS secret access key, given through ``${VAR}`` interpolation from the environment;
* a Kafka SASL password (the broker does not speak SASL on that listener: the failure path);
* an Artemis user's password (a user made for the test, so Jolokia and the AMQP browse work),
  also inside the AMQP ``browse_url``; a wrong password in Classic's Jolokia and STOMP URLs.

Then every command runs as a subprocess, many with ``-vv`` (library debug logs included):
metrics in every format, queues, check in every format with ``--output``, serve (scraped and
delivering a notification, then stopped), config show and validate (also on broken configs
with secrets next to the mistakes), and dlq peek/replay/move/purge/reclaim on working and on
failing brokers. No canary may appear in any stdout, stderr, log line, audit line, metrics
page, output file, state file or error message (nor the Basic-auth encoding of one). The
dashboard is checked the same way, screen by screen.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from tests.conftest import ROOT
from tests.harness import BrokerUnavailable, SqsBroker, free_port, start_redis
from tests.support.activemq import ActiveMQBroker, wait_count
from tests.support.receiver import Receiver
from tests.support.serve import http_get

pytestmark = pytest.mark.broker


AMQ_USER = "mqtopcanary"


def _canary(kind: str) -> str:
    return f"Cnry{kind}{uuid.uuid4().hex[:12]}"


@dataclass
class Canaries:
    redis: str = field(default_factory=lambda: _canary("Redis"))
    redis_wrong: str = field(default_factory=lambda: _canary("RedisWrong"))
    rabbit: str = field(default_factory=lambda: _canary("Rabbit"))
    token: str = field(default_factory=lambda: _canary("Hook"))
    header: str = field(default_factory=lambda: _canary("Header"))
    sqs: str = field(default_factory=lambda: _canary("Sqs"))
    kafka: str = field(default_factory=lambda: _canary("Kafka"))
    typo: str = field(default_factory=lambda: _canary("Typo"))
    amq: str = field(default_factory=lambda: _canary("Amq"))
    amq_wrong: str = field(default_factory=lambda: _canary("AmqWrong"))

    def forms(self) -> dict[str, bytes]:
        """Every canary, plus the Basic-auth encodings a client would send."""
        out = {name: value.encode() for name, value in vars(self).items()}
        pairs = [("canary", "redis"), ("guest", "rabbit"), (AMQ_USER, "amq")]
        for user, name in [*pairs, ("admin", "amq_wrong")]:
            pair = f"{user}:{getattr(self, name)}".encode()
            out[f"{name} (basic auth)"] = base64.b64encode(pair)
        return out


@dataclass
class Env:
    canaries: Canaries
    config: Path
    bad_schema: Path
    bad_yaml: Path
    prefix: str
    redis: redis.Redis
    receiver: Receiver
    state: Path
    sqs: SqsBroker
    artemis: ActiveMQBroker
    outputs: list[tuple[str, bytes]] = field(default_factory=list)

    def run(
        self, *args: str, codes: tuple[int, ...] = (0,), config: Path | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Run one command; keep its output for the final scan; check its exit code."""
        cmd = [sys.executable, "-m", "mqtop", *args]
        if "--config" not in args and args[:2] not in (("config", "validate"),):
            cmd += ["--config", str(config or self.config)]
        done = subprocess.run(
            cmd, capture_output=True, env=self.environ(), cwd=self.state, timeout=120, check=False
        )
        label = " ".join(args)
        self.outputs += [(f"{label} stdout", done.stdout), (f"{label} stderr", done.stderr)]
        assert done.returncode in codes, (label, done.returncode, done.stderr[-1500:])
        assert b"Traceback" not in done.stderr, (label, done.stderr[-3000:])
        return done

    def environ(self) -> dict[str, str]:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "XDG_STATE_HOME": str(self.state / "xdg-state"),
            "XDG_CONFIG_HOME": str(self.state / "xdg-config"),
            "MQTOP_CANARY_SQS": self.canaries.sqs,
        }
        env.pop("MQTOP_CONFIG", None)
        return env


@pytest.fixture
def env(
    sqs_broker: SqsBroker,
    artemis_broker: ActiveMQBroker,
    activemq_classic_broker: ActiveMQBroker,
    tmp_path: Path,
    unique,
) -> Iterator[Env]:
    canaries = Canaries()
    artemis, classic = artemis_broker, activemq_classic_broker
    try:
        private = start_redis()
    except BrokerUnavailable as exc:
        pytest.fail(f"cannot start a private Redis: {exc}")
    admin = redis.Redis(port=private.port)
    admin.acl_setuser(
        "canary",
        enabled=True,
        passwords=[f"+{canaries.redis}"],
        keys=["*"],
        channels=["*"],
        commands=["+@all"],
    )
    client = redis.Redis(port=private.port, username="canary", password=canaries.redis)
    admin.acl_setuser("default", enabled=False)  # from now on only the canary user works
    admin.close()
    receiver = Receiver().start()
    prefix = unique("canary")
    sqs = sqs_broker.client()
    for name in ("dlq", "work", "other"):
        sqs.create_queue(QueueName=f"{prefix}-{name}")
    artemis.call(artemis.broker_mbean(),
                 "addUser(java.lang.String,java.lang.String,java.lang.String,boolean)",
                 AMQ_USER, canaries.amq, "amq", True)  # fmt: skip
    for name in ("amq-dlq", "amq-work"):
        artemis.create_queue(f"{prefix}.{name}", dlq_per_queue=False)
    amqp_port = artemis.browse_url.rsplit(":", 1)[1]
    state = tmp_path / "run"
    state.mkdir()
    port = private.port
    redis_url = f"redis://canary:{canaries.redis}@127.0.0.1:{port}/0"
    config = tmp_path / "canary.yaml"
    config.write_text(
        f"""
interval: 500ms
timeout: 3s
audit_log: "{state / "audit.jsonl"}"
history: {{path: "{state / "history.db"}"}}
brokers:
  - {{name: cache, type: redis, url: "{redis_url}", lists: ["{prefix}*"], streams: ["{prefix}*"]}}
  - name: cache2
    type: redis
    url: "redis://127.0.0.1:{port}/0"
    password: "{canaries.redis_wrong}"
  - name: rabbit
    type: rabbitmq
    url: "amqp://guest:{canaries.rabbit}@127.0.0.1:5672/"
    management_url: "http://guest:{canaries.rabbit}@127.0.0.1:15672"
    include: ["{prefix}*"]
  - name: aws
    type: sqs
    region: us-east-1
    endpoint_url: "{sqs_broker.endpoint_url}"
    access_key_id: testing
    secret_access_key: "${{MQTOP_CANARY_SQS}}"
    include: ["{prefix}*"]
    native_move: false
  - name: events
    type: kafka
    bootstrap_servers: "127.0.0.1:9092"
    security_protocol: SASL_PLAINTEXT
    sasl_mechanism: PLAIN
    sasl_username: canary
    sasl_password: "{canaries.kafka}"
    topics: ["{prefix}*"]
    groups: ["{prefix}*"]
  - name: amq
    type: activemq
    jolokia_url: "{artemis.jolokia_url}"
    user: {AMQ_USER}
    password: "{canaries.amq}"
    browse_url: "amqp://{AMQ_USER}:{canaries.amq}@127.0.0.1:{amqp_port}"
    include: ["{prefix}*"]
  - name: amqc
    type: activemq
    jolokia_url: "{classic.jolokia_url.replace("://", f"://admin:{canaries.amq_wrong}@")}"
    browse_url: "stomp://admin:{canaries.amq_wrong}@127.0.0.1:{classic.stomp_port}"
alerts:
  - {{name: AnyBacklog, metric: queue_length, op: ">", threshold: 0, severity: warning}}
notify:
  - type: webhook
    url: "{receiver.url}/hooks/T0/{canaries.token}"
    headers: {{Authorization: "Bearer {canaries.header}"}}
    retries: 0
"""
    )
    bad_schema = tmp_path / "bad-schema.yaml"
    bad_schema.write_text(
        f"""
interval: 5x
brokers:
  - {{name: cache, type: redis, url: "{redis_url}", passwd: "{canaries.typo}", lists: 7}}
  - {{name: rabbit, type: rabbitmq, url: "http://guest:{canaries.rabbit}@127.0.0.1:5672/"}}
  - {{name: aws, type: sqs, secret_access_key: {{nested: "{canaries.sqs}"}}}}
  - {{name: events, type: kafka, sasl_password: ["{canaries.kafka}"], timeout: x}}
  - {{name: amq, type: activemq, password: "{canaries.amq}", browse_url: "ftp://u:{canaries.amq}@h"}}
notify:
  - {{type: webhook, url: "{receiver.url}/hooks/{canaries.token}", retries: many}}
"""
    )
    bad_yaml = tmp_path / "bad-yaml.yaml"
    bad_yaml.write_text(
        "brokers:\n"
        "  - name: cache\n"
        "    type: redis\n"
        f'    url: "redis://canary:{canaries.redis}@127.0.0.1:6379/0\n'
        f"    password: {canaries.redis_wrong}: [\n"
    )
    yield Env(canaries, config, bad_schema, bad_yaml, prefix, client, receiver, state, sqs_broker,
              artemis)  # fmt: skip
    for name in ("amq-dlq", "amq-work"):
        artemis.delete_queue(f"{prefix}.{name}")
    artemis.call(artemis.broker_mbean(), "removeUser(java.lang.String)", AMQ_USER)
    receiver.stop()
    client.close()
    private.stop()
    for url in sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", []):
        sqs.delete_queue(QueueUrl=url)


def _seed(env: Env) -> None:
    """Messages to work on: Redis lists and a stream with a stuck entry, SQS queues."""
    p = env.prefix
    env.redis.rpush(f"{p}:jobs:dead", *[f"job-{i}" for i in range(5)])
    env.redis.rpush(f"{p}:other", "x", "y")
    env.redis.xadd(f"{p}:events", {"body": "e1"})
    env.redis.xgroup_create(f"{p}:events", "workers", id="0")
    env.redis.xreadgroup("workers", "w1", {f"{p}:events": ">"})
    sqs = env.sqs.client()
    dlq = sqs.get_queue_url(QueueName=f"{p}-dlq")["QueueUrl"]
    sqs.send_message_batch(
        QueueUrl=dlq, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(4)]
    )
    # Artemis: one body longer than Jolokia's preview, so peek browses it over AMQP
    env.artemis.send(f"{p}.amq-dlq", ["a" * 1000, "b", "c"])
    assert wait_count(env.artemis, f"{p}.amq-dlq", 3) == 3


def _serve(env: Env) -> None:
    """`mqtop -vv serve` until a notification was delivered; scrape /metrics and /healthz."""
    port = free_port()
    out, err = env.state / "serve.out", env.state / "serve.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mqtop", "-vv", "serve", "--config", str(env.config),
             "--metrics-port", str(port)],
            stdout=stdout, stderr=stderr, env=env.environ(), cwd=env.state,
        )  # fmt: skip
        try:
            env.receiver.wait_for(lambda requests: len(requests) >= 1, timeout=60)
            for path in ("/metrics", "/healthz", "/"):
                deadline = time.monotonic() + 30
                while True:
                    try:
                        status, body = http_get(f"http://127.0.0.1:{port}{path}")
                        break
                    except OSError:
                        assert time.monotonic() < deadline
                        time.sleep(0.2)
                env.outputs.append((f"serve {path}", body.encode()))
                assert status in (200, 503), (path, status)
            assert "mqtop_broker_up" in env.outputs[-3][1].decode()
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
    env.outputs += [("serve stdout", out.read_bytes()), ("serve stderr", err.read_bytes())]
    assert code == 0
    assert b"Traceback" not in err.read_bytes()
    # the notification really went out, to the secret URL with the secret header
    request = env.receiver.requests[0]
    assert env.canaries.token in request.path
    assert request.headers.get("Authorization") == f"Bearer {env.canaries.header}"


def _scan(env: Env, extra_roots: list[Path]) -> None:
    """No canary in any captured output nor in any file mqtop wrote."""
    blobs = list(env.outputs)
    for root in extra_roots:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                blobs.append((str(path), path.read_bytes()))
    assert len(blobs) > 60
    leaks = [
        f"{name} in {where}"
        for where, data in blobs
        for name, needle in env.canaries.forms().items()
        if needle in data
    ]
    assert not leaks, leaks


def test_no_command_ever_shows_a_secret(env: Env, tmp_path: Path):
    _seed(env)
    p = env.prefix
    env.run("config", "validate", str(env.config))
    env.run("config", "show")
    for bad in (env.bad_schema, env.bad_yaml):
        result = env.run("config", "validate", str(bad), codes=(2,))
        assert result.stderr or result.stdout
        env.run("config", "show", "--config", str(bad), codes=(2,))
        env.run("-vv", "metrics", "--config", str(bad), codes=(2,))
    shown = env.run("config", "show").stdout.decode()
    assert "****" in shown

    down = (3,)  # rabbit, cache2 and events cannot be reached
    for fmt in ("table", "json", "prometheus"):
        env.run("metrics", "--format", fmt, codes=down)
    env.run("-vv", "metrics", "--format", "json", codes=down)
    env.run("queues", codes=down)
    env.run("-vv", "queues", "--format", "json", codes=down)
    reports = env.state / "reports"
    reports.mkdir()
    for fmt in ("text", "json", "junit", "github"):
        env.run(
            "check", "--once", "--format", fmt, "--output", str(reports / f"check.{fmt}"),
            codes=(1, 3),
        )  # fmt: skip
    assert all((reports / f"check.{fmt}").stat().st_size for fmt in ("text", "json"))

    # dlq on the working brokers (with debug logs) ...
    env.run("-vv", "dlq", "peek", "cache", f"{p}:jobs:dead", "--format", "json")
    env.run("dlq", "peek", "cache", f"{p}:jobs:dead")
    env.run("dlq", "replay", "cache", f"{p}:jobs:dead", "--to", f"{p}:jobs", "--dry-run")
    env.run("dlq", "replay", "cache", f"{p}:jobs:dead", "--to", f"{p}:jobs", codes=(2,))  # no --yes
    env.run("-vv", "dlq", "replay", "cache", f"{p}:jobs:dead", "--to", f"{p}:jobs", "--yes")
    env.run("dlq", "move", "cache", f"{p}:jobs", f"{p}:other", "--yes", "--format", "json")
    env.run("dlq", "reclaim", "cache", f"{p}:events", "--group", "workers", "--idle", "0s",
            "--to", f"{p}:events:dead", "--yes")  # fmt: skip
    env.run("dlq", "purge", "cache", f"{p}:other", "--yes")
    env.run("-vv", "dlq", "peek", "aws", f"{p}-dlq", "--format", "json")
    env.run("-vv", "dlq", "move", "aws", f"{p}-dlq", f"{p}-work", "--yes", "--format", "json")
    env.run("dlq", "purge", "aws", f"{p}-work", "--yes")
    env.run("dlq", "peek", "aws", f"{p}-missing", codes=(2, 3))
    peeked = env.run("-vv", "dlq", "peek", "amq", f"{p}.amq-dlq", "--format", "json").stdout
    assert b'"truncated"' not in peeked and b"a" * 1000 in peeked  # read whole over AMQP
    env.run("dlq", "move", "amq", f"{p}.amq-dlq", f"{p}.amq-work", "--yes", "--limit", "1")
    env.run("dlq", "purge", "amq", f"{p}.amq-work", "--yes")
    # ... and on the ones whose credentials are wrong
    env.run("-vv", "dlq", "peek", "rabbit", f"{p}.dlq", codes=down)
    env.run("dlq", "move", "rabbit", f"{p}.dlq", f"{p}.work", "--yes", codes=down)
    env.run("dlq", "purge", "rabbit", f"{p}.dlq", "--yes", codes=down)
    env.run("-vv", "dlq", "peek", "cache2", f"{p}:jobs", codes=down)
    env.run("dlq", "move", "cache2", f"{p}:a", f"{p}:b", "--yes", codes=down)
    env.run("dlq", "peek", "events", f"{p}.DLT", codes=down)
    env.run("dlq", "replay", "events", f"{p}.DLT", "--to", f"{p}", "--yes", codes=down)
    env.run("-vv", "dlq", "peek", "amqc", "ActiveMQ.DLQ", codes=down)
    env.run("dlq", "move", "amqc", "ActiveMQ.DLQ", f"{p}.x", "--yes", codes=down)

    _serve(env)

    audit = (env.state / "audit.jsonl").read_text().splitlines()
    assert len(audit) >= 4  # the writes were audited (and are scanned below)
    _scan(env, [env.state, tmp_path / "run"])


async def test_dashboard_never_shows_a_secret(env: Env):
    from mqtop.config import load_config
    from mqtop.engine import Engine
    from mqtop.ui.app import MqtopApp

    _seed(env)
    os.environ["MQTOP_CANARY_SQS"] = env.canaries.sqs
    try:
        config = load_config(str(env.config))
    finally:
        del os.environ["MQTOP_CANARY_SQS"]
    app = MqtopApp(Engine(config))
    screens: list[str] = []
    async with app.run_test(size=(200, 50)) as pilot:
        deadline = time.monotonic() + 30
        while not all(s.up is not None for s in app.engine.statuses.values()):
            assert time.monotonic() < deadline, "brokers never polled"
            await pilot.pause(0.1)
        await pilot.pause(1.0)
        screens.append(app.screen_text())
        assert "DOWN" in screens[-1]  # the failing brokers show their (masked) errors
        for key in ("A", "escape", "question_mark", "escape"):
            await pilot.press(key)
            await pilot.pause(0.3)
            screens.append(app.screen_text())
        await app.stop_engine()
    env.outputs += [(f"dashboard screen {i}", text.encode()) for i, text in enumerate(screens)]
    leaks = [
        (name, i)
        for i, text in enumerate(screens)
        for name, needle in env.canaries.forms().items()
        if needle.decode() in text
    ]
    assert not leaks, leaks
