"""Tests that need no broker: pure logic, config, CLI, store, engine and alert evaluation."""
