"""RabbitMQ peek / replay / move / purge through the real CLI, against the real broker."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pika
import pytest

from tests.support.rabbit import Rabbit, broker_config, rabbit_session, wait_until
from tests.support.reports import move_report

pytestmark = pytest.mark.broker


@pytest.fixture
def rabbit(rabbitmq_broker, unique):
    yield from rabbit_session(rabbitmq_broker, unique)


def _dlx_pair(rabbit: Rabbit, prefix: str, source_args=None, dlq_args=None) -> tuple[str, str]:
    """A source queue dead-lettering into a DLQ through a direct exchange."""
    dlx = rabbit.exchange(prefix + ".dlx", "direct")
    src = rabbit.queue(
        prefix + ".work",
        arguments={
            "x-dead-letter-exchange": dlx,
            "x-dead-letter-routing-key": "dead",
            **(source_args or {}),
        },
    )
    dlq = rabbit.queue(prefix + ".parked", arguments=dlq_args or {})
    rabbit.bind(dlx, dlq, "dead")
    return src, dlq


def _reject_all(rabbit: Rabbit, queue: str, count: int) -> None:
    conn = rabbit.connect()
    channel = conn.channel()
    for _ in range(count):
        method = wait_until(lambda: channel.basic_get(queue)[0], 10, "message to reject")
        channel.basic_reject(method.delivery_tag, requeue=False)
    conn.close()
    rabbit.connections.remove(conn)


def _config(
    write_config, rabbitmq_broker, prefix: str, extra: str = "", name: str = "mqtop.yaml"
) -> Path:
    return write_config(broker_config(rabbitmq_broker, [prefix + "*"], extra), name)


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
def test_peek_never_consumes(rabbit: Rabbit, rabbitmq_broker, write_config, run_cli, queue_type):
    p = rabbit.unique("peek")
    args = {"x-queue-type": queue_type}
    src, dlq = _dlx_pair(rabbit, p, source_args=args, dlq_args=args)
    conn = rabbit.connect()
    channel = conn.channel()
    binary = bytes(range(256))
    for i in range(5):
        body = binary if i == 1 else f'{{"n": {i}}}'.encode()
        channel.basic_publish(
            "", src, body, pika.BasicProperties(message_id=f"id-{i}", content_type="x/y")
        )
    _reject_all(rabbit, src, 5)
    wait_until(lambda: rabbit.ready(dlq) == 5, 10, "dead letters")
    path = _config(write_config, rabbitmq_broker, p)

    result = run_cli(
        "dlq", "peek", "--config", str(path), "rabbit", dlq, "-n", "3", "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    assert "redelivered" in result.stderr  # the side effect is told before peeking
    # the warning names the side effects of this queue's type only
    assert ("x-delivery-limit" in result.stderr) == (queue_type == "quorum")
    items = json.loads(result.stdout)
    assert [m["id"] for m in items] == ["id-0", "id-1", "id-2"]
    assert rabbit.ready(dlq) == 5  # nothing consumed
    first, second = items[0], items[1]
    assert first["body"] == '{"n": 0}' and first["body_encoding"] == "utf8"
    assert second["body_encoding"] == "base64"
    assert base64.b64decode(second["body"]) == binary and second["size"] == 256
    assert first["death"] == {"reason": "rejected", "count": 1, "original_queue": src}
    assert first["properties"]["content_type"] == "x/y"
    assert first["headers"]["x-first-death-queue"] == src

    # again, more than there are: all five, still in order, still all there
    again = run_cli(
        "dlq", "peek", "--config", str(path), "rabbit", dlq, "-n", "50", "--format", "json"
    )
    assert again.returncode == 0, again.stderr
    ids = [m["id"] for m in json.loads(again.stdout)]
    if queue_type == "classic":
        assert ids == [f"id-{i}" for i in range(5)]  # back in their places
    else:
        # RabbitMQ 3.x quorum queues put returned messages behind the others (said in the
        # peek notice); none is lost
        assert sorted(ids) == [f"id-{i}" for i in range(5)]
    assert rabbit.ready(dlq) == 5

    table = run_cli("dlq", "peek", "--config", str(path), "rabbit", dlq)
    assert table.returncode == 0, table.stderr
    assert "rejected x1" in table.stdout and "hex:00 01 02" in table.stdout


def test_peek_never_lets_the_quorum_delivery_limit_drop_a_message(
    rabbit: Rabbit, rabbitmq_broker, write_config, run_cli, tmp_path
):
    """On a quorum queue with x-delivery-limit 2, a third requeue drops a message (checked
    here first, without mqtop). Peeked again and again, no message may go: one that has used
    its attempts is re-published (confirmed) before the original is acknowledged."""
    p = rabbit.unique("qlim")
    args = {"x-queue-type": "quorum", "x-delivery-limit": 2}
    probe = rabbit.queue(p + ".probe", arguments=args)
    dlq = rabbit.queue(p + ".parked", arguments=args)
    conn = rabbit.connect()
    channel = conn.channel()
    channel.confirm_delivery()
    channel.basic_publish("", probe, b"doomed")
    for _ in range(3):
        method, _props, _body = wait_until(lambda: channel.basic_get(probe), 10, "probe")
        channel.basic_nack(method.delivery_tag, requeue=True)
    wait_until(lambda: rabbit.ready(probe) == 0, 10, "the broker dropping the probe")
    for i in range(3):
        props = pika.BasicProperties(message_id=f"q{i}", headers={"tenant": "acme"})
        channel.basic_publish("", dlq, b"precious %d" % i, props)
    wait_until(lambda: rabbit.ready(dlq) == 3, 10, "published")
    path = _config(write_config, rabbitmq_broker, p)
    peek = ("dlq", "peek", "--config", str(path), "rabbit", dlq, "-n", "10", "--format", "json")

    notes: list[str] = []
    for _ in range(5):
        result = run_cli(*peek)
        assert result.returncode == 0, result.stderr
        assert "delivery limit of 2" in result.stderr  # said before peeking
        assert sorted(m["id"] for m in json.loads(result.stdout)) == ["q0", "q1", "q2"]
        notes += [line for line in result.stderr.splitlines() if line.startswith("note: message")]
        wait_until(lambda: rabbit.ready(dlq) == 3, 10, "every message back")
    assert len(notes) >= 3 and all("re-published" in n for n in notes), notes
    audit = [
        json.loads(line) for line in (tmp_path / "state/mqtop/audit.jsonl").read_text().splitlines()
    ]
    assert [r["action"] for r in audit] and {r["action"] for r in audit} == {"peek"}
    assert sum(r["count"] for r in audit) == len(notes)

    # a readonly broker cannot re-publish: such a peek is refused up front, nothing touched
    ro = _config(write_config, rabbitmq_broker, p, "    readonly: true\n", "ro.yaml")
    refused = run_cli(*peek[:2], "--config", str(ro), *peek[4:])
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "readonly" in refused.stderr and "Traceback" not in refused.stderr
    assert rabbit.ready(dlq) == 3

    # the copies are the messages: same body, id and headers, plus why mqtop re-published
    # them. Read by consuming (auto-ack): any read that puts them back uses an attempt up
    got = rabbit.connect().channel()
    seen = {}
    for _ in range(3):
        method, props, body = got.basic_get(dlq, auto_ack=True)
        assert method is not None
        seen[props.message_id] = (body, props.headers)
    assert {k: v[0] for k, v in seen.items()} == {f"q{i}": b"precious %d" % i for i in range(3)}
    kept = [h for _b, h in seen.values() if "x-mqtop-kept" in h]
    assert kept and all(h["tenant"] == "acme" for h in kept)
    assert all(h["x-mqtop-kept"]["reason"] == "delivery-limit" for h in kept)


def test_filtered_move_keeps_skipped_messages_at_the_delivery_limit(
    rabbit: Rabbit, rabbitmq_broker, write_config, run_cli, tmp_path
):
    """A filtered move puts the skipped messages back; on a quorum source whose messages have
    used their delivery attempts, that would drop them. They are re-published instead."""
    p = rabbit.unique("qmv")
    src = rabbit.queue(p + ".parked", arguments={"x-queue-type": "quorum", "x-delivery-limit": 2})
    dst = rabbit.queue(p + ".work")
    conn = rabbit.connect()
    channel = conn.channel()
    channel.confirm_delivery()
    for i in range(30):
        body = json.dumps({"n": i, "kind": "a" if i % 3 == 0 else "b"}).encode()
        channel.basic_publish("", src, body, pika.BasicProperties(message_id=f"m{i}"))
    wait_until(lambda: rabbit.ready(src) == 30, 10, "published")
    for _ in range(2):  # every message has now used both attempts: one more requeue drops it
        for _ in range(30):
            assert channel.basic_get(src)[0] is not None
        channel.basic_nack(delivery_tag=0, multiple=True, requeue=True)
        wait_until(lambda: rabbit.ready(src) == 30, 10, "requeued")
    path = _config(write_config, rabbitmq_broker, p)
    base = ("dlq", "move", "--config", str(path), "rabbit", src, dst, "--format", "json")

    ro = _config(write_config, rabbitmq_broker, p, "    readonly: true\n", "ro.yaml")
    refused = run_cli(*base[:2], "--config", str(ro), *base[4:], "--dry-run",
                      "--filter", "json.kind=a")  # fmt: skip
    assert refused.returncode == 2 and "readonly" in refused.stderr, refused.stderr
    assert rabbit.ready(src) == 30

    moved = run_cli(*base, "--yes", "--batch", "4", "--filter", "json.kind=a")
    assert moved.returncode == 0, moved.stderr
    doc = move_report(moved)
    assert (doc["moved"], doc["skipped"], doc["failed"]) == (10, 20, 0), doc
    assert any("re-published" in note for note in doc["notes"]), doc["notes"]
    wait_until(lambda: rabbit.ready(src) == 20, 10, "every skipped message still in the source")
    assert sorted(rabbit.snapshot_ids(dst)) == sorted(f"m{i}" for i in range(0, 30, 3))
    record = json.loads((tmp_path / "state/mqtop/audit.jsonl").read_text().splitlines()[-1])
    assert record["details"]["republished_to_source"] == 20
    # the copies start afresh: read them by consuming (a requeue would use an attempt)
    got = rabbit.connect().channel()
    left = {}
    for _ in range(20):
        method, props, _body = got.basic_get(src, auto_ack=True)
        assert method is not None
        left[props.message_id] = props.headers
    assert sorted(left) == sorted(f"m{i}" for i in range(30) if i % 3)
    assert all(h["x-mqtop-kept"]["delivery_limit"] == 2 for h in left.values())


def test_peek_stream_queue_has_no_side_effects(
    rabbit: Rabbit, rabbitmq_broker, write_config, run_cli
):
    p = rabbit.unique("st")
    stream = rabbit.queue(p + ".events", arguments={"x-queue-type": "stream"})
    conn = rabbit.connect()
    channel = conn.channel()
    for i in range(4):
        channel.basic_publish("", stream, b"e%d" % i, pika.BasicProperties(message_id=f"e{i}"))
    wait_until(lambda: rabbit.info(stream).get("messages") == 4, 30, "stream stats")
    path = _config(write_config, rabbitmq_broker, p)
    result = run_cli("dlq", "peek", "--config", str(path), "rabbit", stream, "--format", "json")
    assert result.returncode == 0, result.stderr
    assert "note:" not in result.stderr  # no side effect, so no warning
    assert [m["id"] for m in json.loads(result.stdout)] == ["e0", "e1", "e2", "e3"]


def test_replay_restores_every_message_with_properties_and_headers(
    rabbit: Rabbit, rabbitmq_broker, write_config, run_cli, tmp_path
):
    p = rabbit.unique("rp")
    src, dlq = _dlx_pair(rabbit, p, dlq_args={"x-queue-type": "quorum"})
    conn = rabbit.connect()
    channel = conn.channel()
    sent = {}
    for i in range(50):
        body = bytes(range(256)) + bytes([i]) if i % 5 == 0 else json.dumps({"n": i}).encode()
        props = pika.BasicProperties(
            content_type="application/octet-stream" if i % 5 == 0 else "application/json",
            content_encoding="identity",
            delivery_mode=2,
            priority=i % 10,
            correlation_id=f"corr-{i}",
            reply_to="replies",
            message_id=f"msg-{i:03d}",
            timestamp=1_700_000_000 + i,
            type="order.created",
            app_id="shop",
            headers={"tenant": "acme", "n": i, "nested": {"a": [1, "x"]}, "raw": b"\x00\xff"},
        )
        channel.basic_publish("", src, body, props)
        sent[props.message_id] = (body, props)
    _reject_all(rabbit, src, 50)
    wait_until(lambda: rabbit.ready(dlq) == 50, 15, "dead letters")
    # what the DLQ holds (headers now include x-death), read without consuming
    before = {}
    channel = conn.channel()
    while True:
        method, props, body = channel.basic_get(dlq, auto_ack=False)
        if method is None:
            break
        before[props.message_id] = (body, props)
    channel.basic_nack(delivery_tag=0, multiple=True, requeue=True)
    assert len(before) == 50

    path = _config(write_config, rabbitmq_broker, p)
    result = run_cli(
        "dlq", "replay", "--config", str(path), "rabbit", dlq, "--yes", "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc == {
        "source": dlq,
        "destination": src,  # found through the DLX bindings
        "moved": 50,
        "failed": 0,
        "skipped": 0,
        "dry_run": False,
        "duplicates_possible": 0,
    }
    assert rabbit.ready(dlq) == 0
    replayed = rabbit.drain(src)
    # (reading the quorum DLQ above reordered it: 3.x quorum queues requeue out of order)
    ids = [props.message_id for _, props, _ in replayed]
    assert sorted(ids) == [f"msg-{i:03d}" for i in range(50)]
    for _, props, body in replayed:
        original_body, original = sent[props.message_id]
        assert body == original_body
        for name in (
            "content_type",
            "content_encoding",
            "delivery_mode",
            "priority",
            "correlation_id",
            "reply_to",
            "message_id",
            "timestamp",
            "type",
            "app_id",
        ):
            assert getattr(props, name) == getattr(original, name), name
        headers = dict(props.headers)
        marker = headers.pop("x-mqtop-replay")
        assert marker["count"] == 1 and isinstance(marker["run"], str) and marker["time"]
        expected = dict(before[props.message_id][1].headers)
        expected.pop("x-delivery-count", None)  # set by the quorum DLQ on delivery
        assert headers == expected
        assert headers["tenant"] == "acme" and headers["raw"] == b"\x00\xff"
        assert headers["x-first-death-queue"] == src

    audit = [
        json.loads(line) for line in (tmp_path / "state/mqtop/audit.jsonl").read_text().splitlines()
    ]
    assert audit[-1]["action"] == "replay" and audit[-1]["count"] == 50
    assert audit[-1]["source"] == dlq and audit[-1]["destination"] == src


def test_unroutable_destination_leaves_messages_in_source(
    rabbit: Rabbit, rabbitmq_broker, write_config, run_cli
):
    p = rabbit.unique("ur")
    src = rabbit.queue(p + ".src")
    conn = rabbit.connect()
    channel = conn.channel()
    for i in range(20):
        channel.basic_publish("", src, b"m%d" % i, pika.BasicProperties(message_id=f"m{i}"))
    wait_until(lambda: rabbit.ready(src) == 20, 10, "published")
    path = _config(write_config, rabbitmq_broker, p)

    missing = run_cli(
        "dlq",
        "move",
        "--config",
        str(path),
        "rabbit",
        src,
        p + ".nowhere",
        "--yes",
        "--format",
        "json",
    )
    assert missing.returncode == 3, missing.stderr
    doc = move_report(missing)
    assert doc["moved"] == 0 and doc["failed"] == 20
    assert "does not exist" in doc["errors"][0]
    assert rabbit.ready(src) == 20

    # a destination that refuses publishes (full, reject-publish): the broker nacks them
    full = rabbit.queue(p + ".full", arguments={"x-max-length": 5, "x-overflow": "reject-publish"})
    refused = run_cli(
        "dlq", "move", "--config", str(path), "rabbit", src, full, "--yes", "--format", "json"
    )
    assert refused.returncode == 3, refused.stderr
    doc = json.loads(refused.stdout)
    assert doc["moved"] == 5 and doc["failed"] >= 1
    assert rabbit.ready(full) == 5
    assert rabbit.ready(src) == 15
    ids = rabbit.snapshot_ids(src) + rabbit.snapshot_ids(full)
    assert sorted(ids) == sorted(f"m{i}" for i in range(20))


def test_filter_limit_dry_run_confirmation_readonly_and_purge(
    rabbit: Rabbit, rabbitmq_broker, write_config, run_cli, tmp_path
):
    p = rabbit.unique("fl")
    src = rabbit.queue(p + ".src")
    dst = rabbit.queue(p + ".dst")
    conn = rabbit.connect()
    channel = conn.channel()
    for i in range(30):
        kind = "a" if i % 2 == 0 else "b"
        channel.basic_publish(
            "",
            src,
            json.dumps({"n": i, "kind": kind}).encode(),
            pika.BasicProperties(message_id=f"f{i}", headers={"tenant": "acme" if i < 10 else "x"}),
        )
    wait_until(lambda: rabbit.ready(src) == 30, 10, "published")
    path = _config(write_config, rabbitmq_broker, p)
    base = ("dlq", "move", "--config", str(path), "rabbit", src, dst, "--format", "json")

    dry = run_cli(*base, "--dry-run", "--filter", "json.kind=a")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["moved"] == 15 and json.loads(dry.stdout)["dry_run"] is True
    assert json.loads(dry.stdout)["skipped"] == 15
    assert rabbit.ready(src) == 30 and rabbit.ready(dst) == 0

    no_yes = run_cli(*base)
    assert no_yes.returncode == 2 and "--yes" in no_yes.stderr
    assert rabbit.ready(src) == 30

    moved = run_cli(
        *base, "--yes", "--filter", "header.tenant=acme", "--filter", "json.kind=b", "--limit", "3"
    )
    assert moved.returncode == 0, moved.stderr
    doc = json.loads(moved.stdout)
    assert doc["moved"] == 3
    assert rabbit.snapshot_ids(dst) == ["f1", "f3", "f5"]
    # the others are still there, in their original order
    assert rabbit.snapshot_ids(src) == [f"f{i}" for i in range(30) if i not in (1, 3, 5)]

    ro_path = _config(write_config, rabbitmq_broker, p, "    readonly: true\n", "ro.yaml")
    for args in (
        ("dlq", "move", "--config", str(ro_path), "rabbit", src, dst, "--yes"),
        ("dlq", "purge", "--config", str(ro_path), "rabbit", src, "--yes"),
    ):
        refused = run_cli(*args)
        assert refused.returncode == 2 and "readonly" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
    assert (
        run_cli("dlq", "peek", "--config", str(ro_path), "rabbit", src, "-n", "1").returncode == 0
    )
    assert rabbit.ready(src) == 27

    purged = run_cli(
        "dlq", "purge", "--config", str(path), "rabbit", src, "--yes", "--format", "json"
    )
    assert purged.returncode == 0, purged.stderr
    assert json.loads(purged.stdout) == {"queue": src, "purged": 27}
    assert rabbit.ready(src) == 0
    audit = [
        json.loads(line) for line in (tmp_path / "state/mqtop/audit.jsonl").read_text().splitlines()
    ]
    assert [(r["action"], r["count"]) for r in audit] == [("move", 3), ("purge", 27)]

    gone = run_cli("dlq", "purge", "--config", str(path), "rabbit", p + ".nope", "--yes")
    assert gone.returncode == 2 and "does not exist" in gone.stderr


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
def test_filter_skipping_many_windows_of_messages_still_moves_every_match(
    rabbit: Rabbit, rabbitmq_broker, write_config, run_cli, queue_type
):
    """Skipped messages stay unacked; they must not eat the prefetch of the consumer.

    RabbitMQ applies a new basic.qos only to later consumers: with 270 of 300 messages held
    back by the filter and a window of 8, the mover has to keep subscribing afresh.
    """
    p = rabbit.unique("fw")
    src = rabbit.queue(p + ".src", arguments={"x-queue-type": queue_type})
    dst = rabbit.queue(p + ".dst")
    conn = rabbit.connect()
    channel = conn.channel()
    for i in range(300):
        body = json.dumps({"n": i, "kind": "a" if i % 10 == 0 else "b"}).encode()
        channel.basic_publish("", src, body, pika.BasicProperties(message_id=f"w{i}"))
    wait_until(lambda: rabbit.ready(src) == 300, 10, "published")
    path = _config(write_config, rabbitmq_broker, p)
    moved = run_cli(
        "dlq", "move", "--config", str(path), "rabbit", src, dst, "--yes", "--format", "json",
        "--batch", "8", "--filter", "json.kind=a",
    )  # fmt: skip
    assert moved.returncode == 0, moved.stderr
    doc = move_report(moved)
    assert (doc["moved"], doc["skipped"], doc["failed"]) == (30, 270, 0), moved.stderr
    assert "no delivery" not in moved.stderr
    wait_until(lambda: rabbit.ready(src) == 270, 10, "skipped messages back in the source")
    assert rabbit.snapshot_ids(dst) == [f"w{i}" for i in range(0, 300, 10)]
    assert sorted(rabbit.snapshot_ids(src)) == sorted(f"w{i}" for i in range(300) if i % 10)


@pytest.mark.parametrize("management", [True, False])
def test_large_messages_move_within_a_small_byte_window(
    rabbit: Rabbit, rabbitmq_broker, write_config, run_cli, management
):
    """64 KB messages with ``move_window_bytes`` of 256 KiB: a window of 4 messages.

    With the management API the size is known at the start; without it the mover starts
    small and fits the window to the sizes it sees, replacing its consumer as it goes.
    """
    p = rabbit.unique("big")
    src = rabbit.queue(p + ".src")
    dst = rabbit.queue(p + ".dst")
    conn = rabbit.connect()
    channel = conn.channel()
    for i in range(300):
        body = bytes([i % 251]) * (64 * 1024)
        channel.basic_publish("", src, body, pika.BasicProperties(message_id=f"g{i}"))
    wait_until(lambda: rabbit.ready(src) == 300, 20, "published")
    extra = "    move_window_bytes: 262144\n"
    path = write_config(broker_config(rabbitmq_broker, [p + "*"], extra, management=management))
    moved = run_cli(
        "dlq", "move", "--config", str(path), "rabbit", src, dst, "--yes", "--format", "json"
    )
    assert moved.returncode == 0, moved.stderr
    doc = move_report(moved)
    assert (doc["moved"], doc["failed"], doc["duplicates_possible"]) == (300, 0, 0), doc
    # 256 KiB / 64 KiB: four messages in flight at a time, said in a note
    assert any("at most 4 were in flight" in note for note in doc["notes"]), doc["notes"]
    wait_until(lambda: rabbit.ready(dst) == 300, 10, "moved")
    assert rabbit.ready(src) == 0
    assert rabbit.snapshot_ids(dst) == [f"g{i}" for i in range(300)]
    got = rabbit.connect().channel()
    method, _props, body = got.basic_get(dst, auto_ack=False)
    assert method is not None and body == bytes([0]) * (64 * 1024)
    got.basic_nack(method.delivery_tag, requeue=True)


def test_move_in_and_across_vhosts(rabbit: Rabbit, rabbitmq_broker, write_config, run_cli):
    vhost = rabbit.vhost()
    rabbit.queue("a", vhost=vhost)
    rabbit.queue("b", vhost=vhost)
    p = rabbit.unique("xv")
    home = rabbit.queue(p + ".home")
    conn = rabbit.connect(vhost)
    channel = conn.channel()
    for i in range(10):
        channel.basic_publish("", "a", b"v%d" % i, pika.BasicProperties(message_id=f"v{i}"))
    wait_until(lambda: rabbit.ready("a", vhost) == 10, 10, "published")
    path = write_config(broker_config(rabbitmq_broker, [f"{vhost}/*", p + "*"]))
    inside = run_cli(
        "dlq",
        "move",
        "--config",
        str(path),
        "rabbit",
        f"{vhost}/a",
        f"{vhost}/b",
        "--yes",
        "--format",
        "json",
    )
    assert inside.returncode == 0, inside.stderr
    assert json.loads(inside.stdout)["moved"] == 10
    assert rabbit.ready("b", vhost) == 10
    across = run_cli(
        "dlq",
        "move",
        "--config",
        str(path),
        "rabbit",
        f"{vhost}/b",
        home,
        "--yes",
        "--format",
        "json",
    )
    assert across.returncode == 0, across.stderr
    assert json.loads(across.stdout)["source"] == f"{vhost}/b"
    assert rabbit.snapshot_ids(home) == [f"v{i}" for i in range(10)]
    assert rabbit.ready("b", vhost) == 0


def test_move_does_not_fan_out_cc_copies(rabbit: Rabbit, rabbitmq_broker, write_config, run_cli):
    """A CC header would make the broker copy the republished message to other queues."""
    p = rabbit.unique("cc")
    src = rabbit.queue(p + ".src")
    dst = rabbit.queue(p + ".dst")
    other = rabbit.queue(p + ".other")
    conn = rabbit.connect()
    channel = conn.channel()
    channel.basic_publish(
        "", src, b"hello", pika.BasicProperties(message_id="c1", headers={"CC": [other]})
    )
    wait_until(lambda: rabbit.ready(other) == 1 and rabbit.ready(src) == 1, 10, "cc copy")
    path = _config(write_config, rabbitmq_broker, p)
    result = run_cli(
        "dlq", "move", "--config", str(path), "rabbit", src, dst, "--yes", "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    doc = move_report(result)
    assert doc["moved"] == 1 and any("CC/BCC" in n for n in doc["notes"])
    assert rabbit.ready(other) == 1  # no second copy
    [(_, props, body)] = rabbit.drain(dst)
    assert body == b"hello" and "CC" not in props.headers
    assert props.headers["x-mqtop-replay"]["cc"] == [other]


def test_replay_without_management_api_uses_x_first_death_queue(
    rabbit: Rabbit, rabbitmq_broker, write_config, run_cli
):
    p = rabbit.unique("nm")
    src, dlq = _dlx_pair(rabbit, p)
    conn = rabbit.connect()
    channel = conn.channel()
    for i in range(3):
        channel.basic_publish("", src, b"x%d" % i, pika.BasicProperties(message_id=f"n{i}"))
    _reject_all(rabbit, src, 3)
    wait_until(lambda: rabbit.ready(dlq) == 3, 10, "dead letters")
    path = write_config(broker_config(rabbitmq_broker, [p + "*"], management=False))
    result = run_cli(
        "dlq", "replay", "--config", str(path), "rabbit", dlq, "--yes", "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["destination"] == src and doc["moved"] == 3
    assert sorted(rabbit.snapshot_ids(src)) == ["n0", "n1", "n2"]


def test_move_strips_a_foreign_user_id_and_keeps_it(
    rabbit: Rabbit, rabbitmq_broker, write_config, run_cli
):
    """RabbitMQ refuses a publish whose user_id is not the connecting user's: a message
    published by another user is moved with user_id dropped and kept in x-mqtop-replay."""
    p = rabbit.unique("uid")
    src = rabbit.queue(p + ".src")
    dst = rabbit.queue(p + ".dst")
    user, password = p.replace(".", "-") + "-alice", "alice-pw"
    rabbit.api("PUT", f"users/{user}", {"password": password, "tags": ""})
    try:
        rabbit.api("PUT", f"permissions/%2F/{user}", {"configure": "", "write": ".*", "read": ".*"})
        conn = pika.BlockingConnection(
            pika.ConnectionParameters(
                host=rabbitmq_broker.host,
                port=rabbitmq_broker.amqp_port,
                credentials=pika.PlainCredentials(user, password),
            )
        )
        try:
            channel = conn.channel()
            channel.confirm_delivery()
            channel.basic_publish(
                "", src, b"signed", pika.BasicProperties(message_id="u1", user_id=user)
            )
            channel.basic_publish("", src, b"plain", pika.BasicProperties(message_id="u2"))
        finally:
            conn.close()
        wait_until(lambda: rabbit.ready(src) == 2, 10, "published as another user")
        path = _config(write_config, rabbitmq_broker, p)
        result = run_cli(
            "dlq", "move", "--config", str(path), "rabbit", src, dst, "--yes", "--format", "json"
        )
        doc = move_report(result)
        assert (doc["moved"], doc["failed"]) == (2, 0), result.stderr
        assert any("user_id" in n for n in doc["notes"]), doc["notes"]
        moved = {props.message_id: (props, body) for _, props, body in rabbit.drain(dst)}
        signed, body = moved["u1"]
        assert body == b"signed" and signed.user_id is None
        assert signed.headers["x-mqtop-replay"]["user_id"] == user
        assert "user_id" not in moved["u2"][0].headers["x-mqtop-replay"]
        assert rabbit.ready(src) == 0
    finally:
        rabbit.api("DELETE", f"users/{user}")
