"""Fixtures for the fleet tests: promtool, Prometheus and Alertmanager (skip-or-fail rule)."""

from __future__ import annotations

import pytest

from tests.conftest import _obtain
from tests.support import prometheus


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path of ``promtool`` (Debian ``prometheus``)."""
    found = _obtain("promtool", prometheus.promtool)
    assert isinstance(found, str)
    return found
