"""The command line: help, flags checked before anything runs, the runner.

Beam's PipelineOptions accepts any flag and only logs a warning about one it
does not know, so a typo (`--batch_sise 10`) would run with the default.
Here a flag must be one of ours or one of Beam's (every registered
PipelineOptions class, as Beam itself collects them), values must be in
range, and `--output_dir` must be a directory we can create: otherwise
`UsageError`, whose message says what to fix.
"""
from __future__ import annotations

import argparse
import difflib
import os
import sys
from typing import Optional

from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import (PipelineOptions,
                                                  StandardOptions,
                                                  _BeamArgumentParser)
from apache_beam.version import __version__ as BEAM_VERSION

from pipeline.beam_logs import BEAM_LOGS_ENV
from pipeline.options import MailchimpStreamOptions, problems
from transforms.mailchimp.credentials import (API_KEY_ENV, GCP_EXTRA_HINT,
                                              OAUTH_METADATA_URL_ENV,
                                              OAUTH_TOKEN_ENV)

# The default runner: needs no download (plain DirectRunner first fetches
# Prism). A local Pub/Sub job runs on it too, as a series of bounded runs
# (pipeline/local_stream.py).
LOCAL_RUNNER = "FnApiRunner"
HELP_FLAGS = ("-h", "--help")
BEAM_HELP_FLAG = "--help_beam"
BEAM_OPTIONS_DOC = (f"https://beam.apache.org/releases/pydoc/{BEAM_VERSION}/"
                    f"apache_beam.options.pipeline_options.html")


class UsageError(ValueError):
    pass


def prog() -> str:
    if os.path.basename(sys.argv[0]) == "__main__.py":
        return "python -m pipeline"
    return "mailchimp-stream"


def is_local_runner(runner: Optional[str]) -> bool:
    """Runs in this process (then we wait for it), or is submitted elsewhere.

    Names as Beam's `create_runner` resolves them: any case, with or without
    the `Runner` suffix, or a dotted path. No runner: Beam's DirectRunner.
    """
    if not runner:
        return True
    name = runner.rsplit(".", 1)[-1].lower()
    local = {n.lower() for n in StandardOptions.LOCAL_RUNNERS}
    return name in local or name + "runner" in local


# --- help ---------------------------------------------------------------------

class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each flag's default, when it has one."""

    def _get_help_string(self, action):
        if action.default in (None, False, argparse.SUPPRESS):
            return action.help
        return f"{action.help} (default: %(default)s)"


def _epilog() -> str:
    return f"""\
Every standard Beam option works too (--runner, --project, --region,
--streaming, --temp_location, --setup_file, --direct_num_workers, ...):
`{prog()} {BEAM_HELP_FLAG}` lists them. Reference:
{BEAM_OPTIONS_DOC}
Without --runner, jobs run here on {LOCAL_RUNNER}: files as one run, a
Pub/Sub source as a series of runs, each message acknowledged once its
outcome is recorded. Any runner that is not a local one (DataflowRunner, ...)
is only submitted.

`{prog()} check --sync_config PATH [--create_merge_fields]` checks that
everything the syncs need is ready in Mailchimp (see `{prog()} check --help`).

Environment:
  {API_KEY_ENV} / {OAUTH_TOKEN_ENV}  the credentials (never a flag)
  {OAUTH_METADATA_URL_ENV}  where OAuth tokens' data centre is looked up
  {BEAM_LOGS_ENV}=1  show Beam's import-time warnings
--mailchimp_api_key_secret needs the gcp extra: {GCP_EXTRA_HINT}

Exit status: 0 when the run completed, whatever was skipped or
dead-lettered; 2 with a message saying what to fix."""


def _our_help() -> str:
    parser = argparse.ArgumentParser(
        prog=prog(), add_help=False, formatter_class=_HelpFormatter,
        usage=f"{prog()} --sync_config PATH (--input_files GLOB | "
              f"--input_subscription SUBSCRIPTION | --input_topic TOPIC) "
              f"[flags] [Beam options]",
        description="Stream Amplitude-style events and users into Mailchimp "
                    "audiences (Apache Beam).",
        epilog=_epilog())
    parser.add_argument(*HELP_FLAGS, action="store_true",
                        help="show this help and exit")
    parser.add_argument(BEAM_HELP_FLAG, action="store_true",
                        help="list Beam's own options and exit")
    MailchimpStreamOptions._add_argparse_args(parser)
    return parser.format_help()


def _beam_help() -> str:
    parser = _BeamArgumentParser(
        prog=prog(), add_help=False, formatter_class=_HelpFormatter,
        usage=f"{prog()} [flags, see --help] [Beam options]",
        description=f"Beam {BEAM_VERSION}'s options, accepted by {prog()}.")
    for cls in _option_classes():
        if cls is MailchimpStreamOptions:
            continue
        # Beam's own classes, one group each; others may need the parser's
        # add_value_provider_argument, which a group lacks.
        beams = cls.__module__.startswith("apache_beam.")
        cls._add_argparse_args(
            parser.add_argument_group(cls.__name__) if beams else parser)
    return parser.format_help()


