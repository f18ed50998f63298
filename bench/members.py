"""Members: batch subscribe takes 500 members a call, so with at most 10
connections and L seconds a call the best possible rate is 10 x 500 / L.
L is the members benchmark's own, --members-latency-ms (500 ms: issue #10's
figure; Mailchimp's real batch subscribes take seconds).

The pipeline (send_users only) upserts M new members, then the same M again,
now existing (their status must not change: batch subscribe with
`update_existing` and `status_if_new` only). Its rate is taken net of
start-up: (M - 1,000) / (its run time - the run time on 1,000 members), so
the time spent processing records before the first call counts (a batch
run combines every member's upserts over the whole input before sending
any). Its sending phase alone is "first call to last answer": are all
connections kept busy? Two references beside the ceiling: the official SDK's
one-PUT-per-member loop, and a direct client keeping 10 prepared
batch-subscribe calls in flight with no Beam at all, which shows what the
emulator itself can serve on this machine.
"""
from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from requests.adapters import HTTPAdapter

from bench import data, sdk
from bench.common import (API_KEY, AUDIENCE, BATCH_SUBSCRIBE_SIZE,
                          MAILCHIMP_CONNECTIONS, Result, Settings, Workdir,
                          write_jsonl)
from bench.processes import (BATCH_SUBSCRIBE_ROUTE, PUT_MEMBER_ROUTE,
                             MailchimpEmulator)
from bench.progress import Throughput
from bench.runs import run_batch

NAME = "members"
SENDING = "pipeline, new, first call to last answer"
DIRECT_CALLS = 200  # batch-subscribe calls of the direct client
PROBE = 1000  # members of the run that measures start-up


def _sdk_calls(settings: Settings) -> int:
    """The SDK loop's PUTs: as many as fit the time of the events
    benchmark's loop (one PUT takes L)."""
    return max(10, round(settings.sdk_calls * settings.latency_ms
                         / settings.members_latency_ms))


def _sending_rate(flow: Throughput, members: int, calls: int,
                  latency_s: float) -> float:
    """Members/s from the first call to the last answer. The emulator
    counts a call as it arrives: the last one is answered L later."""
    sent = flow.count * members / max(1, calls)  # the members of the calls seen
    return sent / (flow.wall_s - flow.first_s + latency_s)


def _sdk_rate(base_url: str, calls: int, first: int) -> float:
    client = sdk.client(base_url)
    bodies = [data.member_body(u) for u in range(first, first + calls)]
    done, seconds = sdk.timed_loop(
        (lambda b=b: client.lists.set_list_member(
            AUDIENCE, sdk.subscriber_hash(b["email_address"]), b))
        for b in bodies)
    return done / seconds


def _direct_rate(base_url: str, first: int) -> float:
    """Members/s with 10 batch subscribes of 500 always in flight."""
    bodies = [{"members": [data.member_body(u) for u in range(
        first + c * BATCH_SUBSCRIBE_SIZE, first + (c + 1) * BATCH_SUBSCRIBE_SIZE)],
        "update_existing": True} for c in range(DIRECT_CALLS)]
    with requests.Session() as session:
        session.auth = ("bench", API_KEY)
        session.mount("http://", HTTPAdapter(pool_maxsize=MAILCHIMP_CONNECTIONS))

        def post(body):
            session.post(f"{base_url}/lists/{AUDIENCE}", json=body,
                         timeout=60).raise_for_status()

        with ThreadPoolExecutor(MAILCHIMP_CONNECTIONS) as pool:
            started = time.perf_counter()
            list(pool.map(post, bodies))
            seconds = time.perf_counter() - started
    return DIRECT_CALLS * BATCH_SUBSCRIBE_SIZE / seconds


