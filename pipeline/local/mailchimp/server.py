"""The HTTP/1.1 server and MailchimpEmulator, the emulator's Python API."""
from __future__ import annotations

import socket
import socketserver
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Mapping
from urllib.parse import parse_qsl, urlsplit

from pipeline.local.mailchimp.api import MarketingApi
from pipeline.local.mailchimp.faults import FaultPlan, Faults
from pipeline.local.mailchimp.credentials import Credentials
from pipeline.local.mailchimp.gateway import Conditions, Gateway
from pipeline.local.mailchimp.identity import subscriber_hash
from pipeline.local.mailchimp.inspection import Inspection
from pipeline.local.mailchimp.messages import ApiRequest, ApiResponse, Outcome
from pipeline.local.mailchimp.oauth import METADATA_PATH, OAuthMetadata
from pipeline.local.mailchimp.problems import ApiError
from pipeline.local.mailchimp.recording import RequestLog
from pipeline.local.mailchimp.seed import load_seed
from pipeline.local.mailchimp.stats import Stats

DEFAULT_API_KEY = "emulator-key-us1"
HOST = "127.0.0.1"


class _Handler(BaseHTTPRequestHandler):
    """Turns HTTP/1.1 exchanges (kept alive) into gateway calls."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle's algorithm on, the
    # body would wait for the client's delayed ACK (about 40 ms a response).
    disable_nagle_algorithm = True
    server: _Server

    def version_string(self) -> str:
        return "mailchimp-emulator"

    def setup(self) -> None:
        super().setup()
        self.server.connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.connection_closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Access logs stay off: request lines carry members' emails, and
        nothing about a request may end up next to its credentials."""

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except ValueError:
            self.close_connection = True  # the stream's framing is lost
            self._send(ApiResponse.problem(ApiError(
                400, "Bad Request", "The request body's length could not be read.")))
            return
        url = urlsplit(self.path)
        request = ApiRequest(self.command, url.path,
                             dict(parse_qsl(url.query, keep_blank_values=True)),
                             body, self.headers.get("Authorization"))
        response = self.server.gateway.handle(request)
        if response.outcome is Outcome.RESET:
            self._reset()
        elif response.outcome is Outcome.HANG_UP:
            self.close_connection = True
        elif response.outcome is Outcome.CUT:
            self._send_cut(response)
        else:
            self._send(response)

    def __getattr__(self, name: str) -> Any:
        # The base class answers a method it has no do_METHOD for with an
        # HTML 501; every method goes to the gateway instead, so that one
        # no route serves (TRACE, OPTIONS, HEAD, ...) gets Mailchimp's
        # problem+json 405 with an Allow header.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()  # the CRLF after the chunk
        while self.rfile.readline().strip():  # trailer fields, up to the blank line
            pass
        return b"".join(chunks)

    def _send(self, response: ApiResponse) -> None:
        self._send_headers(response)
        if self.command != "HEAD":  # a HEAD answer has headers only (RFC 9110 9.3.2)
            self.wfile.write(response.body)

    def _send_cut(self, response: ApiResponse) -> None:
        """The headers (Content-Length: the whole body), half the body, a
        stall, then a close: the client reads a body cut short."""
        self._send_headers(response)
        self.wfile.write(response.body[:len(response.body) // 2])
        self.wfile.flush()
        self.server.stopping.wait(response.stall_s)
        self.close_connection = True

    def _send_headers(self, response: ApiResponse) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        if response.content_type:
            self.send_header("Content-Type", response.content_type)
        if response.status != 204:  # a 204 must not carry Content-Length (RFC 9110 8.6)
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()

    def _reset(self) -> None:
        # Linger 0 makes the close send RST instead of FIN. The descriptor
        # closes once finish() lets go of rfile, before anything else is sent.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    """A thread per connection; tracks open connections so that the peak is
    known and stop() can close idle keep-alive connections."""

    daemon_threads = True
    # socketserver's default backlog of 5 drops the SYNs of a burst of new
    # connections, and clients then retry a second later.
    request_queue_size = 128

    def __init__(self, port: int, gateway: Gateway, stats: Stats,
                 stopping: threading.Event):
        self.gateway = gateway
        self.stopping = stopping  # set on shutdown: ends stalls early
        self._stats = stats
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__((HOST, port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can stall
        # for seconds where reverse DNS is missing; the name is not needed.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that go away mid-exchange are routine here (timeouts,
        benchmarks); anything else is a bug worth its traceback."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def connection_opened(self, connection: socket.socket) -> None:
        with self._open_lock:
            self._open.add(connection)
        self._stats.connections.try_raise()

    def connection_closed(self, connection: socket.socket) -> None:
        with self._open_lock:
            self._open.discard(connection)
        self._stats.connections.lower()

    def close_connections(self) -> None:
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its client


class MailchimpEmulator:
    """A local Mailchimp Marketing API v3 on 127.0.0.1, for tests, demos and
    benchmarks: Mailchimp's behaviour (auth by API key or OAuth token, the
    OAuth metadata endpoint, problem+json errors, the limit of simultaneous
    connections, member, merge field, tag, marketing permission, batch
    subscribe and event rules), plus optional latency and injected faults.

    Use as a context manager, or start() and stop().
    """

    def __init__(self, seed: Mapping[str, Any] | None = None,
                 api_key: str | None = DEFAULT_API_KEY, latency_ms: float = 0,
                 faults: Faults | None = None, max_connections: int = 10, port: int = 0,
                 record_requests: bool = False, random_seed: int = 0,
                 oauth_token: str | None = None):
        self._service = load_seed(seed)
        self._stats = Stats()
        self._log = RequestLog(record_requests)
        self._stopping = threading.Event()
        conditions = Conditions(FaultPlan(faults or Faults(), random_seed),
                                latency_ms / 1000.0, max_connections)
        credentials = Credentials(api_key, oauth_token)
        self._gateway = Gateway(MarketingApi(self._service),
                                Inspection(self._stats, self._service),
                                OAuthMetadata(credentials, lambda: self.root_url),
                                credentials, self._stats, self._log,
                                conditions, self._stopping)
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> MailchimpEmulator:
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        self._stopping.clear()
        self._server = _Server(self._port, self._gateway, self._stats, self._stopping)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.01},  # how soon stop() returns
                                        name="mailchimp-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join()
        self._server = self._thread = None

    def __enter__(self) -> MailchimpEmulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, traceback: TracebackType | None) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return self._server.server_port

    @property
    def root_url(self) -> str:
        """http://127.0.0.1:PORT: what OAuth metadata calls `api_endpoint`."""
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/3.0"

    @property
    def oauth_metadata_url(self) -> str:
        """For MAILCHIMP_OAUTH_METADATA_URL."""
        return self.root_url + METADATA_PATH

    def member(self, list_id: str, email: str) -> dict[str, Any] | None:
        """The member with this email (any case), as GET member answers."""
        return self._service.find_member(list_id, subscriber_hash(email))

    def tags(self, list_id: str, email: str) -> list[str]:
        """The names of the member's active tags, oldest first (all of
        them; GET member shows 50)."""
        return self._service.find_tags(list_id, subscriber_hash(email))

    def snapshot(self) -> dict[str, Any]:
        """Every audience's state: fields, members, tags, events."""
        return self._service.snapshot()

    def events(self, list_id: str, email: str) -> list[dict[str, Any]]:
        """The events posted for the member, oldest first, with is_syncing."""
        return self._service.find_events(list_id, subscriber_hash(email))

    @property
    def stats(self) -> dict[str, Any]:
        return self._stats.snapshot()

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The /3.0 requests received (when record_requests=True)."""
        return self._log.entries()

    def reset_stats(self) -> None:
        self._stats.reset()
