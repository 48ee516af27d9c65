"""Redis job libraries as brokers: Sidekiq, BullMQ, RQ and Celery (kind ``jobs``).

Each library module holds its options, key layout, collector and dead-job actions; this
package's shared part holds the options base (``common``), the job-queue series builder
(``series``) and the dead-set action driver (``actions``). The libraries' bookkeeping keys the
plain Redis collector must not show as queues are listed in ``collectors.redis.library_keys``.
See docs/jobs.md.
"""
