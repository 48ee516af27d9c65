"""SeriesSample: the validating constructor and the trusted one collectors with typed values use."""

from __future__ import annotations

import dataclasses
import math
from types import MappingProxyType

import pytest

from collectors.base import dlq_candidates, dlq_index
from mqtop.kernel.model import METRICS, SeriesKey, SeriesSample

KEY = SeriesKey("amq", "orders", None)


def values() -> dict[str, float | None]:
    return {"queue_length": 3.0, "in_flight": 2, "latency_seconds": None, "published_total": 9.0}


def test_trusted_sample_equals_the_validated_one() -> None:
    info = {"flavor": "artemis", "dlq_source": "name"}
    checked = SeriesSample(KEY, "queue", values(), "orders.dlq", dict(info))
    trusted = SeriesSample.trusted(KEY, "queue", values(), "orders.dlq", dict(info))
    assert trusted == checked and hash(trusted.key) == hash(checked.key)
    assert isinstance(trusted.values, MappingProxyType)
    assert isinstance(trusted.info, MappingProxyType)
    assert dict(trusted.values) == values() and dict(trusted.info) == info
    empty = SeriesSample.trusted(KEY, "queue", {})
    assert empty == SeriesSample(KEY, "queue", {}) and dict(empty.info) == {} and empty.dlq is None


def test_trusted_sample_is_read_only_like_any_other() -> None:
    sample = SeriesSample.trusted(KEY, "dlq", values(), None, {"a": 1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        sample.kind = "queue"  # type: ignore[misc]
    with pytest.raises(TypeError):
        sample.values["queue_length"] = 1.0  # type: ignore[index]
    with pytest.raises(TypeError):
        sample.info["a"] = 2  # type: ignore[index]
    enriched = sample.with_values({"dlq_length": 4.0})
    assert enriched.values["dlq_length"] == 4.0 and enriched.values["queue_length"] == 3.0


@pytest.mark.parametrize(
    "bad", [{"queue_lenght": 1.0}, {"queue_length": math.nan}, {"queue_length": "3"}]
)
def test_the_constructor_still_refuses_untrusted_values(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SeriesSample(KEY, "queue", bad)  # type: ignore[arg-type]
    assert set(values()) <= set(METRICS)


def test_dlq_index_picks_what_the_candidates_pick() -> None:
    names = ["jobs", "jobs.dlq", "jobs-dlq", "mail:dead", "mail", "x.dead", "x.DLT", ".dlq", "a"]
    index = dlq_index(names)
    for queue in ["jobs", "mail", "x", "", "a", "nope", "jobs.dlq"]:
        expected = next((c for c in dlq_candidates(queue) if c in names), None)
        assert index.get(queue) == expected, queue
    assert index["jobs"] == "jobs.dlq" and index["x"] == "x.DLT" and index[""] == ".dlq"
