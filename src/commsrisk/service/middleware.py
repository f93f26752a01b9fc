"""ASGI middleware for the service: body limits, API keys and scopes, bounded metrics, headers.

Each answers before BentoML sees the request, so neither a large body nor a missing key costs a
parse or a model call.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import bentoml
from bentoml.exceptions import BentoMLException
from pydantic import ValidationError

from commsrisk.service.access import (
    DOC_PATHS,
    NO_KEYS_OFF_LOOPBACK,
    PROBES,
    ROUTE_SCOPES,
    KeyRing,
    is_loopback,
    required_scope,
)
from commsrisk.settings import Settings

Scope = dict[str, Any]
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


async def _send_json(send: Any, status: int, payload: dict[str, Any], headers: list[tuple[bytes, bytes]] = []) -> None:  # noqa: B006
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodySizeLimitMiddleware:
    """413 for a body over `limits.max_body_bytes`, by Content-Length or while it streams in.

    A POST body is read here in full (up to the limit) before the app sees it, then replayed: a
    chunked body without Content-Length gets the same 413 as a declared one, and nothing past the
    limit is ever buffered.
    """

    def __init__(self, app: Any, max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes or Settings.load().limits.max_body_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Refuse by declared length first, else count bytes as they stream in."""
        if scope["type"] != "http" or scope.get("method") not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _send_json(send, 413, self._error(int(declared)))
            return
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                await _send_json(send, 413, self._error(seen), [(b"connection", b"close")])
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the client's disconnect, when it comes

        await self.app(scope, replay, send)

    def _error(self, size: int) -> dict[str, str]:
        return {
            "error": f"request body: {size} bytes or more, over the limit of {self.max_bytes} bytes "
            "(limits.max_body_bytes); split the batch"
        }


class AccessMiddleware:
    """Checks the API key and its scope for the route before BentoML parses anything.

    401 for a missing or unknown key, 403 for a key without the route's scope. The matched key is
    left in the request state (`request.state.api_key`) for the checks that need the body
    (`show_pii_values`, business units). With no key configured every route is open to
    connections on a loopback address only, however the server was bound.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.settings = Settings.load().service
        self.keyring = KeyRing.load(self.settings)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Pass open paths and requests whose key has the scope; answer 401/403 otherwise."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["api_key"] = None
        needed = required_scope(scope.get("path", ""), self.settings)
        if needed is None:
            await self.app(scope, receive, send)
            return
        if not self.keyring.enabled:
            server = scope.get("server") or ("127.0.0.1", 0)
            if is_loopback(str(server[0])):
                await self.app(scope, receive, send)
                return
            await _send_json(send, 403, {"error": NO_KEYS_OFF_LOOPBACK})
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-api-key", b"").decode("latin-1")
        auth = headers.get(b"authorization", b"").decode("latin-1")
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        key = self.keyring.match(given) if given else None
        if key is None:
            reason = "missing API key" if not given else "unknown API key"
            await _send_json(
                send,
                401,
                {"error": f"{reason}: send the key in 'Authorization: Bearer <key>' or 'X-API-Key'"},
                [(b"www-authenticate", b"Bearer")],
            )
            return
        if not key.allows(needed):
            await _send_json(
                send, 403, {"error": f"API key '{key.name}' lacks the '{needed}' scope that {scope['path']} needs"}
            )
            return
        state["api_key"] = key
        await self.app(scope, receive, send)


request_counter = bentoml.metrics.Counter(
    name="commsrisk_http_requests_total",
    documentation="HTTP requests by route (unknown paths count as 'other'), method and status.",
    labelnames=["route", "method", "status"],
)
request_latency = bentoml.metrics.Histogram(
    name="commsrisk_http_request_duration_seconds",
    documentation="HTTP request latency by route (unknown paths count as 'other').",
    labelnames=["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
)
KNOWN_ROUTES = frozenset(ROUTE_SCOPES) | PROBES | DOC_PATHS
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetricsMiddleware:
    """Counts requests and their latency with bounded labels: the routes we serve, else 'other'.

    BentoML's own request metrics label each series with the raw path, so random 404 paths grow
    /metrics without bound; the service turns those off and counts here instead.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Time the request and count it under its route once the response starts."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        route = path if path in KNOWN_ROUTES else "other"
        method = scope.get("method", "") if scope.get("method") in METHODS else "other"
        started = time.perf_counter()
        status = 500

        async def counting_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            request_counter.labels(route=route, method=method, status=str(status)).inc()
            request_latency.labels(route=route).observe(time.perf_counter() - started)


class SecurityHeadersMiddleware:
    """Every response says: scripts, styles and images from this server only; no MIME sniffing."""

    HEADERS = (
        (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    )

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Add the headers to the response start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.HEADERS]}
            await send(message)

        await self.app(scope, receive, with_headers)


class RedactClientErrors(logging.Filter):
    """Keeps message text out of BentoML's error log.

    BentoML logs every rejected request with its traceback; for a pydantic ValidationError that
    traceback's message contains the input (the message text). Client errors are logged as one
    line naming the fields instead.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite records of client errors; pass everything else unchanged."""
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ValidationError):
            fields = sorted({".".join(map(str, e["loc"])) for e in exc.errors(include_input=False)})
            record.msg = f"{record.getMessage()}: client error, {exc.error_count()} invalid field(s) {fields}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        elif isinstance(exc, BentoMLException) and exc.error_code.value < 500:
            record.msg = f"{record.getMessage()}: client error {exc.error_code.value}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def install_log_redaction() -> None:
    """Attach RedactClientErrors to the logger BentoML reports request errors on."""
    logging.getLogger("bentoml._internal.server.http_app").addFilter(RedactClientErrors())


class ValidationErrorShapeMiddleware:
    """Rewrites BentoML's 400 validation bodies to its documented error schema.

    BentoML answers a request that fails validation with `detail` as a list of pydantic error
    dicts, while its OpenAPI schema documents `detail` as a string. Clients get one readable
    string instead: "field 'message.text': text is empty ...".
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Buffer 400 JSON responses only; stream everything else through."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] | None = None
        chunks: list[bytes] = []

        async def capture(message: Any) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] == 400:
                start = message
                return
            if start is not None and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                await _send_json(send, 400, _reshape(b"".join(chunks)))
                return
            await send(message)

        await self.app(scope, receive, capture)


def _reshape(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError:
        return {"error": body.decode("utf-8", "replace")[:500]}
    if isinstance(payload, list) and payload and isinstance(payload[0], dict):
        payload = payload[0]
    if not isinstance(payload, dict):
        return {"error": str(payload)[:500]}
    detail = payload.get("detail")
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                where = ".".join(str(p) for p in item.get("loc", [])) or "body"
                parts.append(f"field '{where}': {str(item.get('msg', '')).removeprefix('Value error, ')}")
        payload["detail"] = "; ".join(parts)
    return payload


class JsonOnlyMiddleware:
    """415 for POST bodies that are not JSON (BentoML answers a malformed multipart with a 500)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Let GET, JSON and bodies without a Content-Type through."""
        if scope["type"] == "http" and scope.get("method") == "POST":
            content_type = dict(scope.get("headers") or []).get(b"content-type", b"").decode("latin-1")
            media = content_type.split(";")[0].strip().lower()
            if media and media != "application/json":
                await _send_json(
                    send, 415, {"error": f"Content-Type '{media}' is not supported; send application/json"}
                )
                return
        await self.app(scope, receive, send)
