"""The SQS collector's worker threads: the kernel's daemon pool.

See :mod:`mqtop.kernel.threads`.
"""

from __future__ import annotations

from mqtop.kernel.threads import DaemonPool

__all__ = ["DaemonPool"]
