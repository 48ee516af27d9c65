"""Hostile payloads through the CLI: escape sequences, random bytes and a 10 MB body are put
into a real Redis list, a real Redis stream and a real RabbitMQ queue (bodies, header names
and values, properties, x-death entries, key names), then `mqtop dlq peek` (table and JSON),
`mqtop queues` and `mqtop metrics` run as subprocesses. Nothing raw may reach the terminal:
stdout and stderr are valid UTF-8 without any control character but the newline, without C1
controls, bidi overrides or line separators. The JSON output still carries every body exactly
(text or base64), and the 10 MB body is truncated with its true size.

The random bodies come from a seeded generator (the seed is printed; MQTOP_FAULT_SEED replays).
"""

from __future__ import annotations

import base64
import json
import os
import random
import re

import pika
import pytest
import redis

from tests.harness import RabbitBroker, RedisBroker

pytestmark = pytest.mark.broker

SEED = int(os.environ.get("MQTOP_FAULT_SEED") or random.SystemRandom().randrange(2**32))
BIG_BODY = b"\x1b[5m\x07" * (10 * 1024 * 1024 // 5) + b"\x1b]0;end\x07"  # 10 MB of escapes

HOSTILE: list[bytes] = [
    b"\x1b[2J\x1b[H\x1b[31mred\x1b[0m clear screen",
    b"\x1b]0;pwned title\x07 set the window title",
    b"\x1b]52;c;cm0gLXJmIH4=\x07 write the clipboard",
    b"\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\ hyperlink",
    b"\x1bP+q544e\x1b\\ device control string",
    "\u009b31m C1 CSI (UTF-8 encoded)".encode(),
    b"\x9b31m raw C1 byte (invalid UTF-8)",
    "abc\u202edcba \u2066iso\u2069 \u200fmark\ufeff bidi".encode(),
    b"line1\rOVERWRITE\x08\x08\x7f\x00\x07 carriage return, backspace, DEL, NUL, BEL",
    b"\xff\xfe\x00\x00 invalid UTF-8",
    "\u2028line separator\u2029paragraph".encode(),
    b"\n\n\nnewlines\tand a tab\x0b\x0c",
    bytes(range(256)),
]

# anything that can move the cursor, recolour, retitle, reorder or hide text
UNSAFE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2069\ufeff]"
)


