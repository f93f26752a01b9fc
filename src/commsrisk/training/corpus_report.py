"""The data card's numbers, computed from the built corpus and dev set (never typed by hand).

`commsrisk data report` writes them to data/CORPUS_STATS.md: counts per writer, language and label,
lengths, registers, the coverage grid (typology x language, register x language), the label
audit, and the style-leak check.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from commsrisk.schema import RISKS
from commsrisk.training.style_leak import style_leak, style_leak_markdown, written_only

LANG_COLUMNS: tuple[str, ...] = ("en", "zh", "es", "de", "fr", "ja", "yue-en", "zh-en", "es-en", "ja-en", "other-mix")
LONG_CHARS = 300


def language_column(row: pd.Series) -> str:
    """The grid column of a message: its language, or the code-switched pair."""
    if not row.get("mixed_with"):
        return str(row["lang"])
    pair = f"{'yue' if row.get('variety') == 'yue' else row['lang']}-{row['mixed_with']}"
    return pair if pair in LANG_COLUMNS else "other-mix"


def _markdown(frame: pd.DataFrame) -> str:
    frame = frame.reset_index()
    head = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


def _grid(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    grid = pd.crosstab(frame[key], frame["grid_lang"])
    grid = grid.reindex(columns=[c for c in LANG_COLUMNS if c in grid.columns], fill_value=0)
    grid["total"] = grid.sum(axis=1)
    return grid


def _label_counts(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    table = frame.groupby(by)[list(RISKS)].sum()
    table.insert(0, "messages", frame.groupby(by).size())
    table["none"] = frame.assign(none=(frame[list(RISKS)].sum(axis=1) == 0)).groupby(by)["none"].sum()
    table["hard cases"] = frame.assign(hard=frame["hard_case"].fillna("") != "").groupby(by)["hard"].sum()
    table[f"> {LONG_CHARS} chars"] = frame.assign(long=frame["text"].str.len() > LONG_CHARS).groupby(by)["long"].sum()
    table["with PII"] = frame.assign(p=frame["pii_types"].map(lambda v: bool(v))).groupby(by)["p"].sum()
    table.loc["total"] = table.sum()
    return table.astype(int)


def describe_set(frame: pd.DataFrame, title: str) -> str:
    """Counts, lengths and the coverage grid of one set of written messages."""
    frame = frame.copy()
    frame["grid_lang"] = frame.apply(language_column, axis=1)
    frame["pii_types"] = frame["pii_types"].map(lambda v: v if isinstance(v, list) else [])
    frame["typology"] = frame["typology"].map(lambda v: v if isinstance(v, list) else [])
    typ = frame.explode("typology").dropna(subset=["typology"])
    lengths = frame["text"].str.len()
    out = [f"## {title}", ""]
    out += [
        f"{len(frame)} written messages; median {int(lengths.median())} characters, "
        f"{(lengths > LONG_CHARS).mean():.1%} longer than {LONG_CHARS}, longest {int(lengths.max())}; "
        f"{(frame['hard_case'].fillna('') != '').mean():.1%} hard cases; "
        f"{int(frame['pii_types'].map(bool).sum())} carry PII.",
        "",
        "### By writer",
        "",
        _markdown(_label_counts(frame, "writer")),
        "",
        "### By language (code-switched chats in their own columns)",
        "",
        _markdown(_label_counts(frame, "grid_lang")),
        "",
        "### Coverage grid: typology x language (written messages; a message may carry several codes)",
        "",
        _markdown(_grid(typ, "typology")),
        "",
        "### Coverage grid: register x language",
        "",
        _markdown(_grid(frame.assign(register=frame["register"].replace("", "(first wave, untagged)")), "register")),
        "",
        "### Length x label (characters)",
        "",
    ]
    bins = pd.cut(
        lengths,
        [0, 50, 150, 300, 800, 2000, 100_000],
        labels=["<=50", "51-150", "151-300", "301-800", "801-2000", ">2000"],
    )
    by_len = frame.assign(length=bins).groupby("length", observed=False)[list(RISKS)].sum()
    by_len.insert(0, "messages", frame.assign(length=bins).groupby("length", observed=False).size())
    out += [_markdown(by_len.astype(int)), ""]
    return "\n".join(out)


def per_language_counts(rows: Sequence[dict[str, object]]) -> pd.DataFrame:
    """Per language of a built set: messages, positives per risk, none, hard cases, augmented."""
    frame = pd.DataFrame(list(rows))
    out = []
    for lang, part in frame.groupby("lang"):
        out.append(
            {
                "lang": str(lang),
                "messages": len(part),
                **{risk: int(part[risk].sum()) for risk in RISKS},
                "none": int((part[list(RISKS)].sum(axis=1) == 0).sum()),
                "hard cases": int((part["hard_case"] != "").sum()),
                "augmented": int(part["origin"].str.startswith("augmented").sum()),
            }
        )
    return pd.DataFrame(out)


def audit_summary(audit: Path) -> str:
    """The label audit's changes per rule and label."""
    if not audit.is_file():
        return ""
    changes = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines() if line.strip()]
    frame = pd.DataFrame(changes)
    frame["change"] = frame["label"] + " " + frame["old"].astype(str) + "->" + frame["new"].astype(str)
    table = pd.crosstab(frame["rule"], frame["change"])
    why = frame.groupby("rule")["why"].first()
    messages = frame.groupby("rule")["message_id"].nunique()
    table.insert(0, "messages", messages)
    lines = [
        "## Label audit of the first wave (data/raw/audit/label_audit.jsonl)",
        "",
        f"{frame['message_id'].nunique()} of the first wave's written messages changed, {len(frame)} labels in all:",
        "",
        _markdown(table),
        "",
        *[f"* `{rule}`: {text}" for rule, text in why.items()],
        "",
    ]
    return "\n".join(lines)


def corpus_report(corpus: pd.DataFrame, dev: pd.DataFrame | None, audit: Path, sets: Sequence[str] = ()) -> str:
    """The whole CORPUS_STATS.md."""
    written = written_only(corpus)
    parts = [
        "# Corpus statistics (generated by `commsrisk data report`; do not edit by hand)",
        "",
        f"Training corpus: {len(corpus)} messages, of which {len(written)} written and "
        f"{len(corpus) - len(written)} augmented variants.",
        "",
        describe_set(written, "Training corpus (data/seed/commsrisk_seed.jsonl), written messages"),
        "## Style-leak check (written training messages)",
        "",
        "A gradient-boosted classifier on style alone (length, words, punctuation, casing, "
        "emoji, line breaks, question and exclamation marks, writer), 5-fold cross-validated; "
        "`tests/training/test_style_leak.py` fails if its accuracy beats the base rate by more than 0.02.",
        "",
        style_leak_markdown(style_leak(written)),
        "",
        audit_summary(audit),
    ]
    if dev is not None:
        parts.append(describe_set(dev, "Out-of-distribution dev set (data/eval/ood_dev/dev.jsonl)"))
    return "\n".join(parts) + "\n"
