"""MailchimpStreamOptions: every flag of `python -m pipeline`.

templates/metadata.json mirrors these (a test keeps the two in step).
"""
from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions


class MailchimpStreamOptions(PipelineOptions):

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument(
            "--sync_config",
            help="Required. YAML or JSON file with the syncs (see README: "
                 "Sync config).")
        parser.add_argument(
            "--input_files",
            help="Batch source: glob of JSON lines, .gz JSON lines or "
                 "Amplitude export .zip files.")
        parser.add_argument(
            "--input_subscription",
            help="Streaming source: projects/P/subscriptions/S.")
        parser.add_argument(
            "--input_topic",
            help="Streaming source: projects/P/topics/T (a temporary "
                 "subscription is created).")
        parser.add_argument(
            "--event_time_attribute",
            help="Streaming: message attribute holding the event time "
                 "(RFC 3339 or epoch milliseconds); default: publish time.")
        parser.add_argument(
            "--dead_letter_topic",
            help="Streaming: also publish dead letters to this topic "
                 "(projects/P/topics/T), payload as data, stage, reason, "
                 "error and sync as attributes.")
        parser.add_argument(
            "--output_window_secs", type=float, default=60.0,
            help="Streaming: output files are written per window of this "
                 "many seconds.")
        parser.add_argument(
            "--summary_refresh_secs", type=int, default=5,
            help="Streaming: summary.json is rewritten with running totals "
                 "this often (whole seconds).")
        parser.add_argument(
            "--output_dir", default="output",
            help="Where skipped members, unknown merge fields, dead letters "
                 "and summary.json go.")
        parser.add_argument(
            "--mailchimp_base_url",
            help="API root override, e.g. http://127.0.0.1:PORT/3.0 for the "
                 "local emulator. Default: from the credentials.")
        parser.add_argument(
            "--mailchimp_api_key_secret",
            help="Secret Manager version holding the API key "
                 "(projects/P/secrets/S/versions/V); default: the "
                 "MAILCHIMP_API_KEY or MAILCHIMP_OAUTH_TOKEN environment "
                 "variable.")
        parser.add_argument(
            "--dedupe_window", type=int, default=200_000,
            help="A record whose insert_id is among the last this many "
                 "(at least half as many) seen by a worker is dropped as a "
                 "duplicate.")
        parser.add_argument(
            "--max_connections", type=int, default=10,
            help="Requests in flight per worker process (Mailchimp allows 10 "
                 "per user: with N workers use 10/N).")
        parser.add_argument(
            "--batch_size", type=int, default=5000,
            help="Requests per batch; members go 500 per batch-subscribe call.")
        parser.add_argument(
            "--max_buffering_secs", type=float, default=5.0,
            help="Streaming: longest time a request waits for its batch to fill.")
        parser.add_argument(
            "--shards_per_audience", type=int, default=16,
            help="Streaming: parallel batches per audience.")
        parser.add_argument(
            "--max_retries", type=int, default=5,
            help="Retries of a throttled (429) or failed (5xx) request.")
        parser.add_argument(
            "--request_timeout_secs", type=float, default=130.0,
            help="Read timeout of one request (Mailchimp gives up at 120 s).")
        parser.add_argument(
            "--merge_fields_refresh_secs", type=float, default=300.0,
            help="How long an audience's merge-field list is cached.")