def help_for(argv: list[str]) -> Optional[str]:
    """The help text asked for, if any."""
    flags = argv[:argv.index("--")] if "--" in argv else argv
    if BEAM_HELP_FLAG in flags:
        return _beam_help()
    if any(f in HELP_FLAGS for f in flags):
        return _our_help()
    return None


# --- flags --------------------------------------------------------------------

class UsageErrorParser(_BeamArgumentParser):
    """Beam's parser, raising UsageError rather than exiting the process."""

    def error(self, message):
        raise UsageError(message)


def _option_classes() -> list[type]:
    """Every PipelineOptions class, collected as Beam's get_all_options does."""
    classes: dict[str, type] = {}
    for cls in PipelineOptions.__subclasses__():
        classes.setdefault(str(cls), cls)
    return list(classes.values())


def _check_flags_known(argv: list[str]) -> None:
    parser = UsageErrorParser(allow_abbrev=False, add_help=False)
    for cls in _option_classes():
        cls._add_argparse_args(parser)
    _, unknown = parser.parse_known_args(argv)
    if unknown:
        raise unknown_flags(unknown, parser, f"{prog()} --help")


def unknown_flags(unknown: list[str], parser: argparse.ArgumentParser,
                  help_command: str) -> UsageError:
    """Each unknown flag, with the closest known one when there is one."""
    known = [o for a in parser._actions for o in a.option_strings]
    messages = []
    for arg in unknown:
        if not arg.startswith("-"):
            if not messages:  # else: the value of the unknown flag before it
                messages.append(f"unexpected argument {arg!r}")
            continue
        flag = arg.split("=", 1)[0]
        close = difflib.get_close_matches(flag, known, n=1)
        messages.append(f"unknown flag {flag}"
                        + (f": did you mean {close[0]}?" if close else ""))
    return UsageError("; ".join(messages) + f" (all flags: {help_command})")


def _check_source(options: MailchimpStreamOptions) -> None:
    sources = [s for s in (options.input_files, options.input_subscription,
                           options.input_topic) if s]
    if len(sources) != 1:
        raise UsageError("give exactly one of --input_files, "
                         "--input_subscription, --input_topic")
    if options.input_files and not FileSystems.match(
            [options.input_files])[0].metadata_list:
        raise UsageError(f"--input_files {options.input_files} matches no file")


def _check_output_dir(output_dir: str) -> None:
    """A local directory that exists or can be created, and is writable.
    Other file systems (gs://...) are the runner's to check."""
    if FileSystems.get_scheme(output_dir) is not None:
        return
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise UsageError(f"--output_dir {output_dir} is a file: give a "
                         f"directory (created if missing)")
    existing = os.path.abspath(output_dir)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError(f"--output_dir {output_dir} cannot be created: "
                         f"{existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--output_dir {output_dir}: {existing} is not "
                         f"writable")


def _switches_with_values(argv: list[str]) -> list[str]:
    """A bare `--dry_run` as `--dry_run=true`, and `--dry_run=false` left
    out: Beam's own TestOptions declares the flag with a value, parses the
    command line again on its own (its validator), where a bare switch is
    an error, and takes any value, "false" too, as true."""
    return ["--dry_run=true" if a == "--dry_run" else a for a in argv
            if a.lower() != "--dry_run=false"]


def pipeline_options(argv: list[str]) -> PipelineOptions:
    """Beam's options for these flags, with our runner defaults."""
    options = PipelineOptions(_switches_with_values(argv))
    standard = options.view_as(StandardOptions)
    if not options.view_as(MailchimpStreamOptions).input_files:
        standard.streaming = True
    if not any(a == "--runner" or a.startswith("--runner=") for a in argv):
        standard.runner = LOCAL_RUNNER
    return options


def parse(argv: list[str]) -> PipelineOptions:
    """The run's options, or UsageError saying what to fix."""
    _check_flags_known(argv)
    options = pipeline_options(argv)
    ours = options.view_as(MailchimpStreamOptions)
    found = problems(ours)
    if found:
        raise UsageError("; ".join(found))
    if not ours.sync_config:
        raise UsageError("--sync_config is required")
    _check_source(ours)
    _check_output_dir(ours.output_dir)
    if ours.dry_run and not is_local_runner(options.view_as(StandardOptions).runner):
        raise UsageError("--dry_run runs on a local runner only: a remote "
                         "runner reads it as Beam's own --dry_run and submits "
                         "nothing")
    if (not ours.input_files and is_local_runner(options.view_as(StandardOptions).runner)
            and FileSystems.get_scheme(ours.output_dir) is not None):
        raise UsageError(f"--output_dir {ours.output_dir}: a local streaming "
                         f"job appends to its files, so give a local directory")
    return options
