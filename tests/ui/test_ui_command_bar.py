"""The ':' bar: one place to go to a queue, a broker, a DLQ, a screen or an action by name."""

from __future__ import annotations

from mqtop.kernel.model import SeriesKey
from mqtop.ui.alerts import AlertsScreen
from mqtop.ui.command import CommandBar, rank, targets
from mqtop.ui.detail import DetailScreen
from mqtop.ui.dlq import DlqScreen
from mqtop.ui.keys import DLQ, OVERVIEW, SCREENS, help_rows
from mqtop.ui.overview import OverviewScreen
from tests.support.pilot import make_app, queues, ready, wait_until


def test_every_screen_key_has_one_action_and_a_help_line():
    for name, keys in SCREENS.items():
        seen: set[str] = set()
        for key in keys:
            for k in key.keys.split(","):
                assert k not in seen, (name, k)  # one meaning per key on a screen
                seen.add(k)
            assert key.help and key.label
        assert [row[1] for row in help_rows(name)][: len(keys)] == [k.help for k in keys]


def test_ranking_prefers_prefixes_then_words():
    found = targets(
        ["rabbit"],
        [(SeriesKey("rabbit", "orders"), "orders.dlq"), (SeriesKey("rabbit", "payments"), None)],
        OVERVIEW,
    )
    names = [t.name for t in rank(found, "ord")]
    assert names[0] == "rabbit/orders" or names[0].startswith("dlq")
    assert "dlq rabbit/orders.dlq" in names and "rabbit/payments" not in names
    assert rank(found, "alerts")[0].name == "alerts"
    assert any(t.kind == "action" and t.action == "toggle_group" for t in rank(found, "group"))
    assert not any(t.kind == "action" and t.action.startswith("window") for t in found)
    assert {t.action for t in targets([], [], DLQ) if t.kind == "action"} >= {"replay", "search"}


async def _go(pilot, app, text: str, complete: bool = False) -> None:
    await pilot.press("colon")
    await wait_until(pilot, lambda: isinstance(app.screen, CommandBar))
    await pilot.press(*text)
    if complete:
        await pilot.press("tab")
    await pilot.press("enter")


async def test_the_command_bar_goes_everywhere_by_name(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        table = await ready(app, pilot)
        # a queue: its detail
        await _go(pilot, app, "payments.d")
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen))
        assert app.screen.key == SeriesKey("rabbit", "payments.dlq")
        # a DLQ, from any screen
        await _go(pilot, app, "dlq rabbit/ord")
        await wait_until(pilot, lambda: isinstance(app.screen, DlqScreen))
        assert app.screen.queue == "orders.dlq"
        # a screen, completed with Tab
        await _go(pilot, app, "ale", complete=True)
        await wait_until(pilot, lambda: isinstance(app.screen, AlertsScreen))
        # a broker: back on the overview, filtered to it
        await _go(pilot, app, "broker even")
        await wait_until(pilot, lambda: isinstance(app.screen, OverviewScreen))
        assert sorted(queues(table)) == [
            "events/clicks [analytics]",
            "events/clicks [billing]",
            "events/orders.DLT [replayer]",
        ]
        # an action of the current screen, by its name
        await _go(pilot, app, "group")
        await wait_until(pilot, lambda: app.screen.group_by_broker)
        # Esc closes the bar without going anywhere
        await pilot.press("colon")
        await wait_until(pilot, lambda: isinstance(app.screen, CommandBar))
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, OverviewScreen))
        await app.stop_engine()
