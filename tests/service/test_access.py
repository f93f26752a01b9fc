"""API keys at rest and the access rules, on real key files (the HTTP side: test_security.py)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from commsrisk.errors import ConfigurationError
from commsrisk.service import access
from commsrisk.service.access import KeyRing, add_key, hash_key, is_loopback, required_scope, revoke_key
from commsrisk.service.middleware import AccessMiddleware
from commsrisk.settings import ServiceSettings


def test_keys_are_stored_as_hashes_and_revocation_counts_without_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(access, "RELOAD_CHECK_S", 0.0)
    path = tmp_path / "keys.yaml"
    first = add_key(path, "review-tool", ["score"])
    second = add_key(path, "ops", ["admin"], ["equities-trading"])
    assert first not in path.read_text() and hash_key(first) in path.read_text()
    ring = KeyRing.load(ServiceSettings(api_keys_file=path), environ={})
    assert ring.match(first).name == "review-tool" and ring.match(second).business_units == {"equities-trading"}
    assert ring.match("cr_guess") is None
    with pytest.raises(ConfigurationError, match="already"):
        add_key(path, "ops", ["score"])
    time.sleep(0.01)
    revoke_key(path, "review-tool")
    assert ring.match(first) is None, "a revoked key stops working at once"
    path.write_text("keys: [{name: broken}]\n")
    assert ring.match(second) is not None, "an invalid file keeps the last good keys"


def test_scopes_per_route() -> None:
    closed, open_ = ServiceSettings(), ServiceSettings(open_metrics=True, open_docs=False)
    assert required_scope("/readyz", closed) is None and required_scope("/docs", closed) is None
    assert required_scope("/metrics", closed) == "admin" and required_scope("/metrics", open_) is None
    assert required_scope("/docs.json", open_) == access.ANY_KEY
    assert (
        required_scope("/score_batch", closed) == "score" and required_scope("/thresholds", closed) == "thresholds:read"
    )
    assert required_scope("/anything-else", closed) == "admin"
    admin = access.ApiKey(name="a", sha256="0" * 64, scopes=frozenset({"admin"}))
    assert admin.allows("score") and admin.allows("thresholds:read") and not admin.allows("pii:reveal")


def test_loopback_addresses() -> None:
    assert all(is_loopback(host) for host in ("127.0.0.1", "::1", "[::1]", "localhost", "127.8.0.1"))
    assert not any(is_loopback(host) for host in ("0.0.0.0", "10.1.2.3", "example.com", "::"))


def test_without_keys_only_loopback_connections_are_served(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server bound to 0.0.0.0 with no keys refuses every connection that is not on loopback."""
    monkeypatch.delenv("COMMSRISK_API_KEY", raising=False)
    monkeypatch.delenv("COMMSRISK_SERVICE__API_KEYS_FILE", raising=False)
    reached: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:  # the BentoML app behind us
        reached.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    middleware = AccessMiddleware(app)

    def call(server: str, path: str = "/score") -> int:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        scope = {"type": "http", "path": path, "method": "POST", "headers": [], "server": (server, 3000)}
        asyncio.run(middleware(scope, receive, send))
        return int(sent[0]["status"])

    assert call("127.0.0.1") == 200 and call("::1") == 200
    assert call("10.20.30.40") == 403 and call("10.20.30.40", "/metrics") == 403
    assert call("10.20.30.40", "/readyz") == 200, "probes stay open"
    assert reached == ["/score", "/score", "/readyz"]
