"""ASGI middleware for the service: refuse oversized bodies before parsing; optional API key.

Both answer before BentoML sees the request, so neither a large body nor a missing key costs a
parse or a model call.
"""

from __future__ import annotations

import hmac
import json
import os
from typing import Any

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
