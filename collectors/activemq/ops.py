"""The broker's own queue operations, per flavor, through Jolokia.

Every write here is one JMX operation the broker runs in its own transaction (Artemis
``moveMessages`` / ``moveMessage`` / ``removeAllMessages``; Classic ``moveMatchingMessagesTo``
/ ``moveMessageTo`` / ``purge``): a message is in the source or in the destination whatever
happens to mqtop meanwhile. Generic counting lives in actions.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from collectors.activemq.broker import Broker
from collectors.activemq.decode import (
    ARTEMIS,
    CLASSIC,
    artemis_name,
    broker_key,
    matched,
    number,
)
from collectors.activemq.jolokia import Jolokia, JolokiaRefused, MBeanError, quote, value_of
from collectors.activemq.messages import (
    ARTEMIS_PREVIEW_LIMIT,
    artemis_message,
    classic_message,
    queue_of,
)
from collectors.activemq.options import Flavor
from collectors.base import PeekedMessage
from mqtop.kernel.errors import UsageError

ARTEMIS_ORIGIN = "_AMQ_ORIG_QUEUE"
BROWSE_PAGE = 200
NO_LIMIT = 1 << 62
FLUSH_LIMIT = 1000  # Artemis moveMessages: messages per commit inside one call
# Classic queue names its MBean name holds as they are (others are found by a scan)
PLAIN_NAME = re.compile(r"[A-Za-z0-9._\-$#@+~/]+")


@dataclass(frozen=True, slots=True)
class QueueRef:
    """A resolved queue: its MBean and names."""

    mbean: str
    queue: str  # the broker's queue name (what its move operations take)
    name: str  # the series name (Artemis ``address/queue`` when they differ)
    address: str = ""  # Artemis: the queue's address


@dataclass(frozen=True, slots=True)
class Preflight:
    """What a move reads before its first write."""

    source: QueueRef
    count: int | None
    average_bytes: float | None  # the source's average message size (None: not exposed)
    destination: QueueRef | None


def _average(size: Any, count: int | None) -> float | None:
    total = number(size)
    return total / count if total is not None and total > 0 and count else None


def sql_string(text: str) -> str:
    """A JMS selector / Artemis filter string literal."""
    return "'" + text.replace("'", "''") + "'"


class FlavorOps:
    """What replay, move, peek and purge need from one flavor."""

    flavor: ClassVar[Flavor]

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.jolokia: Jolokia = broker.jolokia
        self.options = broker.options

    async def resolve(self, queue: str) -> QueueRef:
        """The queue named ``queue`` or a UsageError."""
        found = await self.find(queue)
        if found is None:
            raise UsageError(f"broker {self.options.name!r}: no queue {queue!r}")
        return found

    async def find(self, queue: str) -> QueueRef | None:
        raise NotImplementedError

    async def count(self, ref: QueueRef) -> int | None:
        raise NotImplementedError

    async def preflight(self, source: str, destination: str | None) -> Preflight:
        """The source (or a UsageError), its count and average message size, and the
        destination (None: no such queue), read in one bulk POST where the names allow."""
        src = await self.resolve(source)
        dest = await self.find(destination) if destination is not None else None
        return Preflight(src, await self.count(src), None, dest)

    async def _looked_up(self, requests: list[dict[str, Any]]) -> list[dict[str, dict[str, Any]]]:
        """The MBeans each pattern read of one bulk POST matched (empty: none)."""
        out: list[dict[str, dict[str, Any]]] = []
        for request, answer in zip(requests, await self.jolokia.bulk(requests), strict=True):
            value = matched(answer)
            found = value if isinstance(value, dict) else {}
            mbean = str(request["mbean"])
            if value and "*" not in mbean and "?" not in mbean:
                found = {mbean: found}  # one MBean named in full: its attributes
            out.append({str(k): v for k, v in found.items() if isinstance(v, dict)})
        return out

    async def browse(self, ref: QueueRef, limit: int, selector: str = "") -> list[dict[str, Any]]:
        raise NotImplementedError

    async def messages(self, ref: QueueRef, limit: int) -> list[PeekedMessage]:
        """The first ``limit`` messages, browsed and decoded (bodies as Jolokia shows them)."""
        raise NotImplementedError

    async def move_matching(self, ref: QueueRef, selector: str, dest: QueueRef, n: int) -> int:
        raise NotImplementedError

    async def move_ids(self, ref: QueueRef, ids: Sequence[str], dest: QueueRef) -> list[bool]:
        raise NotImplementedError

    async def origins(self, ref: QueueRef, exclude: set[str]) -> dict[str, int | None]:
        raise NotImplementedError

    def origin_selector(self, origin: str) -> str:
        raise NotImplementedError

    async def purge(self, ref: QueueRef) -> int | None:
        raise NotImplementedError

    async def _attr(self, ref: QueueRef, name: str) -> Any:
        return await self.jolokia.request({"type": "read", "mbean": ref.mbean, "attribute": name})

    async def _ids(self, ref: QueueRef, operation: str, calls: list[list[Any]]) -> list[bool]:
        """One bulk POST of a per-message operation; True where the broker did it."""
        answers = await self.jolokia.bulk(
            [{"type": "exec", "mbean": ref.mbean, "operation": operation, "arguments": a}
             for a in calls]
        )  # fmt: skip
        out: list[bool] = []
        for answer in answers:
            try:
                out.append(value_of(answer) is True)
            except MBeanError:
                out.append(False)
        return out


class ArtemisOps(FlavorOps):
    """Artemis: QueueControl operations; filters in Artemis' filter language."""

    flavor = "artemis"

    def _pattern(self, queue: str, address: str = "*") -> str:
        return (
            f"{ARTEMIS}:{broker_key('artemis', self.options.broker_name)},component=addresses,"
            f"address={address},subcomponent=queues,routing-type=*,queue={quote(queue)}"
        )

    async def find(self, queue: str) -> QueueRef | None:
        for name, address in self._tries(queue):
            found = await self.jolokia.search(self._pattern(name, address))
            if found:
                attrs = await self.jolokia.read(found[0], ["Address"])
                addr = attrs.get("Address") if isinstance(attrs, dict) else None
                if not isinstance(addr, str):
                    return QueueRef(found[0], name, name)
                return QueueRef(found[0], name, artemis_name(addr, name), addr)
        return None

    async def count(self, ref: QueueRef) -> int | None:
        return number(await self._attr(ref, "MessageCount"))

    def _tries(self, queue: str) -> list[tuple[str, str]]:
        """(queue name, address pattern) to look a series or queue name up by, in order."""
        tries = [(queue, "*")]
        if "/" in queue:
            address, _, name = queue.rpartition("/")
            tries.append((name, quote(address)))
        return tries

    async def preflight(self, source: str, destination: str | None) -> Preflight:
        names = [source] if destination is None else [source, destination]
        tries = [(n, t) for n in names for t in self._tries(n)]
        attributes = ["Address", "MessageCount", "PersistentSize"]
        found = await self._looked_up(
            [{"type": "read", "mbean": self._pattern(name, address), "attribute": attributes,
              "config": {"ignoreErrors": True}} for _, (name, address) in tries]
        )  # fmt: skip
        refs: dict[str, tuple[QueueRef, dict[str, Any]]] = {}
        for (wanted, (name, _)), mbeans in zip(tries, found, strict=True):
            if wanted in refs or not mbeans:
                continue
            mbean, attrs = next(iter(mbeans.items()))
            addr = attrs.get("Address")
            ref = (
                QueueRef(mbean, name, artemis_name(addr, name), addr)
                if isinstance(addr, str)
                else QueueRef(mbean, name, name)
            )
            refs[wanted] = (ref, attrs)
        if source not in refs:
            raise UsageError(f"broker {self.options.name!r}: no queue {source!r}")
        src, attrs = refs[source]
        count = number(attrs.get("MessageCount"))
        dest = refs[destination][0] if destination in refs else None
        return Preflight(src, count, _average(attrs.get("PersistentSize"), count), dest)

    async def browse(self, ref: QueueRef, limit: int, selector: str = "") -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        page = 1
        size = min(max(limit, 1), BROWSE_PAGE)
        while len(out) < limit:
            batch = await self.jolokia.execute(
                ref.mbean, "browse(int,int,java.lang.String)", page, size, selector
            )
            items = [m for m in batch if isinstance(m, dict)] if isinstance(batch, list) else []
            out.extend(items)
            if len(items) < size:
                break
            page += 1
        return out[:limit]

    async def messages(self, ref: QueueRef, limit: int) -> list[PeekedMessage]:
        raws = await self.browse(ref, limit)
        cut_at = await self.preview_limit(ref.address) if raws else ARTEMIS_PREVIEW_LIMIT
        return [artemis_message(raw, cut_at) for raw in raws]

    async def preview_limit(self, address: str) -> int:
        """The address' management-message-attribute-size-limit (256 when not readable)."""
        pattern = f"{ARTEMIS}:{broker_key('artemis', self.options.broker_name)}"
        try:
            found = await self.jolokia.search(pattern)
            if len(found) != 1:
                return ARTEMIS_PREVIEW_LIMIT
            raw = await self.jolokia.execute(
                found[0], "getAddressSettingsAsJSON(java.lang.String)", address
            )
            settings = json.loads(raw) if isinstance(raw, str) else {}
        except (MBeanError, JolokiaRefused, ValueError):
            return ARTEMIS_PREVIEW_LIMIT  # a role without this operation: the default
        limit = number(settings.get("managementMessageAttributeSizeLimit"))
        if limit is not None and limit < 0:
            return NO_LIMIT  # -1: management views show whole bodies
        return limit if limit else ARTEMIS_PREVIEW_LIMIT

    async def move_matching(self, ref: QueueRef, selector: str, dest: QueueRef, n: int) -> int:
        moved = await self.jolokia.execute(
            ref.mbean,
            "moveMessages(int,java.lang.String,java.lang.String,boolean,int)",
            min(n, FLUSH_LIMIT),
            selector,
            dest.queue,
            False,
            n,
        )
        return number(moved) or 0

    async def move_ids(self, ref: QueueRef, ids: Sequence[str], dest: QueueRef) -> list[bool]:
        op = "moveMessage(long,java.lang.String)"
        return await self._ids(ref, op, [[int(i), dest.queue] for i in ids])

    async def origins(self, ref: QueueRef, exclude: set[str]) -> dict[str, int | None]:
        raw = await self.jolokia.execute(
            ref.mbean, "countMessages(java.lang.String,java.lang.String)", "", ARTEMIS_ORIGIN
        )
        counts = json.loads(raw) if isinstance(raw, str) else raw
        if not isinstance(counts, dict):
            return {}
        return {str(k): number(v) for k, v in counts.items() if str(k) not in exclude}

    def origin_selector(self, origin: str) -> str:
        return f"{ARTEMIS_ORIGIN} = {sql_string(origin)}"

    async def purge(self, ref: QueueRef) -> int | None:
        return number(await self.jolokia.execute(ref.mbean, "removeAllMessages()"))


