"""The message backlog of one subscription, with at-least-once leasing.

A message is either *ready* (waiting to be delivered) or *leased* to a
subscriber under an ack id until its ack deadline. Acknowledging drops it;
letting the deadline pass or setting it to 0 (a nack) makes it ready again, as
the real service does. Expired leases are collected lazily whenever the queue
is consulted, and waiters sleep on a condition variable no longer than the
next lease expiry, so no background thread or polling is needed.
"""
import heapq
import itertools
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pipeline.local.pubsub import protos
from pipeline.local.pubsub.stats import Stats


@dataclass
class _Delivery:
    """A message together with how often it has been handed out."""

    message: protos.PubsubMessage
    attempts: int = 0


@dataclass
class _Lease:
    """A delivered, not yet acknowledged message and when its lease ends."""

    delivery: _Delivery
    deadline: float


class SubscriptionQueue:
    """Ready and leased messages of one subscription; all methods thread-safe."""

    def __init__(self, ack_deadline_s: int, stats: Stats) -> None:
        self._ack_deadline_s = ack_deadline_s
        self._stats = stats
        self._cond = threading.Condition()
        self._ready: deque[_Delivery] = deque()
        self._leases: dict[str, _Lease] = {}
        # (deadline, ack_id) min-heap; entries go stale when a lease is acked or
        # extended, and are skipped when popped rather than searched for.
        self._expiries: list[tuple[float, str]] = []
        # Ack ids are opaque to clients; the prefix keeps them unique across
        # subscriptions so one subscription can never ack another's message.
        self._ack_prefix = uuid.uuid4().hex[:8]
        self._ack_counter = itertools.count(1)
        self._closed = False

    @property
    def ack_deadline_s(self) -> int:
        """The subscription's lease length for messages taken with Pull."""
        return self._ack_deadline_s

    @property
    def closed(self) -> bool:
        """True once the subscription has been deleted."""
        with self._cond:
            return self._closed

    def enqueue(self, messages: Iterable[protos.PubsubMessage]) -> None:
        """Make newly published messages ready for delivery."""
        with self._cond:
            if self._closed:
                return
            self._ready.extend(_Delivery(message) for message in messages)
            self._cond.notify_all()

    def lease(
        self,
        max_messages: int,
        ack_deadline_s: float,
        wait_s: float | None,
        stopped: Callable[[], bool] = lambda: False,
    ) -> list[protos.ReceivedMessage]:
        """Lease up to ``max_messages`` ready messages for ``ack_deadline_s``.

        When none is ready, waits up to ``wait_s`` seconds (forever if None)
        for one, returning early with nothing once the queue is closed or
        ``stopped()`` is true; whoever makes ``stopped()`` true must call
        :meth:`wake` so the wait notices.
        """
        give_up_at = None if wait_s is None else time.monotonic() + wait_s
        with self._cond:
            while True:
                now = time.monotonic()
                self._requeue_expired(now)
                if self._closed or stopped():
                    return []
                if self._ready:
                    return self._lease_ready(max_messages, ack_deadline_s, now)
                timeout = self._wait_timeout(now, give_up_at)
                if timeout is not None and timeout <= 0:
                    return []
                self._cond.wait(timeout)

    def acknowledge(self, ack_ids: Iterable[str]) -> None:
        """Drop the leased messages; unknown or expired ack ids are ignored."""
        with self._cond:
            acked = sum(self._leases.pop(ack_id, None) is not None for ack_id in ack_ids)
        self._stats.add("acked", acked)

    def modify_deadline(self, ack_ids: Iterable[str], seconds: int) -> None:
        """Extend leases to ``seconds`` from now; 0 releases them (a nack)."""
        with self._cond:
            now = time.monotonic()
            for ack_id in ack_ids:
                lease = self._leases.get(ack_id)
                if lease is None:
                    continue
                if seconds == 0:
                    del self._leases[ack_id]
                    self._ready.append(lease.delivery)
                else:
                    lease.deadline = now + seconds
                    heapq.heappush(self._expiries, (lease.deadline, ack_id))
            # Released messages are deliverable and changed deadlines change
            # how long waiters may sleep, so both must wake them.
            self._cond.notify_all()

    def wake(self) -> None:
        """Wake every waiter so it re-checks its ``stopped`` condition."""
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        """Discard all messages and end every wait (subscription deleted)."""
        with self._cond:
            self._closed = True
            self._ready.clear()
            self._leases.clear()
            self._expiries.clear()
            self._cond.notify_all()

    def _lease_ready(
        self, max_messages: int, ack_deadline_s: float, now: float
    ) -> list[protos.ReceivedMessage]:
        received = []
        redelivered = 0
        while self._ready and len(received) < max_messages:
            delivery = self._ready.popleft()
            redelivered += delivery.attempts > 0
            delivery.attempts += 1
            ack_id = f"{self._ack_prefix}-{next(self._ack_counter)}"
            lease = _Lease(delivery, now + ack_deadline_s)
            self._leases[ack_id] = lease
            heapq.heappush(self._expiries, (lease.deadline, ack_id))
            received.append(
                protos.ReceivedMessage(
                    ack_id=ack_id,
                    message=delivery.message,
                    delivery_attempt=delivery.attempts,
                )
            )
        self._stats.add("delivered", len(received))
        self._stats.add("redelivered", redelivered)
        return received

    def _requeue_expired(self, now: float) -> None:
        while self._expiries and self._expiries[0][0] <= now:
            deadline, ack_id = heapq.heappop(self._expiries)
            lease = self._leases.get(ack_id)
            if lease is not None and lease.deadline == deadline:
                del self._leases[ack_id]
                self._ready.append(lease.delivery)

    def _wait_timeout(self, now: float, give_up_at: float | None) -> float | None:
        """Seconds to sleep: until giving up or the next lease may expire."""
        candidates = []
        if give_up_at is not None:
            candidates.append(give_up_at - now)
        if self._expiries:
            candidates.append(self._expiries[0][0] - now)
        return min(candidates, default=None)
