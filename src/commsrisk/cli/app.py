"""The commsrisk command line: one Typer app, one module per command group.

Every command's --help is its reference. Output for machines is JSON Lines on stdout; tables and
progress for people go to the terminal (stderr for progress). Each command is a thin layer over
the library: read options, call one library function, print.
"""

from __future__ import annotations

from typing import Annotated

import typer

from commsrisk.cli.archive import score_archive_command
from commsrisk.cli.base_model import base_model_app
from commsrisk.cli.bento import bento_app
from commsrisk.cli.console import setup_logging
from commsrisk.cli.data import data_app
from commsrisk.cli.evaluate import evaluate
from commsrisk.cli.keys import keys_app
from commsrisk.cli.model import model_app
from commsrisk.cli.ner import train_ner_command
from commsrisk.cli.reviews import reviews_app
from commsrisk.cli.score import score
from commsrisk.cli.serve import serve
from commsrisk.cli.thresholds import thresholds_app
from commsrisk.cli.train import promote, stack_ngram_command, train
from commsrisk.cli.tuning import thresholds_tune  # noqa: F401 (registers `thresholds tune`)

app = typer.Typer(
    help="Score workplace messages for leakage, misconduct and off-channel risk; train and promote the model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(base_model_app, name="base-model")
app.add_typer(bento_app, name="bento")
app.add_typer(data_app, name="data")
app.add_typer(keys_app, name="keys")
app.add_typer(thresholds_app, name="thresholds")
app.add_typer(model_app, name="model")
app.add_typer(reviews_app, name="reviews")
app.command()(train)
app.command("stack-ngram")(stack_ngram_command)
app.command("train-ner")(train_ner_command)
app.command()(evaluate)
app.command()(promote)
app.command()(score)
app.command("score-archive")(score_archive_command)
app.command()(serve)


@app.callback()
def main(
    log_level: Annotated[str, typer.Option(help="Logging level (logs carry ids and counts, never text).")] = "WARNING",
) -> None:
    """commsrisk: compliance risk scoring with evidence."""
    setup_logging(log_level)


def main_entry() -> None:
    """Console-script entry point."""
    app()
