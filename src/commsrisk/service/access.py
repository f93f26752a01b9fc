"""Who may call what: API keys with scopes and business units, hashed at rest.

A key file (settings `service.api_keys_file`, written by `commsrisk keys add`) lists keys by their
SHA-256 only, so reading the file never reveals a key. `COMMSRISK_API_KEY` adds one key from the
environment with the scopes of `service.env_key_scopes`. With no key at all the service is open,
which `commsrisk serve` allows on a loopback address only.

Routes need a scope (ROUTE_SCOPES); inside a request, `show_pii_values` needs `pii:reveal` and a
key restricted to business units may score only those.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from commsrisk.errors import ConfigurationError
from commsrisk.schema import ApiScope
from commsrisk.settings import ServiceSettings

logger = logging.getLogger(__name__)
API_KEY_ENV = "COMMSRISK_API_KEY"
RELOAD_CHECK_S = 1.0
SCOPES: tuple[str, ...] = get_args(ApiScope)
PROBES = frozenset({"/healthz", "/livez", "/readyz"})
"""Always open: an orchestrator's probes carry no key."""
DOC_PATHS = frozenset({"/", "/docs", "/docs.json", "/schema.json"})
NO_KEYS_OFF_LOOPBACK = (
    "no API keys are configured, so this service answers on a loopback address only; add keys with "
    "'commsrisk keys add' and set service.api_keys_file (COMMSRISK_SERVICE__API_KEYS_FILE)"
)
ROUTE_SCOPES: dict[str, ApiScope] = {
    "/score": "score",
    "/score_batch": "score",
    "/model": "score",
    "/feedback": "feedback",
    "/feedback_batch": "feedback",
    "/thresholds": "thresholds:read",
    "/metrics": "admin",
}
"""The scope each API route needs; a path not listed (docs aside) needs admin."""


class ApiKey(BaseModel):
    """One key as stored: its name, its SHA-256, what it may do and for which business units."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(..., min_length=1, max_length=64, description="Who holds the key; logged as the caller.")
    sha256: str = Field(..., pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the key, hex.")
    scopes: frozenset[ApiScope] = Field(..., min_length=1)
    business_units: frozenset[str] | None = Field(
        None, description="Units this key may score for; unset: any unit the policy accepts."
    )

    def allows(self, scope: str) -> bool:
        """Whether the key has `scope` (admin covers every scope but pii:reveal; ANY_KEY: any key)."""
        return scope in (self.scopes | {ANY_KEY}) or (scope != "pii:reveal" and "admin" in self.scopes)

    def allows_unit(self, business_unit: str | None) -> bool:
        """Whether the key may score messages of `business_unit` (a message without one is allowed)."""
        return self.business_units is None or business_unit is None or business_unit in self.business_units


class KeyFile(BaseModel):
    """The key file's content."""

    model_config = ConfigDict(extra="forbid")

    keys: list[ApiKey] = Field(default_factory=list)


def hash_key(key: str) -> str:
    """The SHA-256 (hex) that identifies a key at rest."""
    return hashlib.sha256(key.encode()).hexdigest()


class KeyRing:
    """The keys the service accepts; `match` finds the key a request carries.

    The key file is re-read when it changes (checked at most once a second), so a key added or
    revoked with `commsrisk keys` counts at once; a file that no longer validates keeps the last
    good keys and logs an error.
    """

    def __init__(self, keys: list[ApiKey], path: Path | None = None, env_key: ApiKey | None = None) -> None:
        self.path = path
        self.env_key = env_key
        self.keys = [*keys, *([env_key] if env_key else [])]
        self._stamp = _stamp(path)
        self._checked = time.monotonic()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, settings: ServiceSettings, environ: Mapping[str, str] | None = None) -> KeyRing:
        """Keys from `settings.api_keys_file` and COMMSRISK_API_KEY.

        Raises:
            ConfigurationError: the key file is missing or invalid (its path and the rule named).
        """
        env = os.environ if environ is None else environ
        keys = read_key_file(settings.api_keys_file) if settings.api_keys_file else []
        raw = env.get(API_KEY_ENV)
        env_key = ApiKey(name="env", sha256=hash_key(raw), scopes=frozenset(settings.env_key_scopes)) if raw else None
        return cls(keys, settings.api_keys_file, env_key)

    @property
    def enabled(self) -> bool:
        """Whether any key is configured (else every route is open)."""
        return bool(self.keys) or self.path is not None

    def match(self, given: str) -> ApiKey | None:
        """The key whose hash matches `given`, compared in constant time."""
        self._refresh()
        digest = hash_key(given)
        found = None
        for key in self.keys:
            if hmac.compare_digest(digest, key.sha256):
                found = key
        return found

    def _refresh(self) -> None:
        if self.path is None or time.monotonic() - self._checked < RELOAD_CHECK_S:
            return
        with self._lock:
            self._checked = time.monotonic()
            stamp = _stamp(self.path)
            if stamp == self._stamp:
                return
            self._stamp = stamp
            try:
                keys = read_key_file(self.path)
            except ConfigurationError as error:
                logger.error("API key file changed but is invalid; keeping the last good keys: %s", error)
                return
            self.keys = [*keys, *([self.env_key] if self.env_key else [])]
            logger.info("API keys reloaded", extra={"keys": len(self.keys)})


