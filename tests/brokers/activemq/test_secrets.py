"""Secret canary for ActiveMQ: a working password and a wrong one appear nowhere mqtop writes."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.activemq import ActiveMQBroker, wait_count

pytestmark = pytest.mark.broker


def test_no_command_shows_an_activemq_password(
    artemis_broker: ActiveMQBroker,
    unique: Callable[[str], str],
    write_config: Callable[..., Path],
    run_cli: Any,
    tmp_path: Path,
) -> None:
    amq = artemis_broker
    good, bad = f"CnryAmq{uuid.uuid4().hex[:12]}", f"CnryAmqBad{uuid.uuid4().hex[:12]}"
    user = unique("user").replace("-", "")
    broker = amq.broker_mbean()
    amq.call(broker, "addUser(java.lang.String,java.lang.String,java.lang.String,boolean)",
             user, good, "amq", True)  # fmt: skip
    queue, other = unique("canary"), unique("canary-dst")
    for name in (queue, other):
        amq.create_queue(name, dlq_per_queue=False)
    try:
        amq.send(queue, ["a", "b"])
        assert wait_count(amq, queue, 2) == 2
        host = amq.jolokia_url.split("://", 1)[1]
        brokers = [
            {"name": "good", "type": "activemq", "jolokia_url": amq.jolokia_url, "user": user,
             "password": good},
            {"name": "inurl", "type": "activemq", "jolokia_url": f"http://{user}:{good}@{host}"},
            {"name": "bad", "type": "activemq", "jolokia_url": amq.jolokia_url, "user": user,
             "password": bad},
        ]  # fmt: skip
        path = write_config("brokers:\n" + "".join(f"  - {json.dumps(b)}\n" for b in brokers))
        outputs: list[str] = []
        for args, codes in [
            (["-vv", "metrics", "--format", "json"], (3,)),
            (["metrics", "--format", "prometheus"], (3,)),
            (["queues", "--broker", "good"], (0,)),
            (["config", "show"], (0,)),
            (["-vv", "dlq", "peek", "good", queue, "--format", "json"], (0,)),
            (["-vv", "dlq", "peek", "inurl", queue], (0,)),
            (["-vv", "dlq", "peek", "bad", queue], (3,)),
            (["dlq", "move", "good", queue, other, "--yes", "--limit", "1"], (0,)),
            (["dlq", "move", "bad", queue, other, "--yes"], (3,)),
            (["dlq", "purge", "good", other, "--yes"], (0,)),
        ]:
            result = run_cli(*args, "--config", str(path))
            assert result.returncode in codes, (args, result.stderr)
            outputs += [result.stdout, result.stderr]
        written = [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
        forms = [good, bad]
        forms += [base64.b64encode(f"{user}:{s}".encode()).decode() for s in (good, bad)]
        for text in outputs + written:
            if text.startswith("brokers:"):
                continue  # the config file itself
            for secret in forms:
                assert secret not in text
        assert any('"moved": 1' in o or "moved 1 message" in o for o in outputs)
    finally:
        amq.cleanup(queue, other)
        amq.call(broker, "removeUser(java.lang.String)", user)
