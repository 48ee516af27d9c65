"""The small things an operator trips over: keys that agree, words and numbers, feedback."""

from __future__ import annotations

import asyncio
import json
import re

from alerts.model import Alert, AlertState
from collectors.base import BrokerOptions
from mqtop.config import Config
from mqtop.engine import Engine
from mqtop.kernel.model import SeriesKey
from mqtop.ui.alerts import AlertsScreen
from mqtop.ui.app import MqtopApp
from mqtop.ui.detail import DetailScreen
from mqtop.ui.dlq import DlqScreen, MessageViewer
from mqtop.ui.modals import ConfirmModal, HelpScreen
from mqtop.ui.overview import OverviewScreen
from mqtop.ui.sample import NOW, MemoryActions, SampleAlerts, sample_alerts, sample_messages
from tests.support.pilot import make_app, ready, wait_until


def _actions(count: int = 6) -> MemoryActions:
    return MemoryActions(
        {"orders.dlq": sample_messages("orders.dlq", "orders", count), "orders": []},
        origins={"orders.dlq": "orders"},
    )


async def _open_dlq(app: MqtopApp, pilot) -> DlqScreen:
    app.open_dlq("rabbit", "orders.dlq")
    await wait_until(pilot, lambda: isinstance(app.screen, DlqScreen) and app.screen.messages)
    await pilot.pause()
    return app.screen


def _footer(app: MqtopApp) -> str:
    return app.screen_text().splitlines()[-1]


async def test_home_end_and_enter_agree_on_every_list(tmp_path):
    app = make_app(tmp_path, actions=_actions())
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        assert "⏎ Detail" in _footer(app)
        screen = await _open_dlq(app, pilot)
        table = screen.table
        assert "⏎ View" in _footer(app)
        await pilot.press("end")
        assert table.cursor_row == table.row_count - 1 == 6  # a row, not a sideways scroll
        await pilot.press("home")
        assert table.cursor_row == 0
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, MessageViewer))
        assert "r Replay" in _footer(app) and "e Edit" in _footer(app)
        await pilot.press("escape", "escape")
        await wait_until(pilot, lambda: isinstance(app.screen, OverviewScreen))
        await pilot.press("A")
        await wait_until(pilot, lambda: isinstance(app.screen, AlertsScreen))
        assert "⏎ Open" in _footer(app)
        alerts = app.screen.query_one("#alerts-table")
        await pilot.press("end")
        assert alerts.cursor_row == alerts.row_count - 1
        await pilot.press("home", "down", "enter")  # Enter opens the alert's series
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await app.stop_engine()


async def test_r_in_the_viewer_replays_that_message_by_id(tmp_path):
    actions = _actions()
    app = make_app(tmp_path, actions=actions)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        screen = await _open_dlq(app, pilot)
        await pilot.press("down", "down", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, MessageViewer))
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        body = app.screen.body.plain
        assert "this message" in body and "1 message(s) · set #" in body
        assert "found by id" in body
        await pilot.press("y")
        await wait_until(pilot, lambda: screen.last_result is not None)
        assert [m.id for m in actions.queues["orders"]] == ["msg-0003"]
        assert "msg-0003" not in [m.id for m in actions.queues["orders.dlq"]]
        (record,) = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
        assert record["count"] == 1 and record["details"]["ids"] == ["msg-0003"]
        assert record["details"]["matched"] == "by id" and record["details"]["via"] == "dashboard"
        await app.stop_engine()


async def test_r_with_nothing_selected_asks_clearly_about_every_message(tmp_path):
    actions = _actions()
    app = make_app(tmp_path, actions=actions)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(app, pilot)
        await _open_dlq(app, pilot)
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        modal = app.screen
        assert modal.title_text == "Replay ALL messages?"
        assert "Nothing is selected: this replays every message of the queue" in modal.body.plain
        assert "all 7 message(s)" in modal.body.plain
        await pilot.press("n")
        await pilot.pause()
        assert len(actions.queues["orders.dlq"]) == 7  # cancelled: nothing moved
        await app.stop_engine()


async def test_help_lists_only_the_keys_of_the_current_screen(tmp_path):
    app = make_app(tmp_path, actions=_actions())
    async with app.run_test(size=(100, 40)) as pilot:
        await ready(app, pilot)
        await _open_dlq(app, pilot)
        await pilot.press("slash", "escape", "question_mark")  # even after using the search box
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = app.screen_text()
        assert "Keys · dlq" in text
        for words in ("search: text in body", "group by death reason", "replay the selection"):
            assert words in text, words
        for foreign in ("ctrl+shift", "Delete character", "sort by the next column"):
            assert foreign not in text, foreign
        await app.stop_engine()


async def test_first_frame_says_it_waits_for_the_first_poll(tmp_path):
    engine = Engine(Config(brokers=[BrokerOptions(name="cache", type="redis")]))
    app = MqtopApp(engine, sample_alerts(), clock=lambda: NOW, autostart=False)
    async with app.run_test(size=(100, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, OverviewScreen))
        await pilot.pause()
        text = app.screen_text()
        assert "waiting for the first poll…" in text
        assert "◌ cache connecting…" in text
        await app.stop_engine()


