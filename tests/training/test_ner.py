"""Our NER trainer: templates in, a pipeline the scorer loads out; bad templates named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commsrisk.errors import InvalidInputError, ModelNotAvailableError
from commsrisk.nlp.pipelines import build_pipeline
from commsrisk.settings import NlpSettings
from commsrisk.training.ner import NerValueMaker, fill_ner_template, read_ner_templates, train_ner

TEMPLATES = {
    "de": [
        "Hallo {{FIRST_NAME}}, kannst du {{PERSON}} bitte zurückrufen?",
        "Frau {{LAST_NAME}} ist umgezogen: {{ADDRESS}}",
        "{{ORG}} aus {{CITY}} will 200k SAP GY bis Freitag",
        "DAX schwach, Call um 14:30 verschoben",
        "Termin mit {{PERSON}} am Montag in {{CITY}}",
        "Gruß {{FIRST_NAME}}",
    ],
    "zh": [
        "麻烦跟{{PERSON}}确认一下{{ORG}}的开户资料",
        "{{LAST_NAME}}总说明天去{{CITY}}路演",
        "客户{{PERSON}}的新地址是{{ADDRESS}}",
        "沪深300今天跌了2%，茅台600519也跌了",
        "@{{PERSON}} 今晚值班",
        "收到！",
    ],
}


def _write(folder: Path, language: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"id": f"t-{i}", "template": t}, ensure_ascii=False) for i, t in enumerate(TEMPLATES[language])]
    (folder / f"{language}_test.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_filled_spans_cover_their_values() -> None:
    text, spans = fill_ner_template("Hallo {{FIRST_NAME}}, bitte {{PERSON}} an {{ADDRESS}}", "de", NerValueMaker(3))
    assert [label for *_, label in spans] == ["PERSON", "PERSON", "ADDRESS"]
    for start, end, _ in spans:
        assert text[start:end].strip() == text[start:end] and text[start:end]
    assert text.startswith("Hallo ") and "{{" not in text


@pytest.mark.parametrize("language", ["de", "zh"])
def test_trained_ner_loads_into_the_scoring_pipeline(tmp_path: Path, language: str) -> None:
    templates = _write(tmp_path / "templates", language)
    out = tmp_path / "ner" / language
    epochs: list[int] = []
    report = train_ner(
        language, out, templates_dir=templates, epochs=3, fills=2, held_out=0.3,
        progress=lambda epoch, loss: epochs.append(epoch),
    )  # fmt: skip
    assert epochs == [1, 2, 3]
    assert report.templates == 6 and 0 < report.held_out_templates < 6
    assert json.loads((out / "training_report.json").read_text())["templates_digest"] == report.templates_digest
    nlp = build_pipeline(language, NlpSettings(ner_models={language: out}))
    doc = nlp("麻烦跟王建国确认一下" if language == "zh" else "Hallo Jonas, bitte Ingrid Baumgartner anrufen")
    if language == "zh":
        # the NER reads characters, but the doc keeps jieba's words for Presidio's context words
        assert "commsrisk_character_ner" in nlp.pipe_names and len(doc) < len(doc.text)
    else:
        assert "ner" in nlp.pipe_names
    assert all(ent.label_ in {"PERSON", "ADDRESS", "ORG", "GPE"} for ent in doc.ents)


def test_unknown_placeholder_is_named(tmp_path: Path) -> None:
    (tmp_path / "de_bad.jsonl").write_text(
        json.dumps({"id": "x-1", "template": "ok {{PERSON}}"})
        + "\n"
        + json.dumps({"id": "x-2", "template": "{{NAME}}"}),
        encoding="utf-8",
    )
    with pytest.raises(InvalidInputError, match=r"de_bad.jsonl line 2: unknown placeholders \['NAME'\]"):
        read_ner_templates(tmp_path, "de")
    with pytest.raises(InvalidInputError, match="no NER templates for 'fr'"):
        read_ner_templates(tmp_path, "fr")


def test_missing_ner_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailableError, match="train-ner --language es"):
        build_pipeline("es", NlpSettings(ner_models={"es": tmp_path / "nothing"}))


def test_a_folder_that_is_not_an_earlier_ner_is_never_emptied(tmp_path: Path) -> None:
    templates = _write(tmp_path / "templates", "de")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="not empty and holds no earlier NER"):
        train_ner("de", tmp_path / "out", templates_dir=templates, epochs=1, fills=1)
    assert (tmp_path / "out" / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_the_shipped_ner_loads_from_another_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a notebook in notebooks/, a command run elsewhere
    assert "ner" in build_pipeline("es", NlpSettings()).pipe_names
