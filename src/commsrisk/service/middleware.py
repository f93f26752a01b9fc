"""ASGI middleware for the service: refuse oversized bodies before parsing; optional API key.

Both answer before BentoML sees the request, so neither a large body nor a missing key costs a
parse or a model call.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from typing import Any

from bentoml.exceptions import BentoMLException
from pydantic import ValidationError

from commsrisk.settings import Settings

Scope = dict[str, Any]
API_KEY_ENV = "COMMSRISK_API_KEY"
OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/metrics", "/docs", "/docs.json", "/"})
"""Paths that need no API key: probes, metrics and the API docs."""


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


class BodyTooLarge(Exception):
    """Raised inside `receive` when a streamed body passes the limit."""


class BodySizeLimitMiddleware:
    """413 for a body over `limits.max_body_bytes`, by Content-Length or while streaming."""

    def __init__(self, app: Any, max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes or Settings.load().limits.max_body_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Refuse by declared length first, else count bytes as they stream in."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _send_json(send, 413, self._error(int(declared)))
            return
        seen = 0
        started = False

        async def limited_receive() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _send_json(send, 413, self._error(seen))

    def _error(self, size: int) -> dict[str, str]:
        return {
            "error": f"request body: {size} bytes or more, over the limit of {self.max_bytes} bytes "
            "(limits.max_body_bytes); split the batch"
        }


class ApiKeyMiddleware:
    """When COMMSRISK_API_KEY is set, every API path needs it (Authorization: Bearer KEY or X-API-Key)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.key = os.environ.get(API_KEY_ENV) or None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Pass open paths and requests with the right key; answer 401 otherwise."""
        if self.key is None or scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-api-key", b"").decode("latin-1")
        auth = headers.get(b"authorization", b"").decode("latin-1")
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if given and hmac.compare_digest(given.encode(), self.key.encode()):
            await self.app(scope, receive, send)
            return
        reason = "missing API key" if not given else "wrong API key"
        await _send_json(
            send,
            401,
            {"error": f"{reason}: send the key in 'Authorization: Bearer <key>' or 'X-API-Key' ({API_KEY_ENV})"},
            [(b"www-authenticate", b"Bearer")],
        )


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
