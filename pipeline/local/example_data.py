"""The demo's example data: an audience seed, a sync config and a few
thousand realistic Amplitude records, all made from one random seed.

`python -m pipeline.local.example_data DIR` writes them; the demo ships the
result in pipeline/local/data/ (a test checks it is what this makes).
Everything the brief says can go wrong is in there: anonymous events,
unknown members, upper-case emails, identify calls, non-string properties,
an unknown merge field, bad emails and event names, malformed lines.
"""
from __future__ import annotations

import gzip
import io
import json
import random
import sys
import zipfile
from pathlib import Path

NEWSLETTER = "a1b2c3d4e5"
PRODUCT = "f6e5d4c3b2"
FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances",
         "John", "Katherine", "Linus", "Margaret", "Niklaus", "Radia", "Ken"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen",
        "Backus", "Johnson", "Torvalds", "Hamilton", "Wirth", "Perlman", "Thompson"]
PLANS = ["free", "starter", "pro", "enterprise"]
EVENT_TYPES = ["page viewed", "purchase", "signed_up", "trial started",
               "feature used", "subscription cancelled"]
START_MS = 1_764_547_200_000  # 2025-12-01T00:00:00Z
EXPORT_HOURS = ("2025-12-01_0", "2025-12-01_1")


def _user(rng: random.Random, n: int) -> dict:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    email = f"{first}.{last}{n}@example.com"
    if n % 7 == 0:
        email = email.upper()  # the hash must come from the lower-case form
    if n % 11 == 0:
        email = f"  {email} "  # surrounding whitespace, as forms send it
    props = {"email": email, "FNAME": first, "LNAME": last,
             "PLAN": rng.choice(PLANS), "COMPANY": f"{last} Labs"}
    if n % 13 == 0:
        props["BIRTHDAY"] = f"19{rng.randint(50, 99)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if n == 5:
        props["email"] = "not-an-email"
    if n == 6:
        del props["email"]
    return {"user_id": f"user-{n}", "user_properties": props}


