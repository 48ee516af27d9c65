"""SeriesSamples of decoded ActiveMQ rows (decode.py), the last poll's reused where nothing
that goes into them changed."""

from __future__ import annotations

from collections.abc import Iterable

from collectors.activemq.decode import Row
from mqtop.kernel.model import SeriesKey, SeriesSample


def samples(wanted: Iterable[Row], everything: Iterable[Row], broker: str) -> list[SeriesSample]:
    """SeriesSamples of the wanted rows; dlq_length from the DLQ's own row (wanted or not).
    Every value is a float or None made here, so the samples are built as trusted."""
    queues: dict[str, Row] | None = None
    lengths: dict[str, float | None] = {}  # of the DLQs looked up so far
    trusted, new_tuple = SeriesSample.trusted, tuple.__new__
    out: list[SeriesSample] = []
    for row in wanted:
        dlq = row.dlq
        dlq_length = None
        if dlq:
            if dlq in lengths:
                dlq_length = lengths[dlq]
            else:
                if queues is None:
                    queues = {r.name: r for r in everything if r.group is None}
                of_dlq = queues.get(dlq)
                if of_dlq is not None and of_dlq.waiting is not None:
                    dlq_length = float(of_dlq.waiting + (of_dlq.in_flight or 0))
                lengths[dlq] = dlq_length
        made = row.made
        source = row.info.get("dlq_source")
        if made is not None and made[0] == dlq and made[1] == source and made[2] == dlq_length:
            out.append(made[3])  # the row is the last poll's and so is its DLQ's length
            continue
        waiting = None if row.waiting is None else float(row.waiting)
        latency = row.latency
        values: dict[str, float | None] = {
            "queue_length": waiting,
            "consumer_lag_messages": waiting,
            "in_flight": None if row.in_flight is None else float(row.in_flight),
            "consumers": None if row.consumers is None else float(row.consumers),
            "latency_seconds": latency,
            "consumer_lag_seconds": latency,
            "dlq_length": dlq_length,
            "published_total": None if row.published is None else float(row.published),
            "processed_total": None if row.processed is None else float(row.processed),
            "dead_lettered_total": None if row.dead is None else float(row.dead),
        }
        info = {k: v for k, v in row.info.items() if v is not None}
        key = new_tuple(SeriesKey, (broker, row.name, row.group))  # SeriesKey, unchecked
        sample = trusted(key, row.kind, values, dlq, info)
        row.made = (dlq, source, dlq_length, sample)
        out.append(sample)
    return out
