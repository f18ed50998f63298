"""Tests of the local Pub/Sub emulator through the unmodified client libraries.

Everything goes over real gRPC on loopback: google-cloud-pubsub finds the
emulator through PUBSUB_EMULATOR_HOST, and two tests run Apache Beam streaming
pipelines on the BundleBasedDirectRunner against it.
"""
import gc
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from google.api_core import exceptions
from google.cloud import pubsub_v1

from pipeline.local.pubsub_emulator import PubSubEmulator

# Beam validates project ids like GCP does, so a name like "p" is rejected.
PROJECT = "test-project"
REPO_ROOT = Path(__file__).resolve().parents[2]
BEAM_ARGS = ["--runner=BundleBasedDirectRunner", "--streaming", f"--project={PROJECT}"]


@pytest.fixture
def pubsub(monkeypatch: pytest.MonkeyPatch) -> Iterator[PubSubEmulator]:
    with PubSubEmulator(port=0, empty_pull_wait_s=1.0) as emu:
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emu.host)
        yield emu


@pytest.fixture
def publisher(pubsub: PubSubEmulator) -> Iterator[pubsub_v1.PublisherClient]:
    client = pubsub_v1.PublisherClient()
    yield client
    client.stop()
    client.transport.close()


@pytest.fixture
def subscriber(pubsub: PubSubEmulator) -> Iterator[pubsub_v1.SubscriberClient]:
    with pubsub_v1.SubscriberClient() as client:
        yield client


@pytest.fixture
def topic(publisher: pubsub_v1.PublisherClient) -> str:
    return publisher.create_topic(name=publisher.topic_path(PROJECT, "events")).name


@pytest.fixture
def subscription(subscriber: pubsub_v1.SubscriberClient, topic: str) -> str:
    name = subscriber.subscription_path(PROJECT, "events-sub")
    return subscriber.create_subscription(name=name, topic=topic).name


def wait_until(condition: Callable[[], object], timeout_s: float) -> bool:
    """Poll ``condition`` until truthy or ``timeout_s`` passes (test helper)."""
    give_up_at = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > give_up_at:
            return False
        time.sleep(0.02)
    return True


def pull_one(subscriber: pubsub_v1.SubscriberClient, subscription: str, timeout_s: float = 5.0):
    """The first message that (waiting) pulls return within ``timeout_s``."""
    give_up_at = time.monotonic() + timeout_s
    while time.monotonic() < give_up_at:
        response = subscriber.pull(subscription=subscription, max_messages=1, timeout=10)
        if response.received_messages:
            return response.received_messages[0]
    raise AssertionError(f"no message on {subscription} within {timeout_s} s")


def stream_threads() -> int:
    """How many StreamingPull sessions the emulator is serving."""
    return sum(t.name == "pubsub-streaming-pull" for t in threading.enumerate())


def test_publish_pull_and_ack(pubsub, publisher, subscriber, topic, subscription):
    message_id = publisher.publish(topic, b"hello", event="signup").result()

    received = pull_one(subscriber, subscription)
    assert received.message.data == b"hello"
    assert dict(received.message.attributes) == {"event": "signup"}
    assert received.message.message_id == message_id
    assert received.message.publish_time.year >= 2024

    subscriber.acknowledge(subscription=subscription, ack_ids=[received.ack_id])
    again = subscriber.pull(subscription=subscription, max_messages=10, timeout=10)
    assert list(again.received_messages) == []
    assert pubsub.stats == {"published": 1, "delivered": 1, "acked": 1, "redelivered": 0}


def test_publish_fans_out_and_carries_ordering_key(subscriber, topic, subscription):
    other = subscriber.create_subscription(
        name=subscriber.subscription_path(PROJECT, "other-sub"), topic=topic
    ).name
    ordered = pubsub_v1.PublisherClient(
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
    )
    try:
        ordered.publish(topic, b"x", ordering_key="user-1").result()
    finally:
        ordered.transport.close()

    for name in (subscription, other):
        received = pull_one(subscriber, name)
        assert (received.message.data, received.message.ordering_key) == (b"x", "user-1")


