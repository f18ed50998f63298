"""Beam's import-time warnings, hidden unless asked for.

Importing Beam warns about optional packages a run here does not use
("Failed to import GCSFileSystem", "apitools not found", ...): noise on
every command, `--help` included. Set MAILCHIMP_STREAM_BEAM_LOGS=1 to see
them. Beam's warnings while the pipeline runs are always shown.
"""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator

BEAM_LOGS_ENV = "MAILCHIMP_STREAM_BEAM_LOGS"


@contextlib.contextmanager
def quiet_beam_imports() -> Iterator[None]:
    """Warnings and below are dropped while the block imports Beam."""
    if os.environ.get(BEAM_LOGS_ENV) == "1":
        yield
        return
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)
