"""Prometheus metrics and the controller's own /healthz, served on --metrics-addr.

/healthz answers 200 while the loop ticks and the engine answers, 503 otherwise,
with a JSON body saying which. The same server carries the status page
(``controller.statuspage``): it is asked first, and also guards /metrics with the
page's token when one is set.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.passes = Counter("reconcile_passes_total", "Reconcile passes run", registry=r)
        self.pass_seconds = Histogram("reconcile_pass_duration_seconds", "Duration of a reconcile pass",
                                      buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r)
        self.actions = Counter("reconcile_actions_total", "Engine actions taken", ["type"], registry=r)
        self.restarts = Counter("reconcile_restarts_total", "Restarts by service", ["service"], registry=r)
        self.health = Counter("reconcile_health_transitions_total", "Health transitions by service",
                              ["service", "to"], registry=r)
        self.engine_errors = Counter("reconcile_engine_errors_total", "Engine errors seen", registry=r)
        self.not_converged = Gauge("reconcile_services_not_converged", "Services not converged", registry=r)
        self.engine_up = Gauge("reconcile_engine_up", "1 when the Docker engine answers", registry=r)
        self.leader = Gauge("reconcile_lease_held", "1 while this controller holds the lease", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class Page(Protocol):
    def handle(self, h: BaseHTTPRequestHandler) -> bool: ...


def serve(addr: str, metrics: Metrics, health: Callable[[], dict[str, Any]], page: Page | None = None) -> ThreadingHTTPServer:
    host, _, port = addr.rpartition(":")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the name http.server dispatches GET to
            if page is not None and page.handle(self):
                return
            if self.path.startswith("/metrics"):
                body, ctype, code = metrics.render(), CONTENT_TYPE_LATEST, 200
            elif self.path.startswith("/healthz"):
                state = health()
                body = json.dumps(state).encode()
                ctype, code = "application/json", 200 if state.get("ok") else 503
            else:
                body, ctype, code = b"not found\n", "text/plain", 404
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
