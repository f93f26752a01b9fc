"""The whole training workflow on real components: base encoder, fine-tuning, NLP, MLflow store."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from commsrisk.errors import PromotionRefusedError
from commsrisk.schema import RISKS
from commsrisk.settings import Settings
from commsrisk.training.data import read_labeled_file
from commsrisk.training.finetune import FineTuneConfig
from commsrisk.training.pipeline import FINAL_MODEL, run_training
from commsrisk.training.registry import CANDIDATE_ALIAS, PRODUCTION_ALIAS, promote

pytestmark = pytest.mark.slow

SEED_CORPUS = Path(__file__).resolve().parents[2] / "data" / "seed" / "commsrisk_seed.jsonl"


def _train(settings: Settings, analyzer, store: str, out: Path, *, steps: int, lr: float, name: str):  # type: ignore[no-untyped-def]
    data = read_labeled_file(SEED_CORPUS)
    config = FineTuneConfig(
        base_model=settings.model.base_model, max_steps=steps, learning_rate=lr, batch_size=16, max_length=64
    )
    return run_training(
        data,
        config=config,
        analyzer=analyzer,
        out_dir=out,
        tracking_uri=store,
        experiment="test",
        registered_model="commsrisk-test",
        limit=700,
        progress=False,
        run_name=name,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, settings: Settings, text_analyzer, base_model_dir: Path):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("mlflow")
    store = f"sqlite:///{root / 'mlflow.db'}"
    weak = _train(settings, text_analyzer, store, root / "weak", steps=1, lr=1e-7, name="weak")
    strong = _train(settings, text_analyzer, store, root / "strong", steps=60, lr=1e-3, name="strong")
    return store, weak, strong


def test_run_logs_everything_a_reviewer_needs(trained) -> None:  # type: ignore[no-untyped-def]
    store, _, strong = trained
    mlflow.set_tracking_uri(store)
    run = mlflow.get_run(strong.run_id)
    assert run.data.params["data_digest"] == read_labeled_file(SEED_CORPUS).digest
    assert int(run.data.params["n_test"]) > 50
    for risk in RISKS:
        for metric in ("precision", "recall", "f1", "pr_auc"):
            assert f"test_{risk}_{metric}" in run.data.metrics
    assert "tfidf_logreg_test_macro_f1" in run.data.metrics and "lexicon_test_macro_f1" in run.data.metrics
    assert any(key.startswith("test_lang_en") for key in run.data.metrics)
    history = mlflow.MlflowClient().get_metric_history(strong.run_id, "train_loss")
    assert len(history) >= 1
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(strong.run_id, "evaluation")}
    assert {"evaluation/pr_curves.png", "evaluation/report.md", f"evaluation/confusion_{FINAL_MODEL}.png"} <= artifacts
    version = mlflow.MlflowClient().get_model_version_by_alias("commsrisk-test", CANDIDATE_ALIAS)
    assert str(version.version) == strong.model_version
    inputs = run.inputs.dataset_inputs
    assert inputs and inputs[0].dataset.digest == run.data.params["data_digest"]


def test_delta_is_small_and_loads_back(trained, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    from commsrisk.classifier.model import load_classifier

    _, _, strong = trained
    size = sum(p.stat().st_size for p in strong.delta_dir.rglob("*") if p.is_file())
    assert size < 8 * 1024 * 1024, f"delta is {size} bytes"
    classifier = load_classifier(str(strong.delta_dir), base_model=settings.model.base_model)
    proba = classifier.predict_proba(["Let's move this to Signal", "请把客户名单发我私人邮箱"])
    assert proba.shape == (2, len(RISKS)) and ((proba >= 0) & (proba <= 1)).all()


def test_promote_accepts_better_and_refuses_worse(trained) -> None:  # type: ignore[no-untyped-def]
    store, weak, strong = trained
    mlflow.set_tracking_uri(store)
    client = mlflow.MlflowClient()
    assert strong.evaluation(FINAL_MODEL).macro_f1 > weak.evaluation(FINAL_MODEL).macro_f1

    client.set_registered_model_alias("commsrisk-test", CANDIDATE_ALIAS, weak.model_version)
    first = promote("commsrisk-test")
    assert first.promoted and first.reason == "no production model yet"

    client.set_registered_model_alias("commsrisk-test", CANDIDATE_ALIAS, strong.model_version)
    better = promote("commsrisk-test")
    assert better.promoted and better.production_version == weak.model_version
    assert better.candidate_macro_f1 > better.production_macro_f1

    client.set_registered_model_alias("commsrisk-test", CANDIDATE_ALIAS, weak.model_version)
    with pytest.raises(PromotionRefusedError, match=r"worse than production"):
        promote("commsrisk-test")
    assert str(client.get_model_version_by_alias("commsrisk-test", PRODUCTION_ALIAS).version) == strong.model_version