def test_nack_redelivers_at_once(pubsub, publisher, subscriber, topic, subscription):
    publisher.publish(topic, b"retry me").result()
    first = pull_one(subscriber, subscription)

    subscriber.modify_ack_deadline(
        subscription=subscription, ack_ids=[first.ack_id], ack_deadline_seconds=0
    )

    second = pull_one(subscriber, subscription)
    assert second.message.message_id == first.message.message_id
    assert second.ack_id != first.ack_id
    assert second.delivery_attempt == 2
    assert pubsub.stats["redelivered"] == 1


def test_expired_ack_deadline_redelivers(publisher, subscriber, topic, subscription):
    publisher.publish(topic, b"slow consumer").result()
    first = pull_one(subscriber, subscription)
    # ModifyAckDeadline accepts any 0..600 s, so a short lease needs no override.
    subscriber.modify_ack_deadline(
        subscription=subscription, ack_ids=[first.ack_id], ack_deadline_seconds=1
    )

    second = pull_one(subscriber, subscription)
    assert second.message.message_id == first.message.message_id


def test_short_subscription_ack_deadline_with_override(monkeypatch):
    with PubSubEmulator(min_ack_deadline_s=1) as emu:
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emu.host)
        publisher = pubsub_v1.PublisherClient()
        with pubsub_v1.SubscriberClient() as subscriber:
            topic = publisher.create_topic(name=publisher.topic_path(PROJECT, "t")).name
            sub = subscriber.create_subscription(
                name=subscriber.subscription_path(PROJECT, "s"),
                topic=topic,
                ack_deadline_seconds=1,
            ).name
            publisher.publish(topic, b"m").result()
            first = pull_one(subscriber, sub)
            second = pull_one(subscriber, sub)  # never acked: back after ~1 s
        publisher.transport.close()
        assert second.message.message_id == first.message.message_id
        assert emu.stats["redelivered"] == 1


def test_ack_deadline_follows_real_service_bounds(subscriber, topic):
    default = subscriber.create_subscription(
        name=subscriber.subscription_path(PROJECT, "default"), topic=topic
    )
    assert default.ack_deadline_seconds == 10
    for seconds in (5, 601):
        with pytest.raises(exceptions.InvalidArgument):
            subscriber.create_subscription(
                name=subscriber.subscription_path(PROJECT, f"bad-{seconds}"),
                topic=topic,
                ack_deadline_seconds=seconds,
            )


def test_empty_pull_waits_for_a_message(subscriber, publisher, topic, subscription):
    started = time.monotonic()
    response = subscriber.pull(subscription=subscription, max_messages=1, timeout=10)
    assert list(response.received_messages) == []
    assert time.monotonic() - started >= 0.2  # it waited rather than returned at once

    started = time.monotonic()
    response = subscriber.pull(
        subscription=subscription, max_messages=1, return_immediately=True, timeout=10
    )
    assert list(response.received_messages) == []
    assert time.monotonic() - started < 0.9  # did not sit out the 1 s wait

    # A message published during the wait is returned by that same pull.
    pulled: queue.Queue = queue.Queue()
    waiting_pull = threading.Thread(
        target=lambda: pulled.put(
            subscriber.pull(subscription=subscription, max_messages=1, timeout=10)
        )
    )
    waiting_pull.start()
    time.sleep(0.2)
    publisher.publish(topic, b"late").result()
    waiting_pull.join(timeout=10)
    assert [m.message.data for m in pulled.get(timeout=1).received_messages] == [b"late"]


def test_streaming_pull_delivers_and_acks(pubsub, publisher, subscriber, topic, subscription):
    received: queue.Queue = queue.Queue()
    seen_ids: set[str] = set()

    def callback(message) -> None:
        # Nack each first delivery, to exercise redelivery to the stream too.
        if message.message_id in seen_ids:
            received.put(message.data)
            message.ack()
        else:
            seen_ids.add(message.message_id)
            message.nack()

    future = subscriber.subscribe(subscription, callback)
    try:
        for i in range(5):
            publisher.publish(topic, b"m%d" % i, index=str(i)).result()
        assert sorted(received.get(timeout=5) for _ in range(5)) == [b"m%d" % i for i in range(5)]
        # The client sends acks asynchronously, in batches.
        assert wait_until(lambda: pubsub.stats["acked"] == 5, timeout_s=5)
    finally:
        future.cancel()
        future.result(timeout=10)
    assert pubsub.stats["redelivered"] == 5


