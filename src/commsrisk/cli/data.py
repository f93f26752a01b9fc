"""`commsrisk data`: build the seed corpus and the dev set, write their statistics, check labeled files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from commsrisk.cli.console import MapFile, MapPairs, column_map_or_fail, fail, out, read_labeled_or_fail
from commsrisk.errors import CommsriskError
from commsrisk.settings import Settings

data_app = typer.Typer(help="Build the seed corpus and check labeled files.", no_args_is_help=True)


@data_app.command("build")
def data_build(
    raw: Annotated[
        list[Path] | None,
        typer.Option(help="Folder of hand-written JSONL files (repeat; writers' subfolders are read)."),
    ] = None,
    output: Annotated[Path, typer.Option(help="The seed corpus to write.")] = Path("data/seed/commsrisk_seed.jsonl"),
    audit: Annotated[Path, typer.Option(help="Label audit: changes applied to the written labels.")] = Path(
        "data/raw/audit/label_audit.jsonl"
    ),
    seed: Annotated[int, typer.Option(help="Seed for PII values and augmentation.")] = 7,
    augment_share: Annotated[
        float, typer.Option(help="Augmented variants per written message with no risk label.")
    ] = 0.1,
    positive_augment_share: Annotated[
        float, typer.Option(help="Augmented variants per message with a risk label.")
    ] = 0.3,
) -> None:
    """Fill PII placeholders with valid fake values, apply the label audit, add variants, write the corpus."""
    from commsrisk.training.corpus import build_corpus, write_jsonl

    raw_dirs = raw or [Path("data/raw/written"), Path("data/raw/written_v2")]
    try:
        rows = build_corpus(
            raw_dirs,
            seed=seed,
            augment_share=augment_share,
            positive_augment_share=positive_augment_share,
            audit=audit,
        )
    except CommsriskError as error:
        raise fail(error) from error
    count = write_jsonl(rows, output)
    _print_corpus_table(rows, f"{output}: {count} messages")


@data_app.command("build-eval")
def data_build_eval(
    raw: Annotated[Path, typer.Option(help="Folder of the dev-set writers' JSONL files.")] = Path(
        "data/eval/ood_dev/raw"
    ),
    output: Annotated[Path, typer.Option(help="The dev set to write.")] = Path("data/eval/ood_dev/dev.jsonl"),
    seed: Annotated[int, typer.Option(help="Seed for PII values.")] = 11,
) -> None:
    """Build the out-of-distribution dev set (no augmentation); it is never trained on."""
    from commsrisk.training.corpus import build_eval_set, write_jsonl

    try:
        rows = build_eval_set([raw], seed=seed)
    except CommsriskError as error:
        raise fail(error) from error
    count = write_jsonl(rows, output)
    _print_corpus_table(rows, f"{output}: {count} messages")


@data_app.command("build-pii-eval")
def data_build_pii_eval(
    templates: Annotated[Path, typer.Option(help="Folder of the per-language template files.")] = Path(
        "data/eval/pii/templates"
    ),
    output: Annotated[Path, typer.Option(help="The PII evaluation set to write.")] = Path(
        "data/eval/pii/pii_eval.jsonl"
    ),
    fills: Annotated[int, typer.Option(help="Sentences made from each template (fresh values each time).")] = 3,
    seed: Annotated[int, typer.Option(help="Seed for the fake values.")] = 17,
) -> None:
    """Fill the per-language PII templates with Faker values and write the span-labeled evaluation set."""
    from commsrisk.training.corpus import write_jsonl
    from commsrisk.training.pii_eval import build_pii_eval, span_counts

    try:
        rows = build_pii_eval(templates, fills=fills, seed=seed)
    except CommsriskError as error:
        raise fail(error) from error
    count = write_jsonl(rows, output)
    counts = span_counts(rows)
    table = Table(title=f"{output}: {count} sentences, labeled spans per type")
    types = sorted({t for by_type in counts.values() for t in by_type})
    for column in ("lang", "sentences", *types):
        table.add_column(column, justify="right")
    for lang, by_type in counts.items():
        sentences = sum(1 for r in rows if r["lang"] == lang)
        table.add_row(lang, str(sentences), *(str(by_type.get(t, 0)) for t in types))
    out.print(table)


@data_app.command("report")
def data_report(
    corpus: Annotated[Path, typer.Option(help="The built training corpus.")] = Path("data/seed/commsrisk_seed.jsonl"),
    dev: Annotated[Path, typer.Option(help="The built dev set.")] = Path("data/eval/ood_dev/dev.jsonl"),
    audit: Annotated[Path, typer.Option(help="The label audit.")] = Path("data/raw/audit/label_audit.jsonl"),
    output: Annotated[Path, typer.Option(help="Where the statistics go.")] = Path("data/CORPUS_STATS.md"),
) -> None:
    """Write the data card's statistics: counts, lengths, coverage grid, label audit, style-leak check."""
    import pandas as pd

    from commsrisk.training.corpus_report import corpus_report

    frame = pd.read_json(corpus, lines=True)
    dev_frame = pd.read_json(dev, lines=True) if dev.is_file() else None
    output.write_text(corpus_report(frame, dev_frame, audit), encoding="utf-8")
    out.print(f"[green]wrote[/] {output}")


@data_app.command("check")
def data_check(
    data: Annotated[Path, typer.Argument(help="Labeled file: CSV, JSONL or Parquet.")],
    max_rejected: Annotated[float, typer.Option(help="Fail if more than this share of rows is rejected.")] = 0.2,
    map_pairs: MapPairs = None,
    map_file: MapFile = None,
) -> None:
    """Validate a labeled file and list every rejected row with its reason.

    Labels may be 1/0, true/false, yes/no, y/n or review words (escalated, false positive,
    no action); the same text with other labels is reported as a conflict on both lines.
    """
    columns_map = column_map_or_fail(map_pairs, map_file)
    labeled = read_labeled_or_fail(data, Settings.load().limits, max_rejected, columns_map)
    out.print(f"{len(labeled.frame)} of {labeled.rows_read} rows accepted (digest {labeled.digest})")


def _print_corpus_table(rows: list[dict[str, Any]], title: str) -> None:
    from commsrisk.training.corpus_report import per_language_counts

    table = Table(title=title)
    counts = per_language_counts(rows)
    for column in counts.columns:
        table.add_column(column, justify="right")
    for values in counts.itertuples(index=False):
        table.add_row(*(str(v) for v in values))
    out.print(table)
