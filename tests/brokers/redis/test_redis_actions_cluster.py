"""Redis actions on a Redis Cluster (cross-slot moves) and over TLS with an ACL user.

Both run on private redis-server processes started here (the shared broker is never
reconfigured): a single-node cluster owning all 16384 slots, and a TLS-only server with a
throw-away CA and an ACL user.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.crc import key_slot

from tests import harness
from tests.support.reports import move_report

pytestmark = pytest.mark.broker


def _redis_server() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise harness.BrokerUnavailable("redis-server is not installed")
    return binary


@pytest.fixture(scope="module")
def cluster_port(redis_broker) -> Iterator[int]:
    """A single-node Redis Cluster on a free port."""
    binary = _redis_server()
    port = harness.free_port()
    # the cluster bus listens on port + 10000
    while port > 55535 or harness.port_open("127.0.0.1", port + 10000):
        port = harness.free_port()
    workdir = Path(tempfile.mkdtemp(prefix="mqtop-redis-cluster-"))
    proc, log = harness._spawn(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--dir",
            str(workdir),
        ],
        workdir,
    )
    managed = harness.Managed(proc, workdir)
    try:
        harness.wait_for(
            lambda: harness.port_open("127.0.0.1", port), 15, "redis cluster", proc, log
        )
        client = redis.Redis(port=port)
        client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        harness.wait_for(
            lambda: b"cluster_state:ok" in client.execute_command("CLUSTER", "INFO"),
            15,
            "cluster state ok",
            proc,
            log,
        )
        client.close()
        yield port
    finally:
        managed.stop()


def _client_tls(ca: Path) -> dict[str, object]:
    """redis-py TLS arguments with the test CA and the client certificate."""
    return {
        "ssl": True,
        "ssl_ca_certs": str(ca),
        "ssl_certfile": str(ca.parent / "client.pem"),
        "ssl_keyfile": str(ca.parent / "client.key"),
    }


@pytest.fixture(scope="module")
def tls_server(redis_broker) -> Iterator[tuple[int, Path]]:
    """A TLS-only redis-server that requires a client certificate (``tls-auth-clients yes``,
    redis-server's default) with an ACL user ``mqtop`` (password ``tls-s3cret``)."""
    binary = _redis_server()
    workdir = Path(tempfile.mkdtemp(prefix="mqtop-redis-tls-"))

    harness.make_certificates(workdir, client=True)
    port = harness.free_port()
    proc, log = harness._spawn(
        [
            binary,
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--tls-cert-file",
            "server.pem",
            "--tls-key-file",
            "server.key",
            "--tls-ca-cert-file",
            "ca.pem",
            "--tls-auth-clients",
            "yes",
        ],
        workdir,
    )
    managed = harness.Managed(proc, workdir)
    try:
        harness.wait_for(lambda: harness.port_open("127.0.0.1", port), 15, "redis tls", proc, log)
        admin = redis.Redis(host="127.0.0.1", port=port, **_client_tls(workdir / "ca.pem"))
        deadline = time.monotonic() + 10
        while True:
            try:
                admin.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        admin.acl_setuser(
            "mqtop",
            enabled=True,
            passwords=["+tls-s3cret"],
            keys=["~*"],
            commands=["+@all"],
            channels=["*"],
        )
        admin.acl_setuser("default", enabled=False)
        admin.close()
        yield port, workdir / "ca.pem"
    finally:
        managed.stop()


def _cluster_config(write_config, port: int) -> Path:
    return write_config(
        f"""
        interval: 500ms
        brokers:
          - {{name: grid, type: redis, url: "redis://127.0.0.1:{port}/0", cluster: true}}
        """
    )


def _ok(result) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _moved(result) -> dict:
    """A replay/move result (SPEC §5 keys) with its notes and errors."""
    assert result.returncode == 0, result.stderr
    return move_report(result)


def test_cluster_cross_slot_and_same_slot_moves(cluster_port, write_config, run_cli, unique):
    client = redis.Redis(port=cluster_port)
    base = unique("cl")
    jobs, dead = base + ":jobs", base + ":jobs:dead"
    tagged, tagged_dead = "{" + base + "}:jobs", "{" + base + "}:jobs:dead"
    stream, sdead = base + ":events", base + ":events:dead"
    assert key_slot(jobs.encode()) != key_slot(dead.encode())
    assert key_slot(stream.encode()) != key_slot(sdead.encode())
    assert key_slot(tagged.encode()) == key_slot(tagged_dead.encode())
    path = _cluster_config(write_config, cluster_port)
    try:
        items = [bytes([i % 256]) * (i % 7) + str(i).encode() for i in range(2500)]
        client.lpush(dead, *items)
        client.lpush(jobs, b"first")
        doc = _moved(
            run_cli(
                "dlq", "replay", "grid", dead, "--yes", "--format", "json", "--config", str(path)
            )
        )
        assert (doc["destination"], doc["moved"], doc["failed"]) == (jobs, 2500, 0)
        assert doc["duplicates_possible"] == 0
        assert any("different cluster slots" in n for n in doc["notes"])
        assert client.lrange(jobs, 0, -1)[::-1] == [b"first", *items]
        assert not client.exists(dead)

        # a hash tag puts both keys in one slot: the atomic path (no note)
        client.lpush(tagged_dead, *items[:300])
        doc = _moved(
            run_cli(
                "dlq",
                "replay",
                "grid",
                tagged_dead,
                "--yes",
                "--format",
                "json",
                "--config",
                str(path),
            )
        )
        assert doc["moved"] == 300
        assert not any("slots" in n for n in doc.get("notes", []))
        assert client.lrange(tagged, 0, -1)[::-1] == items[:300]

        # streams across slots: fields survive, groups on the source are acknowledged
        sent = []
        for i in range(700):
            fields = {"n": str(i), "raw": bytes([i % 256, 0, 255])}
            sent.append(fields)
            client.xadd(sdead, fields)
        client.xgroup_create(sdead, "g", id="0")
        client.xreadgroup("g", "c", {sdead: ">"}, count=50)
        # pretend an earlier run died with 7 entries in flight: the rerun must say so
        journal = "mqtop:journal:{" + sdead + "}"
        assert key_slot(journal.encode()) == key_slot(sdead.encode())
        client.set(journal, json.dumps({"action": "move", "destination": stream, "count": 7}))
        doc = _moved(
            run_cli(
                "dlq",
                "move",
                "grid",
                sdead,
                stream,
                "--filter",
                "body:no-such-text",
                "--dry-run",
                "--format",
                "json",
                "--config",
                str(path),
            )
        )
        assert doc["moved"] == 0 and doc["skipped"] == 700
        doc = _moved(
            run_cli(
                "dlq",
                "replay",
                "grid",
                sdead,
                "--yes",
                "--batch",
                "64",
                "--format",
                "json",
                "--config",
                str(path),
            )
        )
        assert (doc["destination"], doc["moved"], doc["duplicates_possible"]) == (stream, 700, 7)
        assert any("interrupted" in n for n in doc["notes"])
        assert not client.exists(journal)
        got = client.xrange(stream)
        for (_, new), fields in zip(got, sent, strict=True):
            marker = json.loads(new.pop(b"mqtop-replay"))
            assert marker["from"] == sdead
            assert new == {
                k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in fields.items()
            }
        assert client.xlen(sdead) == 0 and client.xpending(sdead, "g")["pending"] == 0

        # reclaim across slots
        client.xgroup_create(stream, "w", id="$")
        ids = [client.xadd(stream, {"job": str(i)}) for i in range(5)]
        client.xreadgroup("w", "c1", {stream: ">"})
        client.xclaim(stream, "w", "c1", 0, ids[:2], idle=3_600_000, justid=True)
        doc = _ok(
            run_cli(
                "dlq",
                "reclaim",
                "grid",
                stream,
                "--group",
                "w",
                "--idle",
                "30m",
                "--to",
                sdead,
                "--yes",
                "--format",
                "json",
                "--config",
                str(path),
            )
        )
        assert doc["moved"] == 2 and doc["duplicates_possible"] == 0
        assert [json.loads(f[b"mqtop-dead-letter"])["id"] for _, f in client.xrange(sdead)] == [
            i.decode() for i in ids[:2]
        ]
        assert client.xpending_range(stream, "w", "-", "+", 1000, idle=1_800_000) == []

        # the collector reads the cluster too
        doc = _ok(run_cli("metrics", "--format", "json", "--config", str(path)))
        assert doc["brokers"][0]["up"] is True
        series = {(x["queue"], x["group"]): x for x in doc["series"]}
        assert series[(jobs, None)]["metrics"]["queue_length"] == client.llen(jobs)
        assert series[(stream, "w")]["metrics"]["in_flight"] == 3
    finally:
        for key in (jobs, dead, tagged, tagged_dead, stream, sdead):
            client.delete(key)
        client.close()


def test_tls_with_acl_user_and_masked_secrets(tls_server, write_config, run_cli, unique):
    port, ca = tls_server
    key = unique("tls") + ":q.dlq"
    admin = redis.Redis(
        host="127.0.0.1", port=port, username="mqtop", password="tls-s3cret", **_client_tls(ca)
    )
    client_cert = f'cert_file: "{ca.parent / "client.pem"}", key_file: "{ca.parent / "client.key"}"'
    admin.rpush(key, b"\x00secret-free payload")
    good = write_config(
        f"""
        brokers:
          - name: secure
            type: redis
            url: "rediss://127.0.0.1:{port}/0"
            username: mqtop
            password: "${{MQTOP_TEST_REDIS_PW}}"
            ca_file: "{ca}"
            cert_file: "{ca.parent / "client.pem"}"
            key_file: "{ca.parent / "client.key"}"
        """,
        name="tls.yaml",
    )
    env = {"MQTOP_TEST_REDIS_PW": "tls-s3cret"}
    try:
        doc = run_cli(
            "dlq", "peek", "secure", key, "--format", "json", "--config", str(good), env=env
        )
        assert doc.returncode == 0, doc.stderr
        assert json.loads(doc.stdout)[0]["size"] == 20
        moved = _moved(
            run_cli(
                "dlq",
                "replay",
                "secure",
                key,
                "--yes",
                "--format",
                "json",
                "--config",
                str(good),
                env=env,
            )
        )
        assert moved["moved"] == 1 and admin.lrange(key[:-4], 0, -1) == [b"\x00secret-free payload"]
        shown = run_cli("config", "show", "--config", str(good), env=env)
        assert shown.returncode == 0 and "tls-s3cret" not in shown.stdout

        # without the CA the certificate is not trusted: verification stays on (exit 3)
        untrusted = write_config(
            f"""
            brokers:
              - {{name: secure, type: redis, url: "rediss://mqtop:tls-s3cret@127.0.0.1:{port}/0",
                  {client_cert}}}
            """,
            name="untrusted.yaml",
        )
        result = run_cli("dlq", "peek", "secure", key, "--config", str(untrusted))
        assert result.returncode == 3
        assert "tls-s3cret" not in result.stderr + result.stdout
        assert "certificate" in result.stderr.lower() and "Traceback" not in result.stderr
        # a wrong password is reported, masked
        wrong = write_config(
            f"""
            brokers:
              - {{name: secure, type: redis, url: "rediss://mqtop:nope-n0pe@127.0.0.1:{port}/0",
                  ca_file: "{ca}", {client_cert}}}
            """,
            name="wrong.yaml",
        )
        result = run_cli("dlq", "purge", "secure", key, "--yes", "--config", str(wrong))
        assert result.returncode == 3 and "authentication" in result.stderr
        assert "nope-n0pe" not in result.stderr + result.stdout
        # the server requires a client certificate: without one, one line, exit 3
        admin.rpush(key, b"stays")
        bare = write_config(
            f"""
            brokers:
              - {{name: secure, type: redis, url: "rediss://mqtop:tls-s3cret@127.0.0.1:{port}/0",
                  ca_file: "{ca}"}}
            """,
            name="bare.yaml",
        )
        result = run_cli("dlq", "purge", "secure", key, "--yes", "--config", str(bare))
        assert result.returncode == 3, result.stdout + result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert "tls-s3cret" not in result.stderr + result.stdout
        assert admin.llen(key) == 1  # nothing purged
    finally:
        admin.delete(key)
        admin.delete(key[:-4])
        admin.close()