class ClassicOps(FlavorOps):
    """Classic: QueueViewMBean operations; JMS selectors."""

    flavor = "classic"

    def _queues(self, name: str) -> str:
        return (
            f"{CLASSIC}:{broker_key('classic', self.options.broker_name)},"
            f"destinationType=Queue,destinationName={name}"
        )

    async def preflight(self, source: str, destination: str | None) -> Preflight:
        """Queues whose names are plain are read by their own MBean name (Classic does not
        quote them) in one POST; any other name, or one not found so, by reading every
        queue's name (``find``)."""
        names = [source] if destination is None else [source, destination]
        attributes = ["Name", "QueueSize", "AverageMessageSize"]
        plain = [n for n in names if PLAIN_NAME.fullmatch(n)]
        found = await self._looked_up(
            [{"type": "read", "mbean": self._queues(n), "attribute": attributes,
              "config": {"ignoreErrors": True}} for n in plain]
        )  # fmt: skip
        refs: dict[str, tuple[QueueRef, dict[str, Any] | None]] = {}
        for name, mbeans in zip(plain, found, strict=True):
            for mbean, attrs in mbeans.items():
                if attrs.get("Name") == name:
                    refs[name] = (QueueRef(mbean, name, name), attrs)
                    break
        for name in names:
            if name not in refs:
                ref = await self.find(name)
                if ref is not None:
                    refs[name] = (ref, None)
        if source not in refs:
            raise UsageError(f"broker {self.options.name!r}: no queue {source!r}")
        src, read = refs[source]
        if read is None:
            return Preflight(src, await self.count(src), None, self._ref(refs, destination))
        count = number(read.get("QueueSize"))
        average = number(read.get("AverageMessageSize"))
        size = float(average) if average is not None and average > 0 else None
        return Preflight(src, count, size, self._ref(refs, destination))

    @staticmethod
    def _ref(refs: dict[str, tuple[QueueRef, Any]], name: str | None) -> QueueRef | None:
        return refs[name][0] if name is not None and name in refs else None

    async def find(self, queue: str) -> QueueRef | None:
        pattern = self._queues("*")
        try:
            found = await self.jolokia.read(pattern, ["Name"])
        except MBeanError as exc:
            if exc.not_found:
                return None
            raise
        for mbean, attrs in (found or {}).items():
            if isinstance(attrs, dict) and attrs.get("Name") == queue:
                return QueueRef(str(mbean), queue, queue)
        return None

    async def count(self, ref: QueueRef) -> int | None:
        return number(await self._attr(ref, "QueueSize"))

    async def browse(self, ref: QueueRef, limit: int, selector: str = "") -> list[dict[str, Any]]:
        # one page: the broker shows at most its MaxBrowsePageSize (400 by default)
        if selector:
            batch = await self.jolokia.execute(ref.mbean, "browse(java.lang.String)", selector)
        else:
            batch = await self.jolokia.execute(ref.mbean, "browse()")
        items = [m for m in batch if isinstance(m, dict)] if isinstance(batch, list) else []
        return items[:limit]

    async def messages(self, ref: QueueRef, limit: int) -> list[PeekedMessage]:
        return [classic_message(raw) for raw in await self.browse(ref, limit)]

    async def move_matching(self, ref: QueueRef, selector: str, dest: QueueRef, n: int) -> int:
        moved = await self.jolokia.execute(
            ref.mbean,
            "moveMatchingMessagesTo(java.lang.String,java.lang.String,int)",
            selector,
            dest.queue,
            n,
        )
        return number(moved) or 0

    async def move_ids(self, ref: QueueRef, ids: Sequence[str], dest: QueueRef) -> list[bool]:
        op = "moveMessageTo(java.lang.String,java.lang.String)"
        return await self._ids(ref, op, [[i, dest.queue] for i in ids])

    async def origins(self, ref: QueueRef, exclude: set[str]) -> dict[str, int | None]:
        selector = ""
        if exclude:
            listed = ", ".join(sql_string(f"queue://{o}") for o in sorted(exclude))
            selector = f"JMSDestination NOT IN ({listed})"
        found: dict[str, int | None] = {}
        for raw in await self.browse(ref, 1_000_000, selector):
            origin = queue_of(raw.get("OriginalDestination") or raw.get("JMSDestination"))
            if origin is not None and origin not in exclude:
                found[origin] = (found.get(origin) or 0) + 1
        return found

    def origin_selector(self, origin: str) -> str:
        # JMSDestination is the original destination of a dead-lettered message
        return f"JMSDestination = {sql_string('queue://' + origin)}"

    async def purge(self, ref: QueueRef) -> int | None:
        before = await self.count(ref)
        await self.jolokia.execute(ref.mbean, "purge()")
        return before
