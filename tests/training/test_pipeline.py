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
from commsrisk.training.pipeline import BEATEN_TAG, FINAL_MODEL, run_training
from commsrisk.training.promotion import build_yardstick, model_history, promote, rollback
from commsrisk.training.registry import CANDIDATE_ALIAS, PRODUCTION_ALIAS

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
    shuffle: tuple[str, ...] = (),
    encoder_layers: int | None = None,
):
    data = read_labeled_file(SEED_CORPUS)
    if shuffle:  # a model that learned nothing true about these risks
        frame = data.frame.copy()
        for risk in shuffle:
            frame[risk] = frame[risk].sample(frac=1.0, random_state=1).to_numpy()
        data = LabeledData(frame, data.rejected, data.source, data.rows_read, dataset_digest(frame))
    config = FineTuneConfig(
        base_model=settings.model.base_model,
        method=method,
        max_steps=steps,
        learning_rate=lr,
        batch_size=16,
        max_length=64,
        eval_every=30,  # two selection scorings of the dev sample in the 60-step run (each ~20 s of CI)
        stack_ngram=stack_ngram,
        encoder_layers=encoder_layers,
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
    # a student on the base's first 3 layers: a model that learned nothing is refused whatever its size
    shuffled = _train(
        settings, text_analyzer, store, root / "shuffled", steps=1, lr=0.1, name="shuffled", method="frozen",
        shuffle=RISKS, encoder_layers=3,
    )  # fmt: skip
    one_risk = _train(
        settings, text_analyzer, store, root / "one_risk", steps=1, lr=0.1, name="one-risk", method="frozen",
        stack_ngram=True, shuffle=("off_channel",),
    )  # fmt: skip
    TRAINED_EXTRA["shuffled"], TRAINED_EXTRA["one_risk"] = shuffled, one_risk
    return store, weak, strong, frozen


TRAINED_EXTRA: dict[str, object] = {}


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
    steps = mlflow.MlflowClient().get_metric_history(strong.run_id, "train_loss_step")
    assert [m.step for m in steps] == list(range(1, 61))  # the loss of every optimiser step
    assert run.data.tags["commsrisk.git_commit"] and run.data.tags["commsrisk.data_path"].endswith(
        "commsrisk_seed.jsonl"
    )
    assert any(key.startswith("dev_unit_") for key in run.data.metrics)
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(strong.run_id, "evaluation")}
    assert {"evaluation/pr_curves.png", "evaluation/report.md", f"evaluation/confusion_{FINAL_MODEL}.png"} <= artifacts
    version = mlflow.MlflowClient().get_model_version_by_alias("commsrisk-test", CANDIDATE_ALIAS)
    assert str(version.version) == TRAINED_EXTRA["one_risk"].model_version  # type: ignore[attr-defined]  # the latest run
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
    student = TRAINED_EXTRA["shuffled"]
    assert student.metadata["encoder_layers"] == 3 and "encoder_layers" not in frozen.metadata  # type: ignore[attr-defined]
    reloaded = load_classifier(str(student.delta_dir))  # type: ignore[attr-defined]
    assert len(reloaded.model.encoder.encoder.layer) == 3  # type: ignore[union-attr]


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


