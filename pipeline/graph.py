"""build(): the pipeline graph of README's diagram, unrun, so tests can run it."""
from __future__ import annotations

import uuid
from typing import Optional

import apache_beam as beam
from apache_beam.options.pipeline_options import StandardOptions

from pipeline.cli import is_local_runner
from pipeline.options import MailchimpStreamOptions
from pipeline.outputs import WriteOutputs
from pipeline.sources import ReadRecords, ReadResult
from transforms.batching import BatchPerAudience, BatchPerSlot
from transforms.dedupe import DropDuplicates
from transforms.mailchimp.client import RetryPolicy
from transforms.mailchimp.credentials import Endpoint
from transforms.parse import ParseRecords
from transforms.rules import SendSync, SendSyncsTogether
from transforms.sink import SinkSettings, WriteToMailchimp
from transforms.sync import SyncConfig


def sink_settings(options: MailchimpStreamOptions, remote: bool) -> SinkSettings:
    return SinkSettings(
        max_connections=options.max_connections,
        timeout_s=options.request_timeout_secs,
        retry=RetryPolicy(attempts=options.max_retries + 1),
        merge_fields_refresh_s=options.merge_fields_refresh_secs,
        one_at_a_time=remote, dry_run=options.dry_run)


def build(pipeline: beam.Pipeline, config: SyncConfig, endpoint: Endpoint,
          records: Optional[beam.PTransform] = None,
          job: Optional[str] = None) -> beam.Pipeline:
    """`records`: the raw records, instead of the source the options name
    (a local streaming job's pulled messages). `job`: names what a worker
    process keeps across runs of the same job (the Mailchimp client, the
    recent ids); default: this pipeline's own."""
    options = pipeline.options.view_as(MailchimpStreamOptions)
    streaming = pipeline.options.view_as(StandardOptions).streaming
    job = job or uuid.uuid4().hex
    read = pipeline | "Read records" >> (records or ReadRecords(
        options.input_files, options.input_subscription, options.input_topic,
        options.event_time_attribute))
    if records is not None:
        read = ReadResult(read)
    parsed = read.records | "Parse records" >> ParseRecords()
    # A remote runner's state survives retries and spans workers; a local
    # runner's would hold the whole input in memory (transforms.dedupe).
    remote = not is_local_runner(pipeline.options.view_as(StandardOptions).runner)
    unique = parsed.records | "Drop duplicates" >> DropDuplicates(
        options.dedupe_window, shared_state=remote,
        window_secs=options.dedupe_window_secs, job=job)

    outcomes = {"records": parsed.records, "duplicates": unique.duplicates,
                "parse dead letters": parsed.dead_letter}
    if read.dead_letter is not None:  # files that could not be read
        outcomes["read dead letters"] = read.dead_letter
    settings = sink_settings(options, remote)
    if remote:  # one account, many machines: one set of slots for the job
        outcomes.update(unique.records | "Send every sync" >> SendSyncsTogether(
            config.enabled,
            BatchPerSlot(options.batch_size, slots=options.max_connections,
                         max_buffering_secs=options.max_buffering_secs,
                         streaming=streaming),
            WriteToMailchimp(endpoint, settings, job)))
    else:
        for sync in config.enabled:
            sent = unique.records | f"Sync {sync.name}" >> SendSync(
                sync,
                BatchPerAudience(
                    options.batch_size,
                    shards=options.shards_per_audience if streaming else 1,
                    max_buffering_secs=options.max_buffering_secs,
                    streaming=streaming),
                WriteToMailchimp(endpoint, settings, job))
            outcomes.update((f"{sync.name} {label}", pcoll)
                            for label, pcoll in sent.items())

    outcomes | "Write outputs" >> WriteOutputs(
        options.output_dir, [sync.name for sync in config.enabled],
        window_secs=options.output_window_secs if streaming else None,
        dead_letter_topic=options.dead_letter_topic,
        summary_refresh_secs=options.summary_refresh_secs if streaming else None)
    return pipeline
