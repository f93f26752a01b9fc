"""`commsrisk score`: score messages from the command line."""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Iterator
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from commsrisk.cli.console import err, fail
from commsrisk.cli.results import print_result, write_json
from commsrisk.errors import CommsriskError
from commsrisk.schema import Explain
from commsrisk.settings import Settings

if TYPE_CHECKING:
    from commsrisk.ingest.messages import MessageLine

OUTPUT_FORMATS: tuple[str, ...] = ("auto", "json", "table")
logger = logging.getLogger(__name__)


class ExitCode(IntEnum):
    """What `commsrisk score` exits with, defined once: scripts branch on these, so a meaning never changes.

    Typer's own usage errors (an unknown option, a bad value) also exit 2, which fits FAILED.
    """

    SCORED = 0
    """Every message was scored."""
    REJECTED = 1
    """Some lines were rejected, each reported on stderr with its line and reason; the rest were scored."""
    FAILED = 2
    """Not everything was scored because of an error: a bad file or option, a model that failed to load or score."""


def score(
    source: Annotated[
        str | None,
        typer.Argument(
            help="Message text, a file (JSONL, CSV, Parquet), or '-' for stdin. A single word ending in "
            ".jsonl, .json, .csv or .parquet is taken as a file name (and fails if there is no such file)."
        ),
    ] = None,
    lang: Annotated[str | None, typer.Option(help="Language of every message (ISO 639-1); else detected.")] = None,
    business_unit: Annotated[str | None, typer.Option(help="Business unit whose thresholds decide the flags.")] = None,
    show_pii_values: Annotated[bool, typer.Option(help="Print PII and entity values instead of masking them.")] = False,
    output_format: Annotated[
        str, typer.Option("--format", help="'json' (JSON Lines), 'table', or 'auto' (table on a terminal).")
    ] = "auto",
    model: Annotated[str | None, typer.Option(help="Classifier location (folder, models:/ URI, HF id).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Messages scored per batch.")] = 128,
    explain: Annotated[
        Explain,
        typer.Option(help="'phrases': the phrases behind each flagged risk too; 'signals': the signals only (faster)."),
    ] = "phrases",
) -> None:
    """Score messages: JSON Lines out (one result per message), or a readable table on a terminal.

    Every input line is scored or reported on stderr with its line number
    and reason, never its text. A line holding invalid Unicode (a lone
    surrogate, or bytes that are not UTF-8) is rejected, not repaired.
    Results are written batch by batch: if scoring fails part-way, those
    already written stay, and stderr says how many and after which line
    nothing was scored.

    Exit codes:
      0  every message scored
      1  some lines rejected (each reported), the rest scored
      2  failed: nothing or not everything scored (a missing or unreadable
         file, bad options, a model that failed to load or to score)
    """
    from pydantic import ValidationError
    from tqdm.auto import tqdm

    from commsrisk.ingest.encoding import invalid_unicode
    from commsrisk.schema import describe_validation_error
    from commsrisk.scoring import build_scorer, score_lines

    if output_format not in OUTPUT_FORMATS:
        raise fail(ValueError(f"--format {output_format!r}: use one of {list(OUTPUT_FORMATS)}"), ExitCode.FAILED)
    bad_option = invalid_unicode({"lang": lang, "business_unit": business_unit, "model": model}, from_bytes=True)
    if bad_option:
        raise fail(ValueError(f"option {bad_option}"), ExitCode.FAILED)
    try:
        settings = Settings.load()
    except ValidationError as error:
        raise fail(ValueError(f"settings: {describe_validation_error(error)}"), ExitCode.FAILED) from error
    except CommsriskError as error:
        raise fail(error, ExitCode.FAILED) from error
    try:
        lines, total = _input_lines(source, settings)
    except CommsriskError as error:
        raise fail(error, ExitCode.FAILED) from error
    as_table = output_format == "table" or (output_format == "auto" and sys.stdout.isatty())
    try:
        with err.status("loading models ..."):
            scorer = build_scorer(settings, classifier_location=model)
    except CommsriskError as error:
        raise fail(error, ExitCode.FAILED) from error
    except Exception as error:  # an unexpected failure still ends in a line for people and exit 2
        _log_frames(error)
        raise fail(RuntimeError(f"loading the models failed ({type(error).__name__})"), ExitCode.FAILED) from error
    tracker = _LineTracker(lines)
    rejected = written = 0
    done_through = 0  # the last input line of the last batch fully scored and written
    bar = tqdm(total=total, desc="scoring", unit="msg", file=sys.stderr, disable=total == 1 or not sys.stderr.isatty())
    try:
        overrides = {"lang": lang, "business_unit": business_unit}
        for chunk in score_lines(
            scorer, tracker, batch_size=batch_size, overrides=overrides, show_values=show_pii_values, explain=explain
        ):
            for item in chunk.rejected:
                err.print(f"[yellow]line {item.line} rejected:[/] {escape(item.error or 'unreadable line')}")
            rejected += len(chunk.rejected)
            if as_table:
                for result in chunk.results:
                    print_result(result)
                    written += 1
            else:
                write_json(chunk.results)
                written += len(chunk.results)
            done_through = tracker.last_line
            bar.update(chunk.lines)
    except (Exception, KeyboardInterrupt) as error:
        bar.close()
        if isinstance(error, KeyboardInterrupt):
            why = "interrupted"
        elif isinstance(error, CommsriskError):
            why = str(error)
        else:  # its message may quote the text, so only its type is shown
            _log_frames(error)
            why = f"unexpected {type(error).__name__} while scoring"
        where = f"after line {done_through}" if done_through else "before the first line"
        raise fail(
            RuntimeError(
                f"scoring stopped {where} ({why}); {written} results written, {rejected} lines rejected; "
                f"lines after {done_through} were not scored"
            ),
            ExitCode.FAILED,
        ) from error
    bar.close()
    err.print(f"scored {written} messages" + (f", rejected {rejected} lines" if rejected else ""))
    raise typer.Exit(ExitCode.REJECTED if rejected else ExitCode.SCORED)


