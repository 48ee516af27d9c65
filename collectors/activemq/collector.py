"""ActiveMQ collector: one bulk Jolokia POST per poll, decoded per flavor (decode.py)."""

from __future__ import annotations

import contextlib

from collectors.activemq.actions import ActiveMQActions
from collectors.activemq.broker import Broker
from collectors.activemq.decode import (
    Row,
    RowCache,
    artemis_requests,
    classic_requests,
    decode_artemis,
    decode_classic,
    matched,
)
from collectors.activemq.jolokia import Jolokia
from collectors.activemq.options import ActiveMQOptions, Flavor
from collectors.activemq.series import samples
from collectors.base import Collected, MessageActions, compile_globs


class ActiveMQCollector:
    """Reads every queue of one ActiveMQ broker with one bulk Jolokia POST per poll."""

    def __init__(self, options: ActiveMQOptions) -> None:
        self.options = options
        self.broker = Broker(options)
        self._include = compile_globs(options.include)
        self._exclude = compile_globs(options.exclude)
        self._actions: ActiveMQActions | None = None
        self._rows = RowCache()  # the last poll's rows: an unchanged queue is not decoded again

    @property
    def jolokia(self) -> Jolokia:
        return self.broker.jolokia

    @property
    def flavor(self) -> Flavor | None:
        return self.broker.flavor

    def _wants(self, name: str) -> bool:
        if self._include is not None and self._include.match(name) is None:
            return False
        return self._exclude is None or self._exclude.match(name) is None

    async def connect(self) -> None:
        await self.jolokia.open()

    async def close(self) -> None:
        actions, self._actions = self._actions, None
        if actions is not None:
            with contextlib.suppress(Exception):
                await actions.close()
        await self.jolokia.close()

    def actions(self) -> MessageActions | None:
        if self._actions is None:
            self._actions = ActiveMQActions(self.broker)
        return self._actions

    async def detect(self) -> Flavor:
        """The flavor: configured, or detected from the broker's MBeans."""
        return await self.broker.detect()

    async def rows(self) -> tuple[list[Row], list[str]]:
        """Every queue and subscription of the broker (one bulk POST)."""
        flavor = await self.detect()
        cache = self._rows
        try:
            if flavor == "artemis":
                (answer,) = await self.jolokia.bulk(artemis_requests(self.options))
                return decode_artemis(matched(answer), self.options, cache)
            answers = await self.jolokia.bulk(classic_requests(self.options))
            return decode_classic(answers, self.options, cache)
        except BaseException:
            cache.drop()
            raise

    async def collect(self) -> Collected:
        rows, warnings = await self.rows()
        wanted = (
            rows
            if self._include is None and self._exclude is None
            else [r for r in rows if self._wants(r.name)]
        )
        series = samples(wanted, rows, self.options.name)
        return Collected(series=tuple(series), warnings=tuple(warnings))