def _stamp(path: Path | None) -> tuple[int, int] | None:
    try:
        stat = Path(path).stat() if path else None
    except FileNotFoundError:
        return None
    return (stat.st_mtime_ns, stat.st_size) if stat else None


def read_key_file(path: Path) -> list[ApiKey]:
    """The keys in a key file.

    Raises:
        ConfigurationError: the file is missing, not YAML, or breaks the schema.
    """
    try:
        payload = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        return KeyFile.model_validate(payload).keys
    except FileNotFoundError as error:
        raise ConfigurationError(f"API key file {path} does not exist (service.api_keys_file)") from error
    except (yaml.YAMLError, ValidationError) as error:
        raise ConfigurationError(f"API key file {path} is invalid: {error}") from error


def add_key(path: Path, name: str, scopes: list[ApiScope], business_units: list[str] | None = None) -> str:
    """Create a key, store its hash in `path` (created if needed, readable by its owner only); return the key.

    The key itself is returned once and never stored.

    Raises:
        ConfigurationError: a key of that name exists, or the file is invalid.
    """
    existing = read_key_file(path) if Path(path).is_file() else []
    if any(key.name == name for key in existing):
        raise ConfigurationError(f"a key named '{name}' is already in {path}; pick another name or revoke it")
    key = f"cr_{secrets.token_urlsafe(32)}"
    record = ApiKey(
        name=name,
        sha256=hash_key(key),
        scopes=frozenset(scopes),
        business_units=frozenset(business_units) if business_units else None,
    )
    write_key_file(path, [*existing, record])
    return key


def revoke_key(path: Path, name: str) -> None:
    """Remove the key called `name` from `path`.

    Raises:
        ConfigurationError: no such key.
    """
    keys = read_key_file(path)
    if not any(key.name == name for key in keys):
        raise ConfigurationError(f"no key named '{name}' in {path}; known: {[k.name for k in keys]}")
    write_key_file(path, [key for key in keys if key.name != name])


def write_key_file(path: Path, keys: list[ApiKey]) -> None:
    """Write `keys` atomically, owner read/write only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "keys": [
            {
                "name": key.name,
                "sha256": key.sha256,
                "scopes": sorted(key.scopes),
                **({"business_units": sorted(key.business_units)} if key.business_units else {}),
            }
            for key in keys
        ]
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(yaml.safe_dump(payload, sort_keys=False), encoding="utf-8")
    tmp.chmod(0o600)
    os.replace(tmp, path)


ANY_KEY = "any key"
"""What a closed docs page needs: any valid key, whatever its scopes."""


def required_scope(path: str, settings: ServiceSettings) -> str | None:
    """The scope a request to `path` needs (an ApiScope or ANY_KEY); None for open paths.

    Probes are always open; the docs and /metrics are open when the settings say so.
    """
    if path in PROBES:
        return None
    if path in DOC_PATHS or path.startswith("/static_content/"):
        return None if settings.open_docs else ANY_KEY
    if path == "/metrics" and settings.open_metrics:
        return None
    return ROUTE_SCOPES.get(path, "admin")


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address or localhost (binding anything else exposes the service)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
