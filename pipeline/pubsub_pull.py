"""LeasedPull: messages pulled from a subscription and held, unacknowledged,
until their outcome is recorded.

Beam's local Pub/Sub read acknowledges each message as soon as it pulls it,
so whatever sits in a buffer at a stop or a crash is lost. Here a message is
acknowledged only when the caller says its outcome is recorded; until then
a background thread keeps extending its lease, so Pub/Sub does not hand it
to anyone else, and a process that dies leaves it to be redelivered.

Unary Pull, ModifyAckDeadline and Acknowledge rather than the client's
streaming pull: every call is the caller's to order (acknowledge, then
stop), which the streaming pull's own background lease manager and
dispatcher do not allow at shutdown. Works with Pub/Sub and its emulators
(`PUBSUB_EMULATOR_HOST`).
"""
from __future__ import annotations

import logging
import threading
from typing import Iterable

from apache_beam.io.gcp.pubsub import PubsubMessage
from google.api_core import exceptions as api_exceptions

_LOGGER = logging.getLogger(__name__)
LEASE_S = 20  # each extension; renewed every LEASE_S / 3
_RETRY_WAIT_S = 1.0  # after a failed pull
_MAX_IDS_PER_CALL = 1000  # Acknowledge/ModifyAckDeadline request size
_RETRYABLE = (api_exceptions.ServiceUnavailable,
              api_exceptions.InternalServerError, api_exceptions.Aborted,
              api_exceptions.Unknown)


class LeasedPull:
    """Pulls from `subscription`; holds what it pulled until `ack`."""

    def __init__(self, subscription: str, lease_s: int = LEASE_S):
        from google.cloud import pubsub_v1  # reads PUBSUB_EMULATOR_HOST
        self._client = pubsub_v1.SubscriberClient()
        self._subscription, self._lease_s = subscription, lease_s
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._renewer = threading.Thread(target=self._renew, daemon=True,
                                         name="pubsub-lease")
        self._renewer.start()

    def pull(self, max_messages: int, timeout_s: float = 5.0
             ) -> list[tuple[str, PubsubMessage]]:
        """Up to `max_messages` (ack id, message) pairs; [] when none came
        within `timeout_s`, or (after a pause) when Pub/Sub answered with a
        transient error or could not be reached."""
        try:
            response = self._client.pull(
                request={"subscription": self._subscription,
                         "max_messages": max_messages},
                timeout=timeout_s, retry=None)
        except api_exceptions.DeadlineExceeded:
            return []  # nothing came within timeout_s
        except _RETRYABLE as e:
            # Pub/Sub is away (or busy): not an error of the job's, but no
            # reason to ask again at once either.
            _LOGGER.warning("Pub/Sub pull failed (%s); trying again", type(e).__name__)
            self._closed.wait(_RETRY_WAIT_S)
            return []
        pulled = [(received.ack_id, _message(received.message))
                  for received in response.received_messages]
        with self._lock:
            self._held.update(ack_id for ack_id, _ in pulled)
        if pulled:  # a full lease from now, not from the subscription's default
            self._modify([ack_id for ack_id, _ in pulled], self._lease_s)
        return pulled

    def ack(self, ack_ids: Iterable[str]) -> None:
        """Their outcomes are recorded: Pub/Sub may forget them."""
        ids = list(ack_ids)
        for chunk in _chunks(ids):
            self._client.acknowledge(
                request={"subscription": self._subscription, "ack_ids": chunk})
        with self._lock:
            self._held.difference_update(ids)

    def nack(self, ack_ids: Iterable[str]) -> None:
        """Not processed: redeliver them now rather than after the lease."""
        ids = list(ack_ids)
        self._modify(ids, 0)
        with self._lock:
            self._held.difference_update(ids)

    def close(self) -> None:
        """Stops extending leases: what is still held is redelivered later."""
        self._closed.set()
        self._renewer.join()
        self._client.close()

    def _renew(self) -> None:
        while not self._closed.wait(self._lease_s / 3):
            with self._lock:
                held = list(self._held)
            self._modify(held, self._lease_s)

    def _modify(self, ack_ids: list[str], seconds: int) -> None:
        for chunk in _chunks(ack_ids):
            try:
                self._client.modify_ack_deadline(request={
                    "subscription": self._subscription, "ack_ids": chunk,
                    "ack_deadline_seconds": seconds})
            except api_exceptions.GoogleAPICallError as e:
                # A lease that lapses only means a redelivery, never a loss.
                _LOGGER.warning("could not extend %d Pub/Sub leases: %s",
                                len(chunk), e)


def _message(proto) -> PubsubMessage:
    return PubsubMessage(proto.data, dict(proto.attributes),
                         message_id=proto.message_id or None,
                         publish_time=proto.publish_time or None)


def _chunks(ids: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(ids), _MAX_IDS_PER_CALL):
        yield ids[start:start + _MAX_IDS_PER_CALL]