def assert_clean(data: bytes, what: str) -> str:
    """Valid UTF-8 with no terminal control character but newline; returns the text."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AssertionError(f"{what}: not valid UTF-8 at {exc.start}") from None
    bad = UNSAFE.search(text)
    if bad is not None:
        around = text[max(0, bad.start() - 60) : bad.start() + 20]
        raise AssertionError(f"{what}: raw {bad.group()!r} at {bad.start()}: {around!r}")
    return text


def bodies() -> list[bytes]:
    """The hostile set, 12 seeded random byte strings, and one 10 MB body of escapes."""
    rng = random.Random(SEED)
    print(f"payload seed {SEED} (replay with MQTOP_FAULT_SEED={SEED})")
    randoms = [rng.randbytes(rng.randrange(0, 3000)) for _ in range(12)]
    return [*HOSTILE, *randoms, BIG_BODY]


def check_peek(run_cli, config, broker: str, queue: str, expected: list[bytes]) -> dict:
    """Peek every message in both formats; return the JSON messages by body."""
    n = str(len(expected) + 5)
    table = run_cli("dlq", "peek", broker, queue, "-n", n, "--config", str(config), timeout=180)
    assert table.returncode == 0, table.stderr[-2000:]
    shown = run_cli(
        "dlq", "peek", broker, queue, "-n", n, "--format", "json", "--config", str(config),
        timeout=180,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr[-2000:]
    for result, fmt in ((table, "table"), (shown, "json")):
        assert_clean(result.stdout.encode(), f"{broker} peek {fmt} stdout")
        assert_clean(result.stderr.encode(), f"{broker} peek {fmt} stderr")
        assert "Traceback" not in result.stderr
    assert len(table.stdout) < 200_000  # a preview, not the 10 MB body
    assert len(shown.stdout) < 2_000_000  # cut at --max-body (64 KiB), headers included
    messages = json.loads(shown.stdout)
    assert len(messages) == len(expected)
    by_body: dict[bytes, dict] = {}
    for message in messages:
        raw = (
            base64.b64decode(message["body"])
            if message["body_encoding"] == "base64"
            else message["body"].encode("utf-8")
        )
        by_body[raw] = message
    big = [m for m in messages if m["size"] == len(BIG_BODY)]
    assert len(big) == 1 and big[0].get("truncated") is True
    assert len(big[0]["body"]) < 1_000_000  # cut at --max-body, escaped
    for body in expected:
        if body is BIG_BODY:
            continue
        assert body in by_body, f"{broker}: body {body[:40]!r} not shown exactly"
        assert by_body[body]["size"] == len(body)
    return by_body


def test_hostile_redis_list_and_stream_through_the_cli(
    redis_broker: RedisBroker, write_config, run_cli, unique
):
    client = redis.Redis(host=redis_broker.host, port=redis_broker.port)
    prefix = unique("hostile")
    lst = prefix + ":dead\x1b[2J\x1b]0;key\x07"
    stream = prefix + ":events\u202e:dead"
    expected = bodies()
    try:
        client.rpush(lst, *expected)
        for i, body in enumerate(expected):  # one field (the body), with a hostile name
            client.xadd(stream, {f"\x1b[3{i % 8}mfield\x07": body})
        config = write_config(
            f"""
            interval: 500ms
            brokers:
              - name: cache
                type: redis
                url: "{redis_broker.url}"
                lists: ["{prefix}*"]
                streams: ["{prefix}*"]
            """
        )
        check_peek(run_cli, config, "cache", lst, expected)
        entries = check_peek(run_cli, config, "cache", stream, expected)
        headers = json.dumps([m["headers"] for m in entries.values()])
        assert "\\u001b[3" in headers  # hostile field names are shown, escaped
        for command in (
            ["queues", "--broker", "cache"],
            ["queues", "--broker", "cache", "--format", "json"],
            ["metrics", "--format", "table"],
            ["metrics", "--format", "prometheus"],
        ):
            result = run_cli(*command, "--config", str(config))
            assert result.returncode == 0, result.stderr[-2000:]
            out = assert_clean(result.stdout.encode(), " ".join(command))
            assert_clean(result.stderr.encode(), " ".join(command))
            assert prefix in out  # the hostile keys are listed, made visible
        # nothing was consumed by peeking
        assert client.llen(lst) == len(expected) and client.xlen(stream) == len(expected)
    finally:
        client.delete(lst, stream)
        client.close()


def test_hostile_rabbitmq_queue_through_the_cli(
    rabbitmq_broker: RabbitBroker, write_config, run_cli, unique
):
    broker = rabbitmq_broker
    queue = unique("hostile") + ".dlq"
    expected = bodies()
    conn = pika.BlockingConnection(
        pika.ConnectionParameters(
            host=broker.host,
            port=broker.amqp_port,
            credentials=pika.PlainCredentials(broker.user, broker.password),
        )
    )
    channel = conn.channel()
    try:
        channel.queue_declare(queue, durable=True)
        channel.confirm_delivery()
        for i, body in enumerate(expected):
            text = HOSTILE[i % 5].decode("utf-8", "replace")
            props = pika.BasicProperties(
                message_id=f"\x1b[2Jid-{i}\u202e",
                correlation_id="\x1b]0;corr\x07",
                content_type="text/\x1b[31mplain",
                app_id="\x9b\x07app",
                headers={
                    f"\x1b[3{i % 8}mkey": text,
                    "binary": b"\x00\x1b[2J\xff",
                    "nested": {"\x1b]52;c;x\x07": ["\u202e", 7]},
                    "x-death": [
                        {
                            "reason": "rejected\x1b[2J",
                            "queue": "orders\x1b]0;t\x07",
                            "count": 2,
                            "exchange": "",
                            "routing-keys": ["orders\x07"],
                        }
                    ],
                },
            )
            channel.basic_publish("", queue, body, props)
        config = write_config(
            f"""
            brokers:
              - name: rabbit
                type: rabbitmq
                url: "{broker.amqp_url}"
                management_url: "{broker.management_url}"
                include: ["{queue}"]
            """
        )
        shown = check_peek(run_cli, config, "rabbit", queue, expected)
        message = shown[HOSTILE[0]]
        assert message["properties"]["message_id"] == "\x1b[2Jid-0\u202e"  # exact in JSON
        assert message["death"]["reason"] == "rejected\x1b[2J"
        # nothing was consumed by peeking
        assert channel.queue_declare(queue, passive=True).method.message_count == len(expected)
    finally:
        channel.queue_delete(queue)
        conn.close()
