"""``mqtop lint``: a broker's topology checked against best practices.

Broker plugins read a small typed topology (``collectors/topology.py``); the rules here are
pure functions over it, each with a stable id, a severity and a one-line fix
(:mod:`mqtop.lint.catalogue`, documented in docs/lint.md).
"""
