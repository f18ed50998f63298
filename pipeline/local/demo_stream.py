"""make demo-stream: the streaming job on the embedded stand-ins.

Starts the Mailchimp and Pub/Sub emulators, starts `python -m pipeline`
reading a subscription, publishes the example records to the topic at a
steady rate while showing progress, then stops the pipeline cleanly
(SIGTERM), which prints the same summary as the file demo.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from pipeline.local.demo import (DATA, DEMO_KEY, mailchimp_stats,
                                 pipeline_command, show_mailchimp_stats,
                                 start_mailchimp, Service)
from pipeline.summary import read_summary
from transforms.parse import parse_payload

PROJECT = "mailchimp-stream-demo"
DRAIN_TIMEOUT_S = 120


def _topics(host: str) -> tuple[str, str, str]:
    """events topic + subscription and a dead-letter topic, created."""
    os.environ["PUBSUB_EMULATOR_HOST"] = host
    from google.cloud import pubsub_v1  # reads PUBSUB_EMULATOR_HOST
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    events = publisher.topic_path(PROJECT, "amplitude-events")
    dead = publisher.topic_path(PROJECT, "mailchimp-dead-letters")
    subscription = subscriber.subscription_path(PROJECT, "mailchimp-stream")
    for topic in (events, dead):
        publisher.create_topic(name=topic)
    subscriber.create_subscription(name=subscription, topic=events)
    subscriber.close()
    return events, subscription, dead


def _publish(topic: str, lines: list[bytes], rate: float, progress) -> None:
    from google.cloud import pubsub_v1
    publisher = pubsub_v1.PublisherClient()
    start = time.monotonic()
    for n, line in enumerate(lines, 1):
        publisher.publish(topic, line)
        ahead = n / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
        if n % int(rate) == 0 or n == len(lines):
            progress(n)
    publisher.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output_dir", default="demo-stream-output")
    parser.add_argument("--rate", type=float, default=400.0, help="records/s")
    args = parser.parse_args(argv)
    output_dir = Path(args.output_dir)
    shutil.rmtree(output_dir, ignore_errors=True)  # its old summary would mislead
    lines = (DATA / "input" / "events.jsonl").read_bytes().splitlines()
    records = sum(len(list(parse_payload(line))) for line in lines)
    mailchimp, pubsub = start_mailchimp(), Service("pipeline.local.pubsub_emulator")
    pipeline = None
    try:
        events, subscription, dead = _topics(pubsub.address)
        pipeline = subprocess.Popen(
            pipeline_command(mailchimp.address, output_dir,
                             "--input_subscription", subscription,
                             "--dead_letter_topic", dead,
                             "--summary_refresh_secs", "1",
                             "--output_window_secs", "10"),
            env={**os.environ, "MAILCHIMP_API_KEY": DEMO_KEY,
                 "PUBSUB_EMULATOR_HOST": pubsub.address})

        def progress(published: int) -> None:
            totals = read_summary(str(output_dir)) or {"records_in": 0}
            requests = sum(mailchimp_stats(mailchimp)["requests"].values())
            print(f"published {published:5d}   processed {totals['records_in']:5d}"
                  f"   Mailchimp requests {requests:5d}", flush=True)

        print(f"Publishing {len(lines)} records to {events} at "
              f"{args.rate:.0f}/s\n", flush=True)
        _publish(events, lines, args.rate, progress)
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while (read_summary(str(output_dir)) or {}).get("records_in", 0) < records \
                and time.monotonic() < deadline:
            time.sleep(1)
            progress(len(lines))
        print("\nStopping the pipeline (SIGTERM)\n", flush=True)
        pipeline.send_signal(signal.SIGTERM)
        status = pipeline.wait(timeout=60)
        show_mailchimp_stats(mailchimp_stats(mailchimp))
    finally:
        if pipeline and pipeline.poll() is None:
            pipeline.kill()
        pubsub.stop()
        mailchimp.stop()
    return status


if __name__ == "__main__":
    sys.exit(main())
