"""Dashboard behaviour through Textual's Pilot, on fixed sample data (no broker needed)."""

from __future__ import annotations

import json

import pytest

from alerts.model import AlertState
from collectors.base import PeekedMessage
from mqtop.kernel.model import BrokerSnapshot, SeriesKey, SeriesSample
from mqtop.ui.alerts import AlertsScreen
from mqtop.ui.app import MqtopApp
from mqtop.ui.detail import DetailScreen
from mqtop.ui.dlq import DlqScreen, MessageViewer
from mqtop.ui.modals import ConfirmModal, DestinationPicker, HelpScreen, SilenceModal
from mqtop.ui.overview import OverviewScreen
from mqtop.ui.sample import NOW, MemoryActions, sample_alerts, sample_messages
from mqtop.ui.vtable import SeriesTable
from tests.support.pilot import make_app, queues, ready, wait_until


async def test_overview_shows_every_series_sorted_by_backlog(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        table = await ready(app, pilot)
        labels = queues(table)
        assert len(labels) == len(app.engine.store.views()) == 13
        backlogs = [r.backlog for r in table.rows if r.backlog is not None]
        assert backlogs == sorted(backlogs, reverse=True)
        # the values shown are the store's current values
        view = app.engine.store.view(SeriesKey("rabbit", "orders"))
        row = next(r for r in table.rows if r.key == SeriesKey("rabbit", "orders"))
        assert row.backlog == view.get("queue_length")
        text = app.screen_text()
        assert "✖ crit" in text and "▲ warn" in text  # symbols, not colour alone
        assert "✗ cache DOWN" in text and "✗ down" in text  # dead broker marked, rows stale
        assert "jobs:default" in text
        await app.stop_engine()


async def test_navigation_detail_and_back(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await ready(app, pilot)
        await pilot.press("down", "down")
        expected = table.cursor_row.key
        assert table.cursor == 2
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen))
        assert app.screen.key == expected
        await pilot.press("2")  # 1h window
        assert app.screen.window_index == 1
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, OverviewScreen))
        assert app.screen.query_one(SeriesTable).cursor_row.key == expected
        await pilot.press("end")
        assert table.cursor == len(table.rows) - 1
        await pilot.press("home")
        assert table.cursor == 0
        await app.stop_engine()


async def test_click_a_row_twice_opens_detail(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await ready(app, pilot)
        await pilot.click(SeriesTable, offset=(5, 3))  # third data row (line 0 is the header)
        assert table.cursor == 2
        await pilot.click(SeriesTable, offset=(5, 3))
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen))
        assert app.screen.key == table.rows[2].key
        await app.stop_engine()


