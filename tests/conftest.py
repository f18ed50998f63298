"""Fixtures: the local Mailchimp and Pub/Sub emulators and ../shared's
reference data."""
from __future__ import annotations

import json
import pytest
from google.cloud import pubsub_v1

from pipeline.local.mailchimp_emulator import MailchimpEmulator
from pipeline.local.pubsub_emulator import PubSubEmulator
from tests.helpers import API_KEY, OPENAPI, PUBSUB_PROJECT, SEED, gdpr_seed


@pytest.fixture
def emulator():
    with MailchimpEmulator(seed=json.loads(json.dumps(SEED)), api_key=API_KEY,
                           record_requests=True) as emu:
        yield emu


@pytest.fixture
def gdpr_emulator():
    """The emulator with an audience that has marketing permissions."""
    with MailchimpEmulator(seed=gdpr_seed(), api_key=API_KEY,
                           record_requests=True) as emu:
        yield emu


@pytest.fixture
def openapi() -> dict:
    if not OPENAPI.is_file():
        pytest.skip(f"{OPENAPI} is not here: this checkout has no ../shared "
                    f"beside the project root")
    return json.loads(OPENAPI.read_text())


@pytest.fixture
def pubsub(monkeypatch):
    """The Pub/Sub emulator with an events topic and the pipeline's
    subscription, a dead-letter topic and a subscription to check it:
    (emulator, publisher, subscriber, topics, subscriptions)."""
    with PubSubEmulator() as emu:
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emu.host)
        publisher = pubsub_v1.PublisherClient()
        subscriber = pubsub_v1.SubscriberClient()
        topics = {name: publisher.topic_path(PUBSUB_PROJECT, name)
                  for name in ("events", "dead-letters")}
        for topic in topics.values():
            publisher.create_topic(name=topic)
        subscriptions = {
            name: subscriber.subscription_path(PUBSUB_PROJECT, name)
            for name in ("events-pipeline", "dead-letters-check")}
        subscriber.create_subscription(name=subscriptions["events-pipeline"],
                                       topic=topics["events"])
        subscriber.create_subscription(name=subscriptions["dead-letters-check"],
                                       topic=topics["dead-letters"])
        yield emu, publisher, subscriber, topics, subscriptions
        subscriber.close()
