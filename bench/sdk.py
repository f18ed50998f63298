"""The baseline: what a user without mailchimp-stream does, posting with the
official `mailchimp-marketing` SDK in a loop, one call after another.

The SDK is installed for the benchmark only (`pip install
mailchimp-marketing` into this interpreter's environment when missing); it
is not a dependency of the project.
"""
from __future__ import annotations

import hashlib
import importlib
import subprocess
import sys
import time
from typing import Callable, Iterable

from bench.common import API_KEY

PACKAGE = "mailchimp-marketing"


def client(base_url: str):
    """An SDK client pointed at the emulator.

    The SDK builds each URL from `ApiClient.host` (its `Configuration.host`
    is never read), replacing "server" with the data centre: setting the
    host to the emulator's base URL sends every call there, with Basic auth
    carrying the key, as against Mailchimp.
    """
    try:
        mailchimp_marketing = importlib.import_module("mailchimp_marketing")
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                        PACKAGE], check=True, timeout=600)
        importlib.invalidate_caches()
        mailchimp_marketing = importlib.import_module("mailchimp_marketing")
    sdk = mailchimp_marketing.Client()
    sdk.set_config({"api_key": API_KEY, "server": "us1"})
    sdk.api_client.host = base_url
    return sdk


def subscriber_hash(email: str) -> str:
    return hashlib.md5(email.lower().encode()).hexdigest()


def timed_loop(calls: Iterable[Callable[[], object]]) -> tuple[int, float]:
    """Make the calls one after another: (how many, seconds)."""
    started = time.perf_counter()
    done = 0
    for call in calls:
        call()
        done += 1
    return done, time.perf_counter() - started