async def test_sort_keys_and_header_click(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        table = await ready(app, pilot)
        screen = app.screen
        await pilot.press("r")  # reverse: ascending backlog
        backlogs = [r.backlog for r in table.rows if r.backlog is not None]
        assert backlogs == sorted(backlogs)
        await pilot.press("s")  # next column after backlog: in-flight
        assert screen.sort_column == "inflight" and table.sort_column == "inflight"
        known = [r.inflight for r in table.rows if r.inflight is not None]
        assert known == sorted(known, reverse=True)
        assert all(r.inflight is None for r in table.rows[len(known) :])  # nulls last
        # clicking the Queue title sorts by name (ascending), again reverses
        x = sum(w + 1 for w in table.column_widths[:1]) + 1
        await pilot.click(SeriesTable, offset=(x, 0))
        assert screen.sort_column == "queue"
        names = [r.queue.lower() for r in table.rows]
        assert names == sorted(names)
        await pilot.click(SeriesTable, offset=(x, 0))
        assert [r.queue.lower() for r in table.rows] == sorted(names, reverse=True)
        await app.stop_engine()


async def test_filter_glob_substring_and_escape(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await ready(app, pilot)
        await pilot.press("slash")
        await pilot.press(*"dlq")
        assert sorted(queues(table)) == [
            "aws/signup-dlq",
            "rabbit/orders.dlq",
            "rabbit/payments.dlq",
        ]
        await pilot.press("enter")  # keep the filter, back to the table
        assert app.screen.filter_text == "dlq"
        assert app.focused is table
        await pilot.press("slash")
        for _ in range(3):
            await pilot.press("backspace")
        await pilot.press(*"events/*")
        assert sorted(queues(table)) == [
            "events/clicks [analytics]",
            "events/clicks [billing]",
            "events/orders.DLT [replayer]",
        ]
        await pilot.press("escape")
        assert app.screen.filter_text == ""
        assert len(queues(table)) == 13
        await app.stop_engine()


async def test_group_by_broker(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 50)) as pilot:
        table = await ready(app, pilot)
        await pilot.press("g")
        headers = [r.broker for r in table.rows if r.is_header]
        assert headers == ["aws", "cache", "events", "rabbit"]
        assert not table.cursor_row.is_header  # the cursor never rests on a separator
        await pilot.press("g")
        assert not any(r.is_header for r in table.rows)
        await app.stop_engine()


async def test_live_update_and_broker_going_down(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await ready(app, pilot)
        before = app.refresh_count
        key = SeriesKey("aws", "signup-queue")
        app.engine.store.ingest(
            BrokerSnapshot(
                broker="aws",
                type="sqs",
                time=NOW + 5,
                up=True,
                duration=0.01,
                series=(SeriesSample(key, "standard", {"queue_length": 4321.0}),),
            )
        )
        await wait_until(pilot, lambda: app.refresh_count > before)
        await pilot.pause()
        row = next(r for r in table.rows if r.key == key)
        assert row.backlog == 4321.0
        # the other aws series were not in that poll: shown stale, not as live numbers
        other = next(r for r in table.rows if r.key == SeriesKey("aws", "signup-dlq"))
        assert other.stale
        await app.stop_engine()


async def test_alert_silence_from_alerts_screen(tmp_path):
    alerts = sample_alerts()
    app = make_app(tmp_path, alerts=alerts)
    async with app.run_test(size=(140, 40), notifications=True) as pilot:
        await ready(app, pilot)
        await pilot.press("A")
        await wait_until(pilot, lambda: isinstance(app.screen, AlertsScreen))
        screen = app.screen
        first = screen.selected_alert()
        assert first is not None and first.state == AlertState.FIRING
        await pilot.press("down")  # HighErrorRate on rabbit/orders
        target = screen.selected_alert()
        assert (target.rule, target.queue) == ("HighErrorRate", "orders")
        # cancel first: nothing silenced
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, SilenceModal))
        await pilot.pause()
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, AlertsScreen))
        assert alerts.silences() == []
        # then silence for 4 hours with a comment
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, SilenceModal))
        await pilot.pause()
        await pilot.press("down", "enter")  # "4 hours", then the comment box
        await pilot.press(*"deploy")
        await pilot.press("enter")
        await wait_until(pilot, lambda: alerts.silences())
        (silence,) = alerts.silences()
        assert silence.rule == "HighErrorRate"
        assert silence.matchers == {"broker": "rabbit", "queue": "orders"}
        assert silence.until == NOW + 4 * 3600
        assert silence.comment == "deploy"
        await wait_until(
            pilot,
            lambda: any(a.silenced and a.rule == "HighErrorRate" for a in app.data.alerts),
            message=lambda: (
                f"{app.refresh_count} {app._refreshing} {app._dirty} "
                f"{[n.message for n in app._notifications]}"
            ),
        )
        await wait_until(
            pilot, lambda: "⊘ silenced" in app.screen_text(), message=lambda: app.screen_text()
        )
        # u removes only the silence pointed at: with the alerts table focused, none
        await pilot.press("u")
        await wait_until(pilot, lambda: "point at a silence first" in app.screen_text())
        assert len(alerts.silences()) == 1
        # a second silence; then point at it in the silences table: only it goes
        alerts.silence("QueueBacklog", {"queue": "emails"}, NOW + 60, "second")
        app.request_refresh()
        await wait_until(pilot, lambda: len(app.data.silences) == 2)
        await wait_until(pilot, lambda: screen.query_one("#silences-table").row_count == 2)
        screen.query_one("#silences-table").focus()
        await pilot.press("end", "u")
        await wait_until(pilot, lambda: len(alerts.silences()) == 1)
        assert [s.comment for s in alerts.silences()] == ["deploy"]
        await app.stop_engine()


