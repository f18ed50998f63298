"""The lines of input files, by byte range: what each file kind is, how a
file splits, and why a file that cannot be read is unreadable.

Kinds, by name: `.zip` (an Amplitude export: a zip of `.json.gz` files, or
of plain JSON lines), `.gz` (gzipped JSON lines), anything else JSON lines.
Only plain JSON lines split into byte ranges: a gzip stream or a zip must be
read from its start. Nothing is read whole into memory: lines come off the
decompressed stream one at a time.

Each line comes with its origin, where it starts: `path:offset` (the offset
in the decompressed stream of a `.gz`), `path!member:offset` in a zip. A
bundle the runner replays reads the same origins again (see
transforms.dedupe).
"""
from __future__ import annotations

import contextlib
import dataclasses
import gzip
import io
import shutil
import tempfile
import zipfile
import zlib
from typing import BinaryIO, Iterator, Optional

from apache_beam.io.filesystem import CompressionTypes, FileMetadata
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.restriction_trackers import OffsetRange

from transforms.parse import RawRecord

# Beam's own default for splitting text files (textio.ReadAllFromText).
DESIRED_RANGE_BYTES = 64 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class FileRange:
    """The lines of `path` that start in [start, stop); stop None: the whole
    file (a compressed file or a zip, which cannot be split)."""
    path: str
    start: int = 0
    stop: Optional[int] = None


class UnreadableFile(Exception):
    """A file, or a part of it, that could not be read: says why."""


def _splittable(path: str) -> bool:
    return not path.endswith((".gz", ".zip"))


def split(metadata: FileMetadata,
          desired_bytes: int = DESIRED_RANGE_BYTES) -> Iterator[FileRange]:
    """The ranges of one matched file. Every file has at least one, so an
    empty or vanished file is still opened, and a failure reported."""
    path, size = metadata.path, metadata.size_in_bytes
    if not _splittable(path) or size <= desired_bytes:
        yield FileRange(path, 0, None if not _splittable(path) else size)
        return
    for offsets in OffsetRange(0, size).split(desired_bytes):
        yield FileRange(path, offsets.start, offsets.stop)


def read(file_range: FileRange) -> Iterator[RawRecord]:
    """The lines of a range, without their line ends, with their origins;
    raises UnreadableFile (after the lines read before the failure) when the
    file fails."""
    path = file_range.path
    try:
        with FileSystems.open(
                path, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
            if path.endswith(".zip"):
                for member, offset, line in zip_lines(stream):
                    yield RawRecord(f"{path}!{member}:{offset}", line)
                return
            lines = (gzip_lines(stream) if path.endswith(".gz") else
                     plain_lines(stream, file_range.start, file_range.stop))
            for offset, line in lines:
                yield RawRecord(f"{path}:{offset}", line)
    except UnreadableFile:
        raise
    except Exception as e:  # whatever the file system raises: the run goes on
        raise UnreadableFile(describe(e)) from e


def _without_end(line: bytes) -> bytes:
    return line.rstrip(b"\r\n")


def _lines(stream: BinaryIO, position: int = 0) -> Iterator[tuple[int, bytes]]:
    """(offset, line) of each line from `position` on."""
    for line in iter(stream.readline, b""):
        yield position, _without_end(line)
        position += len(line)


def plain_lines(stream: BinaryIO, start: int = 0, stop: Optional[int] = None
                ) -> Iterator[tuple[int, bytes]]:
    """(offset, line) of the lines that start in [start, stop), as Beam's
    TextSource splits."""
    if start:
        # The line running across `start` belongs to the range before; a line
        # starting exactly at `start` is ours (the byte before it is '\n').
        stream.seek(start - 1)
        stream.readline()
    for offset, line in _lines(stream, stream.tell()):
        if stop is not None and offset >= stop:
            return
        yield offset, line


def gzip_lines(stream: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(offset in the decompressed stream, line) of each line."""
    try:
        yield from _lines(gzip.GzipFile(fileobj=stream))
    except EOFError as e:
        raise UnreadableFile(f"truncated gzip: {e}") from e
    except gzip.BadGzipFile as e:
        raise UnreadableFile(f"not a gzip file: {e}") from e
    except zlib.error as e:
        raise UnreadableFile(f"corrupt gzip: {e}") from e


@contextlib.contextmanager
def _seekable(stream: BinaryIO) -> Iterator[BinaryIO]:
    """zipfile seeks to the directory at the end and to every member: fine
    on a local file; a remote stream (GCS, S3) would make a request per
    seek, or cannot seek at all, so it is spooled to a temporary file."""
    if isinstance(getattr(stream, "raw", None), io.FileIO) and stream.seekable():
        yield stream
        return
    with tempfile.TemporaryFile() as spool:
        shutil.copyfileobj(stream, spool)
        spool.seek(0)
        yield spool


def zip_lines(stream: BinaryIO) -> Iterator[tuple[str, int, bytes]]:
    """(member, offset, line) of every line of every member (gzipped if
    named `.gz`), members in name order, folder entries left out; each
    member streamed."""
    with _seekable(stream) as seekable:
        try:
            archive = zipfile.ZipFile(seekable)
        except zipfile.BadZipFile as e:
            raise UnreadableFile(
                "not a zip file" if str(e) == "File is not a zip file"
                else f"bad zip file: {e}") from e
        with archive:
            for info in sorted(archive.infolist(), key=lambda i: i.filename):
                if info.is_dir():
                    continue
                try:
                    with archive.open(info) as member:
                        lines = (gzip_lines(member) if info.filename.endswith(
                            ".gz") else _lines(member))
                        for offset, line in lines:
                            yield info.filename, offset, line
                except (UnreadableFile, zipfile.BadZipFile, EOFError,
                        zlib.error) as e:
                    reason = "truncated" if isinstance(e, EOFError) else e
                    raise UnreadableFile(
                        f"zip member {info.filename}: {reason}") from e


def describe(error: BaseException) -> str:
    """A short, specific reason for a failure to open or read a file."""
    if isinstance(error, IsADirectoryError):
        return "is a directory"
    if isinstance(error, FileNotFoundError):
        return "no such file (deleted since it was matched?)"
    if isinstance(error, PermissionError):
        return "permission denied"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return f"{type(error).__name__}: {error}"
