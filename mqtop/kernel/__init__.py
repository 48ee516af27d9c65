"""The kernel: what collectors and alert rules may import.

Metric vocabulary and samples (``model``), the time-series store (``store``), durations,
secrets and redaction, errors and exit codes, rendering safety (``safe``), message filters,
state paths and process helpers. Nothing here imports the application (config wiring, engine,
commands, dashboard, demo), collectors or alerts; import-linter contracts in pyproject.toml
keep it that way.
"""
