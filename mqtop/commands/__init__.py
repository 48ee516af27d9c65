"""Command implementations, imported lazily by :mod:`mqtop.cli`."""
