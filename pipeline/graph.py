"""build(): the pipeline graph of README's diagram, unrun, so tests can run it."""
from __future__ import annotations

import apache_beam as beam

from pipeline.options import MailchimpStreamOptions
from pipeline.outputs import WriteOutputs
from pipeline.sources import ReadRecords
from transforms.batching import BatchPerAudience
from transforms.dedupe import DropDuplicates
from transforms.mailchimp.client import RetryPolicy
from transforms.mailchimp.credentials import Endpoint
from transforms.parse import ParseRecords
from transforms.rules import SendSync
from transforms.sink import SinkSettings, WriteToMailchimp
from transforms.sync import SyncConfig


def sink_settings(options: MailchimpStreamOptions) -> SinkSettings:
    return SinkSettings(
        max_connections=options.max_connections,
        timeout_s=options.request_timeout_secs,
        retry=RetryPolicy(attempts=options.max_retries + 1),
        merge_fields_refresh_s=options.merge_fields_refresh_secs)


def build(pipeline: beam.Pipeline, config: SyncConfig,
          endpoint: Endpoint) -> beam.Pipeline:
    options = pipeline.options.view_as(MailchimpStreamOptions)
    streaming = not options.input_files
    read = pipeline | "Read records" >> ReadRecords(
        options.input_files, options.input_subscription, options.input_topic,
        options.event_time_attribute)
    parsed = read.records | "Parse records" >> ParseRecords()
    unique = parsed.records | "Drop duplicates" >> DropDuplicates(
        options.dedupe_window)

    outcomes = {"records": parsed.records, "duplicates": unique.duplicates,
                "parse dead letters": parsed.dead_letter}
    if read.dead_letter is not None:  # files that could not be read
        outcomes["read dead letters"] = read.dead_letter
    for sync in config.enabled:
        sent = unique.records | f"Sync {sync.name}" >> SendSync(
            sync,
            BatchPerAudience(
                options.batch_size,
                shards=options.shards_per_audience if streaming else 1,
                max_buffering_secs=options.max_buffering_secs,
                streaming=streaming),
            WriteToMailchimp(endpoint, sink_settings(options)))
        outcomes.update((f"{sync.name} {label}", pcoll)
                        for label, pcoll in sent.items())

    outcomes | "Write outputs" >> WriteOutputs(
        options.output_dir, [sync.name for sync in config.enabled],
        window_secs=options.output_window_secs if streaming else None,
        dead_letter_topic=options.dead_letter_topic,
        summary_refresh_secs=options.summary_refresh_secs if streaming else None)
    return pipeline
