"""One ActiveMQ broker as both the collector and the message actions use it: its options,
its Jolokia client, and its flavor (configured, else detected once from its MBeans)."""

from __future__ import annotations

from collectors.activemq.decode import ARTEMIS, CLASSIC, broker_key, matched
from collectors.activemq.jolokia import Jolokia, JolokiaUnavailable
from collectors.activemq.options import ActiveMQOptions, Flavor


class Broker:
    """The options, Jolokia client and flavor of one broker."""

    def __init__(self, options: ActiveMQOptions) -> None:
        self.options = options
        self.jolokia = Jolokia(options)
        self.flavor: Flavor | None = options.flavor

    async def detect(self) -> Flavor:
        """The flavor: configured, or found from which MBean domain the broker registers."""
        if self.flavor is not None:
            return self.flavor
        artemis, classic = await self.jolokia.bulk(
            [
                {"type": "search", "mbean": f"{ARTEMIS}:{broker_key('artemis', None)}"},
                {"type": "search", "mbean": f"{CLASSIC}:{broker_key('classic', None)}"},
            ]
        )
        found_a, found_c = bool(matched(artemis)), bool(matched(classic))
        if found_a == found_c:
            what = "both Artemis and Classic" if found_a else "no ActiveMQ broker"
            raise JolokiaUnavailable(
                f"{self.jolokia.endpoint} shows {what} MBeans: set flavor: artemis or classic"
            )
        self.flavor = "artemis" if found_a else "classic"
        return self.flavor

    def where(self) -> str:
        """``broker 'NAME' (ADDRESS)`` for error messages (no credentials)."""
        return f"broker {self.options.name!r} ({self.options.address()})"
