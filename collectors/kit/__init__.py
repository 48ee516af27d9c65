"""The move kit every broker's replay / move builds on.

* :mod:`collectors.kit.tally`: one running count of a move (moved, failed, skipped, possible
  duplicates, capped errors, notes) and the one place it becomes a ``MoveResult``.
* :mod:`collectors.kit.journal`: one file journal for brokers that must remember a run across
  a crash (what an interrupted run may have delivered twice).
* :mod:`collectors.kit.options`: typed move options declared by each plugin, turned into CLI
  flags and dashboard inputs, and checked in one place.
"""
