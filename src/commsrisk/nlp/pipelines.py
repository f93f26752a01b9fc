"""spaCy pipelines per language: the one parse per message that PII and entities share.

English uses the trained model named in settings. No other trained spaCy model installs offline,
so the other languages get blank pipelines with the right words: Chinese is segmented by jieba's
POS tagger (its person/place/organisation tags become entities), Japanese by script runs (kanji,
kana, Latin, digits), Spanish/German/French by spaCy's own rules. Every pipeline sets a lemma
(Presidio's context words match on lemmas) and counts its parses.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span

from commsrisk.errors import ModelNotAvailableError
from commsrisk.settings import NlpSettings

logger = logging.getLogger(__name__)

JIEBA_ENTITY_TAGS = {"nr": "PERSON", "nrfg": "PERSON", "nrt": "PERSON", "ns": "GPE", "nt": "ORG"}
"""jieba POS tags that name things: people, places, organisations."""

JA_RUNS = re.compile(
    r"[\u4e00-\u9fff\u3400-\u4dbf々〆]+|[\u3040-\u309f]+|[\u30a0-\u30ffー]+|[A-Za-z]+|[0-9０-９]+|\s+|."
)


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


class JiebaPosTokenizer:
    """Chinese words and POS tags from one jieba pass (jieba.posseg)."""

    def __init__(self, vocab: spacy.vocab.Vocab) -> None:
        import jieba
        import jieba.posseg

        jieba.setLogLevel(logging.WARNING)
        self.vocab = vocab
        self._cut = jieba.posseg.cut

    def __call__(self, text: str) -> Doc:
        """Segment `text`; whitespace runs become spaces after the previous word."""
        words: list[str] = []
        tags: list[str] = []
        spaces: list[bool] = []
        for pair in self._cut(text, HMM=True):
            word, flag = pair.word, pair.flag
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


def _finish(nlp: Language) -> Language:
    nlp.add_pipe("commsrisk_lemma_fallback")
    nlp.add_pipe("commsrisk_parse_counter")
    return nlp


def build_pipeline(language: str, settings: NlpSettings) -> Language:
    """The spaCy pipeline for one language.

    Raises:
        ModelNotAvailableError: the English model package is not installed.
    """
    if language == "en":
        try:
            nlp = spacy.load(settings.english_model, exclude=["lemmatizer"])
        except OSError as err:
            raise ModelNotAvailableError(
                f"spaCy model '{settings.english_model}' is not installed; run scripts/setup.sh or set "
                "nlp.english_model to an installed package"
            ) from err
        return _finish(nlp)
    nlp = spacy.blank(language if language != "ja" else "xx")
    if language == "zh":
        nlp.tokenizer = JiebaPosTokenizer(nlp.vocab)
        nlp.add_pipe("commsrisk_jieba_entities")
    elif language == "ja":
        nlp.tokenizer = ScriptRunTokenizer(nlp.vocab)
    return _finish(nlp)


def build_pipelines(settings: NlpSettings, languages: Iterable[str] | None = None) -> dict[str, Language]:
    """A pipeline per configured language (loaded once per process)."""
    return {lang: build_pipeline(lang, settings) for lang in (languages or settings.languages)}
