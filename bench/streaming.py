"""Streaming: records/s through `python -m pipeline --input_subscription`
(BundleBasedDirectRunner) against the Pub/Sub emulator and the Mailchimp
emulator with no latency, vs a trivial ReadFromPubSub -> count pipeline on
the same runner and emulator.

K purchase events of existing members are published first, once, to a topic
with one subscription per pipeline, so each pipeline starts on the same
backlog. The real pipeline is counted by the emulator (events posted), the
trivial one by its counter file; both by the same sampler. A third run, the
trivial pipeline padded with no-op steps up to the real graph's number of
ParDo steps, shows how much of the difference is the runner's cost per step.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

import apache_beam as beam
from apache_beam.pipeline import PipelineVisitor

from bench import data
from bench import profile as profiling
from bench.common import Result, Settings, Workdir, write_json
from bench.processes import (EVENTS_ROUTE, PIPELINE_ENV, Child,
                             MailchimpEmulator, PubSubEmulator,
                             pipeline_command)
from bench.progress import Progress, Throughput

NAME = "streaming"
PROJECT = "bench-project"  # Beam checks the form of project IDs
MEMBERS = 1000
READ_STEPS = 2  # ParDo steps inside ReadFromPubSub
PIPELINE_FLAGS = ["--summary_refresh_secs", "1", "--max_buffering_secs", "1"]


@contextlib.contextmanager
def _pubsub_env(host: str):
    previous = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = host
    try:
        yield
    finally:
        if previous is None:
            del os.environ["PUBSUB_EMULATOR_HOST"]
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = previous


def _publish(host: str, names: Sequence[str], messages: int) -> dict[str, str]:
    """One topic, a subscription per name, `messages` events on it."""
    from google.cloud import pubsub_v1  # only this benchmark needs it
    with _pubsub_env(host):
        publisher = pubsub_v1.PublisherClient()
        subscriber = pubsub_v1.SubscriberClient()
        try:
            topic = publisher.topic_path(PROJECT, "events")
            publisher.create_topic(name=topic)
            paths = {name: subscriber.subscription_path(PROJECT, name)
                     for name in names}
            for path in paths.values():
                subscriber.create_subscription(name=path, topic=topic)
            futures = [publisher.publish(topic, json.dumps(r).encode())
                       for r in data.purchases(messages, MEMBERS)]
            for future in futures:
                future.result(timeout=60)
        finally:
            publisher.stop()
            subscriber.close()
    return paths


def _pardo_steps(sync_path: Path, subscription: str) -> int:
    """ParDo steps in the graph `python -m pipeline` builds for this sync."""
    from pipeline.cli import pipeline_options
    from pipeline.config import load_config
    from pipeline.graph import build
    from transforms.mailchimp.credentials import Endpoint

    class Steps(PipelineVisitor):
        count = 0

        def visit_transform(self, node):
            self.count += isinstance(node.transform, beam.ParDo)

    options = pipeline_options(["--sync_config", str(sync_path),
                                "--input_subscription", subscription])
    graph = build(beam.Pipeline(options=options), load_config(str(sync_path)),
                  Endpoint("http://127.0.0.1/3.0"))
    steps = Steps()
    graph.visit(steps)
    return steps.count


def _lines_total(path: Path) -> int:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return 0
    return sum(int(line) for line in text.splitlines(keepends=True)
               if line.endswith("\n"))


def _stream(command: list[str], log: Path, env: dict, count: Callable[[], int],
            target: int, timeout_s: float,
            profile: Optional[Path] = None) -> Throughput:
    """Run until `count()` reaches target (or time runs out), then SIGTERM;
    with `profile` (a directory), sampled by py-spy until then."""
    with contextlib.ExitStack() as stack:
        child = stack.enter_context(Child(command, log, env))
        spy = stack.enter_context(profiling.attach(
            child.pid, profile, log.stem)) if profile else None
        progress = Progress(count, target, interval_s=0.05,
                            timeout_s=timeout_s).start(child.started)
        progress.wait(timeout_s, alive=child.running)
        progress.stop()
        child.stop().check(f"{command[2]} (streaming)")
        if spy:
            profiling.summarise(profile, log.stem, spy)
    return progress.throughput()


def run(settings: Settings) -> list[Result]:
    messages = settings.stream_messages
    flows: dict[str, Throughput] = {}
    names = ("trivial", "padded", "pipeline") + (
        ("profiled",) if settings.profile else ())
    with Workdir(NAME) as workdir, PubSubEmulator(workdir) as pubsub, \
            MailchimpEmulator(workdir, data.seed(MEMBERS), 0) as mailchimp:
        subscriptions = _publish(pubsub.host, names, messages)
        sync_path = write_json(workdir / "sync.json", data.events_sync())
        steps = _pardo_steps(sync_path, subscriptions["pipeline"])
        env = {**PIPELINE_ENV, "PUBSUB_EMULATOR_HOST": pubsub.host}
        for name, padding in (("trivial", 0), ("padded", steps - READ_STEPS - 1)):
            count_file = workdir / f"{name}.count"
            command = [sys.executable, "-m", "bench.trivial_stream",
                       "--subscription", subscriptions[name],
                       "--count_file", str(count_file), "--steps", str(padding)]
            flows[name] = _stream(command, workdir / f"{name}.log", env,
                                  lambda f=count_file: _lines_total(f), messages,
                                  settings.timeout_s)
        # The profile gets a run of its own (sampling slows it down), on a
        # quarter of the messages: enough to see where the time goes.
        for name in names[2:]:
            mailchimp.reset_stats()
            command = pipeline_command(
                sync_path, workdir / f"{name}-output", mailchimp.base_url,
                "--input_subscription", subscriptions[name], extra=PIPELINE_FLAGS)
            flows[name] = _stream(
                command, workdir / f"streaming-{name}.log", env,
                lambda: mailchimp.requests_to(EVENTS_ROUTE),
                messages if name == "pipeline" else max(1, messages // 4),
                settings.timeout_s, settings.profile if name == "profiled" else None)

    def note(name: str) -> str:
        flow = flows[name]
        return (f"{flow.count:,}/{messages:,} in {flow.wall_s:.1f} s from launch "
                f"(first after {flow.first_s:.1f} s; wall-clock "
                f"{flow.wall_per_s:,.1f}/s)")

    trivial = flows["trivial"].steady_per_s
    padded = flows["padded"].steady_per_s
    return [
        Result(NAME, "pipeline, steady state", flows["pipeline"].steady_per_s,
               "records/s", "trivial ReadFromPubSub -> count", trivial,
               target=0.9, note=note("pipeline") + "; "
               + " ".join(PIPELINE_FLAGS)),
        Result(NAME, f"trivial padded to {steps} ParDo steps", padded,
               "records/s", "trivial ReadFromPubSub -> count", trivial,
               note=note("padded")),
        Result(NAME, "pipeline, steady state", flows["pipeline"].steady_per_s,
               "records/s", f"trivial padded to {steps} steps", padded),
        Result(NAME, "trivial ReadFromPubSub -> count", trivial, "records/s",
               "", None, note=note("trivial")),
    ]
