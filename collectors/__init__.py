"""Broker collectors: one module per broker, each exposing a ``PLUGIN``."""
