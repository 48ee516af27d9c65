"""Redis dead-letter actions (lists, streams, reclaim) against a real Redis server.

Most tests go through the real CLI (`python -m mqtop dlq ...`) and cross-check every outcome
with Redis's own view (LRANGE, XRANGE, XPENDING).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from tests.harness import RedisBroker

pytestmark = pytest.mark.broker

# every byte value, an empty item, escape sequences, invalid UTF-8, a large item
HOSTILE: list[bytes] = [
    bytes(range(256)),
    b"",
    b"\x1b[31mred\x1b[0m \x1b]0;pwned\x07 \xe2\x80\xae rtl",
    b"\xff\xfe not utf-8 \x00",
    b'{"order": 7, "kind": "bad"}',
    b"x" * 200_000,
]


@pytest.fixture
def r(redis_broker: RedisBroker):
    client = redis.Redis(host=redis_broker.host, port=redis_broker.port)
    created: list[str] = []
    yield client, created
    if created:
        client.delete(*created)
    client.close()


def config(write_config, broker: RedisBroker, prefix: str) -> Path:
    return write_config(
        f"""
        brokers:
          - name: cache
            type: redis
            url: "{broker.url}"
            lists: ["{prefix}*"]
            streams: ["{prefix}*"]
            channels: ["{prefix}chan*"]
        """
    )


def head_first(client: redis.Redis, key: str, head: str = "right") -> list[bytes]:
    """The list as its consumers would pop it."""
    items = client.lrange(key, 0, -1)
    return items[::-1] if head == "right" else items


def ok_json(result) -> dict | list:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


def test_peek_list_head_first_hostile_payloads_never_consumes(
    r, redis_broker, write_config, run_cli, unique
):
    client, created = r
    prefix = unique("peek") + ":"
    dead = prefix + "jobs:dead"
    created.append(dead)
    client.lpush(dead, *HOSTILE)  # LPUSH producers: HOSTILE[0] is at the head (right end)
    path = config(write_config, redis_broker, prefix)

    doc = ok_json(
        run_cli("dlq", "peek", "cache", dead, "-n", "10", "--format", "json", "--config", str(path))
    )
    assert [m["size"] for m in doc] == [len(b) for b in HOSTILE]
    assert doc[0]["body_encoding"] == "base64"
    assert doc[3]["body_encoding"] == "base64"
    assert doc[2]["body_encoding"] == "utf8" and doc[2]["body"] == HOSTILE[2].decode()
    assert doc[4]["body"] == HOSTILE[4].decode() and doc[4]["death"] is None
    assert doc[5].get("truncated") is True  # 200 kB body over the 64 kB default
    assert [m["id"] for m in doc] == [str(i) for i in range(len(HOSTILE))]

    table = run_cli("dlq", "peek", "cache", dead, "--config", str(path))
    assert table.returncode == 0, table.stderr
    assert (
        "\x1b" not in table.stdout and "\u202e" not in table.stdout and "\x07" not in table.stdout
    )
    assert client.lrange(dead, 0, -1) == list(reversed(HOSTILE))  # nothing consumed

    # the same list read by an RPUSH/BLPOP (left head) configuration
    left = write_config(
        f"""
        brokers:
          - {{name: cache, type: redis, url: "{redis_broker.url}", list_head: left}}
        """,
        name="left.yaml",
    )
    doc = ok_json(
        run_cli("dlq", "peek", "cache", dead, "-n", "2", "--format", "json", "--config", str(left))
    )
    assert [m["size"] for m in doc] == [len(HOSTILE[-1]), len(HOSTILE[-2])]


def test_replay_list_restores_exact_bytes_in_order(
    r, redis_broker, write_config, run_cli, unique, tmp_path
):
    client, created = r
    prefix = unique("replay") + ":"
    jobs, dead = prefix + "jobs", prefix + "jobs:dead"
    created += [jobs, dead]
    client.lpush(jobs, b"waiting-1", b"waiting-2")
    items = [*HOSTILE, *(f"job-{i}".encode() for i in range(3000))]
    client.lpush(dead, *items)
    path = config(write_config, redis_broker, prefix)

    # target from the naming convention (jobs:dead -> jobs)
    doc = ok_json(
        run_cli("dlq", "replay", "cache", dead, "--yes", "--format", "json", "--config", str(path))
    )
    assert doc["source"] == dead and doc["destination"] == jobs
    assert (doc["moved"], doc["failed"], doc["skipped"]) == (len(items), 0, 0)
    assert doc["dry_run"] is False and doc["duplicates_possible"] == 0
    assert not client.exists(dead)
    # consumers of jobs see what was waiting, then the dead letters in their original order
    assert head_first(client, jobs) == [b"waiting-1", b"waiting-2", *items]

    audit = (tmp_path / "state" / "mqtop" / "audit.jsonl").read_text().splitlines()
    record = json.loads(audit[-1])
    assert (record["action"], record["source"], record["destination"], record["count"]) == (
        "replay",
        dead,
        jobs,
        len(items),
    )
    assert record["result"] == "ok"


def test_left_head_move_limit_and_dry_run(r, redis_broker, write_config, run_cli, unique):
    client, created = r
    prefix = unique("left") + ":"
    src, dst = prefix + "failed", prefix + "retry"
    created += [src, dst]
    client.rpush(src, *(f"m{i}".encode() for i in range(50)))  # RQ style: RPUSH / BLPOP
    path = write_config(
        f"""
        brokers:
          - {{name: cache, type: redis, url: "{redis_broker.url}", list_head: left}}
        """
    )
    dry = ok_json(
        run_cli(
            "dlq",
            "move",
            "cache",
            src,
            dst,
            "--dry-run",
            "--limit",
            "20",
            "--format",
            "json",
            "--config",
            str(path),
        )
    )
    assert (dry["moved"], dry["dry_run"]) == (20, True)
    assert client.llen(src) == 50 and not client.exists(dst)

    doc = ok_json(
        run_cli(
            "dlq",
            "move",
            "cache",
            src,
            dst,
            "--limit",
            "20",
            "--yes",
            "--format",
            "json",
            "--config",
            str(path),
        )
    )
    assert doc["moved"] == 20
    assert client.lrange(dst, 0, -1) == [f"m{i}".encode() for i in range(20)]
    assert client.lrange(src, 0, -1) == [f"m{i}".encode() for i in range(20, 50)]


def test_filtered_moves_leave_non_matching_where_they_were(
    r, redis_broker, write_config, run_cli, unique
):
    client, created = r
    prefix = unique("filter") + ":"
    src, dst = prefix + "orders.dlq", prefix + "orders"
    ssrc, sdst = prefix + "events.dlq", prefix + "events"
    created += [src, dst, ssrc, sdst]
    items = [
        json.dumps({"n": i, "kind": "bad" if i % 3 == 0 else "ok"}).encode() for i in range(900)
    ]
    client.lpush(src, *items)
    for i in range(600):
        client.xadd(ssrc, {"kind": "bad" if i % 4 == 0 else "ok", "n": i, "blob": b"\xff\x00"})
    path = config(write_config, redis_broker, prefix)

    doc = ok_json(
        run_cli(
            "dlq",
            "move",
            "cache",
            src,
            dst,
            "--filter",
            "json.kind=bad",
            "--batch",
            "64",
            "--yes",
            "--format",
            "json",
            "--config",
            str(path),
        )
    )
    bad = [b for b in items if b'"bad"' in b]
    good = [b for b in items if b'"bad"' not in b]
    assert (doc["moved"], doc["skipped"], doc["failed"]) == (len(bad), len(good), 0)
    assert head_first(client, dst) == bad
    assert head_first(client, src) == good  # untouched, same order

    before = client.xrange(ssrc)
    doc = ok_json(
        run_cli(
            "dlq",
            "move",
            "cache",
            ssrc,
            sdst,
            "--filter",
            "header.kind=bad",
            "--batch",
            "50",
            "--yes",
            "--format",
            "json",
            "--config",
            str(path),
        )
    )
    moved_src = [(i, f) for i, f in before if f[b"kind"] == b"bad"]
    kept = [(i, f) for i, f in before if f[b"kind"] != b"bad"]
    assert (doc["moved"], doc["skipped"]) == (len(moved_src), len(kept))
    assert client.xrange(ssrc) == kept  # same ids, same fields
    assert [f for _, f in client.xrange(sdst)] == [f for _, f in moved_src]  # move: verbatim


def test_stream_peek_and_replay_restore_fields_and_clear_pending(
    r, redis_broker, write_config, run_cli, unique
):
    client, created = r
    prefix = unique("stream") + ":"
    stream, dead = prefix + "payments", prefix + "payments-dlq"
    created += [stream, dead]
    entries = []
    for i in range(1200):
        fields = {"body": HOSTILE[i % len(HOSTILE)][:1000], "n": str(i)}
        entries.append((client.xadd(dead, fields), fields))
    single = client.xadd(dead, {"only": b"\xde\xad\xbe\xef"})
    # a DLQ consumer group that holds some entries pending: replay must acknowledge them
    client.xgroup_create(dead, "inspectors", id="0")
    client.xreadgroup("inspectors", "i1", {dead: ">"}, count=100)
    client.xadd(stream, {"body": b"already-there", "n": "-1"})
    path = config(write_config, redis_broker, prefix)

    doc = ok_json(
        run_cli("dlq", "peek", "cache", dead, "-n", "3", "--format", "json", "--config", str(path))
    )
    assert [m["id"] for m in doc] == [e[0].decode() for e in entries[:3]]
    assert doc[0]["headers"]["n"] == "0"
    assert doc[0]["headers"]["body"] == {
        "base64": __import__("base64").b64encode(HOSTILE[0][:1000]).decode()
    }
    table = run_cli("dlq", "peek", "cache", dead, "-n", "2", "--config", str(path))
    assert table.returncode == 0 and "AGE" in table.stdout and "\x1b" not in table.stdout
    last = ok_json(
        run_cli(
            "dlq", "peek", "cache", dead, "-n", "2000", "--format", "json", "--config", str(path)
        )
    )[-1]
    assert last["id"] == single.decode()
    assert last["body_encoding"] == "base64" and last["size"] == 4  # single field: its value

    doc = ok_json(
        run_cli("dlq", "replay", "cache", dead, "--yes", "--format", "json", "--config", str(path))
    )
    assert (doc["destination"], doc["moved"], doc["failed"]) == (stream, len(entries) + 1, 0)
    replayed = client.xrange(stream)[1:]
    assert len(replayed) == len(entries) + 1
    for (old_id, fields), (_, new) in zip(
        [*entries, (single, {"only": b"\xde\xad\xbe\xef"})], replayed, strict=True
    ):
        marker = json.loads(new.pop(b"mqtop-replay"))
        assert marker["from"] == dead and marker["id"] == old_id.decode()
        assert new == {
            k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in fields.items()
        }
    assert client.xlen(dead) == 0
    assert client.xpending(dead, "inspectors")["pending"] == 0


def _pending_setup(client: redis.Redis, stream: str) -> tuple[list[bytes], list[bytes]]:
    """20 pending entries: 6 made idle for 10 minutes with 4 deliveries, 14 fresh."""
    ids = [client.xadd(stream, {"job": f"j{i}", "blob": b"\x00\xff"}) for i in range(25)]
    client.xgroup_create(stream, "workers", id="0")
    client.xreadgroup("workers", "w1", {stream: ">"}, count=10)
    client.xreadgroup("workers", "w2", {stream: ">"}, count=10)
    stuck = [ids[1], ids[4], ids[7], ids[12], ids[15], ids[19]]
    for eid in stuck:
        owner = "w1" if ids.index(eid) < 10 else "w2"
        client.xclaim(stream, "workers", owner, 0, [eid], idle=600_000, retrycount=4, justid=True)
    fresh = [i for i in ids[:20] if i not in stuck]
    return stuck, fresh


def test_reclaim_lists_moves_and_hands_over_exactly_the_stuck_entries(
    r, redis_broker, write_config, run_cli, unique
):
    client, created = r
    prefix = unique("reclaim") + ":"
    stream, dead = prefix + "tasks", prefix + "tasks:dead"
    created += [stream, dead]
    stuck, fresh = _pending_setup(client, stream)
    path = config(write_config, redis_broker, prefix)

    listing = ok_json(
        run_cli(
            "dlq",
            "reclaim",
            "cache",
            stream,
            "--group",
            "workers",
            "--idle",
            "5m",
            "--format",
            "json",
            "--config",
            str(path),
        )
    )
    assert [e["id"] for e in listing["entries"]] == [s.decode() for s in stuck]
    assert {e["deliveries"] for e in listing["entries"]} == {4}
    assert all(e["idle_ms"] >= 600_000 for e in listing["entries"])
    assert (listing["pending"], listing["stuck"]) == (20, 6)
    assert "moved" not in listing and "claimed" not in listing

    text = run_cli(
        "dlq",
        "reclaim",
        "cache",
        stream,
        "--group",
        "workers",
        "--idle",
        "5m",
        "--config",
        str(path),
    )
    assert text.returncode == 0 and "DELIVERIES" in text.stdout and "stuck=6" in text.stdout

    dry = ok_json(
        run_cli(
            "dlq",
            "reclaim",
            "cache",
            stream,
            "--group",
            "workers",
            "--idle",
            "5m",
            "--to",
            dead,
            "--dry-run",
            "--format",
            "json",
            "--config",
            str(path),
        )
    )
    assert dry["stuck"] == 6 and client.xpending(stream, "workers")["pending"] == 20
    assert not client.exists(dead)

    # move 4 of them (--limit), then the rest
    doc = ok_json(
        run_cli(
            "dlq",
            "reclaim",
            "cache",
            stream,
            "--group",
            "workers",
            "--idle",
            "5m",
            "--to",
            dead,
            "--limit",
            "4",
            "--yes",
            "--format",
            "json",
            "--config",
            str(path),
        )
    )
    assert (doc["moved"], doc["failed"], doc["skipped"]) == (4, 0, 0)
    doc = ok_json(
        run_cli(
            "dlq",
            "reclaim",
            "cache",
            stream,
            "--group",
            "workers",
            "--idle",
            "5m",
            "--to",
            dead,
            "--yes",
            "--format",
            "json",
            "--config",
            str(path),
        )
    )
    assert doc["moved"] == 2
    pending = client.xpending_range(stream, "workers", "-", "+", 100)
    assert [p["message_id"] for p in pending] == fresh  # XPENDING agrees
    assert client.xpending_range(stream, "workers", "-", "+", 100, idle=300_000) == []
    assert client.xlen(stream) == 25  # other groups may still need the entries

    moved = client.xrange(dead)
    assert len(moved) == 6
    for (_, fields), eid in zip(moved, stuck, strict=True):
        marker = json.loads(fields.pop(b"mqtop-dead-letter"))
        assert (marker["stream"], marker["group"], marker["id"]) == (
            stream,
            "workers",
            eid.decode(),
        )
        assert marker["deliveries"] == 4
        assert fields == client.xrange(stream, eid, eid)[0][1]
    peek = ok_json(run_cli("dlq", "peek", "cache", dead, "--format", "json", "--config", str(path)))
    assert peek[0]["death"] == {
        "reason": peek[0]["death"]["reason"],
        "count": 4,
        "original_queue": stream,
    }
    # replaying the dead-letter stream finds its way back through the marker
    doc = ok_json(
        run_cli(
            "dlq", "replay", "cache", dead, "--dry-run", "--format", "json", "--config", str(path)
        )
    )
    assert (doc["destination"], doc["moved"]) == (stream, 6)

    # hand over: make three fresh entries stuck, give them to a rescuer
    for eid in fresh[:3]:
        client.xclaim(stream, "workers", "w1", 0, [eid], idle=900_000, justid=True)
    doc = ok_json(
        run_cli(
            "dlq",
            "reclaim",
            "cache",
            stream,
            "--group",
            "workers",
            "--idle",
            "10m",
            "--consumer",
            "rescuer",
            "--yes",
            "--format",
            "json",
            "--config",
            str(path),
        )
    )
    assert doc["claimed"] == 3 and [e["id"] for e in doc["entries"]] == [
        f.decode() for f in fresh[:3]
    ]
    owners = {
        p["message_id"]: p["consumer"]
        for p in client.xpending_range(stream, "workers", "-", "+", 100)
    }
    assert [owners[f] for f in fresh[:3]] == [b"rescuer"] * 3
    assert {owners[f] for f in fresh[3:]} <= {b"w1", b"w2"}

    bad = run_cli(
        "dlq", "reclaim", "cache", stream, "--group", "nope", "--idle", "1m", "--config", str(path)
    )
    assert bad.returncode == 2 and "NOGROUP" in bad.stderr and "Traceback" not in bad.stderr


def test_channels_and_wrong_types_refused_with_exit_2(
    r, redis_broker, write_config, run_cli, unique
):
    client, created = r
    prefix = unique("chan") + ":"
    chan, hashkey, target = prefix + "chan-orders", prefix + "h", prefix + "t"
    created += [hashkey, target]
    client.hset(hashkey, "a", "1")
    path = config(write_config, redis_broker, prefix)
    for args in (
        ("peek", "cache", chan),
        ("replay", "cache", chan, "--to", target, "--yes"),
        ("move", "cache", chan, target, "--yes"),
        ("purge", "cache", chan, "--yes"),
    ):
        result = run_cli("dlq", *args, "--config", str(path))
        assert result.returncode == 2, (args, result.stderr)
        assert "pub/sub channel" in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    result = run_cli("dlq", "peek", "cache", hashkey, "--config", str(path))
    assert result.returncode == 2 and "hash" in result.stderr
    assert not client.exists(target)


def test_readonly_confirmation_and_purge(r, redis_broker, write_config, run_cli, unique):
    client, created = r
    prefix = unique("purge") + ":"
    lst, stream = prefix + "q.dlq", prefix + "s.dlq"
    created += [lst, stream, prefix + "q"]
    client.rpush(lst, *[b"a"] * 30)
    for i in range(12):
        client.xadd(stream, {"i": i})
    client.xgroup_create(stream, "g", id="0")
    ro = write_config(
        f"""
        brokers:
          - {{name: cache, type: redis, url: "{redis_broker.url}", readonly: true}}
        """,
        name="ro.yaml",
    )
    result = run_cli("dlq", "purge", "cache", lst, "--yes", "--config", str(ro))
    assert result.returncode == 2 and "readonly" in result.stderr
    result = run_cli("dlq", "replay", "cache", lst, "--yes", "--config", str(ro))
    assert result.returncode == 2 and "readonly" in result.stderr
    path = config(write_config, redis_broker, prefix)
    result = run_cli("dlq", "purge", "cache", lst, "--config", str(path))  # no tty, no --yes
    assert result.returncode == 2 and "--yes" in result.stderr
    assert client.llen(lst) == 30

    assert ok_json(
        run_cli("dlq", "purge", "cache", lst, "--yes", "--format", "json", "--config", str(path))
    ) == {"queue": lst, "purged": 30}
    assert not client.exists(lst)
    assert ok_json(
        run_cli("dlq", "purge", "cache", stream, "--yes", "--format", "json", "--config", str(path))
    ) == {"queue": stream, "purged": 12}
    assert client.xlen(stream) == 0
    assert [g["name"] for g in client.xinfo_groups(stream)] == [b"g"]  # groups kept


def test_wrong_password_is_masked_and_exit_3(redis_broker, write_config, run_cli, unique):
    path = write_config(
        f"""
        brokers:
          - name: cache
            type: redis
            url: "redis://mqtopuser:s3cr3t-pa55@{redis_broker.host}:{redis_broker.port}/0"
        """
    )
    result = run_cli("dlq", "peek", "cache", unique("x"), "--config", str(path))
    assert result.returncode == 3, result.stderr
    assert "s3cr3t-pa55" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr and "cache" in result.stderr


def test_reclaim_reports_entries_deleted_while_pending(
    r, redis_broker, write_config, run_cli, unique
):
    client, created = r
    prefix = unique("missing") + ":"
    stream, dead = prefix + "tasks", prefix + "tasks.dlq"
    created += [stream, dead]
    stuck, _ = _pending_setup(client, stream)
    client.xdel(stream, stuck[0], stuck[3])  # trimmed away while still pending
    path = config(write_config, redis_broker, prefix)

    doc = ok_json(
        run_cli(
            "dlq",
            "reclaim",
            "cache",
            stream,
            "--group",
            "workers",
            "--idle",
            "5m",
            "--to",
            dead,
            "--limit",
            "3",
            "--yes",
            "--format",
            "json",
            "--config",
            str(path),
        )
    )
    assert [e["result"] for e in doc["entries"]] == ["missing", "moved", "moved"]
    assert (doc["moved"], doc["missing"]) == (2, 1)
    assert client.xlen(dead) == 2
    doc = ok_json(
        run_cli(
            "dlq",
            "reclaim",
            "cache",
            stream,
            "--group",
            "workers",
            "--idle",
            "5m",
            "--consumer",
            "fixer",
            "--yes",
            "--format",
            "json",
            "--config",
            str(path),
        )
    )
    assert [e["result"] for e in doc["entries"]] == ["missing", "claimed", "claimed"]
    left = client.xpending_range(stream, "workers", "-", "+", 100, consumername="fixer")
    assert [p["message_id"] for p in left] == [stuck[4], stuck[5]]
    assert all(p["times_delivered"] == 4 for p in left)  # the hand-over is not a delivery
    assert client.xpending(stream, "workers")["pending"] == 20 - 6 + 2
