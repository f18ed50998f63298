"""Member events: one Mailchimp call per event, so with at most 10
connections and L seconds a call the best possible rate is 10/L.

The pipeline sends N purchase events of existing members (send_events only,
all delivered); the baseline posts events with the official SDK one after
another (1/L at best).
"""
from __future__ import annotations

from bench import data, sdk
from bench.common import (AUDIENCE, MAILCHIMP_CONNECTIONS, Result, Settings,
                          Workdir, write_jsonl)
from bench.processes import EVENTS_ROUTE, MailchimpEmulator
from bench.runs import run_batch

NAME = "events"
MEMBERS = 1000  # the audience's members, whom the events are about


def _sdk_rate(base_url: str, calls: int) -> float:
    client = sdk.client(base_url)
    bodies = [(sdk.subscriber_hash(r["user_properties"]["email"]),
               {"name": r["event_type"],
                "properties": {k: str(v) for k, v in r["event_properties"].items()}})
              for r in data.purchases(calls, MEMBERS)]
    done, seconds = sdk.timed_loop(
        (lambda h=h, b=b: client.lists.create_list_member_event(AUDIENCE, h, b))
        for h, b in bodies)
    return done / seconds


def run(settings: Settings) -> list[Result]:
    with Workdir(NAME) as workdir, MailchimpEmulator(
            workdir, data.seed(MEMBERS), settings.latency_ms) as emulator:
        records = write_jsonl(workdir / "events.jsonl",
                              data.purchases(settings.events, MEMBERS))
        pipeline_run = run_batch(
            workdir, NAME, emulator, data.events_sync(), records,
            settings.timeout_s, watch=lambda: emulator.requests_to(EVENTS_ROUTE),
            target=settings.events,
            extra=["--batch_size", str(settings.batch_size)])
        emulator.reset_stats()
        sdk_rate = _sdk_rate(emulator.base_url, settings.sdk_calls)
    delivered = pipeline_run.summary["events"]["delivered"]
    flow = pipeline_run.throughput
    ceiling = MAILCHIMP_CONNECTIONS / settings.latency_s
    ceiling_name = f"ceiling 10/L, L={settings.latency_ms:g} ms"
    sdk_name = f"SDK loop ({settings.sdk_calls} events)"
    note = (f"{delivered}/{settings.events} delivered; first request "
            f"{flow.first_s:.1f} s after launch, run {pipeline_run.finished.wall_s:.1f} s")
    return [
        Result(NAME, "pipeline, steady state", flow.steady_per_s, "events/s",
               ceiling_name, ceiling, target=0.9, note=note),
        Result(NAME, "pipeline, wall clock", delivered / pipeline_run.finished.wall_s,
               "events/s", ceiling_name, ceiling,
               note="launch to exit, start-up included"),
        Result(NAME, "official SDK, one at a time", sdk_rate, "events/s",
               ceiling_name, ceiling),
        Result(NAME, "pipeline, steady state", flow.steady_per_s, "events/s",
               sdk_name, sdk_rate, note="speed-up over the SDK loop"),
    ]
