"""Alerts as the dashboard shows them, driven by the real evaluator through Textual's Pilot:
hostile names in pop-ups, held (flapping) alerts, resolutions and removed queues."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from textual.widgets._toast import Toast

from alerts.config import AlertingSettings, AlertRule
from alerts.evaluator import AlertEvaluator
from alerts.silences import SilenceStore
from collectors.base import BrokerOptions
from mqtop.config import Config
from mqtop.engine import Engine
from mqtop.kernel.model import BrokerSnapshot, BrokerStatus, SeriesKey, SeriesSample
from mqtop.ui.alerts import AlertsScreen
from mqtop.ui.app import MqtopApp
from mqtop.ui.overview import OverviewScreen
from mqtop.ui.sample import NOW, SampleCollector

HOSTILE = {
    ("x[/]", None): "x[/]",
    ("x[link=https://evil.example]", None): "x[link=https://evil.example]",
    ("[@click=app.quit]", None): "[@click=app.quit]",
    ("[bold red]FAKE[/]", None): "[bold red]FAKE[/]",
    ("orders", "[analytics]"): "demo-kafka/orders [[analytics]]",
}


class World:
    """An app on an engine that never polls: the test ingests polls at chosen times."""

    def __init__(self, settings: AlertingSettings | None = None) -> None:
        options = BrokerOptions(name="demo-kafka", type="kafka")
        config = Config(interval=1.0, brokers=[options])
        self.engine = Engine(config, collectors={"demo-kafka": SampleCollector(options, None)})
        rules = [
            AlertRule.model_validate(
                {"name": "Backlog", "metric": "queue_length", "op": ">", "threshold": 1000}
            )
        ]
        self.evaluator = AlertEvaluator(
            rules, settings or AlertingSettings(), silences=SilenceStore(None)
        )
        self.now = NOW
        self.app = MqtopApp(self.engine, self.evaluator, clock=lambda: self.now, autostart=False)

    def poll(self, t: float, series: Mapping[tuple[str, str | None], float]) -> None:
        self.now = NOW + t
        samples = tuple(
            SeriesSample(SeriesKey("demo-kafka", q, g), "topic", {"queue_length": v})
            for (q, g), v in series.items()
        )
        self.engine.statuses["demo-kafka"] = BrokerStatus(
            name="demo-kafka",
            type="kafka",
            address="demo-kafka",
            up=True,
            last_poll=self.now,
            last_success=self.now,
            last_duration=0.01,
            interval=1.0,
        )
        self.engine.store.ingest(
            BrokerSnapshot("demo-kafka", "kafka", self.now, True, 0.01, samples), interval=1.0
        )


async def until(pilot, predicate: Callable[[], object], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.02)


async def settle(world: World, pilot) -> None:
    """Wait until the dashboard has evaluated the store as it is now."""
    app = world.app
    generation = world.engine.store.generation
    await until(pilot, lambda: app.data.generation == generation and not app._refreshing)
    await pilot.pause(0.05)


def toasts(app: MqtopApp) -> list[str]:
    """The text of every pop-up on screen, as the terminal shows it."""
    return [toast.render().plain for toast in app.screen.query(Toast)]


async def test_pop_ups_show_hostile_names_as_text_and_never_crash():
    world = World()
    app = world.app
    async with app.run_test(size=(200, 50), notifications=True) as pilot:
        await until(pilot, lambda: isinstance(app.screen, OverviewScreen))
        world.poll(0, dict.fromkeys(HOSTILE, 1500.0))
        await settle(world, pilot)
        await until(pilot, lambda: len(toasts(app)) == len(HOSTILE))
        assert app.is_running and app.return_code is None
        shown = "\n".join(toasts(app))
        # every name arrives as written: nothing is read as markup, styling or a link
        for queue, group in HOSTILE:
            label = f"demo-kafka/{queue}" + (f" [{group}]" if group else "")
            assert f"{label}: queue_length 1500 > 1000" in shown, (label, shown)
        for toast in app.screen.query(Toast):
            content = toast.render()
            title = content.plain.split("\n", 1)[0]
            # only the title is styled: the message carries no style, link or action span
            assert all(span.end <= len(title) for span in content.spans), content.spans
        # the alerts screen and the overview show them literally too
        await pilot.press("A")
        await until(pilot, lambda: isinstance(app.screen, AlertsScreen))
        await pilot.pause(0.1)
        text = app.screen_text()
        for queue, _ in HOSTILE:
            assert queue in text, queue
        assert app.is_running
        await app.stop_engine()


async def test_held_alert_says_it_is_held_and_until_when():
    world = World(AlertingSettings(flap_threshold=2, flap_window="60s"))
    app = world.app
    key = ("jobs", None)
    async with app.run_test(size=(200, 50), notifications=True) as pilot:
        await until(pilot, lambda: isinstance(app.screen, OverviewScreen))
        for t, depth in enumerate([1500.0, 10.0, 1500.0, 0.0]):
            world.poll(t, {key: depth})
            await settle(world, pilot)
        # fired twice within the flap window, condition false since t=3: held until t=63
        header = app.screen_text()
        assert "⏸ 1 held" in header and "✖" not in header.split("\n")[0]
        assert "⏸ held" in header  # the row's alert cell
        await until(pilot, lambda: any(t.startswith("held · Backlog") for t in toasts(app)))
        popup = next(t for t in toasts(app) if t.startswith("held · Backlog"))
        assert "demo-kafka/jobs: queue_length 0 ≤ 1000" in popup
        assert "held firing as flapping (fired 2 times in 1m) until 00:01:03Z" in popup
        await pilot.press("A")
        await until(pilot, lambda: isinstance(app.screen, AlertsScreen))
        await pilot.pause(0.1)
        text = app.screen_text()
        assert "⏸ held" in text and "clears in 1m" in text
        assert "1 firing (1 held" in text
        # it clears when it said it would, and the resolution says what is true
        world.poll(63, {key: 0.0})
        await settle(world, pilot)
        latest, first = app.data.resolved  # newest first
        assert latest.summary == "demo-kafka/jobs: queue_length 0 ≤ 1000"
        assert latest.resolved_at == NOW + 63
        assert first.summary == "demo-kafka/jobs: queue_length 10 ≤ 1000"
        text = app.screen_text()
        assert "queue_length 0 ≤ 1000" in text and "0 firing" in text
        await app.stop_engine()


async def test_deleted_queues_leave_the_dashboard_after_the_grace_period():
    world = World()
    app = world.app
    deleted = {(f"tmp-{i}", None): 2000.0 for i in range(40)}
    async with app.run_test(size=(200, 60), notifications=True) as pilot:
        await until(pilot, lambda: isinstance(app.screen, OverviewScreen))
        world.poll(0, {("keep", None): 1.0, **deleted})
        await settle(world, pilot)
        assert app.data.firing_count == 40
        # at most a handful of pop-ups at once, plus one that sums up the rest
        await until(pilot, lambda: any("more alert changes" in t for t in toasts(app)))
        shown = toasts(app)
        assert len(shown) <= 6 and any("and 35 more alert changes" in t for t in shown)
        for t in range(1, 4):
            world.poll(t, {("keep", None): 1.0})
            await settle(world, pilot)
        assert [r.queue for r in app.data.rows] == ["keep"]
        assert app.data.firing_count == 0 and app.data.alerts == ()
        reasons = {a.reason for a in app.data.resolved}
        assert reasons == {"series_removed"}
        header = app.screen_text().split("\n")[0]
        assert "1 series" in header and "no alerts firing" in header
        await app.stop_engine()
