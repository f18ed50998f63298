"""The streaming job end to end: `python -m pipeline` reading the local
Pub/Sub emulator through the unmodified google-cloud-pubsub client and
Beam's ReadFromPubSub, writing to the local Mailchimp emulator."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time


from pipeline.local.mailchimp_emulator import MailchimpEmulator
from pipeline.summary import read_summary
from tests.helpers import API_KEY, AUDIENCE, SEED, read_outputs

SYNC = {"syncs": [{
    "name": "live", "audience_id": AUDIENCE, "email_property": "email",
    "send_events": {"enabled": True, "event_types": ["purchase"],
                    "properties": ["attributes.source"]},
    "send_users": {"enabled": True, "properties": ["FNAME"]}}]}


def wait_for(condition, timeout_s: float, what: str):
    """Poll with a generous bound: these are behaviour checks, not timing."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def start_pipeline(tmp_path, emulator, pubsub_host, subscription, dead_topic, *extra):
    (tmp_path / "sync.json").write_text(json.dumps(SYNC))
    env = {**os.environ, "MAILCHIMP_API_KEY": API_KEY,
           "PUBSUB_EMULATOR_HOST": pubsub_host}
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--sync_config", str(tmp_path / "sync.json"),
         "--input_subscription", subscription, "--dead_letter_topic", dead_topic,
         "--output_dir", str(tmp_path / "out"), "--output_window_secs", "2",
         "--summary_refresh_secs", "1",
         "--mailchimp_base_url", emulator.base_url, *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(process) -> str:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    return output


def test_streaming_delivers_everything_and_stops_cleanly(tmp_path, emulator, pubsub):
    emu, publisher, subscriber, topics, subscriptions = pubsub
    users = 60
    process = start_pipeline(tmp_path, emulator, emu.host,
                             subscriptions["events-pipeline"], topics["dead-letters"])
    try:
        futures = []
        for n in range(300):
            user = n % users
            record = {"user_id": f"u{user}", "event_type": "purchase" if n % 2 else "viewed",
                      "insert_id": f"i{n}",
                      "user_properties": {"email": f"s{user}@example.com", "FNAME": f"S{user}"}}
            futures.append(publisher.publish(topics["events"], json.dumps(record).encode(),
                                             source="app"))
        futures.append(publisher.publish(topics["events"], b"{not json", source="app"))
        futures.append(publisher.publish(topics["events"], json.dumps(
            {"device_id": "d", "event_type": "purchase"}).encode()))
        for future in futures:
            future.result(timeout=30)
        wait_for(lambda: sum(len(emulator.events(AUDIENCE, f"s{u}@example.com"))
                             for u in range(users)) >= 150, 120, "150 events")
        dead = wait_for(lambda: subscriber.pull(
            subscription=subscriptions["dead-letters-check"], max_messages=10,
            timeout=5).received_messages, 60, "the dead letter message")
        wait_for(lambda: (read_summary(str(tmp_path / "out")) or {}).get(
            "records_in") == 302, 60, "running totals of all 302 records")
    finally:
        output = stop(process)
    assert [m.message.data for m in dead] == [b"{not json"]
    assert dict(dead[0].message.attributes) == {
        "stage": "parse", "reason": "malformed_json",
        "error": dead[0].message.attributes["error"]}
    for u in range(users):
        assert emulator.member(AUDIENCE, f"s{u}@example.com")["merge_fields"]["FNAME"] == f"S{u}"
        events = emulator.events(AUDIENCE, f"s{u}@example.com")
        assert len(events) == sum(1 for n in range(1, 300, 2) if n % users == u)
        assert all(e["properties"] == {"source": "app"} for e in events)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["records_in"] == 302 and summary["dead_letter"] == 1
    assert summary["events"]["delivered"] == 150
    assert summary["members"]["upserted"] == 300
    assert summary["members"]["skipped"] == {"anonymous": 1}
    assert "records in" in output
    # Windowed files: the malformed message reached the dead-letter files too.
    assert wait_for(lambda: read_outputs(tmp_path / "out", "dead_letter"), 1, "files")


def test_a_quiet_stream_delivers_within_the_buffering_time(tmp_path, emulator, pubsub):
    emu, publisher, _, topics, subscriptions = pubsub
    process = start_pipeline(tmp_path, emulator, emu.host,
                             subscriptions["events-pipeline"], topics["dead-letters"],
                             "--max_buffering_secs", "2", "--batch_size", "5000")
    try:
        # Warm up: the first record also pays for the pipeline's start.
        publisher.publish(topics["events"], json.dumps({
            "user_id": "u0", "event_type": "purchase",
            "user_properties": {"email": "warm@example.com"}}).encode()).result(30)
        wait_for(lambda: emulator.events(AUDIENCE, "warm@example.com"), 120, "warm-up")
        started = time.monotonic()
        publisher.publish(topics["events"], json.dumps({
            "user_id": "u1", "event_type": "purchase",
            "user_properties": {"email": "quiet@example.com"}}).encode()).result(30)
        wait_for(lambda: emulator.events(AUDIENCE, "quiet@example.com"), 60, "one record")
        waited = time.monotonic() - started
    finally:
        stop(process)
    # One record never fills a batch of 5000: only the buffering time flushes
    # it. Generous margin: this checks the flush happens, not how fast.
    assert waited < 2 + 15


def test_two_streaming_jobs_on_one_account_hold_at_most_ten_requests(tmp_path, pubsub):
    """Two pipelines reading one subscription (two workers of a job) share
    the account's ten connections: the emulator refuses an 11th with 429."""
    emu, publisher, _, topics, subscriptions = pubsub
    users = 200
    with MailchimpEmulator(seed=json.loads(json.dumps(SEED)), api_key=API_KEY,
                           latency_ms=30) as mailchimp:
        processes = []
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            processes.append(start_pipeline(
                tmp_path / name, mailchimp, emu.host, subscriptions["events-pipeline"],
                topics["dead-letters"], "--max_buffering_secs", "2"))
        try:
            futures = [publisher.publish(topics["events"], json.dumps({
                "user_id": f"u{u}", "event_type": "purchase", "insert_id": f"i{u}",
                "user_properties": {"email": f"many{u}@example.com"}}).encode())
                for u in range(users)]
            for future in futures:
                future.result(timeout=30)
            wait_for(lambda: sum(len(mailchimp.events(AUDIENCE, f"many{u}@example.com"))
                                 for u in range(users)) >= users, 180, "every event")
        finally:
            for process in processes:
                stop(process)
        stats = mailchimp.stats
    assert stats["rejected_429_limit"] == 0
    assert stats["max_in_flight"] <= 10
    assert all(len(mailchimp.events(AUDIENCE, f"many{u}@example.com")) == 1
               for u in range(users))
