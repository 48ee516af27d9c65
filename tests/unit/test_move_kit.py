"""The move kit: one tally, one journal, typed move options checked in one place."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest
from pydantic import Field

from collectors.base import MoveOptions
from collectors.kit.journal import MoveJournal
from collectors.kit.options import build_move_options, option_specs, options_as
from collectors.kit.tally import MAX_ERRORS, Tally
from mqtop.kernel.errors import UsageError
from mqtop.registry import move_option_models


def test_tally_result_keeps_counts_caps_errors_and_dedupes_notes():
    tally = Tally(total=100)
    tally.moved = 90
    tally.skipped = 3
    tally.fail(2, "destination refused")
    for i in range(MAX_ERRORS + 5):
        tally.error(f"e{i}")
    tally.note("same")
    tally.note("same")
    tally.republished = 1
    result = tally.result("a", "b", dry_run=False)
    assert (result.moved, result.failed, result.skipped, result.republished) == (90, 2, 3, 1)
    assert result.errors[-1] == "... and 6 more error(s)"
    assert len(result.errors) == MAX_ERRORS + 1
    assert result.notes == ("same",)
    assert not result.complete and tally.stopped
    assert tally.progress().total == 100 and tally.progress().failed == 2


def test_tally_without_errors_is_complete():
    tally = Tally()
    tally.moved = 5
    assert tally.result("a", "b", dry_run=True).complete


def test_journal_interrupted_concurrent_and_closed(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    first = MoveJournal("testbroker", "b", "src", "dst")
    assert first.previous is None and first.interrupted() is None
    first.write(in_flight=["m1", "m2"])
    # a second run while the first one's process is alive: concurrent, not interrupted
    second = MoveJournal("testbroker", "b", "src", "dst")
    assert second.previous is not None
    # our own pid counts as "not another run": fake a dead pid instead
    record = json.loads(first.path.read_text())
    record["pid"] = _dead_pid()
    first.path.write_text(json.dumps(record))
    third = MoveJournal("testbroker", "b", "src", "dst")
    assert third.concurrent() is None
    interrupted = third.interrupted()
    assert interrupted is not None and interrupted["in_flight"] == ["m1", "m2"]
    third.write(window=5)
    first.close()  # not its run any more: the file stays
    assert third.path.exists()
    third.close()
    assert not third.path.exists()
    other = MoveJournal("testbroker", "b", "src", "elsewhere")
    assert other.path != third.path


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_journal_survives_garbage(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    journal = MoveJournal("testbroker", "b", "s", "d")
    journal.path.parent.mkdir(parents=True)
    journal.path.write_text("{not json")
    again = MoveJournal("testbroker", "b", "s", "d")
    assert again.previous is None and again.interrupted() is None
    journal.path.write_text('{"pid": true}')
    assert MoveJournal("testbroker", "b", "s", "d").concurrent() is None


class _Lane(MoveOptions):
    batch: int | None = Field(None, ge=1, description="per batch")
    lane: str | None = Field(None, description="which lane", json_schema_extra={"metavar": "L"})
    since: dt.datetime | None = None


class _Other(MoveOptions):
    batch: int | None = Field(None, ge=1, le=10, description="other batch")
    fast: bool = False


def test_option_specs_union_by_flag_with_owners():
    specs = {s.flag: s for s in option_specs({"lane": _Lane, "other": _Other})}
    assert set(specs) == {"--batch", "--lane", "--since", "--fast"}
    assert specs["--batch"].owners == ("lane", "other")
    assert specs["--lane"].metavar == "L" and specs["--lane"].kind == "str"
    assert specs["--since"].kind == "datetime" and specs["--fast"].kind == "bool"


def test_option_specs_refuse_one_name_with_two_types():
    class Clash(MoveOptions):
        batch: str | None = None

    with pytest.raises(TypeError, match="batch"):
        option_specs({"lane": _Lane, "clash": Clash})


def test_build_move_options_refuses_once_with_one_wording():
    with pytest.raises(UsageError) as refused:
        build_move_options(_Other, {"lane": "x", "since": "2024-01-01"}, "other")
    assert refused.value.exit_code == 2
    assert str(refused.value.message) == (
        "--lane, --since: not supported by other brokers (its move options: --batch, --fast)"
    )
    with pytest.raises(UsageError, match="not supported by none brokers \\(it has no move"):
        build_move_options(MoveOptions, {"batch": 1}, "none")
    with pytest.raises(UsageError, match=r"^--batch: "):
        build_move_options(_Other, {"batch": 11}, "other")
    built = build_move_options(_Lane, {"batch": 3, "since": "2024-01-01T00:00:00Z"}, "lane")
    assert isinstance(built, _Lane) and built.batch == 3 and built.since is not None


def test_options_as_gives_defaults_for_the_generic_model():
    assert options_as(MoveOptions(), _Lane, "lane") == _Lane()
    lane = _Lane(batch=2)
    assert options_as(lane, _Lane, "lane") is lane
    with pytest.raises(UsageError):
        options_as(_Other(), _Lane, "lane")


def test_built_in_brokers_declare_compatible_options():
    models = move_option_models()
    assert {"rabbitmq", "kafka", "sqs", "redis"} <= set(models)
    specs = {s.flag: s for s in option_specs(models)}  # raises on a type clash
    assert set(specs["--batch"].owners) >= {"rabbitmq", "kafka", "sqs", "redis"}
    assert specs["--keep-partition"].owners == ("kafka",)
    assert specs["--rate"].owners == ("sqs",)
    kafka = build_move_options(models["kafka"], {"from_time": "2024-05-01T10:00:00"}, "kafka")
    assert kafka.from_time == dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)  # type: ignore[attr-defined]


def test_help_of_other_commands_does_not_load_brokers():
    code = (
        "import sys\nfrom mqtop import cli\n"
        "try:\n    cli.main(['check', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('collectors')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"
