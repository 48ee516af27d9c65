"""Broker tests: real brokers on loopback, one folder per broker."""
