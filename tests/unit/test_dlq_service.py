"""The dead-letter service: pre-flight, plans, audit records (in-memory actions, no broker)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest

from collectors.base import BrokerOptions, MoveRequest, MoveResult, PeekedMessage
from mqtop.config import Config
from mqtop.dlq import DeadLetterService, SelectionFilter, how_many, require_audit_log
from mqtop.kernel.errors import EXIT_UNREACHABLE, EXIT_USAGE, ActionFailed, MqtopError
from mqtop.ui.sample import MemoryActions, sample_messages


def _service(
    tmp_path: Path, actions: MemoryActions, *, readonly: bool = False, audit: Path | None = None
) -> DeadLetterService:
    broker = BrokerOptions(name="rabbit", type="rabbitmq", readonly=readonly)
    config = Config(audit_log=str(audit or tmp_path / "audit.jsonl"), brokers=[broker])
    return DeadLetterService(config, broker, actions, via="test")


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _refusal(coro) -> MqtopError:
    with pytest.raises(MqtopError) as caught:
        asyncio.run(coro)
    return caught.value


def test_how_many_states_the_count_the_limit_the_filter_and_a_selection():
    messages = [PeekedMessage(id=str(i), body=f"m{i}".encode()) for i in range(3)]
    assert how_many(7) == "all 7 message(s)"
    assert how_many(None) == "all message(s)"
    assert how_many(7, 5) == "up to 5 message(s)"
    assert how_many(3, 5) == "up to 3 message(s)"
    assert how_many(None, 5) == "up to 5 message(s)"
    assert how_many(7, None, SelectionFilter(messages[:2])) == "2 selected message(s)"


def test_a_selection_plans_exactly_those_messages_and_the_question_counts_them(tmp_path):
    messages = [PeekedMessage(id=str(i), body=f"m{i}".encode()) for i in range(4)]
    service = _service(tmp_path, MemoryActions({"dlq": messages}))
    plan = asyncio.run(
        service.plan_move("replay", "dlq", "orders", selected=[messages[1], messages[3]])
    )
    request = plan.request
    assert request.limit == 2 and request.filter is not None
    assert [m.id for m in messages if request.filter.matches(m.body, {})] == ["1", "3"]
    assert str(request.filter).startswith("2 selected message(s) #")
    assert (
        plan.question == "replay 2 selected message(s) from 'dlq' to 'orders' on broker 'rabbit'?"
    )
    other = asyncio.run(service.plan_move("replay", "dlq", "orders", selected=messages[::2]))
    assert str(other.request.filter) != str(request.filter)  # resumable jobs never mix them
    everything = asyncio.run(service.plan_move("move", "dlq", "parking"))
    assert everything.request.filter is None and everything.request.limit is None
    assert everything.count == 4 and everything.taken == "all 4 message(s)"
    assert SelectionFilter(messages[:1]).digests == {hashlib.sha256(b"m0").digest()}
    assert not (tmp_path / "audit.jsonl").exists()  # planning writes nothing, not even the log


def test_replay_without_destination_goes_to_the_origin_or_is_refused(tmp_path):
    actions = MemoryActions({"a.dlq": [], "b.dlq": []}, origins={"a.dlq": "a"})
    service = _service(tmp_path, actions)
    assert asyncio.run(service.plan_move("replay", "a.dlq")).request.destination == "a"
    error = _refusal(service.plan_move("replay", "b.dlq"))
    assert error.exit_code == EXIT_USAGE and "--to QUEUE" in error.message


def test_refusals_come_before_any_change_with_one_wording_and_exit_2(tmp_path):
    (tmp_path / "not-a-dir").write_text("")
    unwritable = tmp_path / "not-a-dir" / "audit.jsonl"
    actions = MemoryActions({"dlq": sample_messages("dlq", "orders")})
    broken = _service(tmp_path, actions, audit=unwritable)
    readonly = _service(tmp_path, actions, readonly=True, audit=unwritable)
    fine = _service(tmp_path, actions)
    cases = {
        "audit": (broken.plan_move("move", "dlq", "parking"), f"audit log {unwritable} cannot"),
        "purge": (broken.plan_purge("dlq"), f"audit log {unwritable} cannot"),
        "same": (fine.plan_move("move", "dlq", "dlq"), "source and destination are the same queue"),
        "readonly": (
            readonly.plan_move("replay", "dlq", "orders"),
            "broker 'rabbit' is configured readonly: replay refused",
        ),
    }
    for name, (coro, words) in cases.items():
        error = _refusal(coro)
        assert error.exit_code == EXIT_USAGE, name
        assert error.message.startswith(words), (name, error.message)
    assert len(actions.queues["dlq"]) == 7 and "parking" not in actions.queues
    assert not (tmp_path / "audit.jsonl").exists()
    # a dry run writes nothing: it needs neither the audit log nor a writable broker
    dry = asyncio.run(readonly.plan_move("move", "dlq", "parking", dry_run=True))
    assert dry.request.dry_run and dry.count is None


def test_an_audit_log_that_does_not_exist_yet_is_checked_without_creating_it(tmp_path):
    deep = tmp_path / "state" / "mqtop" / "audit.jsonl"
    require_audit_log(Config(audit_log=str(deep)))
    assert not (tmp_path / "state").exists()
    folder = tmp_path / "log-is-a-folder"
    folder.mkdir()
    with pytest.raises(MqtopError, match="cannot be written"):
        require_audit_log(Config(audit_log=str(folder)))


def test_move_and_purge_are_audited_ok_partial_and_error(tmp_path):
    class Partial(MemoryActions):
        async def move(self, request: MoveRequest, progress) -> MoveResult:
            if request.source == "boom":
                raise ConnectionResetError("connection reset by peer")
            result = await super().move(request, progress)
            return MoveResult(
                result.source,
                result.destination,
                result.moved - 1,
                1,
                0,
                False,
                errors=("one refused",),
            )

    actions = Partial({"dlq": sample_messages("dlq", "orders"), "boom": []})
    service = _service(tmp_path, actions)
    plan = asyncio.run(service.plan_move("move", "dlq", "parking", limit=3))
    result = asyncio.run(service.move(plan, lambda progress: None))
    assert (result.moved, result.failed) == (2, 1)
    failing = asyncio.run(service.plan_move("move", "boom", "parking"))
    with pytest.raises(ActionFailed) as caught:
        asyncio.run(service.move(failing, lambda progress: None))
    assert caught.value.exit_code == EXIT_UNREACHABLE
    assert caught.value.message == "move failed: ConnectionResetError: connection reset by peer"
    purged = asyncio.run(service.purge(asyncio.run(service.plan_purge("dlq"))))
    assert purged == 4
    records = _records(tmp_path / "audit.jsonl")
    assert [(r["action"], r["count"], r["result"]) for r in records] == [
        ("move", 2, "partial"),
        ("move", None, "error: ConnectionResetError: connection reset by peer"),
        ("purge", 4, "ok"),
    ]
    assert all(r["details"]["via"] == "test" and r["broker"] == "rabbit" for r in records)
    assert records[0]["details"]["failed"] == 1


def test_move_options_are_the_brokers_declared_ones_refused_in_the_kits_words(tmp_path):
    service = _service(tmp_path, MemoryActions({}))
    assert [spec.name for spec in service.option_specs()] == ["batch"]
    assert service.move_options({"batch": "50"}).model_dump() == {"batch": 50}
    with pytest.raises(MqtopError, match=r"^--batch: Input should be greater than or equal to 1"):
        service.move_options({"batch": 0})
    with pytest.raises(MqtopError, match=r"^--rate: not supported by rabbitmq brokers"):
        service.move_options({"rate": 5})
