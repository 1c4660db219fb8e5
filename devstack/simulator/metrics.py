"""The simulator's Prometheus endpoint: the process's metrics on 127.0.0.1, for Prometheus to scrape."""

from __future__ import annotations

from typing import Any

from prometheus_client import start_http_server


def serve_metrics(port: int) -> Any:
    """Serve the process's Prometheus metrics on http://127.0.0.1:<port>/metrics; return the server."""
    server, _thread = start_http_server(port, addr="127.0.0.1")
    return server
