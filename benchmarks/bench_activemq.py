"""ActiveMQ (Artemis and Classic): the poll cost at 2,000 queues and `mqtop dlq move` against
the broker's own move operation.

Poll: 2,000 queues (quick too: creating them is cheap) are created on each flavor through
Jolokia; the collector's ``collect()`` (wall and this process's CPU) is timed against one bare
Jolokia POST of the same bulk read (httpx, JSON decoded, nothing else), alternating the two.

Move: 50,000 persistent 1 KB messages (quick: 10,000) are sent to a queue over STOMP; the
broker's own operation moves them all to a second queue in one Jolokia call (Artemis
``moveMessages(1000, "", dest, false, N)``, Classic ``moveMatchingMessagesTo("", dest, N)``);
then mqtop's move moves them back in this process (the plugin's ``move``, as the dashboard
runs it); after a first pair that is not counted (its ratio is reported as
``*_first_round``), 15 such pairs, every other one in the other order and direction,
medians compared; then
``mqtop dlq move`` (a subprocess, start-up included) moves them once more.
Each is timed until it returns and the destination holds every message. The queues are
removed afterwards.

    python benchmarks/bench_activemq.py [--quick]
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
POLL_QUEUES = 2_000


def _bulk(broker: Any, requests: list[dict[str, Any]], size: int = 200) -> None:
    """Run Jolokia requests in bulk POSTs of ``size``; every answer must be 200."""
    for at in range(0, len(requests), size):
        answers = broker.jolokia(requests[at : at + size])
        bad = [a for a in answers if a.get("status") != 200]
        if bad:
            raise RuntimeError(f"Jolokia: {bad[0].get('error')}")


def _create(broker: Any, names: list[str]) -> None:
    mbean = broker.broker_mbean()
    if broker.flavor == "artemis":
        op = "createQueue(java.lang.String,boolean)"
        args = [[json.dumps({"name": n, "address": n, "routing-type": "ANYCAST",
                             "durable": True}), True] for n in names]  # fmt: skip
    else:
        op, args = "addQueue(java.lang.String)", [[n] for n in names]
    _bulk(broker, [{"type": "exec", "mbean": mbean, "operation": op, "arguments": a}
                   for a in args])  # fmt: skip


def _remove(broker: Any, names: list[str]) -> None:
    mbean = broker.broker_mbean()
    if broker.flavor == "artemis":
        op = "destroyQueue(java.lang.String,boolean,boolean)"
        args = [[n, True, True] for n in names]
    else:
        op, args = "removeQueue(java.lang.String)", [[n] for n in names]
    requests = [{"type": "exec", "mbean": mbean, "operation": op, "arguments": a} for a in args]
    for at in range(0, len(requests), 200):
        broker.jolokia(requests[at : at + 200])  # best effort: errors stay in the answers


def _options(broker: Any) -> Any:
    from collectors.activemq.options import ActiveMQOptions

    return ActiveMQOptions(
        name="bench",
        jolokia_url=broker.jolokia_url,
        user=broker.user,
        password=broker.password,
        flavor=broker.flavor,
    )


def poll_benchmark(broker: Any, count: int, cycles: int = 11) -> dict[str, float]:
    """mqtop's poll (CPU and wall) against one bare Jolokia bulk read of the same attributes."""
    import httpx

    from collectors.activemq import ActiveMQCollector
    from collectors.activemq.decode import artemis_requests, classic_requests

    token = uuid.uuid4().hex[:8]
    names = [f"bench-poll-{token}-{i:05d}" for i in range(count)]
    _create(broker, names)
    options = _options(broker)
    body = json.dumps(
        artemis_requests(options) if broker.flavor == "artemis" else classic_requests(options)
    )
    try:

        def bare(client: httpx.Client) -> int:
            answer = client.post(options.endpoint(), content=body).json()
            return len(answer)

        async def measure() -> tuple[list[float], list[float], list[float], list[float], int]:
            collector = ActiveMQCollector(options)
            await collector.connect()
            headers = {"Origin": broker.origin, "Content-Type": "application/json"}
            auth = (broker.user, broker.password)
            try:
                with httpx.Client(auth=auth, headers=headers, timeout=120) as client:
                    bare(client)  # warm-up: connection, broker caches
                    collected = await collector.collect()
                    bare_walls, bare_cpus, walls, cpus = [], [], [], []
                    for _ in range(cycles):
                        cpu0, start = time.process_time(), time.perf_counter()
                        bare(client)
                        bare_walls.append(time.perf_counter() - start)
                        bare_cpus.append(time.process_time() - cpu0)
                        cpu0, start = time.process_time(), time.perf_counter()
                        collected = await collector.collect()
                        walls.append(time.perf_counter() - start)
                        cpus.append(time.process_time() - cpu0)
                return bare_walls, bare_cpus, walls, cpus, len(collected.series)
            finally:
                await collector.close()

        bare_walls, bare_cpus, walls, cpus, series = asyncio.run(measure())
        if series < count:
            raise RuntimeError(f"collector saw {series} queues, expected >= {count}")
        mid = cycles // 2
        for figures in (bare_walls, bare_cpus, walls, cpus):
            figures.sort()
        return {
            "cpu_s": cpus[mid],
            "wall_s": walls[mid],
            "bare_wall_s": bare_walls[mid],
            "bare_cpu_s": bare_cpus[mid],
            "wall_ratio": walls[mid] / bare_walls[mid],
            "cpu_ratio": cpus[mid] / bare_cpus[mid],
        }
    finally:
        _remove(broker, names)


