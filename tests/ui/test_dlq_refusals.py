"""The CLI and the dashboard refuse the same dead-letter writes with the same words and exit code.

The dashboard's move dialog also offers the broker's declared move options, refused in the
CLI's words.

Both go through the dead-letter service (mqtop/dlq): each case runs `mqtop dlq` in a
subprocess and the dashboard through Pilot, on a broker named alike with the same audit log,
and compares the CLI's one line (``mqtop: <words>``, exit 2) with what the dashboard shows.
Refusals come before anything is asked: no message moves, nothing is audited.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.widgets import Static

from collectors.base import MoveRequest, MoveResult, ProgressCallback
from mqtop.kernel.errors import EXIT_USAGE
from mqtop.ui.app import MqtopApp
from mqtop.ui.dlq import DlqScreen
from mqtop.ui.modals import DestinationPicker, MoveConfirm
from mqtop.ui.overview import OverviewScreen
from mqtop.ui.sample import NOW, MemoryActions, sample_alerts, sample_engine, sample_messages


async def _until(pilot, predicate: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {predicate}"
        await pilot.pause(0.02)


async def _open_dlq(pilot) -> DlqScreen:
    """The DLQ browser on rabbit/orders.dlq, peeked."""
    app = pilot.app
    await _until(pilot, lambda: isinstance(app.screen, OverviewScreen) and app.refresh_count)
    app.open_dlq("rabbit", "orders.dlq")
    await _until(pilot, lambda: isinstance(app.screen, DlqScreen) and app.screen.messages)
    assert isinstance(app.screen, DlqScreen)
    return app.screen


async def _move_to_parking(pilot, screen: DlqScreen) -> None:
    await pilot.press("m")


async def _move_onto_itself(pilot, screen: DlqScreen) -> None:
    await pilot.press("m")
    await _until(pilot, lambda: isinstance(pilot.app.screen, DestinationPicker))
    await pilot.press(*"orders.dlq", "enter")


async def _replay_on_readonly(pilot, screen: DlqScreen) -> None:
    # the keys are disabled on a readonly broker (shown dimmed): run the action itself
    await _until(pilot, lambda: pilot.app.focused is screen.table)
    assert screen.check_action("replay", ()) is None
    screen.action_replay()


Dashboard = Callable[..., Awaitable[None]]
CASES: dict[str, tuple[list[str], bool, bool, Dashboard]] = {
    # name: (CLI arguments, readonly, audit log writable, what the operator does on the dashboard)
    "audit-log-unwritable": (
        ["move", "rabbit", "orders.dlq", "parking"],
        False,
        False,
        _move_to_parking,
    ),
    "source-is-destination": (
        ["move", "rabbit", "orders.dlq", "orders.dlq"],
        False,
        True,
        _move_onto_itself,
    ),
    "readonly": (
        ["replay", "rabbit", "orders.dlq", "--to", "orders"],
        True,
        True,
        _replay_on_readonly,
    ),
}


def _audit_path(tmp_path: Path, writable: bool) -> Path:
    if writable:
        return tmp_path / "audit.jsonl"
    (tmp_path / "not-a-dir").write_text("")
    return tmp_path / "not-a-dir" / "audit.jsonl"


@pytest.mark.parametrize("case", list(CASES))
async def test_cli_and_dashboard_refuse_alike(case, tmp_path, write_config, run_cli):
    args, readonly, writable, on_dashboard = CASES[case]
    audit = _audit_path(tmp_path, writable)
    # nothing listens on port 9: a refusal must come before the broker is contacted
    config = write_config(
        f"""
        audit_log: {audit}
        brokers:
          - name: rabbit
            type: rabbitmq
            url: amqp://guest:guest@127.0.0.1:9/
            management_url: http://127.0.0.1:9
            readonly: {str(readonly).lower()}
        """
    )
    cli = run_cli("dlq", *args, "--yes", "--config", str(config))
    assert cli.returncode == EXIT_USAGE, cli.stderr
    (line,) = cli.stderr.splitlines()
    assert line.startswith("mqtop: ")
    words = line.removeprefix("mqtop: ")

    actions = MemoryActions(
        {"orders.dlq": sample_messages("orders.dlq", "orders"), "orders": []},
        origins={"orders.dlq": "orders"},
    )
    engine = sample_engine(
        actions=actions, readonly=["rabbit"] if readonly else [], audit_log=str(audit)
    )
    app = MqtopApp(engine, sample_alerts(), clock=lambda: NOW, autostart=False)
    async with app.run_test(size=(220, 40)) as pilot:
        screen = await _open_dlq(pilot)
        await on_dashboard(pilot, screen)
        result = screen.query_one("#dlq-result", Static)
        await _until(pilot, lambda: words in str(result.content), timeout=10)
        assert app.screen is screen  # refused before any question was asked
        assert screen.refusal is not None and screen.refusal.message == words
        assert screen.refusal.exit_code == cli.returncode
        await app.stop_engine()
    assert len(actions.queues["orders.dlq"]) == 7 and actions.queues["orders"] == []
    assert "parking" not in actions.queues
    assert not audit.exists()  # nothing was written, nothing was audited


async def test_readonly_notice_is_the_services_refusal(tmp_path):
    actions = MemoryActions({"orders.dlq": sample_messages("orders.dlq", "orders")})
    engine = sample_engine(actions=actions, readonly=["rabbit"], audit_log=str(tmp_path / "a"))
    app = MqtopApp(engine, sample_alerts(), clock=lambda: NOW, autostart=False)
    async with app.run_test(size=(220, 40)) as pilot:
        screen = await _open_dlq(pilot)
        notice = str(screen.query_one("#dlq-notice", Static).content)
        assert (
            "broker 'rabbit' is configured readonly: replay, move and purge refused "
            "(set readonly: false in the config to allow writes)"
        ) in notice
        await app.stop_engine()


async def test_move_dialog_offers_the_brokers_options_and_refuses_bad_values_alike(
    tmp_path, write_config, run_cli
):
    config = write_config(
        f"""
        audit_log: {tmp_path / "audit.jsonl"}
        brokers:
          - {{name: rabbit, type: rabbitmq, url: "amqp://guest:guest@127.0.0.1:9/"}}
        """
    )
    cli = run_cli(
        "dlq", "move", "rabbit", "orders.dlq", "parking", "--batch", "0", "--yes",
        "--config", str(config),
    )  # fmt: skip
    assert cli.returncode == EXIT_USAGE, cli.stderr
    words = cli.stderr.strip().removeprefix("mqtop: ")
    assert words.startswith("--batch: ")

    requests: list[MoveRequest] = []

    class Recording(MemoryActions):
        async def move(self, request: MoveRequest, progress: ProgressCallback) -> MoveResult:
            requests.append(request)
            return await super().move(request, progress)

    actions = Recording({"orders.dlq": sample_messages("orders.dlq", "orders"), "orders": []})
    engine = sample_engine(actions=actions, audit_log=str(tmp_path / "audit.jsonl"))
    app = MqtopApp(engine, sample_alerts(), clock=lambda: NOW, autostart=False)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await _open_dlq(pilot)
        await pilot.press("m")
        await _until(pilot, lambda: isinstance(app.screen, DestinationPicker))
        await pilot.press(*"parking", "enter")
        await _until(pilot, lambda: isinstance(app.screen, MoveConfirm))
        dialog = app.screen
        assert isinstance(dialog, MoveConfirm)
        assert [spec.flag for spec in dialog.specs] == ["--batch"]  # RabbitMQ declares batch
        await pilot.click("#option-batch")
        await pilot.press("0")
        await pilot.click("#confirm")
        error = dialog.query_one("#options-error", Static)
        await _until(pilot, lambda: str(error.content) == words)
        assert app.screen is dialog and requests == []  # still asking; nothing moved
        await pilot.click("#option-batch")
        await pilot.press("end", "backspace", "3")
        await pilot.click("#confirm")
        await _until(pilot, lambda: screen.last_result is not None)
        await app.stop_engine()
    (request,) = requests
    assert request.options.model_dump() == {"batch": 3}
    assert type(request.options).__name__ == "RabbitMQMoveOptions"
    assert len(actions.queues["parking"]) == 7 and actions.queues["orders.dlq"] == []
