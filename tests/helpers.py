"""Small helpers the test modules share."""
from __future__ import annotations

import json
from pathlib import Path

from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline

API_KEY = "0123456789abcdef0123456789abcdef-us6"  # recognisable, grep-able
AUDIENCE = "aud0000001"
EVENTS_AUDIENCE = "aud0000002"
PUBSUB_PROJECT = "demo-project"  # Beam checks that project IDs look real
SHARED = Path(__file__).resolve().parents[2] / "shared"
OPENAPI = SHARED / "mailchimp" / "marketing-subset.openapi.json"

SEED = {"lists": [
    {"id": AUDIENCE, "name": "Newsletter", "double_optin": False,
     "merge_fields": [
         {"tag": "FNAME", "name": "First name", "type": "text"},
         {"tag": "PLAN", "name": "Plan", "type": "dropdown",
          "options": {"choices": ["free", "pro", "enterprise"]}},
         {"tag": "BIRTHDAY", "name": "Birthday", "type": "birthday"},
         {"tag": "SCORE", "name": "Score", "type": "number"},
         {"tag": "SIGNUP", "name": "Signed up", "type": "date"}],
     "members": [
         {"email_address": "existing@example.com", "status": "subscribed",
          "merge_fields": {"FNAME": "Old"}},
         {"email_address": "gone@example.com", "status": "unsubscribed"}]},
    {"id": EVENTS_AUDIENCE, "name": "Product", "double_optin": False,
     "merge_fields": [],
     "members": [{"email_address": "ada@example.com", "status": "subscribed"}]},
]}


GDPR_EMAIL, GDPR_ADS = "a1b2c3d4e5", "f6a7b8c9d0"  # the GDPR seed's permission ids


def gdpr_seed(members: bool = True) -> dict:
    """SEED, its first audience with marketing permissions (GDPR fields),
    and without its members if `members` is false."""
    seed = json.loads(json.dumps(SEED))
    audience = seed["lists"][0]
    audience["marketing_permissions"] = [
        {"marketing_permission_id": GDPR_EMAIL, "text": "Email"},
        {"marketing_permission_id": GDPR_ADS, "text": "Customized online advertising"}]
    if not members:
        audience["members"] = []
    return seed


def beam_pipeline(**options) -> TestPipeline:
    """A TestPipeline on FnApiRunner: the DirectRunner would first try to
    download Prism, which cannot be fetched here."""
    return TestPipeline(runner="FnApiRunner",
                        options=PipelineOptions(flags=[], **options))


def request_schema_validator(openapi: dict, path: str, method: str):
    """A JSON Schema validator for one operation's request body in Mailchimp's
    OpenAPI document, its "#/components/..." references resolved."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    document = Resource.from_contents(openapi, default_specification=DRAFT202012)
    registry = Registry().with_resource("urn:mailchimp", document)
    pointer = "/".join(p.replace("~", "~0").replace("/", "~1") for p in (
        "paths", path, method, "requestBody", "content", "application/json",
        "schema"))
    return Draft202012Validator({"$ref": f"urn:mailchimp#/{pointer}"},
                                registry=registry)


def write_jsonl(path: Path, records: list) -> Path:
    """Write records (dicts, or raw strings for malformed lines), one a line."""
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(record if isinstance(record, str) else json.dumps(record))
            f.write("\n")
    return path


def read_outputs(output_dir: Path, name: str) -> list[dict]:
    lines = []
    for path in sorted(output_dir.glob(f"{name}*.jsonl")):
        lines += [json.loads(l) for l in path.read_text().splitlines() if l]
    return lines


def run_sync(emulator, tmp_path: Path, monkeypatch, syncs: list[dict],
             records: list) -> tuple[dict, Path]:
    """`python -m pipeline` (in process) on `records` with these syncs,
    against the emulator: (summary.json, the output folder)."""
    from pipeline.__main__ import main
    monkeypatch.setenv("MAILCHIMP_API_KEY", API_KEY)
    config = tmp_path / "sync.json"
    config.write_text(json.dumps({"syncs": syncs}))
    out = tmp_path / "out"
    assert main(["--sync_config", str(config),
                 "--input_files", str(write_jsonl(tmp_path / "in.jsonl", records)),
                 "--output_dir", str(out), "--mailchimp_base_url", emulator.base_url,
                 "--quiet"]) == 0
    return json.loads((out / "summary.json").read_text()), out