def _fill(broker: Any, queue: str, count: int, size: int = 1024) -> None:
    """Send ``count`` persistent messages over STOMP, then wait until the queue has them."""
    from tests.support.activemq import wait_count

    conn = broker.stomp()
    try:
        extra = {"destination-type": "ANYCAST"} if broker.flavor == "artemis" else {}
        body = b"m" * size
        for _ in range(count):
            conn.send(broker.destination(queue), body, headers={"persistent": "true", **extra})
    finally:
        conn.disconnect()
    if wait_count(broker, queue, count, timeout=600) != count:
        raise RuntimeError(f"{queue}: filling timed out")


def direct_move(broker: Any, src: str, dst: str, count: int) -> float:
    """Seconds of the broker's own move of every message, one Jolokia call."""
    from tests.support.activemq import wait_count

    mbean = broker.queue_mbean(src)
    start = time.perf_counter()
    if broker.flavor == "artemis":
        moved = broker.call(mbean, "moveMessages(int,java.lang.String,java.lang.String,"
                            "boolean,int)", 1000, "", dst, False, count)  # fmt: skip
    else:
        moved = broker.call(mbean, "moveMatchingMessagesTo(java.lang.String,java.lang.String,int)",
                            "", dst, count)  # fmt: skip
    if int(moved) != count:
        raise RuntimeError(f"direct move moved {moved} of {count}")
    if wait_count(broker, dst, count, timeout=600) != count:
        raise RuntimeError(f"direct move left {dst} short")
    elapsed = time.perf_counter() - start
    if broker.count(src) != 0:
        raise RuntimeError(f"direct move left messages in {src}")
    return elapsed


def mqtop_move(broker: Any, src: str, dst: str, count: int) -> float:
    """Seconds of `mqtop dlq move` (a subprocess, start-up included) moving every message."""
    from tests.support.activemq import wait_count

    with tempfile.TemporaryDirectory(prefix="mqtop-bench-") as tmp:
        config = Path(tmp, "mqtop.yaml")
        broker_entry = {"name": "amq", "type": "activemq", "jolokia_url": broker.jolokia_url,
                        "user": broker.user, "password": broker.password,
                        "flavor": broker.flavor}  # fmt: skip
        config.write_text("brokers:\n  - " + json.dumps(broker_entry) + "\n")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_STATE_HOME": tmp}
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "mqtop", "dlq", "move", "--config", str(config), "amq", src,
             dst, "--yes", "--format", "json"],
            env=env, capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"mqtop dlq move failed: {result.stderr[-500:]}")
        if wait_count(broker, dst, count, timeout=600) != count:
            raise RuntimeError(f"mqtop move left {dst} short")
        elapsed = time.perf_counter() - start
    doc = json.loads(result.stdout)
    if doc["moved"] != count or broker.count(src) != 0:
        raise RuntimeError(f"mqtop moved {doc['moved']} of {count}")
    return elapsed


