"""Kafka: collector, replay and copy, SASL/TLS, kill tests."""