async def test_replay_confirm_cancel_then_accept(tmp_path):
    actions = MemoryActions(
        {"orders.dlq": sample_messages("orders.dlq", "orders"), "orders": []},
        origins={"orders.dlq": "orders"},
    )
    app = make_app(tmp_path, actions=actions)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        app.open_dlq("rabbit", "orders.dlq")
        await wait_until(pilot, lambda: isinstance(app.screen, DlqScreen) and app.screen.messages)
        screen = app.screen
        assert screen.total == 7 and screen.replay_target == "orders"
        await pilot.press("space", "space")  # select the first two
        assert screen.selected == {0, 1}
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        body = app.screen.body.plain
        assert "2 selected message(s)" in body and "orders.dlq" in body and "to     orders" in body
        await pilot.press("n")  # cancel
        await wait_until(pilot, lambda: app.screen is screen)
        assert len(actions.queues["orders.dlq"]) == 7 and actions.queues["orders"] == []
        assert not (tmp_path / "audit.jsonl").exists()
        # accept
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await wait_until(pilot, lambda: screen.last_result is not None)
        result = screen.last_result
        assert (result.moved, result.failed) == (2, 0)
        assert [m.id for m in actions.queues["orders"]] == ["msg-0001", "msg-0002"]
        assert len(actions.queues["orders.dlq"]) == 5
        await wait_until(pilot, lambda: len(screen.messages) == 5)
        text = app.screen_text()
        assert "✓ replayed 2 to orders" in text
        assert "published, confirmed, then removed from orders.dlq" in text
        (record,) = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
        assert record["action"] == "replay" and record["count"] == 2
        assert record["source"] == "orders.dlq" and record["destination"] == "orders"
        assert record["result"] == "ok" and record["broker"] == "rabbit"
        await app.stop_engine()


async def test_move_with_destination_picker_and_purge(tmp_path):
    actions = MemoryActions({"orders.dlq": sample_messages("orders.dlq", "orders")})
    app = make_app(tmp_path, actions=actions)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        app.open_dlq("rabbit", "orders.dlq")
        await wait_until(pilot, lambda: isinstance(app.screen, DlqScreen) and app.screen.messages)
        screen = app.screen
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(app.screen, DestinationPicker))
        picker = app.screen
        assert "payments" in picker.candidates and "orders.dlq" not in picker.candidates
        await pilot.press(*"parking")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert "all 7 message(s)" in app.screen.body.plain
        assert "parking" in app.screen.body.plain
        await pilot.press("y")
        await wait_until(pilot, lambda: screen.last_result is not None)
        assert len(actions.queues["parking"]) == 7 and actions.queues["orders.dlq"] == []
        # purge: confirm is a danger modal stating the count; cancel keeps everything
        app.open_dlq("rabbit", "parking")
        await wait_until(pilot, lambda: isinstance(app.screen, DlqScreen) and app.screen.messages)
        await pilot.press("P")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert "all 7" in app.screen.body.plain and "cannot be undone" in app.screen.body.plain
        await pilot.press("escape")
        await pilot.pause()
        assert len(actions.queues["parking"]) == 7
        await pilot.press("P")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await wait_until(pilot, lambda: actions.queues["parking"] == [])
        records = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
        assert [(r["action"], r["count"]) for r in records] == [("move", 7), ("purge", 7)]
        await app.stop_engine()


async def test_readonly_broker_disables_writes_with_reason(tmp_path):
    actions = MemoryActions({"orders.dlq": sample_messages("orders.dlq", "orders")})
    app = make_app(tmp_path, actions=actions, readonly=["rabbit"])
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        app.open_dlq("rabbit", "orders.dlq")
        await wait_until(pilot, lambda: isinstance(app.screen, DlqScreen) and app.screen.messages)
        screen = app.screen
        assert "readonly" in app.screen_text()
        assert screen.check_action("replay", ()) is None  # shown disabled
        assert screen.check_action("purge", ()) is None
        await pilot.press("a", "r", "m", "P")
        await pilot.pause()
        assert app.screen is screen  # no confirm modal opened
        assert len(actions.queues["orders.dlq"]) == 7
        assert not (tmp_path / "audit.jsonl").exists()
        # peeking still works, and so does the viewer
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, MessageViewer))
        await app.stop_engine()
        assert actions.closed == 1  # the actions the UI used are released at exit


