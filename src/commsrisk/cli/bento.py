"""`commsrisk bento`: put the served models into BentoML's model store for `bentoml build`."""

from __future__ import annotations

import typer

from commsrisk.cli.console import err, fail, out
from commsrisk.errors import CommsriskError
from commsrisk.settings import Settings

bento_app = typer.Typer(help="Package the service as a Bento that serves anywhere.", no_args_is_help=True)


@bento_app.command("save-models")
def bento_save_models() -> None:
    """Save the encoder and the classifier in force to BentoML's model store, for `bentoml build`.

    The encoder is model.base_model; the classifier is production if registered, else
    models/default. They are saved as commsrisk-encoder and commsrisk-classifier, tagged by content
    digest; $BENTOML_HOME decides the store.
    """
    from commsrisk.service.bento_models import save_bento_models

    try:
        with err.status("copying the models into the BentoML model store ..."):
            saved = save_bento_models(Settings.load())
    except CommsriskError as error:
        raise fail(error) from error
    for model in saved:
        out.print(f"[green]saved[/] {model.tag} from {model.source}")
