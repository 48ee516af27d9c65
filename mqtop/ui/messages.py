"""The dashboard's messages: screens import these, never the app module."""

from __future__ import annotations

from textual.message import Message


class DataRefreshed(Message):
    """New dashboard data is available on the app (``DashboardHost.data``)."""


class StoreChanged(Message):
    """The store ingested a poll (posted from the store's callback, on any thread)."""
