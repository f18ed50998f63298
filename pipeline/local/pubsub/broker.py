"""Topics, subscriptions and publish fan-out: the emulator's whole state.

The broker speaks protobuf messages but knows nothing of gRPC; it signals
rejected requests with :mod:`pipeline.local.pubsub.errors`.

Not emulated: push delivery, filters, ordered delivery (ordering keys are
carried but not enforced), dead-letter and retry policies, retention, seek.
"""
import itertools
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.message import Message

from pipeline.local.pubsub import protos
from pipeline.local.pubsub.errors import AlreadyExists, InvalidArgument, NotFound
from pipeline.local.pubsub.stats import Stats
from pipeline.local.pubsub.subscription_queue import SubscriptionQueue

DEFAULT_ACK_DEADLINE_S = 10
MAX_ACK_DEADLINE_S = 600
# What the real service shows as the topic of a subscription whose topic was deleted.
DELETED_TOPIC = "_deleted-topic_"

_TOPIC_NAME = re.compile(r"projects/[^/]+/topics/[^/]+")
_SUBSCRIPTION_NAME = re.compile(r"projects/[^/]+/subscriptions/[^/]+")
_M = TypeVar("_M", bound=Message)


def _copy(message: _M) -> _M:
    """A copy, so callers never hold (or mutate) the broker's own protos."""
    clone = type(message)()
    clone.CopyFrom(message)
    return clone


def _check_name(pattern: re.Pattern[str], name: str, kind: str) -> None:
    if not pattern.fullmatch(name):
        raise InvalidArgument(f"Invalid {kind} name: {name!r}")


@dataclass
class _SubscriptionState:
    config: protos.Subscription
    queue: SubscriptionQueue


class Broker:
    """Registry of topics and subscriptions that routes published messages."""

    def __init__(self, stats: Stats, min_ack_deadline_s: int = DEFAULT_ACK_DEADLINE_S) -> None:
        self._stats = stats
        self._min_ack_deadline_s = min_ack_deadline_s
        self._lock = threading.Lock()
        self._topics: dict[str, protos.Topic] = {}
        self._subscriptions: dict[str, _SubscriptionState] = {}
        self._message_ids = itertools.count(1)

    # Topics

    def create_topic(self, topic: protos.Topic) -> protos.Topic:
        """Register ``topic``; ALREADY_EXISTS if the name is taken."""
        _check_name(_TOPIC_NAME, topic.name, "topic")
        with self._lock:
            if topic.name in self._topics:
                raise AlreadyExists(f"Topic already exists: {topic.name}")
            self._topics[topic.name] = _copy(topic)
        return _copy(topic)

    def get_topic(self, name: str) -> protos.Topic:
        """The topic called ``name``; NOT_FOUND if there is none."""
        with self._lock:
            return _copy(self._topic(name))

    def list_topics(self, project: str) -> list[protos.Topic]:
        """Topics of ``project`` (``projects/{id}``), sorted by name."""
        prefix = f"{project}/topics/"
        with self._lock:
            return [_copy(t) for n, t in sorted(self._topics.items()) if n.startswith(prefix)]

    def list_topic_subscriptions(self, topic: str) -> list[str]:
        """Names of the subscriptions attached to ``topic``."""
        with self._lock:
            self._topic(topic)
            return sorted(n for n, s in self._subscriptions.items() if s.config.topic == topic)

    def delete_topic(self, name: str) -> None:
        """Delete a topic; like the real service, its subscriptions survive detached."""
        with self._lock:
            self._topic(name)
            del self._topics[name]
            for state in self._subscriptions.values():
                if state.config.topic == name:
                    state.config.topic = DELETED_TOPIC

    def publish(self, topic: str, messages: Iterable[protos.PubsubMessage]) -> list[str]:
        """Stamp ids and publish time on ``messages``, queue them on every
        subscription of ``topic`` and return the ids in order."""
        messages = list(messages)
        if not messages:
            raise InvalidArgument("Publish requires at least one message")
        if any(not m.data and not m.attributes for m in messages):
            raise InvalidArgument("A message needs non-empty data or at least one attribute")
        with self._lock:
            self._topic(topic)
            stamped = [self._stamp(m) for m in messages]
            queues = [s.queue for s in self._subscriptions.values() if s.config.topic == topic]
        for queue in queues:
            queue.enqueue(stamped)
        self._stats.add("published", len(stamped))
        return [m.message_id for m in stamped]

    # Subscriptions

    def create_subscription(self, subscription: protos.Subscription) -> protos.Subscription:
        """Attach a new subscription to an existing topic."""
        _check_name(_SUBSCRIPTION_NAME, subscription.name, "subscription")
        config = _copy(subscription)
        config.ack_deadline_seconds = config.ack_deadline_seconds or DEFAULT_ACK_DEADLINE_S
        self.check_ack_deadline(config.ack_deadline_seconds)
        with self._lock:
            if config.name in self._subscriptions:
                raise AlreadyExists(f"Subscription already exists: {config.name}")
            self._topic(config.topic)
            self._subscriptions[config.name] = _SubscriptionState(
                config, SubscriptionQueue(config.ack_deadline_seconds, self._stats)
            )
        return _copy(config)

    def get_subscription(self, name: str) -> protos.Subscription:
        """The configuration of subscription ``name``."""
        with self._lock:
            return _copy(self._subscription(name).config)

    def list_subscriptions(self, project: str) -> list[protos.Subscription]:
        """Subscriptions of ``project`` (``projects/{id}``), sorted by name."""
        prefix = f"{project}/subscriptions/"
        with self._lock:
            states = sorted(self._subscriptions.items())
            return [_copy(s.config) for n, s in states if n.startswith(prefix)]

    def delete_subscription(self, name: str) -> None:
        """Delete a subscription, dropping its backlog and ending its pulls."""
        with self._lock:
            state = self._subscription(name)
            del self._subscriptions[name]
        state.queue.close()

    def queue(self, subscription: str) -> SubscriptionQueue:
        """The message queue of ``subscription``, for pulling and acking."""
        with self._lock:
            return self._subscription(subscription).queue

    def check_ack_deadline(self, seconds: int) -> None:
        """INVALID_ARGUMENT unless ``seconds`` is a valid lease length."""
        if not self._min_ack_deadline_s <= seconds <= MAX_ACK_DEADLINE_S:
            raise InvalidArgument(
                f"Ack deadline must be between {self._min_ack_deadline_s} and "
                f"{MAX_ACK_DEADLINE_S} seconds, got {seconds}"
            )

    # Lookups; callers hold self._lock.

    def _topic(self, name: str) -> protos.Topic:
        _check_name(_TOPIC_NAME, name, "topic")
        try:
            return self._topics[name]
        except KeyError:
            raise NotFound(f"Topic not found: {name}") from None

    def _subscription(self, name: str) -> _SubscriptionState:
        _check_name(_SUBSCRIPTION_NAME, name, "subscription")
        try:
            return self._subscriptions[name]
        except KeyError:
            raise NotFound(f"Subscription not found: {name}") from None

    def _stamp(self, message: protos.PubsubMessage) -> protos.PubsubMessage:
        stamped = protos.PubsubMessage(
            data=message.data,
            attributes=message.attributes,
            ordering_key=message.ordering_key,
            message_id=str(next(self._message_ids)),
        )
        stamped.publish_time.GetCurrentTime()
        return stamped
