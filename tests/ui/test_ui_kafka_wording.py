"""Words true for the broker, on real Kafka: a replay copies records and the DLT keeps them;
a second replay of records already replayed says so instead of a check mark for nothing."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import pytest

from mqtop.config import load_config
from mqtop.engine import Engine
from mqtop.ui.app import MqtopApp
from mqtop.ui.dlq import DlqScreen
from mqtop.ui.modals import ConfirmModal
from tests.harness import KafkaBroker
from tests.support.kafka import KafkaTool

pytestmark = pytest.mark.broker


@pytest.fixture
async def kafka(kafka_broker: KafkaBroker) -> AsyncIterator[KafkaTool]:
    tool = KafkaTool(kafka_broker.bootstrap)
    await tool.start()
    yield tool
    await tool.stop()


async def _until(pilot, predicate, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out: {what}"
        await pilot.pause(0.05)


async def _replay_all(pilot, app: MqtopApp, screen: DlqScreen) -> str:
    screen.last_words = ""
    await pilot.press("r")
    await _until(pilot, lambda: isinstance(app.screen, ConfirmModal), what="confirm")
    body = app.screen.body.plain
    await pilot.press("y")
    await _until(pilot, lambda: screen.last_words, what="result")
    return body


async def test_kafka_replay_says_it_copies_and_then_already_replayed(
    kafka: KafkaTool, kafka_broker, write_config, unique, tmp_path
):
    origin = unique("orders")
    dlt = origin + ".DLT"
    await kafka.create({origin: 1, dlt: 1})
    for i in range(3):
        await kafka.producer.send(
            dlt,
            json.dumps({"order": i}).encode(),
            headers=[("kafka_dlt-original-topic", origin.encode())],
        )
    await kafka.producer.flush()
    path = write_config(
        f'audit_log: "{tmp_path / "audit.jsonl"}"\n'
        "brokers:\n"
        "  - name: events\n"
        "    type: kafka\n"
        f'    bootstrap_servers: "{kafka_broker.bootstrap}"\n'
    )
    app = MqtopApp(Engine(load_config(str(path))), autostart=False)
    async with app.run_test(size=(100, 30)) as pilot:
        app.open_dlq("events", dlt)
        await _until(pilot, lambda: isinstance(app.screen, DlqScreen))
        screen = app.screen
        await _until(pilot, lambda: len(screen.messages) == 3, what="peek")
        body = await _replay_all(pilot, app, screen)
        assert "Each record is copied" in body and "keeps the original" in body
        assert "✓ copied 3 to" in screen.last_words
        assert "keeps the original records (copies, not moves)" in screen.last_words
        assert len(await kafka.read_all(origin)) == 3
        await _until(pilot, lambda: len(screen.messages) == 3, what="the DLT keeps them")
        # the same records again: nothing copied, and said so
        await _replay_all(pilot, app, screen)
        assert "— already copied: nothing left to replay" in screen.last_words
        assert "✓" not in screen.last_words
        assert len(await kafka.read_all(origin)) == 3
        await app.stop_engine()
