"""The emulator's gRPC server and its start/stop lifecycle."""
from concurrent import futures
from types import TracebackType

import grpc

from pipeline.local.pubsub.broker import DEFAULT_ACK_DEADLINE_S, Broker
from pipeline.local.pubsub.service import PublisherService, SubscriberService
from pipeline.local.pubsub.stats import Stats

BIND_HOST = "127.0.0.1"


class PubSubEmulator:
    """A local Pub/Sub service for ``PUBSUB_EMULATOR_HOST``.

    ``empty_pull_wait_s`` is how long a Pull without ``return_immediately``
    waits for a message before answering empty. ``min_ack_deadline_s`` lets
    tests create subscriptions with leases shorter than the real 10 s minimum.
    ``max_workers`` bounds concurrent RPCs; each open StreamingPull holds one.
    """

    def __init__(
        self,
        port: int = 0,
        empty_pull_wait_s: float = 1.0,
        min_ack_deadline_s: int = DEFAULT_ACK_DEADLINE_S,
        max_workers: int = 32,
    ) -> None:
        self._requested_port = port
        self._empty_pull_wait_s = empty_pull_wait_s
        self._min_ack_deadline_s = min_ack_deadline_s
        self._max_workers = max_workers
        self._stats = Stats()
        self._server: grpc.Server | None = None
        self._executor: futures.ThreadPoolExecutor | None = None
        self._port: int | None = None

    def start(self) -> "PubSubEmulator":
        """Start serving on 127.0.0.1 with empty state; returns self."""
        if self._server is not None:
            raise RuntimeError("Pub/Sub emulator already started")
        broker = Broker(self._stats, self._min_ack_deadline_s)
        executor = futures.ThreadPoolExecutor(
            self._max_workers, thread_name_prefix="pubsub-emulator"
        )
        # Without this, gRPC sets SO_REUSEPORT and a second emulator on a
        # taken port would silently share it instead of failing to start.
        server = grpc.server(executor, options=[("grpc.so_reuseport", 0)])
        server.add_generic_rpc_handlers(
            (
                PublisherService(broker).handler(),
                SubscriberService(broker, self._empty_pull_wait_s).handler(),
            )
        )
        try:
            port = self._bind(server)
        except RuntimeError:
            executor.shutdown()
            raise
        server.start()
        self._server, self._executor, self._port = server, executor, port
        return self

    def stop(self, grace_s: float | None = None) -> None:
        """Stop serving, cancelling open RPCs after ``grace_s``; idempotent."""
        if self._server is None or self._executor is None:
            return
        self._server.stop(grace_s).wait()
        # gRPC leaves its thread pool running; idle workers would linger.
        self._executor.shutdown(wait=False)
        self._server = None

    def _bind(self, server: grpc.Server) -> int:
        address = f"{BIND_HOST}:{self._requested_port}"
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as error:
            raise RuntimeError(f"Cannot bind {address}: {error}") from error
        if not port:  # older grpcio reports a failed bind as port 0
            raise RuntimeError(f"Cannot bind {address}")
        return port

    @property
    def port(self) -> int:
        """The bound port (the actual one when constructed with port 0)."""
        if self._port is None:
            raise RuntimeError("Pub/Sub emulator not started")
        return self._port

    @property
    def host(self) -> str:
        """``host:port`` to put in ``PUBSUB_EMULATOR_HOST``."""
        return f"{BIND_HOST}:{self.port}"

    @property
    def stats(self) -> dict[str, int]:
        """Counters: published, delivered, acked, redelivered."""
        return self._stats.snapshot()

    def __enter__(self) -> "PubSubEmulator":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
