"""Dead-letter triage in the DLQ browser: search, groups, export, edit before replay, and
replays of exactly the reviewed messages (fake broker: the real ones are in test_ui_incident)."""

from __future__ import annotations

import json

from collectors.base import Death, PeekedMessage
from mqtop.ui.app import MqtopApp
from mqtop.ui.dlq import DlqScreen
from mqtop.ui.modals import ConfirmModal, TextPrompt
from mqtop.ui.sample import NOW, MemoryActions, sample_alerts, sample_engine
from tests.support.pilot import ready, wait_until


def _letters() -> list[PeekedMessage]:
    out = []
    for i in range(12):
        reason = ("rejected", "expired", "maxlen")[i % 3]
        body = json.dumps({"order": i, "error_class": "Timeout" if i % 2 else "BadEmail"})
        out.append(
            PeekedMessage(
                id=f"m-{i:02d}",
                body=body.encode(),
                headers={"tenant": "acme" if i < 6 else "globex"},
                death=Death(reason=reason, count=1, original_queue="orders"),
                timestamp=NOW - 60 * i,
            )
        )
    return out


def _app(tmp_path, edited: list[str] | None = None, answer=None):
    actions = MemoryActions({"orders.dlq": _letters(), "orders": []}, {"orders.dlq": "orders"})

    def editor(text: str) -> str | None:
        if edited is not None:
            edited.append(text)
        return answer(text) if answer else text

    engine = sample_engine(actions=actions, audit_log=str(tmp_path / "audit.jsonl"))
    app = MqtopApp(engine, sample_alerts(), clock=lambda: NOW, autostart=False, editor=editor)
    return app, actions, editor


async def _open(app, pilot) -> DlqScreen:
    await ready(app, pilot)
    app.open_dlq("rabbit", "orders.dlq")
    await wait_until(pilot, lambda: isinstance(app.screen, DlqScreen) and app.screen.messages)
    return app.screen


async def test_search_by_text_reason_and_header(tmp_path):
    app, _, _ = _app(tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await _open(app, pilot)
        await pilot.press("slash", *"reason:expired")
        assert [screen.messages[i].id for i in screen.shown] == ["m-01", "m-04", "m-07", "m-10"]
        assert "4 of 12 messages shown" in app.screen_text()
        for _ in "reason:expired":
            await pilot.press("backspace")
        await pilot.press(*"header.tenant:globex class:timeout")
        assert [screen.messages[i].id for i in screen.shown] == ["m-07", "m-09", "m-11"]
        await pilot.press("enter", "escape")  # Enter keeps it, Esc clears it
        assert len(screen.shown) == 12
        await app.stop_engine()


async def test_group_by_reason_open_a_group_and_replay_it_by_id(tmp_path):
    app, actions, _ = _app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(app, pilot)
        await pilot.press("g")
        text = app.screen_text()
        assert "by death reason" in text and "rejected" in text and "33%" in text
        assert screen.table.row_count == 3
        await pilot.press("g")  # error class
        assert "by error class" in app.screen_text() and "BadEmail" in app.screen_text()
        await pilot.press("g", "g", "g")  # original queue, none, death reason again
        await pilot.press("enter")  # the first group: 4 messages
        group = screen.group
        assert len(screen.shown) == 4
        ids = [screen.messages[i].id for i in screen.shown]
        await pilot.press("r")  # nothing selected: the group shown, said so
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        body = app.screen.body.plain
        assert "Nothing is selected: this takes the messages the list shows." in body
        assert "4 message(s) · set #" in body
        await pilot.press("y")
        await wait_until(pilot, lambda: screen.last_result is not None)
        assert sorted(m.id for m in actions.queues["orders"]) == sorted(ids)
        assert all(m.death.reason == group for m in actions.queues["orders"])
        assert len(actions.queues["orders.dlq"]) == 8
        assert "✓ replayed 4 to orders" in screen.last_words
        await app.stop_engine()


async def test_export_the_selection_as_json_lines(tmp_path):
    app, _, _ = _app(tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await _open(app, pilot)
        await pilot.press("space", "down", "space", "w")
        await wait_until(pilot, lambda: isinstance(app.screen, TextPrompt))
        prompt = app.screen.query_one("#prompt")
        prompt.value = str(tmp_path / "out" / "picked.jsonl")
        await pilot.press("enter")
        await wait_until(pilot, lambda: "exported 2" in screen.last_words)
        lines = (tmp_path / "out" / "picked.jsonl").read_text().splitlines()
        first = json.loads(lines[0])
        assert [json.loads(x)["id"] for x in lines] == ["m-00", "m-02"]
        assert first["body_encoding"] == "utf8" and json.loads(first["body"])["order"] == 0
        assert first["death"] == {"reason": "rejected", "count": 1, "original_queue": "orders"}
        assert (tmp_path / "out" / "picked.jsonl").stat().st_mode & 0o077 == 0
        await app.stop_engine()


async def test_edit_before_replay(tmp_path):
    shown: list[str] = []

    def fix(text: str) -> str:
        return text.replace('"BadEmail"', '"Fixed"').replace('"acme"', '"acme-eu"')

    app, actions, _ = _app(tmp_path, shown, fix)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(app, pilot)
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert '"tenant": "acme"' in shown[0] and "--- body:" in shown[0]
        body = app.screen.body.plain
        assert "edited copy of m-00" in body and "headers changed" in body
        assert "before sha256" in body
        await pilot.press("y")
        await wait_until(pilot, lambda: "replayed an edited copy" in screen.last_words)
        (copy,) = actions.queues["orders"]
        assert copy.id == "m-00" and b'"Fixed"' in copy.body
        assert copy.headers == {"tenant": "acme-eu"}
        assert "m-00" not in [m.id for m in actions.queues["orders.dlq"]]
        (record,) = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
        assert record["details"]["edited"] is True and record["details"]["via"] == "dashboard"
        assert record["details"]["before_sha256"] != record["details"]["after_sha256"]
        await app.stop_engine()


async def test_an_emptied_editor_file_cancels(tmp_path):
    app, actions, _ = _app(tmp_path, None, lambda text: "")
    async with app.run_test(size=(80, 24)) as pilot:
        await _open(app, pilot)
        await pilot.press("e")
        await pilot.pause(0.3)
        assert isinstance(app.screen, DlqScreen)
        assert len(actions.queues["orders.dlq"]) == 12 and actions.queues["orders"] == []
        assert not (tmp_path / "audit.jsonl").exists()
        await app.stop_engine()
