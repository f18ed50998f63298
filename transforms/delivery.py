"""BatchDelivery: one batch of requests -> one outcome per request
(Delivered, Skipped, DeadLetter; and UnknownMergeFields reports), per
audience members before events, each member's events in order.

No Beam here: the sink DoFn drives it and routes what it returns. Nothing
raises out of it: whatever goes wrong with a call (an answer we did not
expect, a bug of ours) becomes the outcome of that call's requests, since
by then the call may have reached Mailchimp and a failed bundle would be
sent again whole.
"""
from __future__ import annotations

import threading
from typing import Callable, Iterable, Iterator, TypeVar, Union

from transforms.mailchimp.client import MailchimpClient
from transforms.mailchimp.errors import DeliveryFailed, MailchimpError, skip_reason
from transforms.mailchimp.merge_fields import MergeFieldCatalog, prepare
from transforms.records import (DeadLetter, Delivered, MemberEvent,
                                MemberUpsert, Request, Skipped,
                                UnknownMergeFields)

BATCH_SUBSCRIBE_LIMIT = 500  # members per POST /lists/{id}, Mailchimp's cap
Outcome = Union[Delivered, Skipped, DeadLetter, UnknownMergeFields]
_Member = tuple[list[MemberUpsert], dict]  # the requests one body serves
_T = TypeVar("_T")
# How one step's calls run: a thread pool's `map` (in parallel), or the
# builtin `map` (one request at a time).
Mapper = Callable[..., Iterable[list[Outcome]]]


def _failed(requests: Iterable[Request], error: Exception) -> Iterator[Outcome]:
    """A skip with the error's reason and what Mailchimp said, or a dead
    letter with the payload."""
    refusal = error if isinstance(error, MailchimpError) else None
    if refusal is None and not isinstance(error, DeliveryFailed):
        # Not an answer we know: it may have come after Mailchimp acted.
        error = DeliveryFailed(f"unexpected {type(error).__name__}: {error}; "
                               f"not retried")
    for request in requests:
        kind = request.kind
        reason = skip_reason(refusal, kind) if refusal is not None else None
        if refusal is not None and reason:
            yield Skipped.of(request, reason, refusal.explanation)
        else:
            dead = "mailchimp_rejected" if refusal is not None else "retries_exhausted"
            yield DeadLetter(f"{kind}s", dead, str(error), request.payload,
                             request.sync)


def _delivered(requests: Iterable[Request]) -> Iterator[Outcome]:
    for request in requests:
        yield Delivered(request.sync, request.kind, request.insert_id)


def _by(requests: Iterable[_T], key: Callable[[_T], str]) -> dict[str, list[_T]]:
    groups: dict[str, list[_T]] = {}
    for request in requests:  # in order of arrival
        groups.setdefault(key(request), []).append(request)
    return groups


def _taken(answer: dict) -> set[str]:
    """The lower-cased emails batch subscribe says it created or updated.
    Keys may be missing or malformed (the client guarantees an object, no
    more): a member not named here is sent again alone, so that an odd
    answer costs requests, never members."""
    taken = set()
    for key in ("new_members", "updated_members"):
        members = answer.get(key)
        for member in members if isinstance(members, list) else ():
            email = member.get("email_address") if isinstance(member, dict) else None
            if isinstance(email, str):
                taken.add(email.lower())
    return taken


class BatchDelivery:
    """Sends batches through `client`, each step's calls through `mapper`."""

    def __init__(self, client: MailchimpClient, catalog: MergeFieldCatalog,
                 mapper: Mapper = map):
        self._client, self._catalog, self._map = client, catalog, mapper
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        """No request not yet sent is sent: its bundle failed, the runner
        drops what it produced and sends the bundle again."""
        self._cancelled.set()

    def deliver(self, requests: Iterable[Request]) -> list[Outcome]:
        requests = list(requests)
        try:
            outcomes: list[Outcome] = []
            for list_id, group in _by(requests, lambda r: r.audience_id).items():
                outcomes += self._audience(list_id, group)
            return outcomes
        except Exception as e:  # a bug of ours: still one outcome each
            return list(_failed(requests, e))

    def _audience(self, list_id: str, requests: list[Request]) -> list[Outcome]:
        upserts = [r for r in requests if r.kind == "member"]
        events = [r for r in requests if r.kind == "event"]
        # Members first and to completion: a new member's events need it.
        outcomes = list(self._members(list_id, upserts)) if upserts else []
        # Members in parallel, each member's events in their order.
        for result in self._map(
                lambda member: [o for e in member for o in self._event(list_id, e)],
                _by(events, lambda e: e.subscriber_hash).values()):
            outcomes += result
        return outcomes

    def _members(self, list_id: str, upserts: list[MemberUpsert]) -> Iterator[Outcome]:
        try:
            members, reports = self._bodies(list_id, upserts)
        except Exception as e:
            yield from _failed(upserts, e)
            return
        yield from reports
        chunks = [members[i:i + BATCH_SUBSCRIBE_LIMIT]
                  for i in range(0, len(members), BATCH_SUBSCRIBE_LIMIT)]
        for result in self._map(
                lambda chunk: list(self._subscribe(list_id, chunk)), chunks):
            yield from result

    def _bodies(self, list_id: str, upserts: list[MemberUpsert]
                ) -> tuple[list[_Member], list[UnknownMergeFields]]:
        """One body per member (later values win), and the merge fields
        that could not be sent."""
        catalog = self._catalog.fields(list_id)
        members: list[_Member] = []
        reports: list[UnknownMergeFields] = []
        for group in _by(upserts, lambda u: u.subscriber_hash).values():
            sendable: dict = {}
            for upsert in group:
                # Reported per upsert, so the reports do not depend on how
                # records fall into batches (and so on the worker count).
                values, unknown, invalid = prepare(upsert.merge_fields, catalog)
                if unknown or invalid:
                    reports.append(UnknownMergeFields(
                        upsert.sync, list_id, upsert.email, tuple(unknown), invalid))
                sendable.update(values)
            first = group[0]
            body = {"email_address": first.email,
                    "status_if_new": first.status_if_new}
            if sendable:
                body["merge_fields"] = sendable
            members.append((group, body))
        return members, reports

    def _subscribe(self, list_id: str, chunk: list[_Member]) -> Iterator[Outcome]:
        """Batch subscribe; a member the batch refused is sent again alone
        with PUT, whose problem+json tells precisely why (or succeeds, for a
        transient refusal)."""
        if self._cancelled.is_set():
            return
        try:
            answer = self._client.batch_subscribe(list_id, [b for _, b in chunk])
            done = _taken(answer)
        except Exception as e:
            yield from _failed([r for group, _ in chunk for r in group], e)
            return
        for group, body in chunk:
            if body["email_address"].lower() in done:
                yield from _delivered(group)
            else:
                yield from self._put(list_id, group, body)

    def _put(self, list_id: str, group: list[MemberUpsert], body: dict) -> Iterator[Outcome]:
        if self._cancelled.is_set():
            return
        try:
            self._client.upsert_member(list_id, group[0].subscriber_hash, body)
        except Exception as e:
            yield from _failed(group, e)
            return
        yield from _delivered(group)

    def _event(self, list_id: str, event: MemberEvent) -> Iterator[Outcome]:
        if self._cancelled.is_set():
            return
        try:
            self._client.post_event(list_id, event.subscriber_hash, event.body())
        except Exception as e:
            yield from _failed([event], e)
            return
        yield from _delivered([event])
