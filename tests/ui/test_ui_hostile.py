"""Hostile names, headers and payloads are shown inert in every screen of the dashboard."""

from __future__ import annotations

import dataclasses
import re
import time

from alerts.model import Alert, AlertState
from collectors.base import Death, PeekedMessage
from mqtop.kernel.model import BrokerSnapshot, SeriesKey, SeriesSample
from mqtop.ui.alerts import AlertsScreen
from mqtop.ui.app import MqtopApp
from mqtop.ui.dlq import DlqScreen, MessageViewer
from mqtop.ui.overview import OverviewScreen
from mqtop.ui.sample import NOW, MemoryActions, SampleAlerts, sample_engine

# anything that can move the cursor, recolour, retitle the terminal or reorder text
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f]")

EVIL_QUEUE = "jobs\x1b[2J\x1b]0;pwned\x07\u202eevil"
EVIL_BODY = b'{"note": "\x1b[31mred\x1b[0m \xe2\x80\xae rtl", "clear": "\\u001b[2J"}'
BAD_UTF8 = b"\xff\xfe\x00\x1b[2J not utf-8 \xc3\x28"
HUGE = b"A" * (10 * 1024 * 1024)


def _messages() -> list[PeekedMessage]:
    return [
        PeekedMessage(
            id="id-\x1b[1A\x1b[2K",
            body=EVIL_BODY,
            headers={"x-\x1b[31mheader": "v\x1b]8;;http://evil\x07link\x1b]8;;\x07", "n": 1},
            properties={"content_type": "text/\x1b[5mblink"},
            death=Death(reason="rejected\x1b[2J", count=2, original_queue="orig\u202eq"),
            timestamp=NOW - 30,
        ),
        PeekedMessage(id="bin", body=BAD_UTF8, timestamp=NOW - 60),
        PeekedMessage(id="huge", body=HUGE, timestamp=NOW - 90),
    ]


def _app(tmp_path) -> MqtopApp:
    actions = MemoryActions({EVIL_QUEUE: _messages()})
    engine = sample_engine(actions=actions, audit_log=str(tmp_path / "audit.jsonl"))
    engine.store.ingest(
        BrokerSnapshot(
            broker="rabbit",
            type="rabbitmq",
            time=NOW + 1,
            up=True,
            duration=0.01,
            series=(
                SeriesSample(
                    SeriesKey("rabbit", EVIL_QUEUE, None),
                    "classic\x1b[7m",
                    {"queue_length": 3.0},
                    info={"x\x1b[2J": "y\x07", "partitions": [{"p\x1b": "\x1b[31m"}]},
                ),
            ),
        )
    )
    status = engine.statuses["cache"]
    engine.statuses["cache"] = dataclasses.replace(
        status, error="ConnectionError: \x1b[2J\x1b]0;owned\x07 refused"
    )
    alerts = SampleAlerts(
        fixed=[
            Alert(
                rule="Rule\x1b[31m",
                severity="warning",
                state=AlertState.FIRING,
                broker="rabbit",
                queue=EVIL_QUEUE,
                group=None,
                value=3.0,
                threshold=1.0,
                summary="summary \x1b]0;title\x07 \u202e done",
            )
        ]
    )
    return MqtopApp(engine, alerts, clock=lambda: NOW + 1, autostart=False)


async def _until(pilot, predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.02)


def _inert(text: str) -> None:
    found = RAW.findall(text.replace("\n", ""))
    assert not found, f"raw control characters on screen: {found!r}"


async def test_hostile_everything_is_inert(tmp_path):
    app = _app(tmp_path)
    async with app.run_test(size=(200, 50)) as pilot:
        await _until(
            pilot, lambda: app.refresh_count >= 1 and isinstance(app.screen, OverviewScreen)
        )
        await pilot.pause()
        # overview: queue name, kind, broker error
        app.screen.filter_text = ""
        text = app.screen_text()
        _inert(text)
        assert "jobs\\x1b[2J\\x1b]0;pwned\\x07\\u202eevil" in text
        assert "ConnectionError: \\x1b[2J\\x1b]0;owned\\x07" in text

        # detail: info keys and partition records
        app.open_detail(SeriesKey("rabbit", EVIL_QUEUE, None))
        await pilot.pause(0.3)
        text = app.screen_text()
        _inert(text)
        assert "x\\x1b[2J" in text and "y\\x07" in text
        await pilot.press("escape")

        # alerts: rule and summary
        await pilot.press("A")
        await _until(pilot, lambda: isinstance(app.screen, AlertsScreen))
        await pilot.pause()
        text = app.screen_text()
        _inert(text)
        assert "Rule\\x1b[31m" in text, text
        await pilot.press("escape")

        # DLQ list: id, reason, origin, preview; binary and huge bodies
        app.open_dlq("rabbit", EVIL_QUEUE)
        await _until(pilot, lambda: isinstance(app.screen, DlqScreen) and app.screen.messages)
        await pilot.pause()
        text = app.screen_text()
        _inert(text)
        assert "id-\\x1b[1A" in text
        assert "rejected\\" in text  # cut to the column width, still escaped
        assert "hex:ff fe 00 1b" in text  # invalid UTF-8 previewed as hex
        assert "10.0 MiB" in text  # huge body: its size is shown

        # viewer of each message
        for index, expected in (
            (
                0,
                [
                    "x-\\x1b[31mheader",
                    "\\x1b[31mred",
                    "text/\\x1b[5mblink",
                    "\\u202e",
                    "rejected\\x1b[2J",
                    "orig\\u202eq",
                ],
            ),
            (1, ["binary or invalid UTF-8", "00000000  ff fe 00 1b 5b 32 4a"]),
            (2, ["first 64.0 KiB of 10.0 MiB", "AAAA"]),
        ):
            await pilot.press("home")
            for _ in range(index):
                await pilot.press("down")
            await pilot.press("enter")
            await _until(pilot, lambda: isinstance(app.screen, MessageViewer))
            await pilot.pause()
            text = app.screen_text()
            _inert(text)
            for fragment in expected:
                assert fragment in text, (index, fragment)
            await pilot.press("x")  # hex view of the same message stays inert
            await pilot.pause()
            _inert(app.screen_text())
            await pilot.press("escape")
            await _until(pilot, lambda: isinstance(app.screen, DlqScreen))
        await app.stop_engine()


def test_viewer_text_of_huge_body_is_bounded():
    from mqtop.ui.dlq import VIEWER_LIMIT, message_text

    text = message_text(PeekedMessage(id="h", body=HUGE), NOW).plain
    assert len(text) < VIEWER_LIMIT * 2
    assert "chars]" in text  # truncated, and says by how much
    hexed = message_text(PeekedMessage(id="h", body=HUGE), NOW, hex_view=True).plain
    assert "more bytes]" in hexed
    assert len(hexed) < VIEWER_LIMIT * 6