def test_streaming_pull_fails_with_not_found_when_subscription_deleted(subscriber, subscription):
    future = subscriber.subscribe(subscription, lambda message: message.ack())
    assert wait_until(lambda: stream_threads() == 1, timeout_s=5)
    subscriber.delete_subscription(subscription=subscription)
    with pytest.raises(exceptions.NotFound):
        future.result(timeout=10)


def test_stop_ends_open_streams(monkeypatch):
    emu = PubSubEmulator().start()
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emu.host)
    release_requests = threading.Event()
    with pubsub_v1.SubscriberClient() as subscriber:
        publisher = pubsub_v1.PublisherClient()
        topic = publisher.create_topic(name=publisher.topic_path(PROJECT, "t")).name
        publisher.transport.close()
        sub = subscriber.create_subscription(
            name=subscriber.subscription_path(PROJECT, "s"), topic=topic
        ).name

        def requests() -> Iterator[pubsub_v1.types.StreamingPullRequest]:
            yield pubsub_v1.types.StreamingPullRequest(
                subscription=sub, stream_ack_deadline_seconds=10
            )
            release_requests.wait()

        # The raw gapic stream: subscribe() would keep reconnecting to the
        # stopped server, which is the client's business, not the emulator's.
        responses = subscriber.api.streaming_pull(requests=requests())
        try:
            assert wait_until(lambda: stream_threads() == 1, timeout_s=5)
            emu.stop()
            with pytest.raises(exceptions.ServiceUnavailable):
                next(responses)
        finally:
            release_requests.set()
    assert wait_until(lambda: stream_threads() == 0, timeout_s=5)


def test_errors_map_to_client_exceptions(publisher, subscriber, topic, subscription):
    missing_topic = publisher.topic_path(PROJECT, "missing")
    missing_sub = subscriber.subscription_path(PROJECT, "missing")
    with pytest.raises(exceptions.AlreadyExists):
        publisher.create_topic(name=topic)
    with pytest.raises(exceptions.AlreadyExists):
        subscriber.create_subscription(name=subscription, topic=topic)
    with pytest.raises(exceptions.NotFound):
        publisher.get_topic(topic=missing_topic)
    with pytest.raises(exceptions.NotFound):
        publisher.publish(missing_topic, b"x").result(timeout=10)
    with pytest.raises(exceptions.NotFound):
        subscriber.create_subscription(name=missing_sub, topic=missing_topic)
    with pytest.raises(exceptions.NotFound):
        subscriber.pull(subscription=missing_sub, max_messages=1)
    with pytest.raises(exceptions.NotFound):
        subscriber.delete_subscription(subscription=missing_sub)
    with pytest.raises(exceptions.NotFound):
        subscriber.subscribe(missing_sub, lambda message: message.ack()).result(timeout=10)
    with pytest.raises(exceptions.InvalidArgument):
        publisher.create_topic(name="not-a-topic-path")


def test_list_and_delete(publisher, subscriber, topic, subscription):
    project = f"projects/{PROJECT}"
    assert [t.name for t in publisher.list_topics(project=project)] == [topic]
    assert [s.name for s in subscriber.list_subscriptions(project=project)] == [subscription]
    assert list(publisher.list_topic_subscriptions(topic=topic)) == [subscription]
    assert subscriber.get_subscription(subscription=subscription).topic == topic

    publisher.delete_topic(topic=topic)
    assert list(publisher.list_topics(project=project)) == []
    # As on the real service, the subscription outlives its topic, detached.
    assert subscriber.get_subscription(subscription=subscription).topic == "_deleted-topic_"

    subscriber.delete_subscription(subscription=subscription)
    with pytest.raises(exceptions.NotFound):
        subscriber.get_subscription(subscription=subscription)


