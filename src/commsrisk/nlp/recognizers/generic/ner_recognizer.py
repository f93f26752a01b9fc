"""PERSON and LOCATION from the language's NER, with the false hits that flood reviewers taken out.

Small NER models tag ids, version numbers and amounts (`CHG0031255`, `v2.7.0`, `250k`), chat
fragments (`pls chase`) and the capitalised words of a greeting (`Veuillez`, `Monsieur`, `Lundi`)
as people. A name has a letter, no digit, an upper-case initial where the script has case, and at
least one word that is not a greeting, title, weekday or month. A single capitalised word that
opens a sentence is not taken as a name either: there the capital says nothing (`Nota`, `Ticket`,
`Pago` at the start of a line are what our own NER gets wrong), while a full name still counts.
In German every noun is capitalised, so there a single word is a name only after a greeting or a
form of address (`Hallo Jonas`, `Frau Keller`, `@Jonas`): `Kontoinhaber`, `Saldo` and `Auftrag`
were the German NER's false hits.
"""

from __future__ import annotations

import re

from presidio_analyzer import RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import SpacyRecognizer

NOT_NAME_WORDS = frozenset(
    """
    hi hello hey dear thanks thank regards cheers best kind morning afternoon evening team all
    mr mrs ms miss dr prof sir madam
    monday tuesday wednesday thursday friday saturday sunday mon tue wed thu fri sat sun
    january february march april may june july august september october november december
    bonjour bonsoir salut coucou cher chère chers merci cordialement bien veuillez monsieur madame
    mademoiselle maître docteur lundi mardi mercredi jeudi vendredi samedi dimanche janvier février
    mars avril mai juin juillet août septembre octobre novembre décembre bravo rappel relance
    hola buenas buenos estimado estimada querido querida gracias saludos señor señora don doña dña sr sra
    sres lic ing mtro mtra
    lunes martes miércoles jueves viernes sábado domingo enero febrero marzo abril mayo junio julio
    agosto septiembre octubre noviembre diciembre
    hallo liebe lieber sehr geehrte geehrter herr frau danke grüße gruß moin servus grüezi kollege kollegin
    mag dipl ing univ
    montag dienstag mittwoch donnerstag freitag samstag sonntag januar jänner februar märz juni juli
    oktober dezember
    """.split()
)
"""Greetings, forms of address, weekdays and months of our languages: never a name on their own."""
_DIGIT = re.compile(r"\d")
_CASED_LETTER = re.compile(r"[A-Za-zÀ-ÿ]")
_SENTENCE_START = re.compile(r"(?:^|[.!?:;\n•*>-])[\s\"'“«(]*$")


def is_plausible_name(text: str) -> bool:
    """Whether a PERSON span could be a name (see the module docstring)."""
    if _DIGIT.search(text) or not any(ch.isalpha() for ch in text):
        return False
    words = [w.strip(".,:;!?'’()") for w in text.split()]
    words = [w for w in words if w]
    if not words or all(w.lower() in NOT_NAME_WORDS for w in words):
        return False
    if _CASED_LETTER.search(text):
        return any(w[:1].isupper() for w in words if w.lower() not in NOT_NAME_WORDS)
    return True


def opens_sentence(text: str, start: int) -> bool:
    """Whether `start` is the first word of the text, a line or a sentence."""
    return bool(_SENTENCE_START.search(text[max(0, start - 12) : start])) or start == 0


def is_bare_capital(text: str, start: int, end: int) -> bool:
    """One capitalised Latin-script word opening a sentence: no evidence of a name."""
    span = text[start:end]
    return len(span.split()) == 1 and bool(_CASED_LETTER.match(span)) and opens_sentence(text, start)


def name_start(text: str, start: int, end: int) -> int:
    """Where the name begins once leading greetings and titles are left out ("Frau Ingrid Keller")."""
    position = start
    for match in re.finditer(r"\S+", text[start:end]):
        if match.group(0).strip(".,:;").lower() not in NOT_NAME_WORDS:
            return start + match.start()
        position = start + match.end()
    return position if position < end else start


CAPITALISED_NOUNS = frozenset({"de"})
"""Languages whose common nouns are capitalised: one word alone needs a greeting or title before it."""
_WORD_BEFORE = re.compile(r"(@|[\w.]+)[\s,]*$")


def follows_address_form(text: str, start: int) -> bool:
    """Whether the word before `start` is a greeting, a title or an @."""
    match = _WORD_BEFORE.search(text[max(0, start - 20) : start])
    return bool(match) and (match.group(1) == "@" or match.group(1).strip(".").lower() in NOT_NAME_WORDS)


class NerRecognizer(SpacyRecognizer):
    """Presidio's SpacyRecognizer for PERSON and LOCATION, keeping only plausible names."""

    def __init__(self, supported_language: str = "en", context: list[str] | None = None) -> None:
        super().__init__(supported_language=supported_language, supported_entities=["PERSON", "LOCATION"])

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """The NER's findings, without PERSON spans that cannot be names; titles and greetings trimmed off."""
        results = super().analyze(text, entities, nlp_artifacts)
        for result in results:
            if result.entity_type == "PERSON":
                result.start = name_start(text, result.start, result.end)
        return [r for r in results if r.entity_type != "PERSON" or self._name(text, r)]

    def _name(self, text: str, result: RecognizerResult) -> bool:
        span = text[result.start : result.end]
        if not is_plausible_name(span) or is_bare_capital(text, result.start, result.end):
            return False
        if self.supported_language in CAPITALISED_NOUNS and len(span.split()) == 1:
            return follows_address_form(text, result.start)
        return True