def inprocess_move(broker: Any, src: str, dst: str, count: int) -> float:
    """Seconds of mqtop's move (the plugin's actions, in this process) of every message."""
    from collectors.activemq import ActiveMQCollector
    from collectors.base import MoveRequest
    from tests.support.activemq import wait_count

    async def move() -> int:
        collector = ActiveMQCollector(_options(broker))
        actions = collector.actions()
        assert actions is not None
        try:
            result = await actions.move(MoveRequest(src, dst, "move"), lambda _: None)
        finally:
            await collector.close()
        return result.moved

    start = time.perf_counter()
    moved = asyncio.run(move())
    if moved != count or wait_count(broker, dst, count, timeout=600) != count:
        raise RuntimeError(f"mqtop moved {moved} of {count}")
    return time.perf_counter() - start


def move_benchmark(broker: Any, count: int, rounds: int = 15) -> dict[str, float]:
    """Throughput of the broker's own move and of mqtop's, the same messages each way:
    ``rounds`` pairs, medians compared. The pairs alternate which side goes first and so
    which queue each side moves from (even pairs: the broker's move a -> b, then mqtop's
    b -> a; odd pairs: mqtop's a -> b, then the broker's b -> a), so that each side moves
    from each queue and runs right after either side's move (when the broker may still be
    busy with it) equally often, and one disturbed run on a shared machine does not decide."""
    token = uuid.uuid4().hex[:8]
    a, b = f"bench-move-a-{token}", f"bench-move-b-{token}"
    _create(broker, [a, b])
    directs: list[float] = []
    insides: list[float] = []
    try:
        _fill(broker, a, count)
        # a first pair, not counted: the broker's first move after the fill and mqtop's first
        # run in this process (its modules imported) are each unlike the later ones
        first = direct_move(broker, a, b, count) / inprocess_move(broker, b, a, count)
        for at in range(rounds):
            if at % 2 == 0:
                directs.append(direct_move(broker, a, b, count))
                insides.append(inprocess_move(broker, b, a, count))
            else:
                insides.append(inprocess_move(broker, a, b, count))
                directs.append(direct_move(broker, b, a, count))
        cli = mqtop_move(broker, a, b, count)
    finally:
        _remove(broker, [a, b])
    direct, inside = sorted(directs)[rounds // 2], sorted(insides)[rounds // 2]
    return {"direct_msgs_per_s": count / direct, "mqtop_msgs_per_s": count / inside,
            "cli_msgs_per_s": count / cli, "ratio": direct / inside,
            "cli_ratio": direct / cli, "first_ratio": first}  # fmt: skip


def run(quick: bool = False) -> dict[str, float]:
    """Benchmark figures (ratios measured in the same run) for both flavors."""
    from tests.support.activemq import find_artemis, find_classic

    count = 10_000 if quick else 50_000
    out: dict[str, float] = {}
    for finder in (find_artemis, find_classic):
        broker = finder()
        try:
            poll = poll_benchmark(broker, POLL_QUEUES)
            move = move_benchmark(broker, count)
        finally:
            broker.stop()
        name = broker.flavor
        out.update({
            f"{name}_poll_cpu_vs_bare_2k_queues": round(poll["cpu_ratio"], 3),
            f"{name}_poll_wall_vs_bare_2k_queues": round(poll["wall_ratio"], 3),
            f"{name}_poll_cpu_s_2k_queues": round(poll["cpu_s"], 4),
            f"{name}_poll_wall_s_2k_queues": round(poll["wall_s"], 4),
            f"{name}_bare_read_wall_s_2k_queues": round(poll["bare_wall_s"], 4),
            f"{name}_move_vs_broker_move": round(move["ratio"], 3),
            f"{name}_move_vs_broker_move_first_round": round(move["first_ratio"], 3),
            f"{name}_move_msgs_per_s": round(move["mqtop_msgs_per_s"], 1),
            f"{name}_cli_move_vs_broker_move": round(move["cli_ratio"], 3),
            f"{name}_cli_move_msgs_per_s": round(move["cli_msgs_per_s"], 1),
            f"{name}_broker_move_msgs_per_s": round(move["direct_msgs_per_s"], 1),
        })  # fmt: skip
    return out


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
