"""Streaming: `python -m pipeline --input_subscription` on the local runner
against Mailchimp's ceiling, from a backlog on the Pub/Sub emulator.

- events: K purchase events of K new users, with send_users and send_events
  (each record is a member upsert and an event), at L = --latency-ms:
  ceiling 10/L events/s;
- members: M new users (send_users only) at L = 500 ms: ceiling
  10 x 500/L members/s.
Each is counted at the Mailchimp emulator (events posted; members created),
steady state: the rate between the first and the last 10% of the count, so
start-up and the run's tail do not count.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Callable

from bench import data
from bench.common import (BATCH_SUBSCRIBE_SIZE, MAILCHIMP_CONNECTIONS, Result,
                          Settings, Workdir, write_json)
from bench.processes import (BATCH_SUBSCRIBE_ROUTE, EVENTS_ROUTE, PIPELINE_ENV,
                             Child, MailchimpEmulator, PubSubEmulator,
                             pipeline_command)
from bench.progress import Progress, Throughput

NAME = "streaming"
PROJECT = "bench-project"  # Beam checks the form of project IDs
MEMBERS_LATENCY_MS = 500.0
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


def _publish(host: str, name: str, records) -> str:
    """A topic and subscription called `name`, with `records` on it."""
    from google.cloud import pubsub_v1  # only this benchmark needs it
    with _pubsub_env(host):
        publisher = pubsub_v1.PublisherClient()
        subscriber = pubsub_v1.SubscriberClient()
        try:
            topic = publisher.topic_path(PROJECT, name)
            subscription = subscriber.subscription_path(PROJECT, name)
            publisher.create_topic(name=topic)
            subscriber.create_subscription(name=subscription, topic=topic)
            futures = [publisher.publish(topic, json.dumps(r).encode())
                       for r in records]
            for future in futures:
                future.result(timeout=120)
        finally:
            publisher.stop()
            subscriber.close()
    return subscription


def _stream(workdir: Path, name: str, pubsub: PubSubEmulator,
            mailchimp: MailchimpEmulator, sync: dict, subscription: str,
            count: Callable[[], int], target: int, timeout_s: float) -> Throughput:
    """Run until `count()` reaches target (or time runs out), then SIGTERM."""
    command = pipeline_command(
        write_json(workdir / f"{name}-sync.json", sync), workdir / f"{name}-output",
        mailchimp.base_url, "--input_subscription", subscription,
        extra=PIPELINE_FLAGS)
    env = {**PIPELINE_ENV, "PUBSUB_EMULATOR_HOST": pubsub.host}
    with Child(command, workdir / f"{name}.log", env) as child:
        progress = Progress(count, target, interval_s=0.05,
                            timeout_s=timeout_s).start(child.started)
        progress.wait(timeout_s, alive=child.running)
        progress.stop()
        child.stop().check(f"the pipeline ({name}, streaming)")
    return progress.throughput()


def _note(flow: Throughput, target: int) -> str:
    return (f"{flow.count:,}/{target:,} in {flow.wall_s:.1f} s from launch "
            f"(first after {flow.first_s:.1f} s); " + " ".join(PIPELINE_FLAGS))


def run(settings: Settings) -> list[Result]:
    events, members = settings.stream_messages, settings.stream_members
    with Workdir(NAME) as workdir, PubSubEmulator(workdir) as pubsub:
        with MailchimpEmulator(workdir, data.seed(0), settings.latency_ms) as mailchimp:
            subscription = _publish(pubsub.host, "events",
                                    data.purchases_of_new_users(events))
            event_flow = _stream(
                workdir, "events", pubsub, mailchimp, data.backfill_sync(),
                subscription, lambda: mailchimp.requests_to(EVENTS_ROUTE),
                events, settings.timeout_s)
        with MailchimpEmulator(workdir, data.seed(0), MEMBERS_LATENCY_MS) as mailchimp:
            subscription = _publish(pubsub.host, "members", data.signups(members))
            # Members created, at 500 a call: the calls are what is counted.
            member_flow = _stream(
                workdir, "members", pubsub, mailchimp, data.members_sync(),
                subscription, lambda: mailchimp.requests_to(
                    BATCH_SUBSCRIBE_ROUTE) * BATCH_SUBSCRIBE_SIZE,
                members, settings.timeout_s)
    events_ceiling = MAILCHIMP_CONNECTIONS / settings.latency_s
    members_ceiling = (MAILCHIMP_CONNECTIONS * BATCH_SUBSCRIBE_SIZE
                       / (MEMBERS_LATENCY_MS / 1000))
    return [
        Result(NAME, "events of new users, steady state", event_flow.steady_per_s,
               "events/s", f"ceiling 10/L, L={settings.latency_ms:g} ms",
               events_ceiling, target=0.9, note=_note(event_flow, events)),
        Result(NAME, "new members, steady state", member_flow.steady_per_s,
               "members/s", f"ceiling 10x500/L, L={MEMBERS_LATENCY_MS:g} ms",
               members_ceiling, target=0.9, note=_note(member_flow, members)),
    ]
