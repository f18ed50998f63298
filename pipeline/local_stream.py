"""LocalStream: a streaming job on a local runner, as a series of bounded runs.

Why not Beam's local streaming runner: it acknowledges each Pub/Sub message
as soon as it pulls it (10 a pull), so whatever sits in a buffer at a stop
or a crash is lost, and it sets up and inspects every DoFn for every bundle,
which held the job at a tenth of Mailchimp's ceiling (docs/benchmarks.md).

How: messages are pulled and held unacknowledged (`LeasedPull`, leases
extended). A micro-batch closes when `--batch_size` messages are waiting or
`--max_buffering_secs` after its first message; it then runs through the
same graph as a file backfill, on the local batch runner, with everything
that is waiting (at most MAX_RUN_MESSAGES). Only when that run has finished,
and its outcomes are in the output files and summary.json, are its messages
acknowledged. Runs go one at a time, so one user's records keep their order;
the next batch is pulled while a run is going on. The graph's clients and
caches are kept by the process (transforms/worker_cache.py), so a run does
not reconnect or fetch merge fields again.

Stop (SIGTERM, Ctrl-C): no more pulls; what was pulled runs and is
acknowledged; the final summary is written. A crash (`kill -9`) loses
nothing: what was not acknowledged is redelivered to the next run.

Output files: each kind's lines are appended to one file per window of
`--output_window_secs` of processing time, `KIND-YYYYMMDDTHHMMSSZ.jsonl`
(the window's start, UTC), in `--output_dir`.
"""
from __future__ import annotations

import base64
import contextlib
import glob
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from typing import Callable, Iterable, Iterator, Optional

import apache_beam as beam
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.graph import build
from pipeline.options import MailchimpStreamOptions
from pipeline.outputs import FILES
from pipeline.pubsub_pull import LeasedPull
from pipeline.summary import (add_summaries, empty_summary, read_summary,
                              write_summary)
from transforms.mailchimp.credentials import Endpoint
from transforms.sync import SyncConfig

MAX_RUN_MESSAGES = 100_000  # held at once: bounds memory (about 1 KiB each)
_PULL_MAX = 1000  # messages per Pull call


def _write_messages(path: str, messages: Iterable[PubsubMessage]) -> str:
    """Messages as JSON lines: a run reads them from a file, because
    beam.Create would pickle and compress them all into the graph (with a
    backlog of 50,000 messages, most of a run's time)."""
    with open(path, "w", encoding="utf-8") as f:
        for message in messages:
            f.write(json.dumps({
                "data": base64.b64encode(message.data).decode(),
                "attributes": message.attributes,
                "message_id": message.message_id}) + "\n")
    return path


def _read_messages(path: str) -> Iterator[PubsubMessage]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            message = json.loads(line)
            yield PubsubMessage(base64.b64decode(message["data"]),
                                message["attributes"],
                                message_id=message["message_id"])


class _ReadPulled(beam.PTransform):
    """The messages of one run, from the file `_write_messages` wrote."""

    def __init__(self, path: str):
        super().__init__()
        self._path = path

    def expand(self, pbegin):
        return (pbegin
                | "Pulled messages" >> beam.Create([self._path])
                | "Read them" >> beam.FlatMap(_read_messages))


@contextlib.contextmanager
def subscription_of(options: MailchimpStreamOptions) -> Iterator[str]:
    """The subscription to read: `--input_subscription`, or for
    `--input_topic` one made for this run and deleted after it."""
    if options.input_subscription:
        yield options.input_subscription
        return
    from google.cloud import pubsub_v1  # reads PUBSUB_EMULATOR_HOST
    project = options.input_topic.split("/")[1]
    subscriber = pubsub_v1.SubscriberClient()
    name = subscriber.subscription_path(
        project, f"mailchimp-stream-{uuid.uuid4().hex[:12]}")
    subscriber.create_subscription(request={"name": name,
                                            "topic": options.input_topic})
    try:
        yield name
    finally:
        subscriber.delete_subscription(request={"subscription": name})
        subscriber.close()


class _Held:
    """Pulled messages waiting for a run, oldest first; thread-safe."""

    def __init__(self, clock: Callable[[], float]):
        self._clock = clock
        self._messages: list[tuple[str, PubsubMessage]] = []
        self._first_at: Optional[float] = None
        self._changed = threading.Condition()

    def __len__(self) -> int:
        with self._changed:
            return len(self._messages)

    def add(self, pulled: list[tuple[str, PubsubMessage]]) -> None:
        with self._changed:
            if pulled and not self._messages:
                self._first_at = self._clock()
            self._messages.extend(pulled)
            self._changed.notify_all()

    def take(self, batch_size: int, max_wait_s: float, stop: threading.Event,
             poll_s: float) -> list[tuple[str, PubsubMessage]]:
        """Waits until `batch_size` are held or the oldest has waited
        `max_wait_s` (then returns what is held, up to the cap), or until
        `stop` or `poll_s` have passed (then returns [])."""
        with self._changed:
            deadline = time.monotonic() + poll_s
            while not self._ready(batch_size, max_wait_s):
                left = deadline - time.monotonic()
                if stop.is_set() or left <= 0:
                    return []
                self._changed.wait(min(left, 0.1))
            return self._take()

    def take_all(self) -> list[tuple[str, PubsubMessage]]:
        with self._changed:
            return self._take()

    def _ready(self, batch_size: int, max_wait_s: float) -> bool:
        return bool(self._messages) and (
            len(self._messages) >= batch_size
            or self._clock() - self._first_at >= max_wait_s)

    def _take(self) -> list[tuple[str, PubsubMessage]]:
        taken = self._messages[:MAX_RUN_MESSAGES]
        self._messages = self._messages[MAX_RUN_MESSAGES:]
        self._first_at = self._clock() if self._messages else None
        return taken


