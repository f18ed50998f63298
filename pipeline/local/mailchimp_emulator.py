"""Local Mailchimp Marketing API v3 emulator for tests, benchmarks and the demo.

Serves the part of the API mailchimp-stream uses (ping, lists, merge
fields, members, batch subscribe, member events, member tags, marketing
permissions) under /3.0/ on 127.0.0.1, and Mailchimp's OAuth metadata
endpoint at /oauth2/metadata, with Mailchimp's documented rules and errors,
its limit of 10 simultaneous connections per key, and optional latency and
injected faults::

    with MailchimpEmulator(seed=SEED, api_key="key-us6", latency_ms=20,
                           faults=Faults(p429=0.05, retry_after=1)) as emu:
        requests.put(f"{emu.base_url}/lists/a1b2c3d4e5/members/ada@example.com",
                     auth=("any", "key-us6"),
                     json={"email_address": "ada@example.com", "status_if_new": "subscribed"})
        emu.member("a1b2c3d4e5", "Ada@example.com")  # the member JSON, or None
        emu.stats  # max_in_flight, max_open_connections, requests, faults, ...

Where Mailchimp's real answers differ from its documentation, the emulator
answers as Mailchimp does (tests/fixtures/mailchimp_answers/): a merge tag
the audience lacks is accepted and dropped; a fake-looking address gets 400
"Invalid Resource", detail "<email> looks fake or invalid, please enter a
real email address." and no `errors` list. Fake-looking, by the emulator's
fixed rule: a "*" anywhere in the address, or a domain in
``identity.FAKE_DOMAINS`` (mailinator.com, guerrillamail.com, yopmail.com,
10minutemail.com, trashmail.com) or a subdomain of one. A method no route
serves gets a problem+json 405 with an Allow header.

Command line: ``python -m pipeline.local.mailchimp_emulator --port 8080
[--seed SEED.json] [--api-key KEY] [--oauth-token TOKEN]`` (defaults:
MAILCHIMP_API_KEY, MAILCHIMP_OAUTH_TOKEN; at least one) prints
``Mailchimp emulator listening on http://127.0.0.1:PORT/3.0/`` and serves
until SIGTERM or SIGINT. With a token, GET /oauth2/metadata
(``Authorization: OAuth TOKEN``) answers ``api_endpoint``
``http://127.0.0.1:PORT`` and the API takes ``Authorization: Bearer
TOKEN``. Unauthenticated inspection endpoints: GET /_emulator/stats, GET /_emulator/state, POST /_emulator/reset_stats.
The implementation lives in :mod:`pipeline.local.mailchimp`.
"""
import argparse
import json
import os
import signal
import sys
import threading

from pipeline.local.mailchimp.faults import KINDS, Aimed, Faults
from pipeline.local.mailchimp.server import MailchimpEmulator

__all__ = ["Aimed", "Faults", "MailchimpEmulator", "main"]

API_KEY_ENV = "MAILCHIMP_API_KEY"
OAUTH_TOKEN_ENV = "MAILCHIMP_OAUTH_TOKEN"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    parser.add_argument("--seed", help="JSON file with the audiences to start with")
    parser.add_argument("--api-key", help=f"the key to accept (default: ${API_KEY_ENV})")
    parser.add_argument("--oauth-token",
                        help=f"the OAuth access token to accept (default: ${OAUTH_TOKEN_ENV})")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="added to every /3.0 request")
    parser.add_argument("--max-connections", type=int, default=10,
                        help="requests in flight before answering 429")
    faults = parser.add_argument_group(
        "injected faults (probabilities per request; see pipeline/local/mailchimp/faults.py)")
    for flag in _PROBABILITY_FLAGS:
        faults.add_argument(flag, type=float, default=0.0)
    faults.add_argument("--retry-after", type=float, help="Retry-After seconds on 429s")
    faults.add_argument("--timeout-stall-s", type=float, default=2.0,
                        help="how long a timeout or stalled-body fault stalls before closing")
    faults.add_argument("--aim", nargs=3, action="append", default=[],
                        metavar=("KIND", "COUNT", "ROUTE"),
                        help="the first COUNT requests to ROUTE (e.g. 'POST "
                             "/3.0/lists/{list_id}') get fault KIND (one of "
                             + ", ".join(KINDS) + "); repeatable")
    return parser.parse_args(argv)


# Each flag sets the Faults field of the same name (--p429-empty: p429_empty).
_PROBABILITY_FLAGS = ("--p503", "--p429", "--p429-empty", "--p-timeout", "--p-reset",
                      "--p502-html", "--p503-html", "--p200-html", "--p200-empty",
                      "--p200-empty-object", "--p200-array",
                      "--p-cut-body", "--p-stalled-body")


def _faults(args: argparse.Namespace) -> Faults:
    probabilities = {flag[2:].replace("-", "_"): getattr(args, flag[2:].replace("-", "_"))
                     for flag in _PROBABILITY_FLAGS}
    try:
        aimed = tuple(Aimed(kind, route, int(count)) for kind, count, route in args.aim)
    except ValueError as exc:  # int("x") and Aimed's own checks
        raise ValueError(f"--aim: {exc}") from None
    return Faults(**probabilities, retry_after=args.retry_after,
                  timeout_stall_s=args.timeout_stall_s, aimed=aimed)


def _load_seed(path: str | None) -> dict | None:
    if path is None:
        return None
    with open(path, encoding="utf-8") as seed_file:
        return json.load(seed_file)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT, then stop cleanly and return 0; 2 on
    a bad command line, seed or port."""
    args = _parse_args(argv)
    api_key = args.api_key or os.environ.get(API_KEY_ENV)
    oauth_token = args.oauth_token or os.environ.get(OAUTH_TOKEN_ENV)
    if not (api_key or oauth_token):
        print(f"mailchimp_emulator: no credentials to accept: pass --api-key or "
              f"--oauth-token, or set {API_KEY_ENV} or {OAUTH_TOKEN_ENV}", file=sys.stderr)
        return 2
    stop_requested = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop_requested.set())
    try:
        faults = _faults(args)
        emulator = MailchimpEmulator(seed=_load_seed(args.seed), api_key=api_key,
                                     oauth_token=oauth_token,
                                     latency_ms=args.latency_ms, faults=faults,
                                     max_connections=args.max_connections, port=args.port)
        emulator.start()
    except (OSError, ValueError) as exc:  # JSONDecodeError is a ValueError
        print(f"mailchimp_emulator: {exc}", file=sys.stderr)
        return 2
    try:
        print(f"Mailchimp emulator listening on {emulator.base_url}/", flush=True)
        stop_requested.wait()
    finally:
        emulator.stop()
    return 0

if __name__ == "__main__":
    sys.exit(main())
