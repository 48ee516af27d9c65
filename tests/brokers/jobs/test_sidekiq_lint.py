"""``mqtop lint`` on a real Sidekiq dead set (filled through Sidekiq's own failure path, which
trims it to ``dead_max_jobs - 1``): near its cap it is reported, well below it is not."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = pytest.mark.broker


def _lint(jobs_cli: Any, url: str, dead_max_jobs: int) -> tuple[Any, dict[str, Any]]:
    result = jobs_cli(
        "sidekiq", url, "lint", "--format", "json", extra=f", dead_max_jobs: {dead_max_jobs}"
    )
    return result, json.loads(result.stdout)


def _found(data: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(f["rule"], f["queue"]): f for f in data["findings"] if f["rule"] != "alert-uncovered"}


def test_dead_set_at_its_cap_is_reported(sidekiq, job_url, rc, jobs_cli, unique):
    # 45 deaths under dead_max_jobs 40: Sidekiq keeps 39 and has evicted 6 silently
    sidekiq.fail_into_dead(unique("full"), "full", 45, dead_max_jobs=40)
    assert sidekiq.stats([])["dead"] == rc.zcard("dead") == 39
    result, data = _lint(jobs_cli, job_url, dead_max_jobs=40)
    assert result.returncode == 1, result.stderr
    found = _found(data)
    assert set(found) == {("sidekiq-dead-set-full", "dead")}, data
    finding = found[("sidekiq-dead-set-full", "dead")]
    assert finding["severity"] == "warning"
    assert finding["message"].startswith("39 dead jobs of a cap of 39 (100%), full")
    assert data["brokers"] == ["jobs"] and data["errors"] == []


def test_dead_set_well_below_its_cap_is_not(sidekiq, job_url, rc, jobs_cli, unique):
    sidekiq.fail_into_dead(unique("room"), "room", 10, dead_max_jobs=40)
    assert rc.zcard("dead") == 10
    result, data = _lint(jobs_cli, job_url, dead_max_jobs=40)
    assert result.returncode == 0, result.stderr + result.stdout
    assert _found(data) == {} and data["brokers"] == ["jobs"]
