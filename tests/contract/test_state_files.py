"""mqtop's own files under hostile conditions, through the real CLI against a real Redis: a
damaged history database, a full disk, and an audit log that is a symbolic link."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest
import redis

from tests.harness import RedisBroker
from tests.support.serve import Serve, scrape, wait_until

pytestmark = pytest.mark.broker


def _config(write_config, redis_broker: RedisBroker, prefix: str, history: Path) -> Path:
    return write_config(
        f"""
        interval: 300ms
        timeout: 2s
        history: {{path: "{history}"}}
        brokers:
          - {{name: cache, type: redis, url: "{redis_broker.url}", lists: ["{prefix}*"],
             streams: []}}
        alerts:
          - {{name: Backlog, metric: queue_length, op: ">", threshold: 100}}
        """
    )


@pytest.fixture
def jobs(redis_broker: RedisBroker, unique):
    client = redis.Redis(host=redis_broker.host, port=redis_broker.port)
    prefix = unique("files") + ":"
    client.rpush(prefix + "jobs", *range(250))
    yield client, prefix
    client.delete(prefix + "jobs")
    client.close()


def _aside(history: Path) -> list[Path]:
    found = history.parent.glob(history.name + ".corrupt-*")
    return [p for p in found if not p.name.endswith(("-wal", "-shm"))]


@pytest.mark.parametrize("damage", ["random", "truncated"])
def test_metrics_check_and_serve_start_on_a_damaged_history_file(
    jobs, redis_broker, write_config, run_cli, tmp_path, damage
):
    _, prefix = jobs
    history = tmp_path / "state" / "history.db"
    config = _config(write_config, redis_broker, prefix, history)
    for command, code in (("metrics", 0), ("check", 1)):
        if damage == "random":
            history.parent.mkdir(parents=True, exist_ok=True)
            history.write_bytes(os.urandom(32 * 1024))
        else:
            assert run_cli("metrics", "--config", str(config)).returncode == 0
            with history.open("r+b") as handle:
                handle.truncate(history.stat().st_size // 3)
        before = len(_aside(history))
        result = run_cli(command, "--config", str(config), "--format", "json")
        assert result.returncode == code, result.stderr
        assert f'"queue": "{prefix}jobs"' in result.stdout
        assert "history database is damaged" in result.stderr
        assert "moved it aside to" in result.stderr and "Traceback" not in result.stderr
        assert len(_aside(history)) == before + 1
    # the daemon too: it starts, serves and says why its history is empty
    if damage == "random":
        history.write_bytes(os.urandom(32 * 1024))
    else:
        with history.open("r+b") as handle:
            handle.truncate(history.stat().st_size // 3)
    serve = Serve(config, 0, tmp_path / "state")
    try:
        port = serve.started()
        samples = wait_until(lambda: (s := scrape(port)) and s.get("mqtop_queue_length") and s)
        assert samples["mqtop_queue_length"][0].value == 250
    finally:
        code = serve.stop()
    assert code == 0
    warnings = [e for e in serve.logs() if "history database is damaged" in e["msg"]]
    assert warnings and warnings[0]["level"] == "warning"


def _tiny_tmpfs(where: Path) -> bool:
    if os.geteuid() != 0:
        return False
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def test_serve_on_a_full_disk_says_disk_full_and_keeps_serving(
    jobs, redis_broker, write_config, tmp_path
):
    client, prefix = jobs
    disk = tmp_path / "disk"
    if not _tiny_tmpfs(disk):
        reason = "needs root and tmpfs to fill a disk (tests/unit simulates SQLITE_FULL)"
        if os.environ.get("MQTOP_REQUIRE_BROKERS") == "1":  # CI runs as root: it must run
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    try:
        for i in range(300):  # more lists: each poll writes more rows
            client.rpush(f"{prefix}q{i}", i)
        config = _config(write_config, redis_broker, prefix, disk / "history.db")
        serve = Serve(config, 0, tmp_path / "state")
        try:
            port = serve.started()
            wait_until(
                lambda: any("disk full" in e["msg"] for e in serve.logs()),
                timeout=60,
                what="a disk full warning",
            )
            before = scrape(port)["mqtop_evaluations_total"][0].value
            wait_until(lambda: scrape(port)["mqtop_evaluations_total"][0].value > before + 3)
        finally:
            code = serve.stop()
        assert code == 0
        messages = [e["msg"] for e in serve.logs()]
        full = [m for m in messages if "disk full" in m]
        assert full, messages
        assert full[0].startswith(f"history: disk full: cannot write {disk / 'history.db'}")
        # said once, not at every poll (again only after a write succeeded in between)
        again = [m for m in messages if m.startswith("history: writing")]
        assert 1 <= len(full) <= 1 + len(again), messages
        assert not [m for m in messages if "no transaction is active" in m]
    finally:
        client.delete(*[f"{prefix}q{i}" for i in range(300)])
        with contextlib.suppress(Exception):
            subprocess.run(["umount", str(disk)], check=False, capture_output=True)


def test_purge_refuses_an_audit_log_that_is_a_symbolic_link(
    jobs, redis_broker, write_config, run_cli, tmp_path
):
    client, prefix = jobs
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    link = tmp_path / "audit.jsonl"
    link.symlink_to(victim)
    config = write_config(
        f"""
        audit_log: "{link}"
        brokers:
          - {{name: cache, type: redis, url: "{redis_broker.url}", lists: ["{prefix}*"],
             streams: []}}
        """
    )
    result = run_cli("dlq", "purge", "cache", prefix + "jobs", "--yes", "--config", str(config))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        f"mqtop: audit log {link} is a symbolic link: mqtop does not write through links "
        "(point audit_log at the file itself): nothing was changed"
    )
    assert client.llen(prefix + "jobs") == 250
    assert victim.read_text() == "precious\n"
