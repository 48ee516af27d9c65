"""Redis list move: mqtop (LMOVE batches in Lua) vs a naive per-item RPOP/LPUSH client loop.

Both move the same number of ~100-byte items (some binary) on the same Redis in the same run;
each result is checked item by item (order and bytes), so a fast but lossy move cannot win.
Also reports mqtop's filtered list move and stream move throughput for reference.

    python benchmarks/bench_redis.py [--quick]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _items(n: int) -> list[bytes]:
    return [f"{i:08d}:".encode() + bytes([i % 256, 0, 255]) + b"p" * 88 for i in range(n)]


def _mismatches(got: list[bytes], expected: list[bytes]) -> int:
    """Items missing, extra or out of place (0 when the move was exact)."""
    wrong = sum(1 for a, b in zip(got, expected, strict=False) if a != b)
    return wrong + abs(len(got) - len(expected))


def _fill(client, key: str, items: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    pipe = client.pipeline(transaction=False)
    for start in range(0, len(items), 10_000):
        pipe.lpush(key, *items[start : start + 10_000])
    pipe.execute()


def _mqtop_move(url: str, src: str, dst: str, filters: list[str] | None = None) -> float:
    from collectors.base import MoveRequest
    from collectors.redis.actions import RedisActions
    from collectors.redis.options import RedisOptions
    from mqtop.kernel.filters import parse_filters
    from mqtop.kernel.secrets import SecretUrl

    async def go() -> float:
        actions = RedisActions(RedisOptions(name="bench", url=SecretUrl(url)))
        try:
            await actions.r.ping()  # connect outside the timed part, like the naive loop
            start = time.perf_counter()
            result = await actions.move(
                MoveRequest(src, dst, "move", filter=parse_filters(filters)), lambda p: None
            )
            elapsed = time.perf_counter() - start
            if result.failed:
                raise RuntimeError(f"mqtop move failed: {result.errors}")
            return elapsed
        finally:
            await actions.close()

    return asyncio.run(go())


def run(quick: bool = False) -> dict[str, float]:
    import redis

    from tests.harness import find_redis

    broker = find_redis()
    client = redis.Redis(host=broker.host, port=broker.port)
    n = 20_000 if quick else 100_000
    token = uuid.uuid4().hex[:8]
    keys = [f"mqtop-bench-{token}:{name}" for name in ("a", "b", "c", "d", "e", "f", "g", "h")]
    src, dst, nsrc, ndst, fsrc, fdst, ssrc, sdst = keys
    items = _items(n)
    try:
        _fill(client, src, items)
        mqtop_s = _mqtop_move(broker.url, src, dst)
        mqtop_lost = _mismatches(client.lrange(dst, 0, -1)[::-1], items)

        _fill(client, nsrc, items)
        start = time.perf_counter()
        while True:
            value = client.rpop(nsrc)
            if value is None:
                break
            client.lpush(ndst, value)
        naive_s = time.perf_counter() - start
        naive_lost = _mismatches(client.lrange(ndst, 0, -1)[::-1], items)
        if mqtop_lost or naive_lost or client.exists(src) or client.exists(nsrc):
            raise RuntimeError(f"items lost: mqtop {mqtop_lost}, naive {naive_lost}")

        # filtered move: every 10th item matches (Lua LREM + push per item)
        fn = n // 5
        _fill(client, fsrc, items[:fn])
        filtered_s = _mqtop_move(broker.url, fsrc, fdst, ["body~^\\d{7}0:"])
        if client.llen(fdst) != fn // 10 or client.llen(fsrc) != fn - fn // 10:
            raise RuntimeError("filtered move moved the wrong items")

        # stream move: entries with two fields, atomic XADD + XDEL per entry
        sn = n // 5
        pipe = client.pipeline(transaction=False)
        for i in range(sn):
            pipe.xadd(ssrc, {"n": i, "body": items[i]})
        pipe.execute()
        stream_s = _mqtop_move(broker.url, ssrc, sdst)
        if client.xlen(sdst) != sn or client.xlen(ssrc) != 0:
            raise RuntimeError("stream move lost entries")
    finally:
        client.delete(*keys)
        client.close()
        broker.stop()
    return {
        "redis_move_vs_naive": naive_s / mqtop_s,
        "redis_move_items_per_s": n / mqtop_s,
        "redis_naive_items_per_s": n / naive_s,
        "redis_move_lost_items": float(mqtop_lost),
        "redis_filtered_move_examined_per_s": fn / filtered_s,
        "redis_stream_move_entries_per_s": sn / stream_s,
    }


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
