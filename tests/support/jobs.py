"""The job libraries' real workers for the tests: Sidekiq (Ruby), BullMQ (Node), RQ, Celery.

Every worker runs as its own process against a private Redis the job tests share (the
libraries' global keys, such as Sidekiq's ``stat:processed``, must not meet other tests).
A job succeeds or fails on a Redis flag: with ``<tag>:fail`` set it raises, without it it
records its argument in the list ``<tag>:done``. So a test makes the worker fail jobs into the
library's dead set, clears the flag, replays with mqtop and reads exactly which jobs ran.

Cross-checks use the libraries' own APIs (Sidekiq::Stats through ``ruby -e``, BullMQ's
``getJobCounts`` through ``node``, RQ's registries, kombu's queue sizes).

Run as a script to install the pieces a clean machine lacks (CI):
``python -m tests.support.jobs install``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests import harness
from tests.harness import BrokerUnavailable

ROOT = Path(__file__).resolve().parents[2]
BULLMQ_VERSION = "6"
BULLMQ_DIR = Path(os.environ.get("MQTOP_BULLMQ_DIR", harness.CACHE / f"bullmq-{BULLMQ_VERSION}"))
SIDEKIQ = "/usr/bin/sidekiq"


def _redis_env(url: str) -> dict[str, str]:
    return {**os.environ, "REDIS_URL": url, "PYTHONPATH": str(ROOT)}


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` every 0.1 s; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class Worker:
    """A worker process of a job library (stopped with SIGTERM, then SIGKILL)."""

    proc: subprocess.Popen[bytes]
    log: Path
    workdir: Path | None = None
    cleanup: list[Path] = field(default_factory=list)

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc.poll() is None

    def tail(self, lines: int = 20) -> str:
        """The end of the worker's log, for failure messages."""
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the worker and its children."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _spawn(cmd: Sequence[str], env: dict[str, str], cwd: Path, name: str) -> Worker:
    log = cwd / f"{name}.log"
    handle = open(log, "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        list(cmd), cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    return Worker(proc, log)


def _run(cmd: Sequence[str], env: dict[str, str], cwd: Path | None = None, timeout: float = 120,
         stdin: str | None = None) -> str:  # fmt: skip
    done = subprocess.run(
        list(cmd), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
        input=stdin, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"{cmd[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


# ---------------------------------------------------------------- Redis for job tests


def find_jobs_redis() -> harness.RedisBroker:
    """A private redis-server for the job libraries (their global keys stay apart)."""
    url = os.environ.get("MQTOP_TEST_JOBS_REDIS_URL")
    if url:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 6379
        if not harness.port_open(host, port):
            raise BrokerUnavailable(f"MQTOP_TEST_JOBS_REDIS_URL={url} does not answer")
        return harness.RedisBroker(host, port)
    return harness.start_redis()


# ---------------------------------------------------------------- Sidekiq

SIDEKIQ_JOBS = """
require "sidekiq"

# Fails while the flag "<tag>:fail" is set, else records its argument in "<tag>:done".
class FlakyJob
  include Sidekiq::Worker
  sidekiq_options retry: 0

  def perform(tag, n)
    Sidekiq.redis do |r|
      raise ArgumentError, "flaky #{n}" if r.get("#{tag}:fail")
      r.rpush("#{tag}:done", n.to_s)
    end
  end
end

# Sleeps (to be seen busy), then records.
class SlowJob
  include Sidekiq::Worker
  sidekiq_options retry: 0

  def perform(tag, seconds)
    sleep seconds
    Sidekiq.redis { |r| r.rpush("#{tag}:done", "slow") }
  end
end
"""


def sidekiq_available() -> None:
    """Raise BrokerUnavailable unless Debian's ruby-sidekiq is installed."""
    if not os.path.exists(SIDEKIQ) or shutil.which("ruby") is None:
        raise BrokerUnavailable("ruby-sidekiq is not installed (apt-get install ruby-sidekiq)")


class Sidekiq:
    """Sidekiq 6 (Debian's ruby-sidekiq): workers, pushes and its own numbers."""

    def __init__(self, redis_url: str) -> None:
        sidekiq_available()
        self.url = redis_url
        self.dir = Path(tempfile.mkdtemp(prefix="mqtop-sidekiq-"))
        (self.dir / "jobs.rb").write_text(SIDEKIQ_JOBS)

    def ruby(self, code: str, stdin: str | None = None) -> str:
        """Run Ruby with Sidekiq and the job classes loaded; return its stdout."""
        return _run(["ruby", "-r", "./jobs.rb", "-e", code], _redis_env(self.url),
                    cwd=self.dir, stdin=stdin)  # fmt: skip

    def push(self, queue: str, job: str, args: list[list[Any]]) -> None:
        """Push jobs with Sidekiq's own client (``push_bulk``)."""
        code = (
            "require 'json'; a = JSON.parse(STDIN.read); "
            f"Sidekiq::Client.push_bulk('class' => {job}, 'queue' => {json.dumps(queue)}, "
            "'args' => a)"
        )
        self.ruby(code, stdin=json.dumps(args))

    def worker(self, queues: Sequence[str], concurrency: int = 2) -> Worker:
        """Start ``sidekiq -r ./jobs.rb -q Q...``; wait until it has registered itself."""
        cmd = [SIDEKIQ, "-r", "./jobs.rb", "-c", str(concurrency)]
        for queue in queues:
            cmd += ["-q", queue]
        worker = _spawn(cmd, _redis_env(self.url), self.dir, f"sidekiq-{len(os.listdir(self.dir))}")
        import redis

        client = redis.Redis.from_url(self.url)
        try:
            wait_until(
                lambda: not worker.alive() or client.scard("processes") > 0, 30, "sidekiq start"
            )
        finally:
            client.close()
        if not worker.alive():
            raise AssertionError(f"sidekiq exited:\n{worker.tail()}")
        return worker

    def fail_into_dead(self, queue: str, tag: str, count: int, dead_max_jobs: int) -> None:
        """Push ``count`` FlakyJobs to ``queue`` and fail each through Sidekiq's own failure
        path (``JobRetry#local``, as its processor does): ``retry: 0`` sends them to the dead
        set with ``DeadSet#kill``, under ``dead_max_jobs``. Faster than a worker process."""
        code = f"""
            require "sidekiq/job_retry"
            Sidekiq.options[:dead_max_jobs] = {int(dead_max_jobs)}
            Sidekiq.logger.level = Logger::WARN
            q, tag = {json.dumps(queue)}, {json.dumps(tag)}
            (0...{int(count)}).each_slice(1000) do |s|
              Sidekiq::Client.push_bulk("class" => FlakyJob, "queue" => q,
                                        "args" => s.map {{ |i| [tag, i] }})
            end
            retrier = Sidekiq::JobRetry.new
            while (job = Sidekiq.redis {{ |r| r.rpop("queue:#{{q}}") }})
              begin
                retrier.local(FlakyJob.new, job, q) {{ raise ArgumentError, "flaky" }}
              rescue Sidekiq::JobRetry::Handled
              end
            end
        """
        self.ruby(code)

    def stats(self, queues: Sequence[str]) -> dict[str, Any]:
        """Sidekiq's own view: Stats, Queue#size/#latency, DeadSet/RetrySet/ScheduledSet."""
        code = (
            "require 'sidekiq/api'; require 'json'; s = Sidekiq::Stats.new; "
            f"qs = {json.dumps(list(queues))}; "
            "puts JSON.dump({processed: s.processed, failed: s.failed, dead: s.dead_size, "
            "retry: s.retry_size, scheduled: s.scheduled_size, processes: s.processes_size, "
            "busy: s.workers_size, "
            "queues: qs.to_h { |q| [q, Sidekiq::Queue.new(q).size] }, "
            "latency: qs.to_h { |q| [q, Sidekiq::Queue.new(q).latency] }})"
        )
        result: dict[str, Any] = json.loads(self.ruby(code).strip().splitlines()[-1])
        return result

    def close(self) -> None:
        """Remove the job files."""
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- BullMQ

BULLMQ_WORKER = """
const { Worker } = require('bullmq');
const IORedis = require('ioredis');
const [url, queue, tag, concurrency] = process.argv.slice(2);
const redis = new IORedis(url);
const w = new Worker(queue, async (job) => {
  if (job.name === 'slow') { await new Promise(r => setTimeout(r, job.data.ms)); }
  if (await redis.get(tag + ':fail')) { throw new TypeError('flaky ' + job.data.n); }
  await redis.rpush(tag + ':done', String(job.data.n));
}, { connection: new IORedis(url, { maxRetriesPerRequest: null }),
     concurrency: Number(concurrency), name: 'mqtop-test', metrics: { maxDataPoints: 60 } });
w.on('ready', () => console.log('ready'));
process.on('SIGTERM', async () => { await w.close(); process.exit(0); });
"""

BULLMQ_TOOL = """
const { Queue } = require('bullmq');
const IORedis = require('ioredis');
const [url, queue, command, arg] = process.argv.slice(2);
(async () => {
  const q = new Queue(queue, { connection: new IORedis(url, { maxRetriesPerRequest: null }) });
  if (command === 'add') {
    const jobs = JSON.parse(require('fs').readFileSync(0, 'utf8'));
    for (let i = 0; i < jobs.length; i += 1000) { await q.addBulk(jobs.slice(i, i + 1000)); }
  } else if (command === 'counts') {
    const counts = await q.getJobCounts();
    counts.workers = await q.getWorkersCount();
    console.log(JSON.stringify(counts));
  } else if (command === 'retry') {
    await q.retryJobs({ state: 'failed' });
  }
  await q.close();
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });
"""


def install_bullmq(target: Path = BULLMQ_DIR) -> Path:
    """``npm install bullmq@6 ioredis@5`` into the cache (once); return the directory."""
    marker = target / "node_modules" / "bullmq" / "package.json"
    if marker.exists() and (target / "node_modules" / "ioredis").exists():
        return target
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise BrokerUnavailable("node and npm are needed for the BullMQ worker")
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(target),
         f"bullmq@{BULLMQ_VERSION}", "ioredis@5"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if done.returncode != 0 or not marker.exists():
        raise BrokerUnavailable(f"npm install bullmq failed: {done.stderr[-500:]}")
    return target


class BullMQ:
    """BullMQ on Node: workers, producers and ``getJobCounts``."""

    def __init__(self, redis_url: str) -> None:
        self.url = redis_url
        self.dir = install_bullmq()
        (self.dir / "mqtop-worker.js").write_text(BULLMQ_WORKER)
        (self.dir / "mqtop-tool.js").write_text(BULLMQ_TOOL)

    def _tool(self, queue: str, command: str, arg: str = "", stdin: str | None = None) -> str:
        return _run(["node", "mqtop-tool.js", self.url, queue, command, arg], dict(os.environ),
                    cwd=self.dir, stdin=stdin)  # fmt: skip

    def add(self, queue: str, jobs: list[dict[str, Any]]) -> None:
        """``Queue.addBulk``, 1,000 at a time (each job: ``{"name", "data", "opts"}``)."""
        self._tool(queue, "add", stdin=json.dumps(jobs))

    def counts(self, queue: str) -> dict[str, int]:
        """``Queue.getJobCounts()`` plus ``getWorkersCount()`` as ``workers``."""
        result: dict[str, int] = json.loads(self._tool(queue, "counts").strip().splitlines()[-1])
        return result

    def retry_all(self, queue: str) -> None:
        """BullMQ's own bulk retry, ``Queue.retryJobs({state: 'failed'})``."""
        self._tool(queue, "retry")

    def worker(self, queue: str, tag: str, concurrency: int = 5) -> Worker:
        """A Node worker; waits for its ``ready`` event."""
        tmp = Path(tempfile.mkdtemp(prefix="mqtop-bullmq-"))
        cmd = ["node", str(self.dir / "mqtop-worker.js"), self.url, queue, tag, str(concurrency)]
        worker = _spawn(cmd, {**os.environ, "NODE_PATH": str(self.dir / "node_modules")}, tmp, "w")
        worker.workdir = tmp
        wait_until(lambda: not worker.alive() or "ready" in worker.tail(), 30, "bullmq worker")
        if not worker.alive():
            raise AssertionError(f"bullmq worker exited:\n{worker.tail()}")
        return worker


# ---------------------------------------------------------------- RQ


def rq_flaky(tag: str, n: int) -> int:
    """An RQ job: fails while ``<tag>:fail`` is set, else records ``n``."""
    from rq import get_current_job

    job = get_current_job()
    assert job is not None
    conn = job.connection
    if conn.get(f"{tag}:fail"):
        raise LookupError(f"flaky {n}")
    conn.rpush(f"{tag}:done", str(n))
    return n


def rq_slow(tag: str, seconds: float) -> None:
    """An RQ job that runs for ``seconds`` (to be seen started), then records ``slow``."""
    from rq import get_current_job

    time.sleep(seconds)
    job = get_current_job()
    assert job is not None
    job.connection.rpush(f"{tag}:done", "slow")


def rq_failed_jobs(rc: Any, queue_name: str, count: int) -> set[str]:
    """``count`` jobs put in the failed registry by RQ's own API (as a worker's failure does)."""
    from rq import Queue
    from rq.job import Job, JobStatus
    from rq.registry import FailedJobRegistry

    queue = Queue(queue_name, connection=rc)
    registry = FailedJobRegistry(queue_name, connection=rc)
    ids: set[str] = set()
    for start in range(0, count, 1000):
        with rc.pipeline() as pipe:
            for i in range(start, min(start + 1000, count)):
                job = Job.create("tests.support.jobs.rq_flaky", args=(queue_name, i),
                                 connection=rc, origin=queue.name)  # fmt: skip
                job.set_status(JobStatus.FAILED, pipeline=pipe)
                job.save(pipeline=pipe)
                registry.add(job, exc_string="LookupError: flaky", pipeline=pipe)
                ids.add(job.id)
            pipe.execute()
    rc.sadd("rq:queues", queue.key)
    return ids


def rq_available() -> None:
    """Raise BrokerUnavailable unless the rq package is installed."""
    try:
        import rq  # noqa: F401
    except ImportError as exc:
        raise BrokerUnavailable(f"the rq package is not installed: {exc}") from None


def rq_worker(redis_url: str, queues: Sequence[str], burst: bool = True) -> Worker:
    """``rq worker`` (SimpleWorker: no fork per job); burst mode exits when queues are empty."""
    tmp = Path(tempfile.mkdtemp(prefix="mqtop-rq-"))
    cmd = [sys.executable, "-m", "rq.cli", "worker", "-u", redis_url,
           "-w", "rq.worker.SimpleWorker", *(["--burst"] if burst else []), *queues]  # fmt: skip
    worker = _spawn(cmd, _redis_env(redis_url), tmp, "rq")
    worker.workdir = tmp
    return worker


# ---------------------------------------------------------------- Celery

CELERY_APP = "tests.support.celery"


def celery_available() -> None:
    """Raise BrokerUnavailable unless celery is installed."""
    try:
        import celery  # noqa: F401
    except ImportError as exc:
        raise BrokerUnavailable(f"the celery package is not installed: {exc}") from None


def celery_worker(broker_url: str, queues: Sequence[str], name: str | None = None) -> Worker:
    """A Celery worker (solo pool) on ``queues`` of ``broker_url`` (Redis or RabbitMQ); waits
    until it is ready. Its node name is ``name`` (unique by default)."""
    tmp = Path(tempfile.mkdtemp(prefix="mqtop-celery-"))
    node = name or f"mqtop-{os.getpid()}-{time.monotonic_ns()}@localhost"
    cmd = [sys.executable, "-m", "celery", "-A", CELERY_APP, "worker", "--pool", "solo",
           "-Q", ",".join(queues), "--without-gossip", "--without-mingle", "-l", "info",
           "-n", node]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MQTOP_CELERY_BROKER": broker_url}
    worker = _spawn(cmd, env, tmp, "celery")
    worker.workdir = tmp
    wait_until(lambda: not worker.alive() or "ready." in worker.tail(50), 60, "celery worker")
    if not worker.alive():
        raise AssertionError(f"celery worker exited:\n{worker.tail()}")
    return worker


@contextlib.contextmanager
def running(worker: Worker) -> Iterator[Worker]:
    """Stop ``worker`` at the end of the block."""
    try:
        yield worker
    finally:
        worker.stop()


def series_by_queue(run: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    """Series by queue from ``mqtop metrics --format json`` output (the broker must be up)."""
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert doc["brokers"][0]["up"], doc["brokers"]
    return {s["queue"]: s for s in doc["series"]}


def install() -> int:
    """Install what a clean machine lacks for the job tests (BullMQ from npm)."""
    print(install_bullmq())
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["install"]:
        raise SystemExit(install())
    print("usage: python -m tests.support.jobs install", file=sys.stderr)
    raise SystemExit(2)