async def test_peek_side_effect_is_announced_first(tmp_path):
    actions = MemoryActions(
        {"orders.dlq": sample_messages("orders.dlq", "orders")},
        warning="peeking increments the receive count of each message",
    )
    app = make_app(tmp_path, actions=actions)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        app.open_dlq("rabbit", "orders.dlq")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert "receive count" in app.screen.body.plain
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, DlqScreen))
        assert app.screen.messages == []
        assert "not peeked" in app.screen_text()
        await app.stop_engine()


async def test_a_failing_side_effect_check_is_shown_not_raised(tmp_path):
    """Looking up the side effect talks to the broker too: its failure (a missing queue, a
    dead endpoint) is shown on the screen like a failed peek, and nothing is peeked."""
    from mqtop.kernel.errors import UsageError

    class Missing(MemoryActions):
        async def peek_warning(self, queue: str) -> str | None:
            raise UsageError(f"queue {queue!r} does not exist")

    actions = Missing({"orders.dlq": sample_messages("orders.dlq", "orders")})
    app = make_app(tmp_path, actions=actions)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        app.open_dlq("rabbit", "orders.dlq")
        await wait_until(pilot, lambda: isinstance(app.screen, DlqScreen))
        await wait_until(pilot, lambda: "does not exist" in app.screen_text())
        assert app.screen.messages == [] and app.is_running
        await app.stop_engine()


async def test_help_palette_and_small_terminal(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(app, pilot)
        text = app.screen_text()
        assert "Backlog" in text and "Alert" in text
        assert "clicks [analytics]" in text  # group folded into the queue when narrow
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        help_text = app.screen_text()
        for word in ("filter", "group", "DLQ", "reverse", "alerts", "quit", "palette"):
            assert word in help_text, word
        # only mqtop's keys: none of a text box's editing keys
        assert "ctrl+shift" not in help_text and "Delete" not in help_text
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, OverviewScreen))
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in ("Filter", "Group", "DLQ", "Detail", "Alerts", "Help", "Theme", "Quit"):
            assert title in titles, title
        assert "Sort by Backlog" in titles and "Sort by Err%" in titles
        # the palette runs them: "Sort by Queue" through ctrl+p
        from textual.command import CommandPalette

        await pilot.press("ctrl+p")
        await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"Sort by Queue")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, OverviewScreen))
        await wait_until(pilot, lambda: app.screen.sort_column == "queue")
        # resize keeps working
        await pilot.resize_terminal(160, 50)
        await pilot.pause()
        assert "Trend" in app.screen_text()
        await app.stop_engine()


async def test_no_brokers_shows_a_hint(tmp_path):
    from mqtop.config import Config
    from mqtop.engine import Engine

    app = MqtopApp(Engine(Config()), sample_alerts(), clock=lambda: NOW, autostart=False)
    async with app.run_test(size=(100, 24)) as pilot:
        await ready(app, pilot)
        assert "no brokers configured" in app.screen_text()
        await app.stop_engine()


@pytest.mark.parametrize("index", [0, 6])
async def test_viewer_shows_json_pretty_and_binary_as_hex(tmp_path, index):
    messages = sample_messages("orders.dlq", "orders")
    actions = MemoryActions({"orders.dlq": messages})
    app = make_app(tmp_path, actions=actions)
    async with app.run_test(size=(120, 50)) as pilot:
        await ready(app, pilot)
        app.open_dlq("rabbit", "orders.dlq")
        await wait_until(pilot, lambda: isinstance(app.screen, DlqScreen) and app.screen.messages)
        for _ in range(index):
            await pilot.press("down")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, MessageViewer))
        text = app.screen_text()
        message: PeekedMessage = messages[index]
        if index == 0:
            assert '"order_id": "A-10400",' in text  # pretty-printed JSON, one key a line
            assert "content_type = application/json" in text
            assert "x-retries = 3" in text
        else:
            assert "binary or invalid UTF-8" in text
            assert "00000000  00 01 ff fe" in text  # hex dump
            assert "evil\\x1b[31m" in text  # hostile header name shown inert
        assert message.id in text
        await app.stop_engine()
