"""The whole training workflow on real components: base encoder, fine-tuning, NLP, MLflow store."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from commsrisk.errors import PromotionRefusedError
from commsrisk.schema import RISKS
from commsrisk.settings import Settings
from commsrisk.training.data import LabeledData, dataset_digest, read_labeled_file
from commsrisk.training.finetune import FineTuneConfig
from commsrisk.training.pipeline import FINAL_MODEL, run_training
from commsrisk.training.registry import CANDIDATE_ALIAS, PRODUCTION_ALIAS, promote

pytestmark = pytest.mark.slow

SEED_CORPUS = Path(__file__).resolve().parents[2] / "data" / "seed" / "commsrisk_seed.jsonl"
DEV_SET = Path(__file__).resolve().parents[2] / "data" / "eval" / "ood_dev" / "dev.jsonl"


def _dev_sample() -> LabeledData:
    """A fixed 300-message sample of the dev set (the whole set is the yardstick; tests need speed)."""
    dev = read_labeled_file(DEV_SET)
    dev.frame = dev.frame.sample(n=300, random_state=0).reset_index(drop=True)
    dev.digest = dataset_digest(dev.frame)
    return dev


def _train(  # type: ignore[no-untyped-def]
    settings: Settings,
    analyzer,
    store: str,
    out: Path,
    *,
    steps: int,
    lr: float,
    name: str,
    method: str = "lora",
    stack_ngram: bool = False,
):
    data = read_labeled_file(SEED_CORPUS)
    config = FineTuneConfig(
        base_model=settings.model.base_model,
        method=method,
        max_steps=steps,
        learning_rate=lr,
        batch_size=16,
        max_length=64,
        eval_every=20,
        stack_ngram=stack_ngram,
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
        dev=_dev_sample(),
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, settings: Settings, text_analyzer, base_model_dir: Path):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("mlflow")
    store = f"sqlite:///{root / 'mlflow.db'}"
    weak = _train(settings, text_analyzer, store, root / "weak", steps=1, lr=1e-7, name="weak")
    strong = _train(settings, text_analyzer, store, root / "strong", steps=60, lr=1e-3, name="strong")
    frozen = _train(
        settings,
        text_analyzer,
        store,
        root / "frozen",
        steps=1,
        lr=0.1,
        name="frozen",
        method="frozen",
        stack_ngram=True,
    )
    return store, weak, strong, frozen


def test_run_logs_everything_a_reviewer_needs(trained) -> None:  # type: ignore[no-untyped-def]
    store, _, strong, frozen = trained
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
    assert str(version.version) == frozen.model_version  # the latest run is the candidate
    inputs = run.inputs.dataset_inputs
    assert inputs and inputs[0].dataset.digest == run.data.params["data_digest"]
    for key in ("dev_macro_f1", "dev_hard_macro_f1", "dev_lang_zh_macro_f1", "tfidf_logreg_dev_macro_f1"):
        assert key in run.data.metrics, key
    assert "select_macro_pr_auc" in run.data.metrics
    assert "evaluation/dev_scores.csv" in artifacts
    held_out = {a.path for a in mlflow.MlflowClient().list_artifacts(strong.run_id, "held_out")}
    assert held_out == {"held_out/test_ids.parquet"}  # ids and labels only: no message text in artifacts


def test_frozen_encoder_head_is_tiny_and_scores_like_in_training(trained, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    from commsrisk.classifier.model import load_classifier
    from commsrisk.explain import phrase_attributions

    _, _, _, frozen = trained
    files = {p.name: p.stat().st_size for p in frozen.delta_dir.iterdir()}
    assert "head.safetensors" in files and files["head.safetensors"] < 20_000 and "encoder" not in files
    classifier = load_classifier(str(frozen.delta_dir), base_model=settings.model.base_model)
    texts = ["Let's move this to Signal", "请把客户名单发我私人邮箱", "settlement confirmed for T+2"]
    proba = classifier.predict_proba(texts)
    assert proba.shape == (3, len(RISKS)) and len({round(float(p), 4) for p in proba[:, 2]}) == 3
    spans = phrase_attributions(classifier, "please delete this chat after reading", ["off_channel"])["off_channel"]
    assert all(0 <= s.start < s.end for s in spans)
    assert frozen.dev_evaluations and frozen.metadata["method"] == "frozen"


def test_stacked_model_scores_with_its_ngram_signal(trained, settings: Settings, text_analyzer) -> None:  # type: ignore[no-untyped-def]
    from commsrisk.errors import ConfigurationError
    from commsrisk.schema import Message
    from commsrisk.scoring import build_scorer
    from commsrisk.signals import NGRAM_SIGNAL

    _, _, _, frozen = trained
    assert NGRAM_SIGNAL in frozen.metadata["signals"] and (frozen.delta_dir / "ngram.npz").is_file()
    scorer = build_scorer(settings, classifier_location=str(frozen.delta_dir), analyzer=text_analyzer)
    assert scorer.ngram is not None
    result = scorer.score(Message(text="delete this chat after reading, call my private phone"))
    names = {s.name for r in result.risks.values() for s in r.explanation.signals}
    assert 0 <= result.risks["off_channel"].score <= 1 and names
    scorer.ngram = None  # a stacked combiner without its n-gram classifier must refuse, not guess
    with pytest.raises(ConfigurationError, match="n-gram"):
        scorer.score(Message(text="hello"))


def test_stacking_refuses_other_training_data(trained, text_analyzer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from commsrisk.errors import DataValidationError
    from commsrisk.training.stacking import stack_ngram

    _, _, strong, _ = trained
    other = read_labeled_file(SEED_CORPUS)
    other.digest = "not-the-training-data"
    with pytest.raises(DataValidationError, match="is not the data"):
        stack_ngram(strong.delta_dir, other, _dev_sample(), text_analyzer, tmp_path / "stacked")


def test_delta_is_small_and_loads_back(trained, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    from commsrisk.classifier.model import load_classifier

    _, _, strong, _ = trained
    size = sum(p.stat().st_size for p in strong.delta_dir.rglob("*") if p.is_file())
    assert size < 8 * 1024 * 1024, f"delta is {size} bytes"
    classifier = load_classifier(str(strong.delta_dir), base_model=settings.model.base_model)
    proba = classifier.predict_proba(["Let's move this to Signal", "请把客户名单发我私人邮箱"])
    assert proba.shape == (2, len(RISKS)) and ((proba >= 0) & (proba <= 1)).all()


def test_promote_accepts_better_and_refuses_worse(trained) -> None:  # type: ignore[no-untyped-def]
    """The gate compares both models on the same fixed dev messages, neither trained on them."""
    store, weak, _, frozen = trained
    mlflow.set_tracking_uri(store)
    client = mlflow.MlflowClient()
    dev = _dev_sample().frame
    weak_dev = next(ev for ev in weak.dev_evaluations if ev.name == FINAL_MODEL).macro_f1
    frozen_dev = next(ev for ev in frozen.dev_evaluations if ev.name == FINAL_MODEL).macro_f1
    assert frozen_dev > weak_dev

    client.set_registered_model_alias("commsrisk-test", CANDIDATE_ALIAS, weak.model_version)
    first = promote("commsrisk-test", dev)
    assert first.promoted and first.reason == "no production model yet"

    client.set_registered_model_alias("commsrisk-test", CANDIDATE_ALIAS, frozen.model_version)
    better = promote("commsrisk-test", dev)
    assert better.promoted and better.production_version == weak.model_version
    assert better.candidate_macro_f1 > better.production_macro_f1
    assert better.held_out_messages == len(dev)

    client.set_registered_model_alias("commsrisk-test", CANDIDATE_ALIAS, weak.model_version)
    with pytest.raises(PromotionRefusedError, match=r"worse than production"):
        promote("commsrisk-test", dev)
    assert str(client.get_model_version_by_alias("commsrisk-test", PRODUCTION_ALIAS).version) == frozen.model_version
