"""Fault tests: kills mid-move, outages, hostile payloads and endpoints."""