def test_the_combiner_never_lets_pii_lower_a_score() -> None:
    """On a calibration split where PII is anti-correlated with leakage, every pii_ weight is still >= 0."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from commsrisk.combiner import RiskCombiner, signal_features
    from commsrisk.schema import Message, PiiFinding
    from commsrisk.signals import DEFAULT_SIGNALS, Evidence

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, size=(600, len(RISKS)))
    types = ("IBAN_CODE", "US_SSN", "EMAIL_ADDRESS", "PERSON")
    evidence = []
    for row in labels:
        # clean messages carry more PII of every group than leakage ones; misconduct has more IBANs
        rates = [3.0 - 2.5 * row[0] + 2.0 * row[1] * (t == "IBAN_CODE") for t in types]
        pii = [
            PiiFinding(entity_type=t, start=0, end=1, score=0.9, recognizer="test")
            for t, rate in zip(types, rates, strict=True)
            for _ in range(rng.poisson(rate))
        ]
        probabilities = np.clip(0.5 + 0.25 * (row - 0.5) + rng.normal(0, 0.2, len(RISKS)), 0.01, 0.99)
        evidence.append(Evidence(Message(text="x"), probabilities.tolist(), pii, "en"))
    features, names = signal_features(evidence, DEFAULT_SIGNALS)
    pii_columns = [k for k, name in enumerate(names) if name.startswith("pii_")]
    scale = features.std(axis=0)
    standardised = (features - features.mean(axis=0)) / np.where(scale > 1e-9, scale, 1.0)
    plain = LogisticRegression(C=0.5, max_iter=2000).fit(standardised, labels[:, 0]).coef_[0]
    assert (plain[pii_columns] < 0).all(), "the data must tempt an unconstrained fit into negative PII weights"

    combiner = RiskCombiner.fit(evidence, labels)
    assert len(pii_columns) == 4
    for j, risk in enumerate(RISKS):
        assert (combiner.coef[j, pii_columns] >= 0).all(), (risk, combiner.coef[j, pii_columns])
    assert combiner.coef[RISKS.index("misconduct"), names.index("pii_financial")] > 0.1  # a real effect survives
    assert combiner.coef[RISKS.index("leakage"), names.index("clf_leakage")] > 0
    contributions, _ = combiner.contributions(evidence)
    assert (contributions[:, :, pii_columns] >= 0).all()
    proba = combiner.predict_proba(evidence)
    assert ((proba > 0) & (proba < 1)).all()


def test_delta_is_small_and_loads_back(trained, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    from commsrisk.classifier.model import load_classifier

    _, _, strong, _ = trained
    size = sum(p.stat().st_size for p in strong.delta_dir.rglob("*") if p.is_file())
    assert size < 8 * 1024 * 1024, f"delta is {size} bytes"
    classifier = load_classifier(str(strong.delta_dir), base_model=settings.model.base_model)
    proba = classifier.predict_proba(["Let's move this to Signal", "请把客户名单发我私人邮箱"])
    assert proba.shape == (2, len(RISKS)) and ((proba >= 0) & (proba <= 1)).all()


def _gate_settings(settings: Settings, store: str, **gate: float) -> Settings:
    return settings.model_copy(
        update={
            "tracking": settings.tracking.model_copy(
                update={"tracking_uri": store, "registered_model": "commsrisk-test", "experiment": "test"}
            ),
            "gate": settings.gate.model_copy(update={"bootstrap": 200, **gate}),
        }
    )


def _candidate(store: str, version: str | None) -> None:
    mlflow.set_tracking_uri(store)
    mlflow.MlflowClient().set_registered_model_alias("commsrisk-test", CANDIDATE_ALIAS, str(version))


def _register_default(store: str, settings: Settings) -> str:
    """The shipped default model, registered as a version (as a team adopting it would)."""
    from commsrisk.training.registry import log_and_register_model

    mlflow.set_tracking_uri(store)
    mlflow.set_experiment("test")
    with mlflow.start_run(run_name="shipped default"):
        return log_and_register_model(Path(settings.model.default_dir), "commsrisk-test", macro_f1=0.0)


def test_the_gate_refuses_what_a_model_risk_reviewer_would(trained, settings: Settings, text_analyzer) -> None:  # type: ignore[no-untyped-def]
    """One yardstick (dev messages neither model saw), every risk checked, every move recorded."""
    store, weak, _, frozen = trained
    shuffled, one_risk = TRAINED_EXTRA["shuffled"], TRAINED_EXTRA["one_risk"]
    yardstick = build_yardstick([_dev_sample()])
    strict = _gate_settings(settings, store)
    client = mlflow.MlflowClient()

    # A model a baseline beats is tagged at training time and never promoted.
    assert weak.warnings and "baseline" in weak.warnings[0]
    _candidate(store, weak.model_version)
    with pytest.raises(PromotionRefusedError, match="baseline .* beats the model"):
        promote(strict, yardstick, analyzer=text_analyzer, author="tester")

    # The rules below are about the gate's own figures: a tiny test model may also be beaten by a
    # baseline, so that tag is lifted here as a reviewer with the authority to override it would.
    for model in (frozen, shuffled, one_risk):
        client.delete_model_version_tag("commsrisk-test", str(model.model_version), BEATEN_TAG)  # type: ignore[attr-defined]

    # The first promotion is gated against the shipped default, which a 700-message model does not beat.
    _candidate(store, frozen.model_version)
    with pytest.raises(PromotionRefusedError, match=r"off_channel F1 .* production stays default"):
        promote(strict, yardstick, analyzer=text_analyzer, author="tester")
    # The default itself, registered, ties with the default and passes: no risk is worse.
    default_version = _register_default(store, settings)
    _candidate(store, default_version)
    first = promote(strict, yardstick, analyzer=text_analyzer, author="tester", reason="adopt the shipped model")
    assert first.production_version == "default" and "the shipped default" in first.report.markdown()
    assert first.report.candidate_macro_f1 == pytest.approx(first.report.production_macro_f1)
    assert len(first.report.risks) == len(RISKS) and first.report.messages == len(yardstick.frame)
    low, high = first.report.macro_delta_interval
    assert low <= 0.0 <= high
    assert str(client.get_model_version_by_alias("commsrisk-test", PRODUCTION_ALIAS).version) == default_version

    # Shuffled labels, and a model worse on one risk, are refused against production.
    _candidate(store, shuffled.model_version)  # type: ignore[attr-defined]
    with pytest.raises(PromotionRefusedError, match="macro-F1"):
        promote(strict, yardstick, analyzer=text_analyzer, author="tester")
    _candidate(store, one_risk.model_version)  # type: ignore[attr-defined]
    with pytest.raises(PromotionRefusedError, match="off_channel (F1|PR-AUC)"):
        promote(strict, yardstick, analyzer=text_analyzer, author="tester")
    assert str(client.get_model_version_by_alias("commsrisk-test", PRODUCTION_ALIAS).version) == default_version

    # A yardstick that the models trained on is refused before any figure is compared.
    seen = read_labeled_file(SEED_CORPUS)
    with pytest.raises(PromotionRefusedError, match="yardstick changed"):
        promote(strict, build_yardstick([seen]), analyzer=text_analyzer, author="tester")
    with pytest.raises(PromotionRefusedError, match="are in the training data"):
        promote(strict, build_yardstick([seen]), analyzer=text_analyzer, author="tester", new_yardstick=True)

    moves = model_history(strict)
    assert [(m.action, m.to_version) for m in moves[:3]] == [
        ("refuse", weak.model_version), ("refuse", frozen.model_version), ("promote", default_version)
    ]  # fmt: skip
    assert all(m.author == "tester" for m in moves) and moves[2].reason == "adopt the shipped model"
    TRAINED_EXTRA["default_version"] = default_version


def test_rollback_restores_the_previous_model_and_its_scores(trained, settings: Settings, text_analyzer) -> None:  # type: ignore[no-untyped-def]
    from commsrisk.schema import Message
    from commsrisk.scoring import build_scorer

    store, _, _, frozen = trained
    default_version = TRAINED_EXTRA.get("default_version")
    if default_version is None:
        pytest.fail("the gate test registers the default and promotes it first")
    # A pilot the team signed off on without the gate (tolerance 1): only to have a second model serve.
    pilot = _gate_settings(settings, store, risk_tolerance=1.0, macro_tolerance=1.0)
    message = Message(text="let's take this to my personal WhatsApp, delete the thread after")

    def production_score() -> float:
        scorer = build_scorer(pilot, classifier_location="models:/commsrisk-test@production", analyzer=text_analyzer)
        return scorer.score(message).risks["off_channel"].score

    before = production_score()
    _candidate(store, frozen.model_version)
    promote(pilot, build_yardstick([_dev_sample()]), analyzer=text_analyzer, author="tester", reason="pilot")
    assert production_score() != pytest.approx(before, abs=1e-6)
    move = rollback(pilot, str(default_version), author="tester", reason="alerts doubled")
    assert (move.action, move.from_version, move.to_version, move.reason) == (
        "rollback", str(frozen.model_version), str(default_version), "alerts doubled"
    )  # fmt: skip
    assert production_score() == pytest.approx(before, abs=1e-9)
    with pytest.raises(PromotionRefusedError, match="never served as production"):
        rollback(pilot, "999", author="tester", reason="no such model")
    rollback(pilot, "default", author="tester", reason="back to the shipped model")
    with pytest.raises(Exception, match="production"):
        mlflow.MlflowClient().get_model_version_by_alias("commsrisk-test", PRODUCTION_ALIAS)


def test_the_gate_refuses_a_tie_that_hides_a_worse_risk() -> None:
    """Macro-F1 equal, misconduct worse: refused on the risk, whatever the average says."""
    import numpy as np

    from commsrisk.training.promotion import ScoredModel, compare

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=(400, len(RISKS)))
    production = labels * 0.3 + rng.random(labels.shape) * 0.7  # fair on every risk
    candidate = production.copy()
    flip = rng.random(400) < 0.3  # misconduct much worse ...
    candidate[flip, 1] = 1 - candidate[flip, 1]
    candidate[:, 0] = labels[:, 0] * 0.9 + 0.05  # ... leakage perfect: macro about even
    thresholds = np.full(len(RISKS), 0.5)
    report = compare(
        labels,
        ScoredModel("candidate", "2", "c", candidate, thresholds),
        ScoredModel("production", "1", "p", production, thresholds),
        yardstick_digest="test",
        risk_tolerance=0.02,
        macro_tolerance=0.05,
        bootstrap=300,
    )
    assert report.candidate_macro_f1 >= report.production_macro_f1 - 0.05  # the average alone would pass
    assert not report.passed and any(f.startswith("misconduct") for f in report.failures)
    assert not any(f.startswith("macro") for f in report.failures)
    assert all(not f.startswith("leakage") for f in report.failures)
    assert "WORSE" in report.markdown() and "REFUSED" in report.markdown()


def test_the_registered_pyfunc_model_scores_a_dataframe(trained) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    store, _, _, frozen = trained
    mlflow.set_tracking_uri(store)
    model = mlflow.pyfunc.load_model(f"models:/commsrisk-test/{frozen.model_version}")
    from commsrisk.training.registry import INPUT_EXAMPLE

    frame = pd.concat([INPUT_EXAMPLE] * 2, ignore_index=True).assign(text=["move this to Signal", "minutes attached"])
    out = model.predict(frame)
    assert list(out.columns[-len(RISKS) :]) == [f"score_{r}" for r in RISKS] and len(out) == 2
