"""One StreamingPull RPC, the call behind the client's ``subscriber.subscribe``.

The client sends an initial request naming the subscription and the stream's
ack deadline, then acks, deadline changes and heartbeats on the same stream,
while the server pushes messages as they arrive. Both directions run at once,
so requests are consumed on a thread of their own.
"""
import logging
import threading
from collections.abc import Iterator

import grpc

from pipeline.local.pubsub import protos
from pipeline.local.pubsub.broker import MAX_ACK_DEADLINE_S
from pipeline.local.pubsub.subscription_queue import SubscriptionQueue

_LOGGER = logging.getLogger(__name__)
# Messages per StreamingPullResponse; the real service also batches.
MAX_MESSAGES_PER_RESPONSE = 100


class StreamingPullSession:
    """Pushes leased messages to one stream and applies what the client sends.

    Server-side flow control (``max_outstanding_*``) is not enforced: the
    client library holds back excess messages itself and keeps them leased.
    """

    def __init__(self, queue: SubscriptionQueue, ack_deadline_s: int) -> None:
        self._queue = queue
        self._ack_deadline_s = ack_deadline_s
        self._closed = threading.Event()

    def close(self) -> None:
        """End the session; safe to call repeatedly and from any thread."""
        self._closed.set()
        self._queue.wake()

    def apply(self, request: protos.StreamingPullRequest) -> None:
        """Apply the acks, deadline changes and new stream deadline of ``request``."""
        if request.ack_ids:
            self._queue.acknowledge(request.ack_ids)
        # A stream cannot reject one request without failing as a whole, so
        # out-of-range deadlines are clamped instead of refused.
        changes = zip(request.modify_deadline_ack_ids, request.modify_deadline_seconds)
        for ack_id, seconds in changes:
            self._queue.modify_deadline([ack_id], max(0, min(seconds, MAX_ACK_DEADLINE_S)))
        if request.stream_ack_deadline_seconds:
            self._ack_deadline_s = min(request.stream_ack_deadline_seconds, MAX_ACK_DEADLINE_S)

    def consume(self, requests: Iterator[protos.StreamingPullRequest]) -> None:
        """Apply client requests until the client half-closes or cancels."""
        try:
            for request in requests:
                self.apply(request)
        except grpc.RpcError:
            _LOGGER.debug("StreamingPull cancelled by the client")
        finally:
            self.close()

    def responses(self) -> Iterator[protos.StreamingPullResponse]:
        """Responses carrying messages as they become ready, until the session
        is closed or the subscription deleted."""
        while not self._closed.is_set() and not self._queue.closed:
            received = self._queue.lease(
                MAX_MESSAGES_PER_RESPONSE, self._ack_deadline_s, None, self._closed.is_set
            )
            if received:
                yield protos.StreamingPullResponse(received_messages=received)
