"""Rows built on the last build (only changed positions made again, the worst alert per
series judged again only where alerts came or went) equal rows built afresh.

Random polls through a real store and alert evaluator: quiet series, changing ones, nulls,
series coming and going, a broker down, alerts firing, pending, held and resolving."""

from __future__ import annotations

import random

import pytest

from alerts.config import AlertingSettings
from alerts.evaluator import AlertEvaluator
from mqtop.ui import rows as rows_module
from mqtop.ui.rows import Row, RowCache, build_rows, worst_alerts
from tests.support.alerts import CLOCK, World, rule

RULES = [
    rule(),
    rule(name="Huge", threshold=50, severity="critical", **{"for": "2s"}),
    rule(name="NoConsumers", metric="consumers", op="==", threshold=0, severity="warning"),
    rule(name="Quiet", metric="consumers", op="<", threshold=1, severity="info"),
]
SETTINGS = AlertingSettings.model_validate({"resolve_after": "2s"})


def _fields(row: Row) -> tuple[object, ...]:
    return tuple(getattr(row, name) for name in Row.__slots__ if name != "_made")


def _values(rng: random.Random) -> dict[str, float | None]:
    return {
        "queue_length": rng.choice([None, 0.0, 5.0, 20.0, 80.0]),
        "consumers": rng.choice([0.0, 1.0, None]),
        "in_flight": rng.choice([0.0, 3.0]),
    }


@pytest.mark.parametrize("seed", [1, 2])
def test_rows_built_on_the_last_build_equal_rows_built_afresh(seed, monkeypatch):
    patched: list[bool] = []
    patch = rows_module._patched

    def spy(*args, **kwargs):
        out = patch(*args, **kwargs)
        patched.append(out is not None)
        return out

    monkeypatch.setattr(rows_module, "_patched", spy)
    rng = random.Random(seed)
    w = World()
    ev = AlertEvaluator(RULES, SETTINGS)
    cache = RowCache()
    series = {broker: {f"q{i}": _values(rng) for i in range(30)} for broker in ("a", "b")}
    for t in range(80):
        for broker, values in series.items():
            for name in rng.sample(sorted(values), 4):
                values[name] = _values(rng)
            if t % 19 == 18:
                values.pop(sorted(values)[0])
                values[f"n{t}"] = _values(rng)
            down = broker == "b" and 30 <= t < 34
            w.poll(t, {(n, None): v for n, v in values.items()}, broker=broker, up=not down)
        ev.evaluate(w.store, w.statuses, CLOCK.t0 + t)
        alerts = ev.alerts()
        views = w.store.views()
        kept = build_rows(views, w.statuses, alerts, CLOCK.t0 + t, cache)
        fresh = build_rows(views, w.statuses, alerts, CLOCK.t0 + t)
        assert [_fields(r) for r in kept] == [_fields(r) for r in fresh], t
        assert cache.index == worst_alerts(alerts), t
    assert sum(patched) > 40  # most builds were the last one's rows, patched