def _input_lines(source: str | None, settings: Settings) -> tuple[Iterator[MessageLine], int | None]:
    """The lines to score and their count when known: from stdin, a file, or the text argument.

    Raises:
        InvalidInputError: no input, a file that is missing or unreadable, or invalid text.
    """
    from pydantic import ValidationError

    from commsrisk.errors import InvalidInputError
    from commsrisk.ingest.encoding import invalid_unicode
    from commsrisk.ingest.messages import MessageLine, parse_message, read_message_file, read_message_stream
    from commsrisk.ingest.tabular import SUPPORTED_SUFFIXES
    from commsrisk.schema import describe_validation_error

    if source is None and sys.stdin.isatty():
        raise InvalidInputError("nothing to score: give a text, a file, or pipe messages on stdin")
    if source is None or source == "-":
        return read_message_stream(iter(sys.stdin.buffer), settings.limits), None
    path = Path(source)
    if path.exists() or (not any(c.isspace() for c in source) and path.suffix.lower() in SUPPORTED_SUFFIXES):
        return read_message_file(path, settings.limits), None
    problem = invalid_unicode({"text": source}, from_bytes=True)  # arguments carry bad bytes as surrogates
    if problem:
        raise InvalidInputError(f"the text argument: {problem}")
    try:
        return iter([MessageLine(1, parse_message({"text": source}, settings.limits), None)]), 1
    except ValidationError as error:
        raise InvalidInputError(describe_validation_error(error)) from error


class _LineTracker:
    """Passes input lines through and remembers the last one handed on, to say where a failed run stopped."""

    def __init__(self, lines: Iterator[MessageLine]) -> None:
        self._lines = lines
        self.last_line = 0

    def __iter__(self) -> Iterator[MessageLine]:
        for item in self._lines:
            self.last_line = item.line
            yield item


def _log_frames(error: BaseException) -> None:
    """Where an unexpected error came from, at DEBUG: frames only, as its message may quote the text."""
    logger.debug("%s at:\n%s", type(error).__name__, "".join(traceback.format_tb(error.__traceback__)))
