"""Local Google Cloud Pub/Sub emulator for tests and the local demo.

The gcloud emulator cannot be installed everywhere, so the project ships this
gRPC implementation of ``google.pubsub.v1``, good enough for the unmodified
``google-cloud-pubsub`` client and Beam's DirectRunner Pub/Sub I/O::

    with PubSubEmulator() as emu:
        os.environ["PUBSUB_EMULATOR_HOST"] = emu.host
        ...

Command line: ``python -m pipeline.local.pubsub_emulator --port 8085`` prints
``Pub/Sub emulator listening on 127.0.0.1:PORT`` and serves until SIGTERM or
SIGINT. The implementation lives in :mod:`pipeline.local.pubsub`.
"""
import argparse
import signal
import sys
import threading

from pipeline.local.pubsub.server import PubSubEmulator

__all__ = ["PubSubEmulator", "main"]


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8085, help="0 picks a free port")
    parser.add_argument(
        "--empty-pull-wait-s",
        type=float,
        default=1.0,
        help="how long a Pull waits for a message before answering empty",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT, then stop cleanly and return 0."""
    args = _parse_args(argv)
    stop_requested = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop_requested.set())
    with PubSubEmulator(port=args.port, empty_pull_wait_s=args.empty_pull_wait_s) as emulator:
        print(f"Pub/Sub emulator listening on {emulator.host}", flush=True)
        stop_requested.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
