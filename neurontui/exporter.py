"""The Prometheus endpoint: `/metrics` from the Store, a landing page at `/`, optional TLS.

A private CollectorRegistry holds one StoreCollector (exporter_families.py) that builds
every family from the Store on each scrape. The HTTP server is prometheus_client's WSGI
app on a threading wsgiref server, as `start_http_server` builds it, with two changes:
request logs are dropped (they would scribble over the TUI), the TLS handshake runs
in the request's own thread, so a client that connects and stays silent (or speaks plain
HTTP) cannot stall other scrapes, and connections are bounded (read timeout, thread
count, a normal listen backlog).
"""
from __future__ import annotations

import errno
import html
import socket
import ssl
import threading
import time
from argparse import Namespace
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from .exporter_families import StoreCollector
from .exposition import Exposition
from .store import Store

HANDSHAKE_TIMEOUT_SECONDS = 10.0
# A client silent this long on one read loses its connection (plain HTTP too), so held
# sockets cannot pin threads; at most MAX_CONNECTIONS are served at once (more are closed at
# once), and the kernel queues SYNs rather than dropping them under a burst.
READ_TIMEOUT_SECONDS = 10.0
MAX_CONNECTIONS = 512
ACCEPT_ERROR_PAUSE_SECONDS = 0.1  # out of file descriptors: wait instead of spinning on accept()


class ExporterError(RuntimeError):
    """The endpoint cannot serve; str() is one line for the user."""


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - signature of the base class
        pass


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = socket.SOMAXCONN  # socketserver's 5 drops SYNs under 20 concurrent scrapers
    tls: ssl.SSLContext | None = None

    def __init__(self, *args, **kwargs) -> None:
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(*args, **kwargs)

    def get_request(self):
        try:
            return super().get_request()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                time.sleep(ACCEPT_ERROR_PAUSE_SECONDS)  # the socket stays readable: do not spin on it
            raise

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        request.settimeout(READ_TIMEOUT_SECONDS)
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def finish_request(self, request, client_address) -> None:
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(HANDSHAKE_TIMEOUT_SECONDS)
        with self.tls.wrap_socket(request, server_side=True) as secure:  # handshake here, in this thread
            secure.settimeout(READ_TIMEOUT_SECONDS)
            super().finish_request(secure, client_address)

    def handle_error(self, request, client_address) -> None:
        # Failed handshakes, plain HTTP on the TLS port and dropped clients are the client's problem.
        pass


def _landing_page(url_prefix: str) -> bytes:
    return (
        "<!doctype html><html><head><title>neurontui exporter</title></head><body>"
        "<h1>neurontui</h1><p>Prometheus metrics: "
        f'<a href="{html.escape(url_prefix)}metrics">/metrics</a></p>'
        "<p>NeuronCore series keep the names of AWS's neuron-monitor-prometheus.py; "
        "neurontui's own series start with <code>neurontui_</code>.</p></body></html>"
    ).encode()


def _app(registry: CollectorRegistry, store: Store, exposition: Exposition):
    metrics = make_wsgi_app(registry)  # what the cached exposition does not serve: ?name[]=, OPTIONS, POST
    last_failure = [""]

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            try:
                if environ.get("REQUEST_METHOD") == "GET" and "name[]" not in environ.get("QUERY_STRING", ""):
                    headers, body = exposition.response(environ.get("HTTP_ACCEPT"),
                                                        environ.get("HTTP_ACCEPT_ENCODING"))
                    start_response("200 OK", headers)
                    return [body]
                return metrics(environ, start_response)  # builds the whole body before start_response
            except Exception as exc:  # noqa: BLE001 - a bug must not print tracebacks over the TUI
                message = f"scrape failed: {type(exc).__name__}: {exc}"
                if message != last_failure[0]:
                    last_failure[0] = message
                    store.log("error", "exporter", message)
                start_response("500 Internal Server Error", [("Content-Type", "text/plain; charset=utf-8")])
                return [message.encode() + b"\n"]
        if path in ("", "/"):
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [_landing_page(environ.get("SCRIPT_NAME", "") + "/")]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: try /metrics\n"]

    return app


def _tls_context(cert: str, key: str, client_ca: str | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile=cert, keyfile=key)
    except (OSError, ssl.SSLError) as exc:
        raise ExporterError(f"cannot load TLS certificate {cert} with key {key}: {_reason(exc)}") from None
    if client_ca:
        try:
            context.load_verify_locations(cafile=client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise ExporterError(f"cannot load client CA {client_ca}: {_reason(exc)}") from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _warn_if_expired(store: Store, cert: str) -> None:
    """An expired certificate still serves, but every verifying scraper refuses it: say so at start."""
    try:
        # the stdlib's own PEM reader (no extra dependency); it loaded just above, so it decodes
        not_after = ssl._ssl._test_decode_cert(cert)["notAfter"]  # type: ignore[attr-defined]
        expired = ssl.cert_time_to_seconds(not_after) < time.time()
    except (AttributeError, KeyError, ValueError, OSError, ssl.SSLError):
        return
    if expired:
        store.log("warning", "exporter", f"TLS certificate {cert} expired on {not_after}; "
                                         "scrapers that verify it will refuse to connect")


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc) or type(exc).__name__


def _host_for_url(addr: str) -> str:
    return f"[{addr}]" if ":" in addr else addr


class Exporter:
    """A running endpoint; `close()` stops it and frees the port."""

    def __init__(self, store: Store, addr: str, port: int, aws_labels: bool = False,
                 tls: ssl.SSLContext | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = StoreCollector(store, aws_labels=aws_labels)
        self.registry.register(self.collector)
        self.exposition = Exposition(store, self.collector)  # rendered once per Store change

        class Server(_Server):
            address_family = socket.AF_INET6 if ":" in addr else socket.AF_INET

        Server.tls = tls
        where = f"{_host_for_url(addr)}:{port}"
        try:
            self._server = make_server(addr, port, _app(self.registry, store, self.exposition), Server,
                                       handler_class=_QuietHandler)
        except OSError as exc:
            self.exposition.close()
            if exc.errno == errno.EADDRINUSE:
                raise ExporterError(f"cannot serve Prometheus metrics on {where}: address already in use") from None
            raise ExporterError(f"cannot serve Prometheus metrics on {where}: {_reason(exc)}") from None
        self.addr = addr
        self.port = self._server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://{_host_for_url(addr)}:{self.port}/metrics"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="prometheus-exporter", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self.exposition.close()


def start_exporter(store: Store, args: Namespace) -> Exporter | None:
    """Serve the Store on args.prometheus_addr:args.prometheus_port; None when the port is 0."""
    port = getattr(args, "prometheus_port", 9000)
    if not port:
        return None
    addr = getattr(args, "prometheus_addr", None) or "127.0.0.1"
    cert, key = getattr(args, "tls_cert", None), getattr(args, "tls_key", None)
    client_ca = getattr(args, "tls_client_ca", None)
    if bool(cert) != bool(key):
        raise ExporterError("--tls-cert and --tls-key go together")
    if client_ca and not cert:
        raise ExporterError("--tls-client-ca needs --tls-cert and --tls-key")
    tls = _tls_context(cert, key, client_ca) if cert else None
    if cert:
        _warn_if_expired(store, cert)
    return Exporter(store, addr, port, aws_labels=bool(getattr(args, "aws_labels", False)), tls=tls)
