"""make demo-stream: the streaming job on the embedded stand-ins.

Starts the Mailchimp and Pub/Sub emulators, starts `python -m pipeline`
reading a subscription, publishes every example record of `make demo` (the
JSON lines and the export zip's rows) to the topic at a steady rate while
showing progress, waits until the pipeline has recorded an outcome for each,
then stops it cleanly (SIGTERM). Its summary adds up to the file demo's.
"""
from __future__ import annotations

import argparse
import gzip
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from pipeline.local.demo import (DATA, DEMO_KEY, mailchimp_stats,
                                 pipeline_command, show_mailchimp_stats,
                                 start_mailchimp, Service)
from pipeline.summary import read_summary
from transforms.parse import parse_payload

PROJECT = "mailchimp-stream-demo"
DRAIN_TIMEOUT_S = 300


def demo_lines() -> list[bytes]:
    """The lines `make demo` reads: events.jsonl, then the export's rows."""
    lines = (DATA / "input" / "events.jsonl").read_bytes().splitlines()
    with zipfile.ZipFile(DATA / "input" / "export.zip") as archive:
        for name in sorted(archive.namelist()):
            if name.endswith(".gz"):
                lines += gzip.decompress(archive.read(name)).splitlines()
    return lines


def _records_in(lines: list[bytes]) -> int:
    """What summary.json's records_in will be once every line is processed."""
    return sum(len(list(parse_payload(line))) for line in lines)


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


def _processed(output_dir: Path) -> int:
    return (read_summary(str(output_dir)) or {}).get("records_in", 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output_dir", default="demo-stream-output")
    parser.add_argument("--rate", type=float, default=400.0, help="records/s")
    args = parser.parse_args(argv)
    output_dir = Path(args.output_dir)
    shutil.rmtree(output_dir, ignore_errors=True)  # its old summary would mislead
    lines = demo_lines()
    records = _records_in(lines)
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
            requests = sum(mailchimp_stats(mailchimp)["requests"].values())
            print(f"published {published:5d}   processed {_processed(output_dir):5d}"
                  f"   Mailchimp requests {requests:5d}", flush=True)

        print(f"Publishing {len(lines)} records to {events} at "
              f"{args.rate:.0f}/s\n", flush=True)
        _publish(events, lines, args.rate, progress)
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while _processed(output_dir) < records and time.monotonic() < deadline:
            time.sleep(1)
            progress(len(lines))
        if _processed(output_dir) < records:
            print(f"\nGave up after {DRAIN_TIMEOUT_S} s: {_processed(output_dir)} "
                  f"of {records} records processed. Stopping the pipeline "
                  f"(SIGTERM)\n", flush=True)
        else:
            print(f"\nThe stream is drained: all {records} records processed. "
                  f"Stopping the pipeline (SIGTERM)\n", flush=True)
        pipeline.send_signal(signal.SIGTERM)
        status = pipeline.wait(timeout=120)
        if status == 0 and _processed(output_dir) < records:
            status = 1
        show_mailchimp_stats(mailchimp_stats(mailchimp))
    finally:
        if pipeline and pipeline.poll() is None:
            pipeline.kill()
        pubsub.stop()
        mailchimp.stop()
    return status


if __name__ == "__main__":
    sys.exit(main())
