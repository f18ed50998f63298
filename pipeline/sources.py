"""ReadRecords: the raw records of one source, whatever the source.

Files: JSON lines (LF or CRLF), gzipped JSON lines and Amplitude export zips,
in any mix, each line a RawRecord: its bytes and its origin (see
pipeline.files). Pub/Sub: each message, with its attributes and message id,
timestamped by publish time or `timestamp_attribute`.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.pvalue import TaggedOutput

from pipeline import files
from transforms.records import DeadLetter

STAGE = "read"
UNREADABLE = "unreadable_file"


class ReadResult(NamedTuple):
    records: beam.PCollection
    # DeadLetters of files that could not be read; None for Pub/Sub, whose
    # messages are always readable (a bad one is dead-lettered at parsing).
    dead_letter: Optional[beam.PCollection] = None


class _ReadRangeFn(beam.DoFn):
    """A FileRange -> its RawRecords (main) and, if the file fails, what was
    read before the failure and (path, (start, why)) tagged UNREADABLE."""

    def process(self, file_range: files.FileRange):
        try:
            yield from files.read(file_range)
        except files.UnreadableFile as e:
            yield TaggedOutput(UNREADABLE, (file_range.path, (file_range.start, str(e))))


def _dead_letter(path_and_failure) -> DeadLetter:
    path, (_, why) = path_and_failure
    return DeadLetter(STAGE, UNREADABLE, f"{path}: {why}", path)


class ReadFiles(beam.PTransform):
    """FileMetadata -> ReadResult of their lines.

    As Beam's ReadAllFromText does, matched files are split into byte ranges
    (plain JSON lines only; compressed files and zips are read whole) and
    reshuffled, so that the ranges, not the single matching step, are spread
    over the workers. Our own range reader rather than ReadAllFromText: a
    file that fails must end as one dead letter naming it, and textio
    neither reads zips nor reports a failing file without failing the run.
    """

    def __init__(self, desired_range_bytes: int = files.DESIRED_RANGE_BYTES):
        super().__init__()
        self._desired_range_bytes = desired_range_bytes

    def expand(self, metadata):
        desired = self._desired_range_bytes
        read = (metadata
                | "Split into ranges" >> beam.FlatMap(files.split, desired)
                | "Spread ranges" >> beam.Reshuffle()
                | "Read ranges" >> beam.ParDo(_ReadRangeFn()).with_outputs(
                    UNREADABLE, main="records"))
        # A split file that fails may fail in every range: one dead letter
        # per file, the first range's reason.
        dead_letter = (read[UNREADABLE]
                       | "One per file" >> beam.CombinePerKey(min)
                       | "As dead letters" >> beam.Map(_dead_letter))
        return ReadResult(read.records, dead_letter)


class ReadRecords(beam.PTransform):
    """Exactly one of files (a glob), a subscription or a topic -> ReadResult."""

    def __init__(self, input_files=None, subscription=None, topic=None,
                 timestamp_attribute=None,
                 desired_range_bytes: int = files.DESIRED_RANGE_BYTES):
        super().__init__()
        self._files, self._subscription, self._topic = (
            input_files, subscription, topic)
        self._timestamp_attribute = timestamp_attribute
        self._desired_range_bytes = desired_range_bytes

    def expand(self, pbegin) -> ReadResult:
        if self._files:
            return (pbegin
                    | "Match files" >> fileio.MatchFiles(self._files)
                    | "Read files" >> ReadFiles(self._desired_range_bytes))
        return ReadResult(pbegin | "Read from Pub/Sub" >> beam.io.ReadFromPubSub(
            topic=self._topic, subscription=self._subscription,
            with_attributes=True, timestamp_attribute=self._timestamp_attribute))
