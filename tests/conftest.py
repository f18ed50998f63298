"""Fixtures: the local Mailchimp emulator and ../shared's reference data."""
from __future__ import annotations

import json
import pytest

from pipeline.local.mailchimp_emulator import MailchimpEmulator
from tests.helpers import API_KEY, OPENAPI, SEED


@pytest.fixture
def emulator():
    with MailchimpEmulator(seed=json.loads(json.dumps(SEED)), api_key=API_KEY,
                           record_requests=True) as emu:
        yield emu


@pytest.fixture
def openapi() -> dict:
    if not OPENAPI.is_file():
        pytest.skip(f"{OPENAPI} is not here: this checkout has no ../shared "
                    f"beside the project root")
    return json.loads(OPENAPI.read_text())
