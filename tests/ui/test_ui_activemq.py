"""The dashboard against real ActiveMQ brokers (Artemis and Classic): rows with the broker's
numbers, the DLQ browser peeks whole bodies (browse_url) and replays selected messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mqtop.config import load_config
from mqtop.engine import Engine
from mqtop.kernel.model import SeriesKey
from mqtop.ui.app import MqtopApp
from mqtop.ui.overview import OverviewScreen
from tests.support.activemq import ActiveMQBroker, wait_count
from tests.support.pilot import confirm, open_dlq_through_ui, row, state_config, wait_until

pytestmark = pytest.mark.broker


@pytest.mark.parametrize("flavor", ["artemis", "classic"])
async def test_activemq_rows_peek_and_replay_through_the_ui(
    flavor: str, request: pytest.FixtureRequest, write_config, unique, tmp_path: Path
) -> None:
    fixture = "artemis_broker" if flavor == "artemis" else "activemq_classic_broker"
    amq: ActiveMQBroker = request.getfixturevalue(fixture)
    queue = unique("ui") if flavor == "artemis" else "ind." + unique("ui")
    dlq = amq.dlq_of(queue)
    shown_dlq = f"mqtop.DLA/{dlq}" if flavor == "artemis" else dlq  # the DLQ's series name
    amq.create_queue(queue)
    try:
        long = "L" * 2000 + "-TAIL"  # past Jolokia's preview: read whole over browse_url
        amq.send(queue, [long, *(json.dumps({"order": i}) for i in range(1, 5))])
        assert wait_count(amq, queue, 5) == 5
        amq.dead_letter(queue, 5)
        assert wait_count(amq, dlq, 5) == 5
        broker = {"name": "amq", "type": "activemq", "jolokia_url": amq.jolokia_url,
                  "user": amq.user, "password": amq.password, "browse_url": amq.browse_url,
                  "include": [queue, shown_dlq]}  # fmt: skip
        path = write_config("interval: 1s\nbrokers:\n  - " + json.dumps(broker) + "\n"
                            + state_config(tmp_path))  # fmt: skip
        app = MqtopApp(Engine(load_config(str(path))))
        async with app.run_test(size=(160, 40)) as pilot:
            await wait_until(
                pilot,
                lambda: (
                    isinstance(app.screen, OverviewScreen)
                    and (r := row(app, SeriesKey("amq", shown_dlq))) is not None
                    and r.backlog == 5
                    and row(app, SeriesKey("amq", queue)) is not None
                ),
                what="the queue and its DLQ in the overview",
            )
            assert row(app, SeriesKey("amq", queue)).backlog == amq.count(queue) == 0
            assert row(app, SeriesKey("amq", queue)).dlq == shown_dlq
            assert "● amq up" in app.screen_text()

            screen = await open_dlq_through_ui(pilot, app, shown_dlq)
            await wait_until(pilot, lambda: len(screen.messages) == 5, what="peek")
            assert screen.target() == queue
            by_body = {m.body: m for m in screen.messages}
            assert long.encode() in by_body and by_body[long.encode()].body_complete
            assert all(m.death is not None and m.death.original_queue == queue
                       for m in screen.messages)  # fmt: skip
            assert amq.count(dlq) == 5  # peeking consumed nothing

            await pilot.press("space", "space")
            chosen = {m.body for m in screen.selected_messages()}
            assert len(chosen) == 2
            await pilot.press("r")
            await confirm(pilot, app, "2 selected message(s)", queue)
            await wait_until(pilot, lambda: screen.last_result is not None, what="replay")
            assert screen.last_result.moved == 2 and screen.last_result.failed == 0
            assert wait_count(amq, queue, 2) == 2 and amq.count(dlq) == 3
            await app.stop_engine()
    finally:
        amq.cleanup(queue)
