"""spaCy pipelines per language: the one parse per message that PII and entities share.

English and French use the trained spaCy packages named in settings. German, Spanish and
Chinese have no trained package that installs offline, and for Japanese ours matches GiNZA at a
third of its cost: they get a blank pipeline with the right words (Chinese segmented by jieba,
Spanish/German by spaCy's rules) and the NER we train here on our writers' templates
(`commsrisk train-ner`). Every NER's labels are mapped to one label set; every pipeline sets a
lemma (Presidio's context words match on lemmas) and counts its parses.

A language's pipeline loads when its first text arrives (`LanguagePipelines`): loading all six
takes seconds (French alone ~5 s, spaCy compiling its tokenizer exceptions), which a one-message
`commsrisk score` or an English-only file should not pay. Whether each one *can* load is checked
up front, so a missing package still fails at start; the service loads all of them before it
reports ready.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span

from commsrisk.errors import ModelNotAvailableError
from commsrisk.settings import NlpSettings

logger = logging.getLogger(__name__)

JIEBA_ENTITY_TAGS = {"nr": "PERSON", "nrfg": "PERSON", "nrt": "PERSON", "ns": "GPE", "nt": "ORG"}
"""jieba POS tags that name things: people, places, organisations."""

JA_RUNS = re.compile(
    r"[\u4e00-\u9fff\u3400-\u4dbf々〆]+|[\u3040-\u309f]+|[\u30a0-\u30ffー]+"
    r"|[A-Za-z0-9][A-Za-z0-9._%+@:/-]*[A-Za-z0-9]|[A-Za-z]+|[0-9０-９]+|\s+|."
)
"""Japanese words approximated by script runs; an e-mail, a phone or an id in Latin letters and
digits stays one word (so it does not fill the context window with its pieces)."""


class ParseCounter:
    """Counts spaCy parses (so tests can prove one parse per message)."""

    def __init__(self) -> None:
        self.count = 0


PARSES = ParseCounter()


@Language.component("commsrisk_parse_counter")
def parse_counter(doc: Doc) -> Doc:
    """Count one parse."""
    PARSES.count += 1
    return doc


@Language.component("commsrisk_lemma_fallback")
def lemma_fallback(doc: Doc) -> Doc:
    """Give tokens without a lemma their lower-cased text, for Presidio's context words."""
    for token in doc:
        if not token.lemma_:
            token.lemma_ = token.lower_
    return doc


UNUSED_COMPONENTS = ["lemmatizer", "parser", "compound_splitter", "bunsetu_recognizer"]
"""Components of the trained pipelines that nothing here reads (NER needs none of them); the
English lemmatizer is left out too (the lemma fallback below gives Presidio lower-cased words)."""
ENTITY_LABELS: dict[str, str] = {
    "PERSON": "PERSON", "PER": "PERSON", "Person": "PERSON",
    "ADDRESS": "ADDRESS", "Address_Other": "ADDRESS", "House": "ADDRESS",
    "ORG": "ORG", "Company": "ORG", "Company_Group": "ORG", "Corporation_Other": "ORG",
    "Organization_Other": "ORG", "Government": "ORG", "International_Organization": "ORG",
    "GPE": "GPE", "Country": "GPE", "Province": "GPE", "City": "GPE", "County": "GPE", "GPE_Other": "GPE",
    "LOC": "LOC", "Location_Other": "LOC", "Region_Other": "LOC",
    "FAC": "FAC", "Facility_Other": "FAC", "Station": "FAC", "Airport": "FAC",
    "NORP": "NORP", "Nationality": "NORP", "PRODUCT": "PRODUCT", "Product_Other": "PRODUCT",
    "EVENT": "EVENT", "LAW": "LAW", "Law": "LAW", "MISC": "MISC",
    "DATE": "DATE", "Date": "DATE", "TIME": "TIME", "Time": "TIME",
    "MONEY": "MONEY", "Money": "MONEY", "PERCENT": "PERCENT", "Percent": "PERCENT",
}  # fmt: skip
"""Each model's entity labels (OntoNotes for English, WikiNER for French, GiNZA's extended named
entities for Japanese, ours) -> one label set; labels not listed are dropped."""


@Language.component("commsrisk_entity_labels")
def entity_labels(doc: Doc) -> Doc:
    """Relabel the NER's entities into one label set, so PII and evidence read the same names."""
    doc.ents = [
        Span(doc, ent.start, ent.end, label=ENTITY_LABELS[ent.label_])
        for ent in doc.ents
        if ent.label_ in ENTITY_LABELS
    ]
    return doc


@Language.component("commsrisk_jieba_entities")
def jieba_entities(doc: Doc) -> Doc:
    """Entities from jieba's POS tags (set as token tags by the tokenizer); a low-confidence signal."""
    spans = [
        Span(doc, token.i, token.i + 1, label=JIEBA_ENTITY_TAGS[token.tag_])
        for token in doc
        if token.tag_ in JIEBA_ENTITY_TAGS and len(token.text) >= 2
    ]
    doc.ents = spacy.util.filter_spans(spans)
    return doc


