"""Our own NER for the languages where no trained spaCy pipeline installs offline (de, es; zh can).

Independent writers wrote message templates per language (`data/train/ner/templates/<lang>_*.jsonl`,
never the PII evaluation set's); each is filled several times with Faker values of that language's
locales and the spans become training examples: PERSON (full names, first or last names alone),
ADDRESS (reported as LOCATION PII), and ORG and GPE (companies and cities: not PII, they teach the
model what a name is not). The model is spaCy's own transition-based NER with its own small CNN
embedding, on the tokens `nlp.pipelines.ner_training_pipeline` gives (the scoring pipeline's own
words for German and Spanish; characters for Chinese, whose names jieba's words cut or glue).
Whole templates are held out for the report, so it measures new
sentences, not new names in seen sentences.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import spacy
from spacy.language import Language
from spacy.scorer import Scorer
from spacy.training import Example
from spacy.util import filter_spans, minibatch

from commsrisk.errors import InvalidInputError
from commsrisk.nlp.pipelines import ner_training_pipeline
from commsrisk.training.corpus import LOCALES
from commsrisk.training.pii_eval import PiiValueMaker, fill_template, read_templates

NER_LABELS: dict[str, str] = {
    "PERSON": "PERSON",
    "FIRST_NAME": "PERSON",
    "LAST_NAME": "PERSON",
    "ADDRESS": "ADDRESS",
    "ORG": "ORG",
    "CITY": "GPE",
}
"""Template placeholder -> the entity label it trains."""
TEMPLATES_DIR = Path("data/train/ner/templates")


@dataclass(frozen=True)
class NerTrainingReport:
    """What one training run did and reached on its held-out templates."""

    language: str
    templates: int
    held_out_templates: int
    examples: int
    epochs: int
    scores: dict[str, dict[str, float]]
    """label -> precision, recall, F1 on the held-out templates' sentences."""
    templates_digest: str
    output: str


class NerValueMaker:
    """Values per placeholder: PII from the same generator as the PII set, names and places from Faker."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.pii = PiiValueMaker(seed)

    def value(self, kind: str, lang: str) -> str:
        """One value for a placeholder kind of `NER_LABELS`."""
        if kind in ("PERSON", "ADDRESS"):
            return self.pii.value(kind, lang)
        faker = self.pii.pii.fakers[self.rng.choice(LOCALES.get(lang, ("en_US",)))]
        makers: dict[str, Callable[[], str]] = {
            "FIRST_NAME": faker.first_name,
            "LAST_NAME": faker.last_name,
            "ORG": faker.company,
            "CITY": faker.city,
        }
        return makers[kind]()


def read_ner_templates(templates_dir: Path, language: str) -> list[dict[str, str]]:
    """Every writer's templates for a language; an unknown placeholder is an error naming its line."""
    paths = sorted(templates_dir.glob(f"{language}_*.jsonl"))
    if not paths:
        raise InvalidInputError(f"no NER templates for '{language}' in {templates_dir} ({language}_*.jsonl)")
    return [
        {"id": str(row["id"]), "template": row["template"]}
        for path in paths
        for row in read_templates(path, NER_LABELS)
    ]


def fill_ner_template(template: str, lang: str, maker: NerValueMaker) -> tuple[str, list[tuple[int, int, str]]]:
    """The filled text and (start, end, label) of every placeholder's value (trimmed of spaces)."""
    text, spans = fill_template(template, lang, maker, NER_LABELS, strip=True)
    return text, [(span["start"], span["end"], span["type"]) for span in spans]


def build_examples(
    nlp: Language, templates: Sequence[dict[str, str]], lang: str, fills: int, seed: int
) -> list[Example]:
    """`fills` filled sentences per template, as spaCy examples on the pipeline's own tokens."""
    maker = NerValueMaker(seed)
    examples = []
    for template in templates:
        for _ in range(fills):
            text, spans = fill_ner_template(template["template"], lang, maker)
            doc = nlp.make_doc(text)
            ents = filter_spans(
                [span for s, e, label in spans if (span := doc.char_span(s, e, label=label, alignment_mode="expand"))]
            )
            examples.append(Example.from_dict(doc, {"entities": [(x.start_char, x.end_char, x.label_) for x in ents]}))
    return examples


def is_held_out(template_id: str, share: float) -> bool:
    """A stable split by template id (the same templates are held out on every run)."""
    return int(hashlib.sha256(template_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < share


def train_ner(
    language: str,
    output: Path,
    *,
    templates_dir: Path = TEMPLATES_DIR,
    epochs: int = 15,
    fills: int = 6,
    held_out: float = 0.15,
    seed: int = 7,
    progress: Callable[[int, float], None] | None = None,
) -> NerTrainingReport:
    """Train the NER for one language on its writers' templates and save its pipeline to `output`."""
    templates = read_ner_templates(templates_dir, language)
    _clear_output(output)
    train_t = [t for t in templates if not is_held_out(t["id"], held_out)]
    test_t = [t for t in templates if is_held_out(t["id"], held_out)]
    spacy.util.fix_random_seed(seed)
    nlp = ner_training_pipeline(language)
    ner = nlp.add_pipe("ner")
    train_examples = build_examples(nlp, train_t, language, fills, seed)
    test_examples = build_examples(nlp, test_t, language, 2, seed + 1)
    for label in sorted(set(NER_LABELS.values())):
        ner.add_label(label)
    optimizer = nlp.initialize(lambda: train_examples)
    rng = random.Random(seed)
    for epoch in range(epochs):
        rng.shuffle(train_examples)
        losses: dict[str, float] = {}
        for batch in minibatch(train_examples, size=32):
            nlp.update(batch, sgd=optimizer, drop=0.25, losses=losses)
        if progress:
            progress(epoch + 1, losses.get("ner", 0.0))
    predicted = [Example(nlp(ex.reference.text), ex.reference) for ex in test_examples]
    by_label = Scorer.score_spans(predicted, "ents")["ents_per_type"]
    nlp.to_disk(output)
    digest = hashlib.sha256("\n".join(t["id"] + "\t" + t["template"] for t in templates).encode()).hexdigest()[:16]
    report = NerTrainingReport(
        language=language,
        templates=len(templates),
        held_out_templates=len(test_t),
        examples=len(train_examples),
        epochs=epochs,
        scores={label: {k: round(v, 4) for k, v in s.items()} for label, s in sorted(by_label.items())},
        templates_digest=digest,
        output=str(output),
    )
    (output / "training_report.json").write_text(json.dumps(report.__dict__, indent=1) + "\n", encoding="utf-8")
    return report


def _clear_output(output: Path) -> None:
    """An earlier run's folder is replaced; any other non-empty folder is refused, never emptied."""
    if output.is_dir() and any(output.iterdir()):
        if not (output / "training_report.json").is_file():
            raise InvalidInputError(f"{output} is not empty and holds no earlier NER; name an empty or new folder")
        shutil.rmtree(output)
    output.mkdir(parents=True, exist_ok=True)


def report_rows(report: NerTrainingReport) -> list[dict[str, Any]]:
    """The held-out scores as table rows."""
    return [{"label": label, "precision": s["p"], "recall": s["r"], "F1": s["f"]} for label, s in report.scores.items()]