def users(count: int = 400, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    return [_user(rng, n) for n in range(1, count + 1)]


def audience_seed(people: list[dict]) -> dict:
    """Two audiences: the newsletter knows a quarter of the users (one of
    them unsubscribed); the product audience a third, for events only."""
    def member(person, status="subscribed"):
        props = person["user_properties"]
        return {"email_address": props["email"].strip().lower(), "status": status,
                "merge_fields": {"FNAME": props["FNAME"], "LNAME": props["LNAME"]}}
    valid = [p for p in people if "@" in p["user_properties"].get("email", "")]
    newsletter = [member(p) for p in valid[::4]]
    newsletter[1]["status"] = "unsubscribed"
    return {"lists": [
        {"id": NEWSLETTER, "name": "Newsletter", "double_optin": False,
         "merge_fields": [
             {"tag": "FNAME", "name": "First Name", "type": "text"},
             {"tag": "LNAME", "name": "Last Name", "type": "text"},
             {"tag": "PLAN", "name": "Plan", "type": "dropdown",
              "options": {"choices": PLANS}},
             {"tag": "BIRTHDAY", "name": "Birthday", "type": "birthday"}],
         "members": newsletter},
        {"id": PRODUCT, "name": "Product events", "double_optin": False,
         "merge_fields": [
             {"tag": "FNAME", "name": "First Name", "type": "text"},
             {"tag": "LNAME", "name": "Last Name", "type": "text"}],
         "members": [member(p) for p in valid[::3]]},
    ]}


def sync_config() -> dict:
    return {"syncs": [
        {"name": "newsletter", "audience_id": NEWSLETTER,
         "status_if_new": "subscribed", "email_property": "email",
         "send_events": {"enabled": True,
                         "event_types": ["purchase", "signed_up", "trial started"],
                         "filters": [{"property": "user_id", "op": "is_set"}],
                         "properties": ["event_properties.plan",
                                        "event_properties.amount",
                                        "event_properties.items",
                                        "user_properties.COMPANY"]},
         "send_users": {"enabled": True,
                        "properties": ["FNAME", "LNAME", "PLAN", "BIRTHDAY",
                                       "COMPANY"]}},
        {"name": "product-events", "audience_id": PRODUCT,
         "email_property": "email",
         "send_events": {"enabled": True, "event_types": ["*"],
                         "properties": ["event_properties.plan", "platform"],
                         "occurred_at": "event_time"}},
    ]}


def _event(rng: random.Random, person: dict, i: int,
           insert_id: str | None = None) -> dict:
    kind = rng.choice(EVENT_TYPES)
    props = {"plan": person["user_properties"]["PLAN"]}
    if kind == "purchase":
        props.update(amount=round(rng.uniform(5, 500), 2), items=rng.randint(1, 5),
                     coupon=None, first_purchase=rng.random() < 0.3,
                     cart=[{"sku": f"SKU-{rng.randint(1, 99)}", "qty": 1}])
    return {"user_id": person["user_id"], "device_id": f"device-{i % 997}",
            "event_type": kind, "time": START_MS + i * 1000,
            "insert_id": insert_id or f"evt-{i}", "platform": rng.choice(["iOS", "Android", "Web"]),
            "event_properties": props, "user_properties": person["user_properties"]}


def records(people: list[dict], count: int = 3000, seed: int = 11) -> list[str]:
    """JSON lines: events, batched HTTP API bodies, identify calls, anonymous
    events, bad event names and a few malformed lines."""
    rng = random.Random(seed)
    lines: list[str] = []
    i = 0
    while len(lines) < count:
        i += 1
        person = rng.choice(people)
        roll = rng.random()
        if roll < 0.05:  # anonymous: a device, no user
            event = _event(rng, person, i)
            del event["user_id"], event["user_properties"]
            lines.append(json.dumps(event))
        elif roll < 0.09:  # Identify API
            props = person["user_properties"]
            lines.append(json.dumps({"identification": [{
                "user_id": person["user_id"],
                "user_properties": {"$set": {"email": props.get("email"),
                                             "PLAN": rng.choice(PLANS)},
                                    "$setOnce": {"FNAME": props["FNAME"]},
                                    "$unset": {"COMPANY": "-"}}}]}))
        elif roll < 0.11:  # $identify event
            lines.append(json.dumps({
                "user_id": person["user_id"], "event_type": "$identify",
                "insert_id": f"evt-{i}",
                "user_properties": {"$set": person["user_properties"]}}))
        elif roll < 0.16:  # HTTP API body with several events
            batch = [_event(rng, rng.choice(people), i, insert_id=f"evt-{i}.{k}")
                     for k in range(3)]
            lines.append(json.dumps({"api_key": "amplitude-demo-key", "events": batch}))
        elif roll < 0.165:  # event names Mailchimp refuses
            event = _event(rng, person, i)
            event["event_type"] = rng.choice(["x", "a" * 31, "purchase!"])
            lines.append(json.dumps(event))
        else:
            lines.append(json.dumps(_event(rng, person, i)))
    malformed = ['{"event_type": "purchase", "user_id": ', "not json at all",
                 '["an", "array"]', '{"user_id": "user-1"}',
                 '{"event_type": 42, "user_id": "user-2"}']
    for n, line in enumerate(malformed):
        lines.insert((n + 1) * count // 6, line)
    return lines


def export_zip(people: list[dict], rows_per_hour: int = 250, seed: int = 13) -> bytes:
    """An Amplitude Export API zip: one gzipped JSON-lines file per hour."""
    rng = random.Random(seed)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for h, hour in enumerate(EXPORT_HOURS):
            rows = []
            for r in range(rows_per_hour):
                event = _event(rng, rng.choice(people), 100_000 + h * 1000 + r)
                ms = event.pop("time")
                event["$insert_id"] = event.pop("insert_id")
                event["event_time"] = f"2025-12-01 0{h}:{r // 60:02d}:{r % 60:02d}.000000"
                event["amplitude_id"] = ms
                rows.append(json.dumps(event))
            data = gzip.compress("\n".join(rows).encode() + b"\n", mtime=0)
            info = zipfile.ZipInfo(f"123456/123456_{hour}#0.json.gz",
                                   date_time=(2025, 12, 1, h, 0, 0))
            archive.writestr(info, data)
    return buffer.getvalue()


def write(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    people = users()
    (directory / "seed.json").write_text(json.dumps(audience_seed(people), indent=1) + "\n")
    (directory / "sync.json").write_text(json.dumps(sync_config(), indent=1) + "\n")
    inputs = directory / "input"
    inputs.mkdir(exist_ok=True)
    (inputs / "events.jsonl").write_text("\n".join(records(people)) + "\n")
    (inputs / "export.zip").write_bytes(export_zip(people))


if __name__ == "__main__":
    write(Path(sys.argv[1] if len(sys.argv) > 1 else "pipeline/local/data"))