class _SlowPeek(MemoryActions):
    """A peek that takes as long as the test wants (the first Kafka DLT peek took ~12 s)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.release = asyncio.Event()
        self.started = 0

    async def peek(self, queue, count):
        self.started += 1
        await self.release.wait()
        return await super().peek(queue, count)


async def test_a_long_peek_shows_progress_and_esc_cancels_it(tmp_path):
    actions = _SlowPeek({"orders.dlq": sample_messages("orders.dlq", "orders")})
    app = make_app(tmp_path, actions=actions)
    async with app.run_test(size=(120, 30)) as pilot:
        await ready(app, pilot)
        app.open_dlq("rabbit", "orders.dlq")
        await wait_until(pilot, lambda: isinstance(app.screen, DlqScreen))
        screen = app.screen
        await wait_until(pilot, lambda: "peeking 100 message(s)…" in app.screen_text())
        await wait_until(
            pilot, lambda: re.search(r"peeking 100 message\(s\)… [1-9]s", app.screen_text())
        )
        assert "Esc cancels" in app.screen_text()
        await pilot.press("escape")
        await wait_until(pilot, lambda: "peek cancelled" in app.screen_text())
        assert app.screen is screen and screen.messages == []
        # peeking again works, and Esc then leaves
        actions.release.set()
        await pilot.press("f5")
        await wait_until(pilot, lambda: len(screen.messages) == 7)
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, OverviewScreen))
        await app.stop_engine()


async def test_n_of_m_shown_and_load_more(tmp_path):
    actions = MemoryActions({"orders.dlq": sample_messages("orders.dlq", "orders", 26)})
    app = make_app(tmp_path, actions=actions)
    app.peek_count = 3
    async with app.run_test(size=(140, 30)) as pilot:
        await ready(app, pilot)
        screen = await _open_dlq(app, pilot)
        assert screen.total == 27
        assert "3 of 27 shown (l: load 24 more)" in app.screen_text()
        await pilot.press("space")
        await pilot.press("l")
        await wait_until(pilot, lambda: len(screen.messages) == 27)
        assert "27 messages" in app.screen_text()
        assert screen.selected == {0}  # loading more keeps the selection
        await app.stop_engine()


async def test_pop_ups_never_cover_the_filter_box(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await ready(app, pilot)
        await pilot.press("slash")
        for i in range(4):
            app.notify(f"a notification that must not hide the filter {i}", timeout=30)
        await pilot.pause(0.3)
        box = app.screen.query_one("#filter").region
        toasts = [t.region for t in app.screen.query("Toast")]
        assert toasts and box.height > 0
        assert not any(box.overlaps(t) for t in toasts), (box, toasts)
        await app.stop_engine()


async def test_count_axes_are_whole_numbers(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 60)) as pilot:
        await ready(app, pilot)
        app.open_detail(SeriesKey("rabbit", "orders"))
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.pause(0.5)
        lines = app.screen_text().splitlines()
        for chart in ("#chart-backlog", "#chart-inflight"):
            region = app.screen.query_one(chart).region
            rows = [line[region.x : region.right] for line in lines[region.y : region.bottom]]
            numbers = [m.group(1) for r in rows if (m := re.match(r"\s*([0-9][^ ┤]*)\s*┤", r))]
            assert numbers, (chart, rows)
            assert not any("." in x for x in numbers), (chart, numbers)
        await app.stop_engine()


def _alert(rule: str, severity: str, queue: str | None, value: float | None, **kw) -> Alert:
    return Alert(
        rule=rule,
        severity=severity,
        state=AlertState.FIRING,
        broker=kw.pop("broker", "events"),
        queue=queue,
        group=kw.pop("group", None),
        value=value,
        threshold=kw.pop("threshold", None),
        summary=f"{rule} summary",
        active_since=NOW - 300,
        fired_at=NOW - 240,
    )


async def test_words_and_numbers_agree(tmp_path):
    alerts = SampleAlerts(
        fixed=[
            _alert("GroupStalled", "warning", "clicks", 2.0, group="analytics"),
            _alert("ConsumerLag", "warning", "clicks", 93.374, group="billing", threshold=60),
            _alert("Backlog", "info", "orders.DLT", 12.0, group="replayer"),
        ]
    )
    alerts.silence("Other", {"queue": "x"}, NOW + 60, "one")
    app = make_app(tmp_path, alerts=alerts)
    async with app.run_test(size=(140, 40)) as pilot:
        await ready(app, pilot)
        header = app.screen_text().splitlines()[0]
        # info alerts are not counted in the red/yellow "firing" and have their own symbol
        assert "▲ 2 firing" in header and "ℹ 1 info" in header  # noqa: RUF001
        await pilot.press("A")
        await wait_until(pilot, lambda: isinstance(app.screen, AlertsScreen))
        text = app.screen_text()
        assert "1 silence" in text and "1 silences" not in text
        assert "STALL" in text  # a group status is a word, not 2
        assert "1m33s" in text and "93.374" not in text  # lag as a duration, as elsewhere
        assert "ℹ firing" in text and "▲ firing" in text  # noqa: RUF001
        await app.stop_engine()
