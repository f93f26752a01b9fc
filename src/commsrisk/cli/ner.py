"""`commsrisk train-ner`: train our NER for a language without a trained spaCy pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from commsrisk.cli.console import err, fail, out, table_of
from commsrisk.errors import CommsriskError


def train_ner_command(
    language: Annotated[str, typer.Option(help="Language whose templates to train on (de, es, zh, ...).")],
    output: Annotated[Path | None, typer.Option(help="Folder for the NER component; default: models/ner/LANG.")] = None,
    templates: Annotated[Path, typer.Option(help="Folder of LANG_*.jsonl templates.")] = Path(
        "data/train/ner/templates"
    ),
    epochs: Annotated[int, typer.Option(help="Passes over the filled sentences.")] = 15,
    fills: Annotated[int, typer.Option(help="Sentences made from each template (new fake values each).")] = 6,
    seed: Annotated[int, typer.Option(help="Seed for fake values, split and training.")] = 7,
) -> None:
    """Train spaCy NER (PERSON, ADDRESS, ORG, GPE) on the writers' templates of one language.

    Whole templates are held out and scored (spaCy's exact-span precision/recall/F1). The component
    is written to OUTPUT with training_report.json; nlp.ner_models.LANG points the scorer at it.
    """
    from commsrisk.training.ner import report_rows, train_ner

    target = output or Path("models/ner") / language
    try:
        with Progress(
            TextColumn(f"training NER ({language})"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.0f}"), TimeElapsedColumn(), console=err,
        ) as progress:  # fmt: skip
            task = progress.add_task("epochs", total=epochs, loss=0.0)
            report = train_ner(
                language, target, templates_dir=templates, epochs=epochs, fills=fills, seed=seed,
                progress=lambda epoch, loss: progress.update(task, completed=epoch, loss=loss),
            )  # fmt: skip
    except CommsriskError as error:
        raise fail(error) from error
    out.print(
        f"{report.templates} templates ({report.held_out_templates} held out), {report.examples} sentences, "
        f"digest {report.templates_digest}"
    )
    out.print(table_of(f"held-out templates, {language}", report_rows(report)))
    out.print(f"[green]NER written[/] to {report.output}")
