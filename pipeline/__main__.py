"""python -m pipeline: parse options, load the config, check Mailchimp, run.

Exit status: 0 when the run completed (whatever was skipped or
dead-lettered), or a streaming run was stopped; 2 with a message saying what
to fix otherwise.
"""
from __future__ import annotations

import signal
import sys
import threading
import time

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipeline.config import ConfigError, load_config
from pipeline.graph import build
from pipeline.options import MailchimpStreamOptions
from pipeline.preflight import PreflightError, check_mailchimp
from pipeline.report import format_summary
from pipeline.summary import read_summary
from transforms.mailchimp.client import Endpoint

# Runners that need no download (plain DirectRunner first fetches Prism).
BATCH_RUNNER = "FnApiRunner"
STREAMING_RUNNER = "BundleBasedDirectRunner"
# The job runs elsewhere: submit it and return (a Flex Template launcher).
REMOTE_RUNNERS = ("DataflowRunner",)


class UsageError(ValueError):
    pass


def _check_source(options: MailchimpStreamOptions) -> None:
    sources = [s for s in (options.input_files, options.input_subscription,
                           options.input_topic) if s]
    if len(sources) != 1:
        raise UsageError("give exactly one of --input_files, "
                         "--input_subscription, --input_topic")
    if options.input_files and not FileSystems.match(
            [options.input_files])[0].metadata_list:
        raise UsageError(f"--input_files {options.input_files} matches no file")


def pipeline_options(argv: list[str]) -> PipelineOptions:
    options = PipelineOptions(argv)
    standard = options.view_as(StandardOptions)
    ours = options.view_as(MailchimpStreamOptions)
    if not ours.input_files:
        standard.streaming = True
    if not any(a == "--runner" or a.startswith("--runner=") for a in argv):
        standard.runner = STREAMING_RUNNER if standard.streaming else BATCH_RUNNER
    return options


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    options = pipeline_options(argv)
    ours = options.view_as(MailchimpStreamOptions)
    try:
        if not ours.sync_config:
            raise UsageError("--sync_config is required")
        _check_source(ours)
        config = load_config(ours.sync_config)
        endpoint = Endpoint(ours.mailchimp_base_url, ours.mailchimp_api_key_secret)
        check_mailchimp(endpoint, config)
    except (UsageError, ConfigError, PreflightError) as e:
        print(f"mailchimp-stream: {e}", file=sys.stderr)
        return 2
    pipeline = build(beam.Pipeline(options=options), config, endpoint)
    result = pipeline.run()
    runner = options.view_as(StandardOptions).runner
    if runner in REMOTE_RUNNERS:
        print(f"mailchimp-stream: submitted to {runner}")
        return 0
    if ours.input_files:
        result.wait_until_finish()
    else:
        _run_until_stopped(result, ours.summary_refresh_secs)
    summary = read_summary(ours.output_dir)
    if summary is not None:
        print(format_summary(summary, ours.output_dir), flush=True)
    return 0


def _run_until_stopped(result, summary_refresh_secs: float) -> None:
    """A local streaming run goes on until SIGTERM or Ctrl-C, then stops
    cleanly: one more summary refresh, then the pipeline is cancelled."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        print("mailchimp-stream: streaming; stop with Ctrl-C or SIGTERM",
              flush=True)
        stop.wait()
        time.sleep(summary_refresh_secs + 1)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        result.cancel()


if __name__ == "__main__":
    sys.exit(main())
