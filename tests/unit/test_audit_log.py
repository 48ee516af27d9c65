"""The audit log is appended to only when it is the user's own regular file."""

from __future__ import annotations

import json
import os
import stat
import threading

import pytest

from mqtop.audit import audit, refuse_unsafe
from mqtop.kernel.errors import EXIT_USAGE, MqtopError


def _record(path):
    return audit(
        path,
        broker="cache",
        action="purge",
        source="jobs",
        destination=None,
        count=3,
        result="ok",
        details={"ratio": float("inf")},
    )


def test_appends_strict_json_lines_to_a_private_file(tmp_path):
    path = tmp_path / "state" / "audit.jsonl"
    _record(path)
    _record(path)
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    for line in lines:
        doc = json.loads(line, parse_constant=lambda token: pytest.fail(f"bare {token}"))
        assert doc["details"] == {"ratio": None} and doc["count"] == 3
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_symbolic_link_is_refused_and_its_target_untouched(tmp_path):
    target = tmp_path / "victim"
    target.write_text("precious\n")
    link = tmp_path / "audit.jsonl"
    link.symlink_to(target)
    with pytest.raises(MqtopError) as caught:
        _record(link)
    assert caught.value.exit_code == EXIT_USAGE
    assert caught.value.message == (
        f"audit log {link} is a symbolic link: mqtop does not write through links "
        "(point audit_log at the file itself)"
    )
    assert target.read_text() == "precious\n"
    dangling = tmp_path / "dangling.jsonl"
    dangling.symlink_to(tmp_path / "would-be-created")
    with pytest.raises(MqtopError):
        _record(dangling)
    assert not (tmp_path / "would-be-created").exists()
    # the pre-flight a write does first refuses both, creating nothing either
    for path in (link, dangling):
        with pytest.raises(MqtopError, match="is a symbolic link"):
            refuse_unsafe(path)
    assert not (tmp_path / "would-be-created").exists()
    refuse_unsafe(tmp_path / "not-yet.jsonl")  # a log that does not exist yet is fine
    assert not (tmp_path / "not-yet.jsonl").exists()


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "audit.jsonl"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []
    thread = threading.Thread(target=lambda: _catch(fifo, outcome), daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "the audit write blocked on a FIFO"
    [error] = outcome
    assert isinstance(error, MqtopError) and "is not a regular file" in error.message


def _catch(path, outcome: list[BaseException]) -> None:
    try:
        _record(path)
    except BaseException as exc:
        outcome.append(exc)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_a_file_owned_by_someone_else_is_refused(tmp_path):
    path = tmp_path / "audit.jsonl"
    path.write_text("")
    os.chown(path, 65534, 65534)
    os.chmod(path, 0o666)
    with pytest.raises(MqtopError) as caught:
        _record(path)
    assert caught.value.exit_code == EXIT_USAGE
    assert f"audit log {path} is owned by uid 65534" in caught.value.message
    assert path.read_text() == ""
