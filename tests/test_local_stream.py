"""The local streaming job loses nothing it pulled: a message is acknowledged
only once its outcome is recorded, so a SIGTERM drains what was pulled and a
`kill -9` leaves it to be redelivered to the next run."""
from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter

import pytest

from pipeline.local.mailchimp_emulator import MailchimpEmulator
from pipeline.summary import add_summaries, read_summary
from tests.helpers import API_KEY, AUDIENCE, SEED
from tests.test_streaming import start_pipeline, stop, wait_for

MESSAGES = 400


@pytest.fixture
def slow_mailchimp():
    """50 ms a call: a run of 400 records takes seconds, so a stop or a
    crash lands in the middle of the stream."""
    with MailchimpEmulator(seed=json.loads(json.dumps(SEED)), api_key=API_KEY,
                           latency_ms=50) as emu:
        yield emu


def record(n: int) -> bytes:
    return json.dumps({
        "user_id": f"u{n}", "event_type": "purchase", "insert_id": f"i{n}",
        "user_properties": {"email": f"p{n}@example.com", "FNAME": "P"}}).encode()


def publish_all(publisher, topic) -> None:
    for future in [publisher.publish(topic, record(n)) for n in range(MESSAGES)]:
        future.result(timeout=30)


def publish_steadily(publisher, topic) -> threading.Thread:
    """MESSAGES over about 8 s, so a stop lands while messages still come."""
    def publish():
        for n in range(MESSAGES):
            publisher.publish(topic, record(n)).result(timeout=30)
            time.sleep(8 / MESSAGES)
    thread = threading.Thread(target=publish)
    thread.start()
    return thread


def started(process, out) -> bool:
    """It has written its first summary.json, so it handles SIGTERM."""
    assert process.poll() is None, process.communicate()[0]
    return read_summary(str(out)) is not None


def delivered_events(emulator) -> Counter:
    return Counter(event["name"] + ":" + email for email in (
        f"p{n}@example.com" for n in range(MESSAGES))
        for event in emulator.events(AUDIENCE, email))


def processed(out) -> int:
    return (read_summary(str(out)) or {}).get("records_in", 0)


def test_sigterm_mid_stream_loses_nothing(tmp_path, slow_mailchimp, pubsub):
    emu, publisher, _, topics, subscriptions = pubsub
    args = (slow_mailchimp, emu.host, subscriptions["events-pipeline"],
            topics["dead-letters"], "--max_buffering_secs", "0.5",
            "--batch_size", "50")
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = start_pipeline(tmp_path / "first", *args)
    wait_for(lambda: started(first, tmp_path / "first" / "out"), 120, "a first run")
    publishing = publish_steadily(publisher, topics["events"])
    wait_for(lambda: processed(tmp_path / "first" / "out") > 0, 120, "its first records")
    stop(first)  # SIGTERM mid-stream: exit 0 after draining what it pulled
    one = read_summary(str(tmp_path / "first" / "out"))
    second = start_pipeline(tmp_path / "second", *args)
    try:
        wait_for(lambda: started(second, tmp_path / "second" / "out"), 120,
                 "a second run")
        publishing.join()
        wait_for(lambda: one["records_in"] + processed(tmp_path / "second" / "out")
                 >= MESSAGES, 180, "the rest, in a second run")
    finally:
        stop(second)
    assert 0 < one["records_in"] < MESSAGES  # the stop came mid-stream
    both = add_summaries(one, read_summary(str(tmp_path / "second" / "out")))
    # Every message in exactly one outcome, across the two runs.
    assert both["records_in"] == MESSAGES and both["duplicates"] == 0
    assert both["events"]["delivered"] == MESSAGES
    assert both["members"]["upserted"] == MESSAGES
    assert delivered_events(slow_mailchimp) == Counter(
        f"purchase:p{n}@example.com" for n in range(MESSAGES))


def test_after_kill_9_a_second_run_delivers_what_the_first_had_pulled(
        tmp_path, slow_mailchimp, pubsub):
    emu, publisher, _, topics, subscriptions = pubsub
    args = (slow_mailchimp, emu.host, subscriptions["events-pipeline"],
            topics["dead-letters"], "--max_buffering_secs", "0.5",
            "--batch_size", "50")
    publish_all(publisher, topics["events"])
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = start_pipeline(tmp_path / "first", *args)
    wait_for(lambda: started(first, tmp_path / "first" / "out"), 120, "a first run")
    # Killed while it holds pulled messages whose outcomes are not recorded.
    wait_for(lambda: slow_mailchimp.stats["requests"].get(
        "POST /3.0/lists/{list_id}/members/{subscriber_hash}/events", 0) > 0,
        120, "events on their way")
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    recorded = processed(tmp_path / "first" / "out")
    assert recorded < MESSAGES
    second = start_pipeline(tmp_path / "second", *args)
    try:
        wait_for(lambda: started(second, tmp_path / "second" / "out"), 120,
                 "a second run")
        # The killed run's leases lapse, and Pub/Sub redelivers.
        wait_for(lambda: recorded + processed(tmp_path / "second" / "out")
                 >= MESSAGES, 240, "the redeliveries")
    finally:
        stop(second)
    # Every record reached Mailchimp; a record whose event was posted but
    # whose outcome the killed run never recorded is posted again (events
    # are at least once), never lost.
    events = delivered_events(slow_mailchimp)
    assert set(events) == {f"purchase:p{n}@example.com" for n in range(MESSAGES)}
    assert max(events.values()) <= 2
    for n in range(MESSAGES):
        assert slow_mailchimp.member(AUDIENCE, f"p{n}@example.com") is not None


def test_a_quiet_stream_has_a_summary_from_the_start_kept_fresh(tmp_path, pubsub):
    emu, _, _, topics, subscriptions = pubsub
    with MailchimpEmulator(seed=json.loads(json.dumps(SEED)), api_key=API_KEY) as mc:
        process = start_pipeline(tmp_path, mc, emu.host, subscriptions["events-pipeline"],
                                 topics["dead-letters"])
        try:
            summary_path = tmp_path / "out" / "summary.json"
            wait_for(lambda: started(process, tmp_path / "out"), 120, "a summary")
            assert read_summary(str(tmp_path / "out"))["records_in"] == 0
            first = summary_path.stat().st_mtime_ns
            # --summary_refresh_secs 1: rewritten though nothing comes.
            wait_for(lambda: summary_path.stat().st_mtime_ns > first, 30, "a refresh")
        finally:
            stop(process)


def test_sigterm_ends_the_job_when_pubsub_has_gone_away(tmp_path, slow_mailchimp):
    from pipeline.local.pubsub_emulator import PubSubEmulator
    from google.cloud import pubsub_v1
    with PubSubEmulator() as emu:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("PUBSUB_EMULATOR_HOST", emu.host)
            publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
            topic = publisher.topic_path("demo-project", "events")
            dead = publisher.topic_path("demo-project", "dead")
            subscription = subscriber.subscription_path("demo-project", "events")
            publisher.create_topic(name=topic)
            publisher.create_topic(name=dead)
            subscriber.create_subscription(name=subscription, topic=topic)
            publisher.publish(topic, record(0)).result(timeout=30)
        process = start_pipeline(tmp_path, slow_mailchimp, emu.host, subscription, dead)
        wait_for(lambda: processed(tmp_path / "out") == 1, 120, "the record")
    # The Pub/Sub emulator is gone: pulls fail; a stop still ends the job.
    output = stop(process)
    assert "records in             1" in output