class LocalStream:
    """Runs the job of `options` (a Pub/Sub source) until `stop` is set."""

    def __init__(self, options: PipelineOptions, config: SyncConfig,
                 endpoint: Endpoint, subscription: str,
                 clock: Callable[[], float] = time.time):
        self._options, self._config, self._endpoint = options, config, endpoint
        self._ours = options.view_as(MailchimpStreamOptions)
        self._subscription, self._clock = subscription, clock
        self._held = _Held(time.monotonic)
        self._sync_names = [sync.name for sync in config.enabled]
        self._totals = empty_summary(self._sync_names)
        self._written_at = 0.0
        self._job = uuid.uuid4().hex  # one client, one duplicate memory for all runs

    def run(self, stop: threading.Event) -> None:
        os.makedirs(self._ours.output_dir, exist_ok=True)
        self._write_summary()  # zeros from the start
        source = LeasedPull(self._subscription)
        no_more_pulls = threading.Event()
        puller = threading.Thread(target=self._pull,
                                  args=(source, (stop, no_more_pulls)),
                                  daemon=True, name="pubsub-pull")
        puller.start()
        try:
            while not stop.is_set():
                batch = self._held.take(self._ours.batch_size,
                                        self._ours.max_buffering_secs, stop,
                                        poll_s=self._ours.summary_refresh_secs)
                if batch:
                    self._deliver(source, batch)
                if self._clock() - self._written_at >= self._ours.summary_refresh_secs:
                    self._write_summary()  # a quiet stream shows it is alive
            no_more_pulls.set()
            puller.join()
            while batch := self._held.take_all():  # pulled before the stop
                self._deliver(source, batch)
        finally:
            no_more_pulls.set()
            puller.join()
            source.close()  # anything still held is redelivered later
            self._write_summary()

    def _deliver(self, source: LeasedPull, batch) -> None:
        self._run_once(batch)
        source.ack(ack_id for ack_id, _ in batch)

    def _pull(self, source: LeasedPull, until: tuple[threading.Event, ...]) -> None:
        """Pulls until any of `until` is set (a stop, or the run ending)."""
        while not any(event.is_set() for event in until):
            if len(self._held) >= MAX_RUN_MESSAGES:
                time.sleep(0.05)  # a run is behind: let it catch up
                continue
            pulled = source.pull(_PULL_MAX, timeout_s=1.0)
            if any(event.is_set() for event in until) and pulled:
                source.nack(ack_id for ack_id, _ in pulled)  # came after the stop
                return
            self._held.add(pulled)

    def _run_once(self, batch: list[tuple[str, PubsubMessage]]) -> None:
        """One bounded run over `batch`; its outcomes recorded."""
        staging = tempfile.mkdtemp(prefix="mailchimp-stream-run-")
        try:
            options = PipelineOptions(flags=[], **{
                **self._options.get_all_options(drop_default=True),
                "streaming": False, "output_dir": staging})
            pulled = _write_messages(os.path.join(staging, "pulled.jsonl"),
                                     (message for _, message in batch))
            pipeline = build(beam.Pipeline(options=options), self._config,
                             self._endpoint, records=_ReadPulled(pulled),
                             job=self._job)
            pipeline.run().wait_until_finish()
            self._record(staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _record(self, staging: str) -> None:
        window = self._ours.output_window_secs
        start = time.gmtime(self._clock() // window * window)
        suffix = time.strftime("%Y%m%dT%H%M%SZ", start)
        for kind in FILES:
            shards = sorted(glob.glob(os.path.join(staging, f"{kind}*.jsonl")))
            lines = b"".join(open(path, "rb").read() for path in shards)
            if lines:
                target = os.path.join(self._ours.output_dir, f"{kind}-{suffix}.jsonl")
                with open(target, "ab") as f:
                    f.write(lines)
        run = read_summary(staging)
        if run is not None:
            self._totals = add_summaries(self._totals, run)
        self._write_summary()

    def _write_summary(self) -> None:
        write_summary(self._totals, self._ours.output_dir)
        self._written_at = self._clock()
