"""RabbitMQ: `mqtop dlq move` vs a dynamic shovel, and the poll cost at 5,000 queues.

Move: the same number of 1 KB persistent messages (100,000; quick: 20,000) is moved from one
durable queue to another on the same broker in the same run, once by a dynamic shovel
(``ack-mode: on-confirm``, ``src-delete-after: queue-length``, prefetch 1000, the management
UI's "move messages") and once by the ``mqtop dlq move`` command (a subprocess, start-up
included). Each is timed until the destination holds every message; both results are checked
(destination count, source empty).

Poll: 5,000 queues (quick: 1,000) in a private vhost; the collector's ``collect()`` is timed
(wall and this process's CPU) against one bare paged fetch of the same columns (sequential
httpx requests, JSON decoded, nothing else).

    python benchmarks/bench_rabbitmq.py [--quick]
    python benchmarks/bench_rabbitmq.py --scale   # poll only: 20,000 queues
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
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent


def _q(name: str) -> str:
    return quote(name, safe="")


def _connect(broker, vhost: str = "/"):  # type: ignore[no-untyped-def]
    import pika

    return pika.BlockingConnection(
        pika.ConnectionParameters(
            host=broker.host,
            port=broker.amqp_port,
            virtual_host=vhost,
            credentials=pika.PlainCredentials(broker.user, broker.password),
        )
    )


def _ready(channel, queue: str) -> int:  # type: ignore[no-untyped-def]
    return int(channel.queue_declare(queue, passive=True).method.message_count)


def _fill(broker, queue: str, count: int, size: int = 1024) -> None:  # type: ignore[no-untyped-def]
    """Publish ``count`` persistent messages (no confirms: speed), then wait for all."""
    import pika

    conn = _connect(broker)
    try:
        channel = conn.channel()
        channel.queue_declare(queue, durable=True)
        body = b"m" * size
        for i in range(count):
            props = pika.BasicProperties(delivery_mode=2, message_id=f"b{i:07d}")
            channel.basic_publish("", queue, body, props)
            if i % 5000 == 4999:
                conn.process_data_events(0)
        deadline = time.monotonic() + 300
        while _ready(channel, queue) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{queue}: filling timed out")
            time.sleep(0.05)
    finally:
        conn.close()


def _declare(broker, *queues: str) -> None:  # type: ignore[no-untyped-def]
    conn = _connect(broker)
    try:
        channel = conn.channel()
        for queue in queues:
            channel.queue_declare(queue, durable=True)
    finally:
        conn.close()


def _delete(broker, *queues: str) -> None:  # type: ignore[no-untyped-def]
    for queue in queues:
        try:
            broker.api("DELETE", f"queues/%2F/{_q(queue)}")
        except Exception:
            pass


def _wait_moved(broker, src: str, dst: str, count: int) -> float:  # type: ignore[no-untyped-def]
    """Seconds until ``dst`` holds ``count`` ready messages (polled every 10 ms)."""
    conn = _connect(broker)
    try:
        channel = conn.channel()
        start = time.perf_counter()
        deadline = time.monotonic() + 600
        while _ready(channel, dst) < count:
            if time.monotonic() > deadline:
                raise RuntimeError("move timed out")
            time.sleep(0.01)
        elapsed = time.perf_counter() - start
        if _ready(channel, src) != 0:
            raise RuntimeError(f"{src} not empty after the move")
        return elapsed
    finally:
        conn.close()


def shovel_move(broker, count: int) -> float:  # type: ignore[no-untyped-def]
    """msg/s of a dynamic shovel moving ``count`` messages (as the management UI does)."""
    token = uuid.uuid4().hex[:8]
    src, dst, name = f"bench-shovel-src-{token}", f"bench-shovel-dst-{token}", f"bench-{token}"
    _fill(broker, src, count)
    _declare(broker, dst)
    try:
        conn = _connect(broker)
        channel = conn.channel()
        start = time.perf_counter()
        broker.api(
            "PUT",
            f"parameters/shovel/%2F/{name}",
            {
                "value": {
                    "src-protocol": "amqp091",
                    "src-uri": "amqp://",
                    "src-queue": src,
                    "src-prefetch-count": 1000,
                    "src-delete-after": "queue-length",
                    "dest-protocol": "amqp091",
                    "dest-uri": "amqp://",
                    "dest-queue": dst,
                    "ack-mode": "on-confirm",
                }
            },
        )
        while _ready(channel, dst) < count:
            time.sleep(0.01)
        elapsed = time.perf_counter() - start
        conn.close()
        if _wait_moved(broker, src, dst, count) < 0:
            raise RuntimeError("unreachable")
        return count / elapsed
    finally:
        try:
            broker.api("DELETE", f"parameters/shovel/%2F/{name}")
        except Exception:
            pass
        _delete(broker, src, dst)


def mqtop_move(broker, count: int) -> float:  # type: ignore[no-untyped-def]
    """msg/s of `mqtop dlq move` (a subprocess, start-up included) moving ``count``."""
    token = uuid.uuid4().hex[:8]
    src, dst = f"bench-mqtop-src-{token}", f"bench-mqtop-dst-{token}"
    _fill(broker, src, count)
    _declare(broker, dst)
    with tempfile.TemporaryDirectory(prefix="mqtop-bench-") as tmp:
        config = Path(tmp, "mqtop.yaml")
        config.write_text(
            "brokers:\n"
            "  - name: rabbit\n"
            "    type: rabbitmq\n"
            f'    url: "{broker.amqp_url}"\n'
            f'    management_url: "{broker.management_url}"\n'
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_STATE_HOME": tmp}
        try:
            start = time.perf_counter()
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "mqtop",
                    "dlq",
                    "move",
                    "--config",
                    str(config),
                    "rabbit",
                    src,
                    dst,
                    "--yes",
                    "--format",
                    "json",
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            elapsed = time.perf_counter() - start
            if result.returncode != 0:
                raise RuntimeError(f"mqtop dlq move failed: {result.stderr[-500:]}")
            doc = json.loads(result.stdout)
            if doc["moved"] != count:
                raise RuntimeError(f"mqtop moved {doc['moved']} of {count}")
            _wait_moved(broker, src, dst, count)
            return count / elapsed
        finally:
            _delete(broker, src, dst)


def _create_queues(broker, vhost: str, count: int) -> None:  # type: ignore[no-untyped-def]
    broker.api("PUT", f"vhosts/{_q(vhost)}", {})
    broker.api(
        "PUT",
        f"permissions/{_q(vhost)}/{_q(broker.user)}",
        {"configure": ".*", "write": ".*", "read": ".*"},
    )
    conn = _connect(broker, vhost)
    try:
        channel = conn.channel()
        dlx = "bench.dlx"
        channel.exchange_declare(dlx, "direct")
        for i in range(count):
            name = f"q{i:05d}"
            args = {}
            if i % 10 == 0:  # a tenth dead-letter into a DLQ, as real fleets do
                args = {"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": name}
            channel.queue_declare(name, durable=False, arguments=args)
            if i % 10 == 0:
                channel.queue_declare(name + ".dlq", durable=False)
                channel.queue_bind(name + ".dlq", dlx, name)
            if i % 7 == 0:
                channel.basic_publish("", name, b"x")
    finally:
        conn.close()


def poll_benchmark(broker, count: int, cycles: int = 7) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """(mqtop CPU seconds per poll, mqtop poll wall / bare paged fetch wall, mqtop poll CPU /
    bare paged fetch CPU)."""
    import httpx

    from collectors.rabbitmq.collector import QUEUE_COLUMNS, RabbitMQCollector, RabbitMQOptions
    from mqtop.kernel.secrets import SecretUrl

    vhost = f"mqtop-bench-{uuid.uuid4().hex[:8]}"
    _create_queues(broker, vhost, count)
    try:
        # wait until the management API lists them all (stats arrive within ~5 s)
        base = broker.management_url
        auth = (broker.user, broker.password)
        deadline = time.monotonic() + 120
        while True:
            data = httpx.get(
                f"{base}/api/queues/{_q(vhost)}",
                params={"page": 1, "page_size": 1, "columns": "name"},
                auth=auth,
                timeout=60,
            ).json()
            if data.get("total_count", 0) >= count * 1.1 - 1:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("queues did not show up in the management API")
            time.sleep(0.5)

        def bare_fetch(client: httpx.Client) -> int:
            page, pages, seen = 1, 1, 0
            while page <= pages:
                response = client.get(
                    f"/api/queues/{_q(vhost)}",
                    params={"columns": ",".join(QUEUE_COLUMNS), "page": page, "page_size": 500},
                )
                doc = response.json()
                pages = int(doc["page_count"])
                seen += len(doc["items"])
                page += 1
            return seen

        options = RabbitMQOptions(
            name="bench",
            url=SecretUrl(broker.amqp_url),
            management_url=SecretUrl(broker.management_url),
            vhosts=[vhost],
            timeout=600,  # tens of thousands of queues: a poll budget as an operator would set it
            http_timeout=600,
        )

        async def measure() -> tuple[list[float], list[float], list[float], list[float], int]:
            """Alternate one bare fetch and one mqtop poll, so both see the same load."""
            collector = RabbitMQCollector(options)
            await collector.connect()
            try:
                with httpx.Client(base_url=base, auth=auth, timeout=120) as client:
                    bare_fetch(client)  # warm-up (connection, broker caches)
                    collected = await collector.collect()  # warm-up: topology, overview
                    bare, bare_cpus, walls, cpus = [], [], [], []
                    for _ in range(cycles):
                        cpu0, start = time.process_time(), time.perf_counter()
                        await asyncio.to_thread(bare_fetch, client)
                        bare.append(time.perf_counter() - start)
                        bare_cpus.append(time.process_time() - cpu0)
                        cpu0, start = time.process_time(), time.perf_counter()
                        collected = await collector.collect()
                        walls.append(time.perf_counter() - start)
                        cpus.append(time.process_time() - cpu0)
                return bare, bare_cpus, walls, cpus, len(collected.series)
            finally:
                await collector.close()

        bare, bare_cpus, walls, cpus, series = asyncio.run(measure())
        if series < count:
            raise RuntimeError(f"collector saw {series} queues, expected >= {count}")
        walls.sort()
        bare.sort()
        cpus.sort()
        bare_cpus.sort()
        median = cycles // 2
        return cpus[median], walls[median] / bare[median], cpus[median] / bare_cpus[median]
    finally:
        try:
            broker.api("DELETE", f"vhosts/{_q(vhost)}")
        except Exception:
            pass


def run(quick: bool = False) -> dict[str, float]:
    """Benchmark figures (ratios measured in the same run)."""
    from tests.harness import find_rabbitmq

    broker = find_rabbitmq()
    try:
        count = 20_000 if quick else 100_000
        shovel = shovel_move(broker, count)
        mqtop = mqtop_move(broker, count)
        cpu, ratio, cpu_ratio = poll_benchmark(broker, 1_000 if quick else 5_000)
    finally:
        broker.stop()
    return {
        "rabbitmq_move_vs_shovel": round(mqtop / shovel, 3),
        "rabbitmq_move_msgs_per_s": round(mqtop, 1),
        "rabbitmq_shovel_msgs_per_s": round(shovel, 1),
        "poll_cycle_cpu_s_5k_rabbit_queues": round(cpu, 4),
        "rabbitmq_poll_vs_bare_fetch": round(ratio, 3),
        "rabbitmq_poll_cpu_vs_bare_fetch": round(cpu_ratio, 3),
    }


def run_scale(count: int = 20_000) -> dict[str, float]:
    """The poll alone at 20,000 queues (plus their 2,000 DLQs), created and removed here."""
    from tests.harness import find_rabbitmq

    broker = find_rabbitmq()
    try:
        cpu, ratio, cpu_ratio = poll_benchmark(broker, count, cycles=5)
    finally:
        broker.stop()
    return {
        "poll_cycle_cpu_s_20k_rabbit_queues": round(cpu, 4),
        "rabbitmq_poll_vs_bare_fetch_20k": round(ratio, 3),
        "rabbitmq_poll_cpu_vs_bare_fetch_20k": round(cpu_ratio, 3),
    }


if __name__ == "__main__":
    if "--scale" in sys.argv:
        print(json.dumps(run_scale(), indent=2))
    else:
        print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
