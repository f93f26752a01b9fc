"""The whole scoring pipeline as an MLflow pyfunc model, logged from code (no pickle).

`mlflow.pyfunc.load_model("models:/commsrisk@production")` and `mlflow.pyfunc.spark_udf` run the
same Scorer as the service. Input: a DataFrame with `text` and optional message columns; output:
one row per message with the language and a score per risk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from commsrisk.schema import RISKS, Message

MESSAGE_COLUMNS = ("text", "message_id", "lang", "business_unit", "channel", "external")


class CommsriskPyfunc(mlflow.pyfunc.PythonModel):
    """Loads the Scorer from the logged classifier folder and scores DataFrames."""

    def load_context(self, context: Any) -> None:
        """Build the Scorer once per process (settings from file and environment)."""
        from commsrisk.scoring import build_scorer
        from commsrisk.settings import Settings
        from commsrisk.thresholds import BUILTIN_POLICY

        settings = Settings.load()
        classifier_dir = Path(context.artifacts["classifier"])
        # The output is scores only: no thresholds decide here (so none can be the wrong model's).
        self.scorer = build_scorer(settings, classifier_location=str(classifier_dir), policy=lambda: BUILTIN_POLICY)
        self.scorer.explain = "signals"

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Score each row; invalid rows raise, naming the row."""
        records = model_input.to_dict(orient="records")
        messages = []
        for row in records:
            fields = {k: v for k, v in row.items() if k in MESSAGE_COLUMNS and isinstance(v, (str, bool))}
            messages.append(Message(**fields))
        results = self.scorer.score_batch(messages)
        return pd.DataFrame(
            {
                "message_id": [r.message_id for r in results],
                "language": [r.language for r in results],
                **{f"score_{risk}": [r.risks[risk].score for r in results] for risk in RISKS},
            }
        )


mlflow.models.set_model(CommsriskPyfunc())
