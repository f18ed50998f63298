"""MailchimpStreamOptions: every flag of `python -m pipeline`, and what
values each accepts (`problems`).

templates/metadata.json mirrors these, help texts and ranges (tests keep the
two in step).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from typing import Optional
from urllib.parse import urlsplit

from apache_beam.options.pipeline_options import PipelineOptions


class MailchimpStreamOptions(PipelineOptions):

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument(
            "--sync_config", metavar="PATH",
            help="Required. YAML or JSON file with the syncs (see README: "
                 "Sync config).")
        parser.add_argument(
            "--input_files", metavar="GLOB",
            help="Batch source: glob of JSON lines, .gz JSON lines or "
                 "Amplitude export .zip files.")
        parser.add_argument(
            "--input_subscription", metavar="SUBSCRIPTION",
            help="Streaming source: projects/P/subscriptions/S.")
        parser.add_argument(
            "--input_topic", metavar="TOPIC",
            help="Streaming source: projects/P/topics/T (a temporary "
                 "subscription is created).")
        parser.add_argument(
            "--event_time_attribute", metavar="NAME",
            help="Streaming: message attribute holding the event time "
                 "(RFC 3339 or epoch milliseconds); default: publish time.")
        parser.add_argument(
            "--dead_letter_topic", metavar="TOPIC",
            help="Streaming: also publish dead letters to this topic "
                 "(projects/P/topics/T), payload as data, stage, reason, "
                 "error and sync as attributes.")
        parser.add_argument(
            "--output_window_secs", type=float, default=60.0, metavar="S",
            help="Streaming: output files are written per window of this "
                 "many seconds.")
        parser.add_argument(
            "--summary_refresh_secs", type=int, default=5, metavar="S",
            help="Streaming: summary.json is rewritten with running totals "
                 "this often (whole seconds).")
        parser.add_argument(
            "--output_dir", default="output", metavar="DIR",
            help="Where skipped members, unknown merge fields, dead letters "
                 "and summary.json go.")
        parser.add_argument(
            "--mailchimp_base_url", metavar="URL",
            help="API root override, e.g. http://127.0.0.1:PORT/3.0 for the "
                 "local emulator. Default: from the credentials.")
        parser.add_argument(
            "--mailchimp_api_key_secret", metavar="VERSION",
            help="Secret Manager version holding the API key "
                 "(projects/P/secrets/S/versions/V); default: the "
                 "MAILCHIMP_API_KEY or MAILCHIMP_OAUTH_TOKEN environment "
                 "variable.")
        parser.add_argument(
            "--dedupe_window", type=int, default=200_000, metavar="N",
            help="Local runners: a record whose insert_id is among the last "
                 "this many (at least half as many) seen by the same worker "
                 "process, at another place in the input, is dropped as a "
                 "duplicate.")
        parser.add_argument(
            "--dedupe_window_secs", type=float, default=3600.0, metavar="S",
            help="Remote runners (Dataflow): a record whose insert_id any "
                 "worker saw in the last this many seconds is dropped as a "
                 "duplicate.")
        parser.add_argument(
            "--max_connections", type=int, default=10, metavar="N",
            help="Requests in flight to Mailchimp for the whole job (every "
                 "worker and process), 1 to 10: Mailchimp allows 10 "
                 "simultaneous connections per account.")
        parser.add_argument(
            "--batch_size", type=int, default=5000, metavar="N",
            help="Requests per batch; members go 500 per batch-subscribe call.")
        parser.add_argument(
            "--max_buffering_secs", type=float, default=5.0, metavar="S",
            help="Streaming: longest time a request waits for its batch to fill.")
        parser.add_argument(
            "--shards_per_audience", type=int, default=16, metavar="N",
            help="Streaming: parallel batches per audience.")
        parser.add_argument(
            "--max_retries", type=int, default=5, metavar="N",
            help="Retries of a throttled (429) or failed (5xx) request.")
        parser.add_argument(
            "--request_timeout_secs", type=float, default=130.0, metavar="S",
            help="Read timeout of one request (Mailchimp gives up at 120 s).")
        parser.add_argument(
            "--merge_fields_refresh_secs", type=float, default=300.0, metavar="S",
            help="How long an audience's merge-field list is cached.")
        _add_switch(
            parser, "--dry_run",
            help="Nothing is written to Mailchimp: the requests it would send "
                 "go to dry_run*.jsonl in --output_dir; merge fields are "
                 "still read.")
        _add_switch(
            parser, "--quiet",
            help="Local batch runs: no progress line on stderr (the final "
                 "summary is still printed).")


def _true_or_false(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"give true or false, not {text!r}")
    return value == "true"


def _add_switch(parser, flag: str, help: str) -> None:
    """A switch: `--flag`, or `--flag=true|false` as a Flex Template
    launcher passes it (`--PARAM=VALUE`).

    Beam's own TestOptions declares `--dry_run` (taking a value; its
    DataflowRunner then submits nothing). Where every options class shares
    one parser (Beam's get_all_options, cli's flag check), ours replaces it,
    so the flag parses one way; registering both would be an argparse
    conflict (argparse has no public way to drop an option)."""
    beams = parser._option_string_actions.get(flag)
    if beams is not None:
        parser._handle_conflict_resolve(None, [(flag, beams)])
    parser.add_argument(flag, nargs="?", const=True, default=False,
                        type=_true_or_false, metavar="true|false", help=help)


@dataclasses.dataclass(frozen=True)
class Range:
    """The values a numeric flag accepts: from `low` (itself excluded when
    `open_low`) up to `high`; never NaN or infinity."""
    low: float
    high: Optional[float] = None
    open_low: bool = False
    why: str = ""

    def accepts(self, value: float) -> bool:
        return (math.isfinite(value)
                and (value > self.low if self.open_low else value >= self.low)
                and (self.high is None or value <= self.high))

    def __str__(self) -> str:
        if self.high is not None:
            text = f"from {self.low:g} to {self.high:g}"
        else:
            text = f"{'more than' if self.open_low else 'at least'} {self.low:g}"
        return text + (f" ({self.why})" if self.why else "")


POSITIVE = Range(0, open_low=True)
LIMITS = {
    "output_window_secs": POSITIVE,
    "summary_refresh_secs": Range(1),
    "dedupe_window": Range(1),
    "dedupe_window_secs": POSITIVE,
    "max_connections": Range(1, 10, why="Mailchimp allows 10 simultaneous "
                                        "connections per account"),
    "batch_size": Range(1),
    "max_buffering_secs": POSITIVE,
    "shards_per_audience": Range(1),
    "max_retries": Range(0),
    "request_timeout_secs": POSITIVE,
    "merge_fields_refresh_secs": Range(0),
}
API_ROOT_EXAMPLE = "https://us6.api.mailchimp.com/3.0"


def _base_url_problem(url: str) -> Optional[str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "needs its scheme and host"
    if not parts.path.rstrip("/").endswith("/3.0"):
        return "needs the API version path /3.0"
    return None


def problems(options: MailchimpStreamOptions) -> list[str]:
    """What is wrong with the flags' values, one message per flag."""
    found = []
    for name, limit in LIMITS.items():
        value = getattr(options, name)
        if not limit.accepts(value):
            found.append(f"--{name} {value}: must be {limit}")
    url = options.mailchimp_base_url
    if url is not None and (why := _base_url_problem(url)):
        found.append(f"--mailchimp_base_url {url} {why}: give the API root, "
                     f"e.g. {API_ROOT_EXAMPLE} or http://127.0.0.1:PORT/3.0")
    return found
