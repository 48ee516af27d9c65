"""The sqs broker plugin (entry point ``collectors.sqs:PLUGIN``).

Modules by concern: ``options`` (config and move options), ``plugin`` (PLUGIN), ``client``
(boto3 clients, time limits, AWS errors), ``pool`` (daemon worker threads), ``codecs`` (names,
attributes, messages), ``cloudwatch``, ``collector`` (fetch / decode / map), ``actions``
(peek / purge / count / replay target), ``native`` (the SQS move task) and ``mover`` (the
lossless batched move).
"""

from collectors.sqs.plugin import PLUGIN

__all__ = ["PLUGIN"]
