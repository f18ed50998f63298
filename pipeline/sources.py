"""ReadRecords: the raw records of one source, as bytes, whatever the source.

Files: JSON lines, gzipped JSON lines and Amplitude export zips (a zip of
gzipped JSON-lines files), in any mix, as bytes. Pub/Sub: each message, with
its attributes, timestamped by publish time or `timestamp_attribute`.
"""
from __future__ import annotations

import gzip
import io
import zipfile
from typing import Iterator

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes


def _lines(stream) -> Iterator[bytes]:
    for line in stream:
        yield line.rstrip(b"\r\n")


def read_file(readable: fileio.ReadableFile) -> Iterator[bytes]:
    """Every line of a .jsonl, .gz or Amplitude export .zip file."""
    path = readable.metadata.path
    if path.endswith(".zip"):
        # zipfile needs to seek, which a remote file system stream may not.
        with readable.open(compression_type=CompressionTypes.UNCOMPRESSED) as f:
            archive = zipfile.ZipFile(io.BytesIO(f.read()))
        for name in sorted(archive.namelist()):
            if name.endswith("/"):
                continue
            with archive.open(name) as member:
                stream = gzip.GzipFile(fileobj=member) if name.endswith(
                    ".gz") else member
                yield from _lines(stream)
        return
    with readable.open() as f:  # .gz decompressed by extension
        yield from _lines(f)


class ReadRecords(beam.PTransform):
    """Exactly one of files (a glob), a subscription or a topic."""

    def __init__(self, input_files=None, subscription=None, topic=None,
                 timestamp_attribute=None):
        super().__init__()
        self._files, self._subscription, self._topic = (
            input_files, subscription, topic)
        self._timestamp_attribute = timestamp_attribute

    def expand(self, pbegin):
        if self._files:
            return (pbegin
                    | "Match files" >> fileio.MatchFiles(self._files)
                    | "Open files" >> fileio.ReadMatches()
                    | "Read lines" >> beam.FlatMap(read_file))
        return pbegin | "Read from Pub/Sub" >> beam.io.ReadFromPubSub(
            topic=self._topic, subscription=self._subscription,
            with_attributes=True, timestamp_attribute=self._timestamp_attribute)