class JiebaTokenizer:
    """Chinese words from jieba; with `tags`, also its POS tags (jieba.posseg, about 50x slower).

    Only the pipeline without an NER reads the tags (names from jieba's `nr`); with our character
    NER, plain `jieba.cut` gives the words Presidio's context words need.
    """

    def __init__(self, vocab: spacy.vocab.Vocab, tags: bool = False) -> None:
        import jieba
        import jieba.posseg

        jieba.setLogLevel(logging.WARNING)
        self.vocab = vocab
        self.tags = tags
        self._cut_tagged = jieba.posseg.cut
        self._cut = jieba.cut

    def __call__(self, text: str) -> Doc:
        """Segment `text`; whitespace runs become spaces after the previous word."""
        pairs = (
            ((p.word, p.flag) for p in self._cut_tagged(text, HMM=True))
            if self.tags
            else ((w, "") for w in self._cut(text, HMM=True))
        )
        words: list[str] = []
        tags: list[str] = []
        spaces: list[bool] = []
        for word, flag in pairs:
            if word.isspace():
                if words and word == " " and not spaces[-1]:
                    spaces[-1] = True
                    continue
                words.append(word)
                tags.append("x")
                spaces.append(False)
                continue
            words.append(word)
            tags.append(flag)
            spaces.append(False)
        doc = Doc(self.vocab, words=words, spaces=spaces)
        if self.tags:
            for token, tag in zip(doc, tags, strict=True):
                token.tag_ = tag
        return doc


class ScriptRunTokenizer:
    """Japanese words approximated by runs of one script (kanji, hiragana, katakana, Latin, digits)."""

    def __init__(self, vocab: spacy.vocab.Vocab) -> None:
        self.vocab = vocab

    def __call__(self, text: str) -> Doc:
        """Split `text` into script runs; a single space becomes the previous token's trailing space."""
        words: list[str] = []
        spaces: list[bool] = []
        for match in JA_RUNS.finditer(text):
            piece = match.group(0)
            if piece == " " and words and not spaces[-1]:
                spaces[-1] = True
                continue
            words.append(piece)
            spaces.append(False)
        return Doc(self.vocab, words=words, spaces=spaces)


@Language.factory("commsrisk_character_ner", default_config={"model_dir": ""})
def character_ner(nlp: Language, name: str, model_dir: str) -> CharacterNer:
    """The character-level NER component (see CharacterNer)."""
    return CharacterNer(Path(model_dir))


def _finish(nlp: Language) -> Language:
    ner = next((name for name in ("ner", "commsrisk_character_ner") if name in nlp.pipe_names), None)
    if ner:
        nlp.add_pipe("commsrisk_entity_labels", after=ner)
    nlp.add_pipe("commsrisk_lemma_fallback")
    nlp.add_pipe("commsrisk_parse_counter")
    return nlp


def blank_pipeline(language: str, tags: bool = False) -> Language:
    """The blank pipeline with our tokenizer for a language (what a trained NER of ours is added to).

    `tags`: Chinese words with jieba's POS tags, for the pipeline that finds names from them.
    """
    nlp = spacy.blank(language if language != "ja" else "xx")
    if language == "zh":
        nlp.tokenizer = JiebaTokenizer(nlp.vocab, tags=tags)
    elif language == "ja":
        nlp.tokenizer = ScriptRunTokenizer(nlp.vocab)
    return nlp


NER_ON_CHARACTERS = frozenset({"zh", "ja"})
"""Languages whose NER reads characters, not the pipeline's words: a Chinese name is often cut by
jieba or glued to a title (王总), a Japanese one glued to its honorific in one kanji run (田中様),
and Presidio's context words still need the pipeline's words."""


def ner_training_pipeline(language: str) -> Language:
    """The pipeline an NER of ours is trained on: the scoring pipeline's tokenizer, or characters."""
    return spacy.blank("zh") if language in NER_ON_CHARACTERS else blank_pipeline(language)


class CharacterNer:
    """Runs an NER trained on characters over a doc's text and sets its entities on the doc's words.

    A word that holds an entity's edge is cut there (`田中直子様` -> `田中直子` `様`), so the entity
    keeps the character model's exact span instead of widening to the word.
    """

    def __init__(self, model_dir: Path) -> None:
        self.nlp = spacy.load(model_dir)

    def __call__(self, doc: Doc) -> Doc:
        """The character model's entities on the doc's words, cut where an entity starts or ends."""
        found = [(ent.start_char, ent.end_char, ent.label_) for ent in self.nlp(doc.text).ents]
        if any(doc.char_span(start, end) is None for start, end, _ in found):
            doc = cut_words(doc, {edge for start, end, _ in found for edge in (start, end)})
        spans = [
            span
            for start, end, label in found
            if (span := doc.char_span(start, end, label=label, alignment_mode="expand"))
        ]
        doc.ents = spacy.util.filter_spans(spans)
        return doc


