"""RabbitMQ on the shared move kit and TLS contexts: the same flag, wording and contexts as
every other broker (no broker needed)."""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from collectors.kit.options import BATCH_HELP, build_move_options
from collectors.rabbitmq.movespec import (
    MoveOutcome,
    MoveSpec,
    finish_notes,
    journal_notes,
    open_journal,
)
from collectors.rabbitmq.options import RabbitMQMoveOptions, RabbitMQOptions, ssl_context
from mqtop.kernel.errors import ConfigError, UsageError


def test_batch_is_the_shared_field_with_amqps_largest_prefetch():
    field = RabbitMQMoveOptions.model_fields["batch"]
    assert field.description == BATCH_HELP and field.default is None
    assert build_move_options(RabbitMQMoveOptions, {"batch": 65_535}, "rabbitmq").batch == 65_535  # type: ignore[attr-defined]
    for bad in (0, 65_536):
        with pytest.raises(UsageError, match=r"^--batch: Input should be"):
            build_move_options(RabbitMQMoveOptions, {"batch": bad}, "rabbitmq")


def test_context_verifies_by_default_and_not_when_told():
    verified = ssl_context(RabbitMQOptions(name="r", url="amqps://h/"))
    assert verified.verify_mode == ssl.CERT_REQUIRED and verified.check_hostname
    loose = ssl_context(RabbitMQOptions(name="r", url="amqps://h/", tls_verify=False))
    assert loose.verify_mode == ssl.CERT_NONE and not loose.check_hostname


def test_a_client_certificate_that_cannot_be_read_names_the_broker_and_files(tmp_path: Path):
    cert = tmp_path / "missing.pem"
    options = RabbitMQOptions(name="r", url="amqps://h/", cert_file=str(cert))
    with pytest.raises(ConfigError) as caught:
        ssl_context(options)
    assert str(caught.value).startswith(
        f"broker 'r': cannot load the client certificate {cert} with key {cert}: "
        "cannot read the file ("
    )


def test_a_key_that_is_not_a_key_says_what_to_check(tmp_path: Path):
    cert = tmp_path / "client.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    plain = RabbitMQOptions(name="r", url="amqps://h/", cert_file=str(cert))
    with pytest.raises(ConfigError, match="an encrypted key needs key_password"):
        ssl_context(plain)
    protected = RabbitMQOptions(
        name="r", url="amqps://h/", cert_file=str(cert), key_password="not-it"
    )
    with pytest.raises(ConfigError, match="wrong key_password") as caught:
        ssl_context(protected)
    assert "not-it" not in str(caught.value)


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], **_OUT)
    return int(done.stdout)


_OUT: dict[str, Any] = {"capture_output": True, "text": True, "check": True}


def _spec(window: int) -> MoveSpec:
    return MoveSpec(
        source=("/", "a"),
        destination=("/", "b"),
        source_label="a",
        destination_label="b",
        mode="move",
        window=window,
        bound=10,
        limit=None,
        filter=None,
        dry_run=False,
        run="r",
        username="guest",
    )


def test_a_journal_left_by_an_earlier_version_is_read_as_an_interrupted_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The file an earlier version wrote (same folder, same name, same keys) is what the kit's
    journal reads: the rerun reports the earlier run and bounds duplicates by its window."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    key = hashlib.sha256(b"rb\0dlq\0work").hexdigest()[:24]
    left = tmp_path / "mqtop" / "rabbitmq-moves" / f"{key}.json"
    left.parent.mkdir(parents=True)
    record = {"run": "0123456789ab", "pid": _dead_pid(), "started": 1_700_000_000.0,
              "window": 7, "broker": "rb", "source": "dlq", "destination": "work"}  # fmt: skip
    left.write_text(json.dumps(record))
    journal = open_journal("rb", "dlq", "work", window=50)
    assert journal.path == left
    written = json.loads(left.read_text())
    assert written["run"] == journal.run and written["pid"] == os.getpid()
    assert (written["window"], written["broker"], written["source"]) == (50, "rb", "dlq")
    outcome = MoveOutcome(moved=20, moved_redelivered=12)
    before: list[str] = []
    assert journal_notes(journal, outcome, 50, "work", before) == 7
    assert "run 0123456789ab, started 2023-11-14 22:13:20Z) was interrupted" in before[0]
    assert "at most one window of 7" in before[0]
    assert not left.exists()  # finished with nothing uncertain: forgotten


def test_an_uncertain_run_keeps_its_journal_and_a_garbled_one_is_still_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    first = open_journal("rb", "q1", "q2", window=5)
    record = json.loads(first.path.read_text())
    record.update(pid=_dead_pid(), window="lots", started=1e300)
    first.path.write_text(json.dumps(record))
    again = open_journal("rb", "q1", "q2", window=5)
    outcome = MoveOutcome(moved=9, moved_redelivered=9, uncertain=2)
    before: list[str] = []
    assert journal_notes(again, outcome, 5, "q2", before) == 5  # this run's window
    assert "started 1970-01-01 00:00:00Z" in before[0]
    assert again.path.exists()  # two messages of unknown outcome: the next run must know
    finish_notes(outcome, _spec(5), before)
    result = outcome.result("q1", "q2", dry_run=False)
    assert result.notes[0] == before[0] and "may now be in both queues" in result.notes[-1]
