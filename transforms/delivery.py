"""BatchDelivery: one batch of requests for one audience -> one outcome per
request (Delivered, Skipped or DeadLetter), members before events.

No Beam here: the sink DoFn drives it and routes what it returns.
"""
from __future__ import annotations

from concurrent.futures import Executor
from typing import Iterable, Iterator, Union

from transforms.mailchimp.client import MailchimpClient
from transforms.mailchimp.errors import DeliveryFailed, MailchimpError, skip_reason
from transforms.mailchimp.merge_fields import MergeFieldCatalog, prepare
from transforms.records import (DeadLetter, Delivered, MemberEvent,
                                MemberUpsert, Request, Skipped,
                                UnknownMergeFields)

BATCH_SUBSCRIBE_LIMIT = 500  # members per POST /lists/{id}, Mailchimp's cap
Outcome = Union[Delivered, Skipped, DeadLetter, UnknownMergeFields]
_Member = tuple[list[MemberUpsert], dict]  # the requests one body serves


def _failed(requests: Iterable[Request], error: Exception) -> Iterator[Outcome]:
    """A skip with the error's reason and what Mailchimp said, or a dead
    letter with the payload."""
    refusal = error if isinstance(error, MailchimpError) else None
    for request in requests:
        kind = "member" if isinstance(request, MemberUpsert) else "event"
        reason = skip_reason(refusal, kind) if refusal is not None else None
        if refusal is not None and reason:
            yield Skipped.of(request, reason, refusal.explanation)
        else:
            dead = ("retries_exhausted" if isinstance(error, DeliveryFailed)
                    else "mailchimp_rejected")
            yield DeadLetter(f"{kind}s", dead, str(error), request.payload,
                             request.sync)


def _delivered(requests: Iterable[Request]) -> Iterator[Outcome]:
    for request in requests:
        kind = "member" if isinstance(request, MemberUpsert) else "event"
        yield Delivered(request.sync, kind, request.insert_id)


class BatchDelivery:
    """Sends a batch with at most `pool`'s width of requests in flight."""

    def __init__(self, client: MailchimpClient, catalog: MergeFieldCatalog,
                 pool: Executor):
        self._client, self._catalog, self._pool = client, catalog, pool

    def deliver(self, audience_id: str, requests: list[Request]) -> list[Outcome]:
        upserts = [r for r in requests if isinstance(r, MemberUpsert)]
        events = [r for r in requests if isinstance(r, MemberEvent)]
        # Members first and to completion: a new member's events need it.
        outcomes = list(self._members(audience_id, upserts)) if upserts else []
        for result in self._pool.map(
                lambda e: list(self._event(audience_id, e)), events):
            outcomes.extend(result)
        return outcomes

    def _members(self, list_id: str, upserts: list[MemberUpsert]) -> Iterator[Outcome]:
        try:
            catalog = self._catalog.fields(list_id)
        except (MailchimpError, DeliveryFailed) as e:
            yield from _failed(upserts, e)
            return
        by_member: dict[str, list[MemberUpsert]] = {}
        for upsert in upserts:  # one body per member: later values win
            by_member.setdefault(upsert.subscriber_hash, []).append(upsert)
        members: list[_Member] = []
        for group in by_member.values():
            sendable: dict = {}
            for upsert in group:
                # Reported per upsert, so the reports do not depend on how
                # records fall into batches (and so on the worker count).
                values, unknown, invalid = prepare(upsert.merge_fields, catalog)
                if unknown or invalid:
                    yield UnknownMergeFields(upsert.sync, list_id, upsert.email,
                                             tuple(unknown), invalid)
                sendable.update(values)
            first = group[0]
            body = {"email_address": first.email,
                    "status_if_new": first.status_if_new}
            if sendable:
                body["merge_fields"] = sendable
            members.append((group, body))
        chunks = [members[i:i + BATCH_SUBSCRIBE_LIMIT]
                  for i in range(0, len(members), BATCH_SUBSCRIBE_LIMIT)]
        for result in self._pool.map(
                lambda chunk: list(self._subscribe(list_id, chunk)), chunks):
            yield from result

    def _subscribe(self, list_id: str, chunk: list[_Member]) -> Iterator[Outcome]:
        """Batch subscribe; a member the batch refused is sent again alone
        with PUT, whose problem+json tells precisely why (or succeeds, for a
        transient refusal)."""
        try:
            answer = self._client.batch_subscribe(list_id, [b for _, b in chunk])
        except (MailchimpError, DeliveryFailed) as e:
            yield from _failed([r for group, _ in chunk for r in group], e)
            return
        done = {m.get("email_address", "").lower()
                for m in answer.get("new_members", []) + answer.get(
                    "updated_members", [])}
        for group, body in chunk:
            if body["email_address"].lower() in done:
                yield from _delivered(group)
            else:
                yield from self._put(list_id, group, body)

    def _put(self, list_id: str, group: list[MemberUpsert], body: dict) -> Iterator[Outcome]:
        try:
            self._client.upsert_member(list_id, group[0].subscriber_hash, body)
        except (MailchimpError, DeliveryFailed) as e:
            yield from _failed(group, e)
            return
        yield from _delivered(group)

    def _event(self, list_id: str, event: MemberEvent) -> Iterator[Outcome]:
        try:
            self._client.post_event(list_id, event.subscriber_hash, event.body())
        except (MailchimpError, DeliveryFailed) as e:
            yield from _failed([event], e)
            return
        yield from _delivered([event])
