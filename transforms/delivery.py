"""BatchDelivery: one batch of requests -> one outcome per request
(Delivered, Skipped, DeadLetter; and UnknownMergeFields reports), per
audience members (and their tags) before events and cohort tags, each
member's in order.

No Beam here: the sink DoFn drives it and routes what it returns. Nothing
raises out of it: whatever goes wrong with a call (an answer we did not
expect, a bug of ours) becomes the outcome of that call's requests, since
by then the call may have reached Mailchimp and a failed bundle would be
sent again whole.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Iterable, Iterator, Optional, TypeVar, Union

from transforms.mailchimp.client import MailchimpClient
from transforms.mailchimp.errors import DeliveryFailed, MailchimpError, skip_reason
from transforms.mailchimp.merge_fields import MergeFieldCatalog, prepare
from transforms.members import combine_all
from transforms.records import (DeadLetter, Delivered, MemberEvent,
                                MemberTags, MemberUpsert, Request, Skipped,
                                UnknownMergeFields, several, tags_body)

BATCH_SUBSCRIBE_LIMIT = 500  # members per POST /lists/{id}, Mailchimp's cap
Outcome = Union[Delivered, Skipped, DeadLetter, UnknownMergeFields]
_Member = tuple[MemberUpsert, dict]  # one member's upserts combined, its body
Unit = Callable[[], list[Outcome]]  # some calls, and an outcome per request
Chain = tuple[tuple[str, str], Unit]  # a member's (audience, hash), its unit
_T = TypeVar("_T")


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
            yield DeadLetter(f"{kind}s", dead, str(error),
                             request.dead_letter_payload(), request.sync,
                             several(request))


def _delivered(requests: Iterable[Request]) -> Iterator[Outcome]:
    for request in requests:
        yield Delivered(request.sync, request.kind, request.insert_id,
                        several(request))


def _unit(requests: list[Request], step: Callable[..., Iterable[Outcome]],
          *args) -> Unit:
    """`step(*args)` as a unit: its outcomes, or one failure per request if
    it raises (an answer we did not expect, a bug of ours)."""
    def unit() -> list[Outcome]:
        try:
            return list(step(*args))
        except Exception as e:
            return list(_failed(requests, e))
    return unit


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


def _body(member: MemberUpsert, catalog) -> tuple[dict, Optional[UnknownMergeFields]]:
    """A member's batch-subscribe body (its upserts combined:
    transforms.members), and a report of the merge fields it cannot send."""
    values, unknown, invalid = prepare(member.merge_fields, catalog)
    report = None
    if unknown or invalid:
        upserts = {tag: member.stamp(tag)[1] for tag in (*unknown, *invalid)}
        report = UnknownMergeFields(
            member.sync, member.audience_id, member.email, tuple(unknown),
            invalid, upserts if member.records > 1 else None)
    body = {"email_address": member.email, "status_if_new": member.status_if_new}
    if values:
        body["merge_fields"] = values
    return body, report


class BatchDelivery:
    """Sends batches through `client`, as units of work that the sink runs
    at once (transforms.sink), or one request at a time (`deliver`)."""

    def __init__(self, client: MailchimpClient, catalog: MergeFieldCatalog):
        self._client, self._catalog = client, catalog
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        """No request not yet sent is sent: its bundle failed, the runner
        drops what it produced and sends the bundle again."""
        self._cancelled.set()

    def deliver(self, requests: Iterable[Request]) -> list[Outcome]:
        """Every unit, one after another: the members', then the chains."""
        members, chains = self.units(requests)
        return [o for unit in members + [u for _, u in chains] for o in unit()]

    def units(self, requests: Iterable[Request]) -> tuple[list[Unit], list[Chain]]:
        """A batch as units of work: the members' calls (a unit a
        batch-subscribe call of up to 500, or a member sent alone); then,
        once every one of those is done, each member's events and cohort
        tags in their order (a unit a member, keyed by audience and
        subscriber hash). Each unit returns one outcome per request it
        holds, whatever happens."""
        requests = list(requests)
        try:
            return self._units(requests)
        except Exception as e:  # a bug of ours: still one outcome each
            failed = list(_failed(requests, e))
            return [lambda: failed], []

    def _units(self, requests: list[Request]) -> tuple[list[Unit], list[Chain]]:
        members: list[Unit] = []
        chains: list[Chain] = []
        for list_id, group in _by(requests, lambda r: r.audience_id).items():
            upserts = [combine_all(same) for same in _by(
                [r for r in group if r.kind == "member"],
                lambda u: u.subscriber_hash).values()]
            # Batch subscribe takes no marketing permissions: those go by PUT.
            together = [u for u in upserts if not u.permissions]
            members += [_unit([u], self._put_alone, list_id, u)
                        for u in upserts if u.permissions]
            members += [_unit(chunk, self._subscribe, list_id, chunk)
                        for chunk in (together[i:i + BATCH_SUBSCRIBE_LIMIT] for i in
                                      range(0, len(together), BATCH_SUBSCRIBE_LIMIT))]
            others = [r for r in group if r.kind != "member"]
            chains += [((list_id, member_hash), _unit(chain, self._chain, list_id, chain))
                       for member_hash, chain in _by(
                           others, lambda r: r.subscriber_hash).items()]
        return members, chains

    def _bodies(self, list_id: str, upserts: list[MemberUpsert]
                ) -> tuple[list[_Member], list[Outcome]]:
        """The members' bodies; merge-field reports, and the outcome of a
        member whose value could not be prepared (that member only)."""
        catalog = self._catalog.fields(list_id)
        members: list[_Member] = []
        outcomes: list[Outcome] = []
        for member in upserts:
            try:
                body, report = _body(member, catalog)
            except Exception as e:
                outcomes += _failed([member], e)
                continue
            if report is not None:
                outcomes.append(report)
            members.append((member, body))
        return members, outcomes

    def _put_alone(self, list_id: str, member: MemberUpsert) -> Iterator[Outcome]:
        prepared, outcomes = self._bodies(list_id, [member])
        yield from outcomes
        for member, body in prepared:
            body["marketing_permissions"] = member.marketing_permissions()
            yield from self._put(list_id, member, body)

    def _chain(self, list_id: str, chain: list[Request]) -> Iterator[Outcome]:
        for request in chain:
            if request.kind == "event":
                yield from self._event(list_id, request)
            else:
                yield from self._cohort(list_id, request)

    def _subscribe(self, list_id: str, upserts: list[MemberUpsert]) -> Iterator[Outcome]:
        """Batch subscribe; a member the batch refused is sent again alone
        with PUT, whose problem+json tells precisely why (or succeeds, for a
        transient refusal)."""
        chunk, outcomes = self._bodies(list_id, upserts)
        yield from outcomes
        if self._cancelled.is_set() or not chunk:
            return
        try:
            answer = self._client.batch_subscribe(list_id, [b for _, b in chunk])
            done = _taken(answer)
        except Exception as e:
            yield from _failed([member for member, _ in chunk], e)
            return
        for member, body in chunk:
            if body["email_address"].lower() in done:
                yield from self._tag(list_id, member)
            else:
                yield from self._put(list_id, member, body)

    def _sent(self, request: Request, call: Callable[[], Any],
              then: Optional[Callable[[], Iterable[Outcome]]] = None
              ) -> Iterator[Outcome]:
        """One call for one request: its failure as the request's outcome,
        else `then()` (by default: delivered). Once cancelled, nothing."""
        if self._cancelled.is_set():
            return
        try:
            call()
        except Exception as e:
            yield from _failed([request], e)
            return
        yield from then() if then is not None else _delivered([request])

    def _put(self, list_id: str, member: MemberUpsert, body: dict) -> Iterator[Outcome]:
        yield from self._sent(
            member, lambda: self._client.upsert_member(list_id, member.subscriber_hash, body),
            lambda: self._tag(list_id, member))

    def _tag(self, list_id: str, member: MemberUpsert) -> Iterator[Outcome]:
        """An upserted member's tags made active: its delivery ends here
        (the PUT body has no tags)."""
        if not member.tags:
            yield from _delivered([member])
            return
        body = tags_body(sorted(member.tags), True, member.is_syncing)
        yield from self._sent(
            member, lambda: self._client.post_tags(list_id, member.subscriber_hash, body))

    def _cohort(self, list_id: str, tags: MemberTags) -> Iterator[Outcome]:
        yield from self._sent(
            tags, lambda: self._client.post_tags(list_id, tags.subscriber_hash, tags.body()))

    def _event(self, list_id: str, event: MemberEvent) -> Iterator[Outcome]:
        yield from self._sent(
            event, lambda: self._client.post_event(list_id, event.subscriber_hash, event.body()))