def test_cli_prints_address_and_exits_cleanly_on_sigterm(monkeypatch):
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.local.pubsub_emulator", "--port", "0"],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        match = re.fullmatch(r"Pub/Sub emulator listening on (127\.0\.0\.1:(\d+))\n", line)
        assert match and int(match.group(2)) > 0, line

        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", match.group(1))
        publisher = pubsub_v1.PublisherClient()
        publisher.create_topic(name=publisher.topic_path(PROJECT, "t"))  # it serves
        publisher.transport.close()

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert process.stdout.read() == ""
    finally:
        process.kill()
        process.stdout.close()


def test_beam_direct_runner_reads_and_writes(pubsub, publisher, subscriber, topic, subscription):
    import apache_beam as beam
    from apache_beam.io.gcp.pubsub import PubsubMessage
    from apache_beam.options.pipeline_options import PipelineOptions

    out_topic = publisher.create_topic(name=publisher.topic_path(PROJECT, "out")).name
    out_sub = subscriber.create_subscription(
        name=subscriber.subscription_path(PROJECT, "out-sub"), topic=out_topic
    ).name
    # Plain DirectRunner would try to download Prism; the bundle-based runner
    # evaluates Pub/Sub reads natively, by repeated Pull + Acknowledge calls.
    pipeline = beam.Pipeline(options=PipelineOptions(BEAM_ARGS))
    (
        pipeline
        | beam.io.ReadFromPubSub(subscription=subscription, with_attributes=True)
        | beam.Map(lambda m: PubsubMessage(m.data.upper(), {**m.attributes, "via": "beam"}))
        | beam.io.WriteToPubSub(out_topic, with_attributes=True)
    )
    # A streaming pipeline never finishes: run() returns at once and cancel()
    # stops it. cancel() joins the runner's worker thread, so it lasts as long
    # as the Pull in flight (up to empty_pull_wait_s). Cancel before the
    # emulator stops, or that Pull retries against a dead server.
    result = pipeline.run()
    try:
        for i in range(3):
            publisher.publish(topic, b"event-%d" % i, n=str(i)).result()
        outputs = {}
        give_up_at = time.monotonic() + 15
        while len(outputs) < 3 and time.monotonic() < give_up_at:
            response = subscriber.pull(subscription=out_sub, max_messages=10, timeout=10)
            for received in response.received_messages:
                outputs[received.message.data] = dict(received.message.attributes)
            if response.received_messages:
                subscriber.acknowledge(
                    subscription=out_sub, ack_ids=[m.ack_id for m in response.received_messages]
                )
    finally:
        result.cancel()

    assert outputs == {b"EVENT-%d" % i: {"n": str(i), "via": "beam"} for i in range(3)}
    # The DirectRunner acks what it reads (3) and so did this test (3).
    assert wait_until(lambda: pubsub.stats["acked"] == 6, timeout_s=5)


def test_beam_reads_a_topic_through_a_temporary_subscription(publisher, subscriber, topic):
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    out_topic = publisher.create_topic(name=publisher.topic_path(PROJECT, "out")).name
    out_sub = subscriber.create_subscription(
        name=subscriber.subscription_path(PROJECT, "out-sub"), topic=out_topic
    ).name
    pipeline = beam.Pipeline(options=PipelineOptions(BEAM_ARGS))
    (
        pipeline
        | beam.io.ReadFromPubSub(topic=topic)
        | beam.Map(lambda data: data[::-1])
        | beam.io.WriteToPubSub(out_topic)
    )
    result = pipeline.run()
    try:
        # The runner creates its subscription (beam_<time>_<hex> in --project)
        # when it first evaluates the read; messages published earlier are
        # not delivered to it.
        assert wait_until(lambda: list(publisher.list_topic_subscriptions(topic=topic)), 10)
        publisher.publish(topic, b"abc").result()
        received = pull_one(subscriber, out_sub, timeout_s=15)
    finally:
        result.cancel()
    assert received.message.data == b"cba"

    # Beam deletes that subscription when the transform is garbage collected;
    # make that happen now, while the emulator still answers, rather than at
    # interpreter exit, where the delete would retry for a minute.
    del pipeline, result
    gc.collect()
    assert list(publisher.list_topic_subscriptions(topic=topic)) == []
