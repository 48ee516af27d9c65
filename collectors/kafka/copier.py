"""The copy loop of a Kafka replay: read a step, mark it in flight, produce, confirm, advance."""

from __future__ import annotations

import asyncio
import gc
import os
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import BrokerResponseError

from collectors.base import MoveRequest, ProgressCallback
from collectors.kafka.client import EARLIEST, READ_COMMITTED, TP, client_kwargs, quiet_client_logs
from collectors.kafka.copying import (
    CopyPlan,
    CorruptBatch,
    Decoder,
    OutBatch,
    Run,
    build,
    transform,
)
from collectors.kafka.headers import header_map
from collectors.kafka.options import KafkaOptions
from collectors.kafka.progress import DONE, INFLIGHT
from collectors.kafka.reader import OutOfRange, StaleLeader, TopicReader
from collectors.kafka.wire import KafkaWire
from collectors.kafka.workers import CopyWorkers, WorkerGone, usable_cpus
from collectors.kit.tally import Tally
from mqtop.kernel.errors import ActionFailed

BATCH_BYTES = 512 * 1024
WORKER_MIN_RECORDS = 20_000  # smaller replays are copied in the main process
WORKER_MIN_STEP = 250  # so are replays in small steps: a job must outweigh its round trip
# With CPUs to spare, workers build the next steps while the main process does the I/O. On
# 2 CPUs (the main process and a local broker) they only pay when the CPUs are busy anyway:
# measured, 10% slower on an idle machine, 15-30% faster when other processes keep it busy
# (more processes, more of the CPU time).
WORKER_MIN_CPUS = 4
BUSY_WORKERS = 3
MAX_WORKERS = 4


def busy(cpus: int) -> bool:
    """Whether the CPUs are already busy (1-minute load average at least their number)."""
    try:
        return os.getloadavg()[0] >= cpus
    except OSError:
        return False


@dataclass(slots=True)
class _Step:
    """Half a replay batch: where it moves the source positions, and its producer batches."""

    new_pos: dict[int, int]
    count: int
    items: list[tuple[int, memoryview, int, int]] = field(default_factory=list)
    built: asyncio.Future[Any] | None = None  # [(destination index, OutBatch, records)]
    outputs: list[tuple[int, Any, int]] = field(default_factory=list)
    futures: list[Any] = field(default_factory=list)
    sent: list[tuple[int, Any, int]] = field(default_factory=list)
    now: int = 0
    sticky: int = 0


