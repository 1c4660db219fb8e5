"""Loopback checks shared by the embedded servers' start-up."""

from __future__ import annotations

import socket


def port_taken(port: int, host: str = "127.0.0.1") -> bool:
    """Tells whether something already listens on a TCP port of this machine."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