def cut_words(doc: Doc, offsets: set[int]) -> Doc:
    """The same text as a new Doc whose words are also cut at these character offsets."""
    words: list[str] = []
    spaces: list[bool] = []
    for token in doc:
        cuts = sorted(o - token.idx for o in offsets if token.idx < o < token.idx + len(token.text))
        pieces = [token.text[a:b] for a, b in zip([0, *cuts], [*cuts, len(token.text)], strict=True)]
        words += pieces
        spaces += [False] * (len(pieces) - 1) + [bool(token.whitespace_)]
    return Doc(doc.vocab, words=words, spaces=spaces)


CHECKOUT = Path(__file__).resolve().parents[3]
"""The source checkout this package runs from (an editable install); a fallback for relative folders."""


def resolve_model_dir(path: Path) -> Path:
    """A relative folder from the working directory, else from the checkout (a notebook, another cwd)."""
    if path.is_absolute() or path.exists() or not (CHECKOUT / path).exists():
        return path
    return CHECKOUT / path


def _ner_dir(model_dir: Path, language: str) -> Path:
    model_dir = resolve_model_dir(model_dir)
    if not (model_dir / "config.cfg").is_file():
        raise ModelNotAvailableError(
            f"NER model for '{language}' not found at {model_dir}; train it with `commsrisk train-ner "
            f"--language {language}` or remove nlp.ner_models.{language}"
        )
    return model_dir


def _not_installed(package: str, language: str) -> ModelNotAvailableError:
    return ModelNotAvailableError(
        f"spaCy model '{package}' for '{language}' is not installed; run scripts/setup.sh or set "
        f"nlp.spacy_models.{language} to an installed package"
    )


def _load_ner(model_dir: Path, language: str) -> Language:
    model_dir = _ner_dir(model_dir, language)
    if language in NER_ON_CHARACTERS:
        nlp = blank_pipeline(language)
        nlp.add_pipe("commsrisk_character_ner", config={"model_dir": str(model_dir)})
        return nlp
    return spacy.load(model_dir)


def check_pipeline(language: str, settings: NlpSettings) -> None:
    """Fail now, without loading anything, if the pipeline for `language` could not load later.

    Raises:
        ModelNotAvailableError: a named package is not installed, or a named NER folder is missing.
    """
    package = settings.spacy_models.get(language)
    if package:
        if not Path(package).exists() and importlib.util.find_spec(package) is None:
            raise _not_installed(package, language)
        return
    ner_dir = settings.ner_models.get(language)
    if ner_dir is not None:
        _ner_dir(ner_dir, language)


def build_pipeline(language: str, settings: NlpSettings) -> Language:
    """The spaCy pipeline for one language: a trained package, our own NER, or blank.

    Raises:
        ModelNotAvailableError: a named package is not installed, or a named NER folder is missing.
    """
    package = settings.spacy_models.get(language)
    if package:
        try:
            nlp = spacy.load(package, exclude=UNUSED_COMPONENTS)
        except OSError as err:
            raise _not_installed(package, language) from err
        return _finish(nlp)
    ner_dir = settings.ner_models.get(language)
    if ner_dir is not None:
        return _finish(_load_ner(ner_dir, language))
    nlp = blank_pipeline(language, tags=language == "zh")
    if language == "zh":
        nlp.add_pipe("commsrisk_jieba_entities")
    return _finish(nlp)


class LanguagePipelines(Mapping[str, Language]):
    """The pipeline per configured language, each loaded once, when first asked for (thread-safe).

    `on_load(language, nlp)` runs once on each pipeline as it loads, before anyone uses it.
    """

    def __init__(
        self,
        settings: NlpSettings,
        languages: Iterable[str] | None = None,
        on_load: Callable[[str, Language], None] | None = None,
    ) -> None:
        self._settings = settings
        self._languages = tuple(languages or settings.languages)
        self._on_load = on_load
        self._loaded: dict[str, Language] = {}
        self._lock = threading.Lock()
        for language in self._languages:
            check_pipeline(language, settings)

    def __getitem__(self, language: str) -> Language:
        nlp = self._loaded.get(language)
        if nlp is not None:
            return nlp
        if language not in self._languages:
            raise KeyError(language)
        with self._lock:
            nlp = self._loaded.get(language)
            if nlp is None:
                nlp = build_pipeline(language, self._settings)
                if self._on_load is not None:
                    self._on_load(language, nlp)
                self._loaded[language] = nlp
                logger.info("loaded the spaCy pipeline for %s", language)
        return nlp

    def __iter__(self) -> Iterator[str]:
        return iter(self._languages)

    def __len__(self) -> int:
        return len(self._languages)

    @property
    def loaded(self) -> tuple[str, ...]:
        """The languages whose pipeline is loaded so far."""
        return tuple(self._loaded)

    def load_all(self) -> None:
        """Load every pipeline now (the service does, so that no request waits for one)."""
        for language in self._languages:
            self[language]


def build_pipelines(
    settings: NlpSettings,
    languages: Iterable[str] | None = None,
    on_load: Callable[[str, Language], None] | None = None,
) -> LanguagePipelines:
    """A pipeline per configured language, checked now and loaded on first use (once per process)."""
    return LanguagePipelines(settings, languages, on_load)
