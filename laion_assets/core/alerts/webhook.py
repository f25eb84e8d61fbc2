"""Deliver one JSON alert to a webhook: one deadline for the whole call, every failure one error type,
the URL (a secret: Slack's webhook URLs are their own credential) never in any text.

`urllib.request` gives neither: its timeout is per socket operation (a receiver trickling a header
byte every 2 s holds it for ever), `http.client` raises `BadStatusLine`/`InvalidURL` whose text holds
the status line or the URL, and a URL without a scheme fails in `ValueError("unknown url type: <url>")`.
So this is a small HTTP/1.1 client: the URL is checked here, each socket operation gets what is left
of the deadline, the response head is capped in bytes and parsed here.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

MAX_RESPONSE_HEAD_BYTES = 16 * 1024  # status line + headers; longer -> a delivery error


class AlertDeliveryError(RuntimeError):
    """The alert did not go out; the text names the setting and the kind of failure, never the URL."""


def _fail(setting: str, why: str) -> AlertDeliveryError:
    return AlertDeliveryError(f"alert webhook ({setting}) did not accept the alert: {why}")


def parse_webhook_url(url: str, setting: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, request target) or AlertDeliveryError naming what is wrong, not the URL."""
    if not isinstance(url, str) or not url:
        raise _fail(setting, "the URL is empty")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise _fail(setting, "the URL contains a space or a control character")
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname
    except ValueError:
        raise _fail(setting, "the URL does not parse (bad host or port)") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise _fail(setting, "the URL must start with http:// or https://")
    if not host:
        raise _fail(setting, "the URL has no host")
    if port == 0:  # would silently become the scheme's default port
        raise _fail(setting, "the URL's port is 0")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, host, port or (443 if scheme == "https" else 80), target


def _remaining(deadline: float, setting: str, timeout_s: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise _fail(setting, f"no complete answer within timeout_s={timeout_s}")
    return left


def post_json(url: str, payload: dict[str, Any], *, timeout_s: float, setting: str = "webhook") -> int:
    """POST `payload`; the HTTP status (2xx) or AlertDeliveryError. The whole call, connect to last
    header byte, ends within `timeout_s` (plus one DNS lookup, which the OS bounds)."""
    scheme, host, port, target = parse_webhook_url(url, setting)
    deadline = time.monotonic() + timeout_s
    body = json.dumps(payload).encode()
    host_header = host if ":" not in host else f"[{host}]"
    head = (f"POST {target} HTTP/1.1\r\nHost: {host_header}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\nUser-Agent: laion-assets-alerts\r\n\r\n")
    sock: socket.socket | None = None
    try:
        sock = socket.create_connection((host, port), timeout=_remaining(deadline, setting, timeout_s))
        if scheme == "https":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        sock.settimeout(_remaining(deadline, setting, timeout_s))
        sock.sendall(head.encode("ascii") + body)
        status = _read_status(sock, deadline, setting, timeout_s)
    except AlertDeliveryError:
        raise
    except (OSError, ValueError, UnicodeError) as exc:  # refused, reset, TLS, timeout, bad host text
        raise _fail(setting, _kind(exc)) from None
    finally:
        if sock is not None:
            sock.close()
    if not 200 <= status < 300:
        raise _fail(setting, f"HTTP {status}")
    return status


def _kind(exc: BaseException) -> str:
    """The failure's kind without its text (socket/TLS texts may hold the host name)."""
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout"
    errno = getattr(exc, "errno", None)
    return f"{type(exc).__name__}" + (f" (errno {errno})" if isinstance(errno, int) else "")


def _read_status(sock: socket.socket, deadline: float, setting: str, timeout_s: float) -> int:
    """Read the response head (bounded in bytes and by the deadline) and return its status code."""
    buf = b""
    while b"\r\n\r\n" not in buf and b"\n\n" not in buf:
        if len(buf) > MAX_RESPONSE_HEAD_BYTES:
            raise _fail(setting, f"response head over {MAX_RESPONSE_HEAD_BYTES} bytes")
        sock.settimeout(_remaining(deadline, setting, timeout_s))
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
    if buf and b"\r\n\r\n" not in buf and b"\n\n" not in buf:  # a cut answer is no delivery: retried
        raise _fail(setting, "connection closed inside the response head")
    ends = [i for i in (buf.find(b"\r\n\r\n"), buf.find(b"\n\n")) if i >= 0]
    if ends and min(ends) > MAX_RESPONSE_HEAD_BYTES:  # the last recv may bring the end past the limit
        raise _fail(setting, f"response head over {MAX_RESPONSE_HEAD_BYTES} bytes")
    line = buf.split(b"\n", 1)[0].rstrip(b"\r")
    parts = line.split(b" ", 2)
    if (len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or len(parts[1]) != 3
            or not parts[1].isdigit()):
        raise _fail(setting, "malformed HTTP status line" if line else "connection closed without an answer")
    return int(parts[1])
