"""python -m pipeline: parse options, load the config, check Mailchimp, run.

Exit status: 0 when the run completed (whatever was skipped or
dead-lettered), or a streaming run was stopped; 2 with a message saying what
to fix otherwise.
"""
from __future__ import annotations

import signal
import sys
import threading

from pipeline.beam_logs import quiet_beam_imports

with quiet_beam_imports():  # before anything imports Beam
    import apache_beam as beam
    from apache_beam.options.pipeline_options import StandardOptions

    from pipeline import check, cli
    from pipeline.config import ConfigError, load_config
    from pipeline.graph import build
    from pipeline.local_stream import LocalStream, subscription_of
    from pipeline.options import MailchimpStreamOptions
    from pipeline.preflight import PreflightError, check_mailchimp, check_pubsub
    from pipeline.progress import show_progress
    from pipeline.report import format_summary
    from pipeline.summary import read_summary
    from transforms.mailchimp.credentials import Endpoint


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["check"]:
        return check.main(argv[1:])
    help_text = cli.help_for(argv)
    if help_text is not None:
        print(help_text, end="")
        return 0
    try:
        options = cli.parse(argv)
        ours = options.view_as(MailchimpStreamOptions)
        config = load_config(ours.sync_config)
        check_pubsub(ours)
        endpoint = Endpoint(ours.mailchimp_base_url, ours.mailchimp_api_key_secret)
        check_mailchimp(endpoint, config)
    except (cli.UsageError, ConfigError, PreflightError) as e:
        print(f"mailchimp-stream: {e}", file=sys.stderr)
        return 2
    runner = options.view_as(StandardOptions).runner
    if not cli.is_local_runner(runner):
        # The job runs elsewhere (Dataflow, a portable job server): a Flex
        # Template launcher only submits it.
        build(beam.Pipeline(options=options), config, endpoint).run()
        print(f"mailchimp-stream: submitted to {runner}")
        return 0
    if ours.input_files:
        with show_progress(quiet=ours.quiet):
            build(beam.Pipeline(options=options), config, endpoint).run(
            ).wait_until_finish()
    else:
        with subscription_of(ours) as subscription:
            _run_until_stopped(LocalStream(options, config, endpoint, subscription))
    summary = read_summary(ours.output_dir)
    if summary is not None:
        print(format_summary(summary, ours.output_dir), flush=True)
    return 0


def _run_until_stopped(stream: LocalStream) -> None:
    """A local streaming run goes on until SIGTERM or Ctrl-C, then stops
    cleanly: what it pulled is delivered and acknowledged first."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        print("mailchimp-stream: streaming; stop with Ctrl-C or SIGTERM",
              flush=True)
        stream.run(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