def run(settings: Settings) -> list[Result]:
    count = settings.members
    # A batch run combines the members, then sends them 500 a call.
    calls = math.ceil(count / BATCH_SUBSCRIBE_SIZE)
    sdk_calls = _sdk_calls(settings)
    extra = ["--batch_size", str(settings.batch_size)]
    rates, notes = {}, {}
    with Workdir(NAME) as workdir, MailchimpEmulator(
            workdir, data.seed(0), settings.members_latency_ms) as emulator:
        # Users: [0, count) for the pipeline, then a probe, the SDK, the
        # direct client, each on new people.
        probe = run_batch(
            workdir, f"{NAME}-probe", emulator, data.members_sync(),
            write_jsonl(workdir / "probe.jsonl", data.signups(PROBE, count)),
            settings.timeout_s,
            watch=lambda: emulator.requests_to(BATCH_SUBSCRIBE_ROUTE),
            target=math.ceil(PROBE / BATCH_SUBSCRIBE_SIZE), extra=extra)
        records = write_jsonl(workdir / "members.jsonl", data.signups(count))
        for label in ("new", "existing"):
            emulator.reset_stats()
            pipeline_run = run_batch(
                workdir, f"{NAME}-{label}", emulator, data.members_sync(),
                records, settings.timeout_s,
                watch=lambda: emulator.requests_to(BATCH_SUBSCRIBE_ROUTE),
                target=calls, extra=extra)
            seen = emulator.stats()["requests"]
            flow = pipeline_run.throughput
            wall = pipeline_run.finished.wall_s
            rates[label] = {
                "net": (count - PROBE) / (wall - probe.finished.wall_s),
                "sending": _sending_rate(flow, count, seen.get(
                    BATCH_SUBSCRIBE_ROUTE, 0), settings.members_latency_s),
                "wall": count / wall}
            notes[label] = (
                f"{pipeline_run.summary['members']['upserted']:,}/{count:,} "
                f"upserted by {seen.get(BATCH_SUBSCRIBE_ROUTE, 0)} batch "
                f"subscribes and {seen.get(PUT_MEMBER_ROUTE, 0)} single PUTs, "
                f"--batch_size {settings.batch_size}; run {wall:.1f} s, "
                f"first call after {flow.first_s:.1f} s; start-up: the same "
                f"run on {PROBE:,} members took {probe.finished.wall_s:.1f} s, "
                f"first call after {probe.throughput.first_s:.1f} s (the "
                f"difference: every record read and combined before the "
                f"first member is sent)")
        if settings.profile:  # a run of its own: sampling slows it down
            run_batch(workdir, NAME, emulator, data.members_sync(), records,
                      settings.timeout_s, extra=extra, profile=settings.profile)
        emulator.reset_stats()
        sdk_rate = _sdk_rate(emulator.base_url, sdk_calls, first=count + PROBE)
        direct = _direct_rate(emulator.base_url, first=count + PROBE + sdk_calls)
    ceiling = (MAILCHIMP_CONNECTIONS * BATCH_SUBSCRIBE_SIZE
               / settings.members_latency_s)
    ceiling_name = f"ceiling 10x500/L, L={settings.members_latency_ms:g} ms"
    new, existing = rates["new"], rates["existing"]
    return [
        Result(NAME, "pipeline, new, net of start-up", new["net"], "members/s",
               ceiling_name, ceiling, target=0.9, note=notes["new"]),
        Result(NAME, "pipeline, existing, net of start-up", existing["net"],
               "members/s", ceiling_name, ceiling, note=notes["existing"]),
        Result(NAME, SENDING, new["sending"], "members/s", ceiling_name,
               ceiling, target=0.9,
               note="once the members are combined, are all connections "
                    "busy? Members / (first call's arrival to last call's "
                    "arrival + L), seen at the emulator; the net figure "
                    "above also holds the combine, which waits for the "
                    "whole input"),
        Result(NAME, SENDING, new["sending"], "members/s", "direct client",
               direct),
        Result(NAME, "pipeline, new, wall clock", new["wall"], "members/s",
               ceiling_name, ceiling, note="launch to exit, start-up included"),
        Result(NAME, "direct client, no Beam", direct, "members/s",
               ceiling_name, ceiling,
               note=f"{DIRECT_CALLS} prepared calls, 10 in flight: what the "
                    f"emulator serves on this machine, and so the bound of "
                    f"every pipeline figure here (the emulator is one Python "
                    f"process: about 5 ms of CPU a 500-member call under one "
                    f"GIL, and its L-second sleeps overrun while other calls "
                    f"hold the GIL); the pipeline's distance from the "
                    f"ceiling is read against this figure, not against 10x500/L"),
        Result(NAME, "pipeline, new, net of start-up", new["net"], "members/s",
               "direct client", direct),
        Result(NAME, "official SDK, one PUT at a time", sdk_rate, "members/s",
               ceiling_name, ceiling),
        Result(NAME, "pipeline, new, net of start-up", new["net"], "members/s",
               f"SDK loop ({sdk_calls} PUTs)", sdk_rate,
               note="speed-up over the SDK loop"),
    ]