class Copier:
    """The replay loop: read a step, mark it in flight, produce, confirm, advance.

    A step is half of ``--batch``; at most two steps are unacknowledged at any time, so what a
    crash can duplicate stays within one batch. Each commit stores the acknowledged position
    and the end of the steps in flight ("inflight <offset>"); a step is produced only after
    that commit is stored.

    Steps are cut from runs of whole record batches by their headers alone and copied by
    :func:`collectors.kafka.copying.transform`. On a host with CPUs to spare, a large replay
    builds its next steps in worker processes (:class:`collectors.kafka.copying.CopyWorkers`)
    while this one is produced and committed; prepared steps wait in order, and nothing of a
    step is sent before its marker is stored. A filter (or a dry run) looks at every record
    here: those steps are decoded and built in this process.
    """

    def __init__(
        self,
        *,
        options: KafkaOptions,
        timeout: float,
        wire: KafkaWire,
        request: MoveRequest,
        group: str,
        parts: list[int],
        begin: dict[int, int],
        stops: dict[int, int],
        dst_parts: list[int],
        keep_partition: bool,
        keep_timestamp: bool,
        batch_size: int,
        total: int,
        progress: ProgressCallback,
    ) -> None:
        self.options = options
        self.timeout = timeout
        self.wire = wire
        self.request = request
        self.group = group
        self.parts = parts
        self.pos = {p: begin[p] for p in parts}
        self.stops = stops
        self.dst_parts = dst_parts
        self.total = total
        self.progress = progress
        self.tally = Tally(total=total)
        self.deleted = 0  # records removed by retention before they were read
        self.step = max(1, batch_size // 2)
        self.considered = 0  # records moved or to be moved, for --limit
        self.runs: deque[Run] = deque()  # read, not yet taken into a step
        self.reader: TopicReader
        self.plan = CopyPlan(
            source=request.source,
            partitions=len(dst_parts),
            keep=tuple((p, dst_parts.index(p)) for p in parts) if keep_partition else None,
            keep_timestamp=keep_timestamp,
            batch_bytes=BATCH_BYTES,
        )
        self.workers: CopyWorkers | None = None
        self.decoder = Decoder()  # for the steps copied in this process
        self.by_record = request.filter is not None or request.dry_run

    async def _producer(self) -> AIOKafkaProducer:
        """A started producer with acks=all: idempotent, unless the broker refuses that."""
        quiet_client_logs()

        def make(idempotent: bool) -> AIOKafkaProducer:
            return AIOKafkaProducer(
                enable_idempotence=idempotent,
                acks="all",
                linger_ms=0,
                max_batch_size=BATCH_BYTES,
                max_request_size=4 * 1024 * 1024,
                **client_kwargs(self.options, self.timeout),
            )

        producer = make(True)
        try:
            await producer.start()
            return producer
        except BrokerResponseError as exc:
            # InitProducerId refused (old brokers; Kafka-compatible brokers such as tansu,
            # which only answer its later versions): acknowledged sends still protect every
            # record, a retried send may be duplicated
            await producer.stop()
            refused = f"{type(exc).__name__}"
        producer = make(False)
        await producer.start()
        self.tally.note(
            f"the broker refused an idempotent producer ({refused}): records were sent with "
            "acks=all without idempotence, so a send retried after a network error may be "
            "duplicated"
        )
        return producer

    def _worker_count(self) -> int:
        """Worker processes for this run: none for small, filtered or dry runs."""
        if (
            self.by_record
            or self.total < WORKER_MIN_RECORDS
            or self.step < WORKER_MIN_STEP
            or not CopyWorkers.available()
        ):
            return 0
        cpus = usable_cpus()
        if cpus >= WORKER_MIN_CPUS:
            return min(MAX_WORKERS, cpus - 1)
        return BUSY_WORKERS if cpus >= 2 and busy(cpus) else 0

    async def run(self) -> None:
        producer: AIOKafkaProducer | None = None
        if not self.request.dry_run:
            producer = await self._producer()
        collecting = gc.isenabled()
        gc.disable()  # millions of short-lived acyclic objects: skip cyclic GC passes
        try:
            count = self._worker_count()
            if count and producer is not None:
                workers = CopyWorkers(count, self.plan)
                try:
                    workers.start()
                except OSError:  # no fork here (limits): copy in this process
                    await workers.close()
                else:
                    self.workers = workers
            await self._loop(producer)
        finally:
            if self.workers is not None:
                await self.workers.close()
            if collecting:
                gc.enable()
            if producer is not None:
                try:
                    await producer.stop()
                except Exception as exc:
                    self.tally.error(f"closing the producer: {exc}")

    async def _read(self, reader: TopicReader) -> tuple[TopicReader, list[Run]]:
        """Next runs; recovers from moved leaders and records deleted under the reader."""
        for _ in range(5):
            try:
                return reader, await reader.read()
            except StaleLeader:
                await reader.close()
                await self.wire.refresh_metadata()
            except OutOfRange as exc:
                await reader.close()
                found, _ = await self.wire.list_offsets(
                    [(self.request.source, exc.partition)], EARLIEST, READ_COMMITTED
                )
                start = found.get((self.request.source, exc.partition))
                if start is None:
                    raise ActionFailed(
                        f"{self.request.source}[{exc.partition}]: offsets unreadable"
                    ) from None
                reader.deleted += max(0, start - reader.fetch_pos[exc.partition])
                reader.fetch_pos[exc.partition] = max(reader.fetch_pos[exc.partition], start)
            fresh = TopicReader(self.wire, self.request.source, reader.fetch_pos, reader.stops)
            fresh.ready, fresh.deleted = reader.ready, reader.deleted
            reader = fresh
        raise ActionFailed(f"{self.request.source}: could not read (leaders keep moving)")

    async def _take(self, room: int) -> list[Run]:
        """Runs holding up to ``room`` records, partition by partition, in offset order."""
        take: list[Run] = []
        while room > 0:
            if not self.runs:
                self.reader, runs = await self._read(self.reader)
                if not runs:
                    break
                self.runs.extend(runs)
            run = self.runs[0]
            try:
                count = run.counted()
            except CorruptBatch as exc:
                raise ActionFailed(f"{self.request.source}[{run.partition}]: {exc}") from None
            if count <= room:
                take.append(self.runs.popleft())
                room -= count
            else:
                self.runs[0] = run.split(room)
                take.append(run)
                room = 0
        return take

    async def _prepare(self) -> _Step | None:
        """Read the next step and start building its producer batches (unless dry run)."""
        limit = self.request.limit
        room = self.step
        if limit is not None:
            room = min(room, limit - self.considered)
        if room <= 0:
            return None
        if self.by_record:
            return await self._prepare_records()
        take = await self._take(room)
        if not take:
            return None
        step = _Step(
            new_pos={run.partition: run.hi for run in take},
            count=sum(run.count or 0 for run in take),
            items=[(run.partition, run.raw, run.lo, run.hi) for run in take],
            now=int(time.time() * 1000),
            sticky=random.randrange(self.plan.partitions),
        )
        self.considered += step.count
        if self.workers is not None and self.workers.workers:
            step.built = self.workers.submit(step.items, step.now, step.sticky)
        return step

    async def _prepare_records(self) -> _Step | None:
        """A step whose records are each looked at here (filter, dry run)."""
        take = await self._take(self.step)
        if not take:
            return None
        limit = self.request.limit
        flt = self.request.filter
        new_pos: dict[int, int] = {}
        sends: list[tuple[int, list[Any]]] = []
        count = 0
        for run in take:
            try:
                records = self.decoder(run.partition, run.raw, run.lo, run.hi)
            except CorruptBatch as exc:
                raise ActionFailed(f"{self.request.source}[{run.partition}]: {exc}") from None
            p = run.partition
            chosen: list[Any] = []
            for record in records:
                if limit is not None and self.considered >= limit:
                    break
                new_pos[p] = record.offset + 1
                if flt is not None and not flt.matches(
                    record.value or b"", header_map(record.headers)
                ):
                    self.tally.skipped += 1
                    continue
                self.considered += 1
                chosen.append(record)
            else:
                new_pos[p] = run.hi  # past trailing gaps too
            if chosen:
                sends.append((p, chosen))
                count += len(chosen)
        if not new_pos:
            return None
        step = _Step(new_pos=new_pos, count=count)
        if not self.request.dry_run and sends:
            now = int(time.time() * 1000)
            sticky = random.randrange(self.plan.partitions)
            step.outputs = self._wrap(build(sends, self.plan, now, sticky))
        return step

    def _wrap(self, built: list[tuple[int, Any, int]]) -> list[tuple[int, Any, int]]:
        return [(d, OutBatch(n, builder=b), n) for d, b, n in built]

    async def _outputs(self, step: _Step) -> list[tuple[int, Any, int]]:
        """The producer batches of a step [(destination partition, batch, records)]."""
        if step.outputs or not step.items:
            built = step.outputs
        else:
            built = []
            if step.built is not None:
                try:
                    built = await step.built
                except WorkerGone:
                    step.built = None  # do it here instead
                except CorruptBatch as exc:
                    raise ActionFailed(f"{self.request.source}: {exc}") from None
            if step.built is None:
                try:
                    built = self._wrap(
                        transform(step.items, self.plan, step.now, step.sticky, self.decoder)
                    )
                except CorruptBatch as exc:
                    raise ActionFailed(f"{self.request.source}: {exc}") from None
            step.items = []  # the fetched bytes can go
        return [(self.dst_parts[d], batch, n) for d, batch, n in built]

    async def _loop(self, producer: AIOKafkaProducer | None) -> None:
        src = self.request.source
        self.reader = TopicReader(self.wire, src, self.pos, {p: self.stops[p] for p in self.parts})
        try:
            if producer is None:  # dry run: read and count only, nothing is written
                while (step := await self._prepare()) is not None:
                    self.tally.moved += step.count
                    self.pos.update(step.new_pos)
                    self._report()
            else:
                await self._produce_all(producer)
        finally:
            await self.reader.close()
            self.deleted += self.reader.deleted

    async def _produce_all(self, producer: AIOKafkaProducer) -> None:
        """Mark, produce and settle every step; stop at the first failed one."""
        # Two steps (half a batch each) may be in flight: while one is acknowledged and the
        # next commit travels, the steps after are read and built (in the workers, one step
        # ahead per worker).
        src = self.request.source
        ahead = _Ahead(self, 1 + (self.workers.count if self.workers is not None else 0))
        flight: list[_Step] = []
        marked: set[int] = set()
        await ahead.fill()
        while ahead.steps:
            step = ahead.steps.popleft()
            while len(flight) >= 2:
                if not await self._settle(flight.pop(0)):
                    await self._abandon(flight)
                    return
            marks, marked = self._marks((*flight, step), marked)
            commit = asyncio.ensure_future(self.wire.offset_commit(self.group, marks))
            await asyncio.sleep(0)  # the commit goes out; the next steps are read meanwhile
            try:
                await ahead.fill()
                outputs = await self._outputs(step)
            finally:
                await commit  # nothing of this step is sent before its marker is stored
            step.futures = [
                await producer.send_batch(b, self.request.destination, partition=d)
                for d, b, _ in outputs
            ]
            step.sent = outputs
            flight.append(step)
            for _ in range(3):  # let the producer's sender put the batches on the wire
                await asyncio.sleep(0)
        while flight:
            if not await self._settle(flight.pop(0)):
                await self._abandon(flight)
                return
        if marked:
            await self.wire.offset_commit(
                self.group, {(src, p): (self.pos[p], DONE) for p in marked}
            )

    def _marks(
        self, steps: tuple[_Step, ...], marked: set[int]
    ) -> tuple[dict[TP, tuple[int, str]], set[int]]:
        """The commit before the last of ``steps`` is produced: the acknowledged positions,
        "inflight <end>" where steps are in flight, "done" where none is any more."""
        src = self.request.source
        active: dict[int, int] = {}
        for pending in steps:
            for p, offset in pending.new_pos.items():
                active[p] = max(active.get(p, 0), offset)
        marks: dict[TP, tuple[int, str]] = {}
        for p in marked - set(active):
            marks[(src, p)] = (self.pos[p], DONE)
        for p, upto in active.items():
            marks[(src, p)] = (self.pos[p], f"{INFLIGHT}{upto}")
        return marks, set(active)

    async def _settle(self, step: _Step) -> bool:
        """Wait for the acknowledgements of one step; False when a produce failed."""
        results = await asyncio.gather(*step.futures, return_exceptions=True)
        bad = 0
        for result, (_, _, n) in zip(results, step.sent, strict=True):
            if isinstance(result, BaseException):
                bad += n
                if not any(e.startswith("produce to") for e in self.tally.errors):
                    self.tally.error(
                        f"produce to {self.request.destination} failed: "
                        f"{type(result).__name__}: {result}"
                    )
            else:
                self.tally.moved += n
        if bad:
            self.tally.fail(bad)
            self._report()
            return False  # progress stays before this step: a rerun retries it
        self.pos.update(step.new_pos)
        self._report()
        return True

    async def _abandon(self, flight: list[_Step]) -> None:
        """After a failed step: count what the later steps delivered; progress stays put."""
        for step in flight:
            results = await asyncio.gather(*step.futures, return_exceptions=True)
            for result, (_, _, n) in zip(results, step.sent, strict=True):
                if isinstance(result, BaseException):
                    self.tally.fail(n)
                else:
                    self.tally.moved += n
        flight.clear()
        self._report()

    def _report(self) -> None:
        self.progress(self.tally.progress())


class _Ahead:
    """Steps read (and being built) ahead of the one produced, up to ``depth``."""

    def __init__(self, copier: Copier, depth: int) -> None:
        self.copier = copier
        self.depth = depth
        self.steps: deque[_Step] = deque()
        self.exhausted = False

    async def fill(self) -> None:
        """Prepare steps until ``depth`` wait, or the source is read up to its stops."""
        while not self.exhausted and len(self.steps) < self.depth:
            following = await self.copier._prepare()
            if following is None:
                self.exhausted = True
            else:
                self.steps.append(following)
