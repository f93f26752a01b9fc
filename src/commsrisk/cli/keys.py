"""`commsrisk keys`: API keys for the service, with scopes and business units, stored as hashes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from commsrisk.cli.console import err, fail, out
from commsrisk.errors import CommsriskError, ConfigurationError
from commsrisk.schema import ApiScope
from commsrisk.settings import Settings

keys_app = typer.Typer(
    help="API keys of the HTTP service: each with scopes (score, feedback, thresholds:read, admin, pii:reveal) "
    "and optionally the business units it may score for. The key file holds SHA-256 hashes only.",
    no_args_is_help=True,
)

KeyFileOption = Annotated[
    Path | None,
    typer.Option(
        "--file", help="The key file; default: settings service.api_keys_file (COMMSRISK_SERVICE__API_KEYS_FILE)."
    ),
]


def _key_file(path: Path | None) -> Path:
    chosen = path or Settings.load().service.api_keys_file
    if chosen is None:
        raise fail(ConfigurationError("no key file: pass --file or set COMMSRISK_SERVICE__API_KEYS_FILE"))
    return chosen


@keys_app.command("add")
def keys_add(
    name: Annotated[str, typer.Argument(help="Who holds the key (a tool or team); logged as the caller.")],
    scope: Annotated[
        list[str], typer.Option("--scope", help="A scope the key gets; repeat for more (admin: all but pii:reveal).")
    ],
    business_unit: Annotated[
        list[str] | None, typer.Option("--business-unit", help="A unit the key may score for; repeat. Default: any.")
    ] = None,
    file: KeyFileOption = None,
) -> None:
    """Create a key and print it once; only its hash is stored (the file is made owner-readable only)."""
    from typing import get_args

    from commsrisk.service.access import add_key

    known = get_args(ApiScope)
    unknown = [s for s in scope if s not in known]
    if unknown:
        raise fail(ConfigurationError(f"--scope: unknown {unknown}; choose from {list(known)}"))
    path = _key_file(file)
    try:
        key = add_key(path, name, scope, business_unit)  # type: ignore[arg-type]
    except CommsriskError as error:
        raise fail(error) from error
    err.print(f"[green]added[/] key '{name}' to {path} (scopes {sorted(scope)}); it is shown once, store it now:")
    out.print(key, soft_wrap=True)


@keys_app.command("list")
def keys_list(file: KeyFileOption = None) -> None:
    """The keys in the file: name, scopes, business units (never the keys or their hashes)."""
    from commsrisk.service.access import read_key_file

    try:
        keys = read_key_file(_key_file(file))
    except CommsriskError as error:
        raise fail(error) from error
    for key in keys:
        units = ", ".join(sorted(key.business_units)) if key.business_units else "any"
        out.print(f"{key.name}\tscopes: {', '.join(sorted(key.scopes))}\tbusiness units: {units}")


@keys_app.command("revoke")
def keys_revoke(
    name: Annotated[str, typer.Argument(help="The key's name.")],
    file: KeyFileOption = None,
) -> None:
    """Remove a key; a running service stops accepting it within a second or two."""
    from commsrisk.service.access import revoke_key

    try:
        revoke_key(_key_file(file), name)
    except CommsriskError as error:
        raise fail(error) from error
    err.print(f"[green]revoked[/] key '{name}'")
