"""The constructors our recognizers share: class attributes say what, these say how."""

from __future__ import annotations

from typing import ClassVar

from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer

from commsrisk.nlp.recognizers.boundaries import CASE_SENSITIVE


class CommsriskPatternRecognizer(PatternRecognizer):
    """A PatternRecognizer configured by class attributes, one instance per language.

    Subclasses set ENTITY, PATTERNS and CONTEXT (default context words, replaced by the ones in
    recognizers.yaml for each language), optionally REGEX_FLAGS and COUNTRY_CODE, and override
    `validate_result` when the identifier has a check digit.
    """

    ENTITY: ClassVar[str]
    PATTERNS: ClassVar[list[Pattern]]
    CONTEXT: ClassVar[list[str]] = []
    REGEX_FLAGS: ClassVar[int] = CASE_SENSITIVE
    COUNTRY_CODE: ClassVar[str | None] = None

    def __init__(self, supported_language: str = "en", context: list[str] | None = None) -> None:
        super().__init__(
            supported_entity=self.ENTITY,
            name=f"{type(self).__name__}_{supported_language}",
            patterns=self.PATTERNS,
            context=context or self.CONTEXT,
            supported_language=supported_language,
            global_regex_flags=self.REGEX_FLAGS,
            country_code=self.COUNTRY_CODE,
        )


class CommsriskEntityRecognizer(EntityRecognizer):
    """A recognizer that reads the shared parse (nothing to load), one instance per language.

    Subclasses set ENTITIES and implement `analyze`.
    """

    ENTITIES: ClassVar[list[str]]

    def __init__(self, supported_language: str = "en", context: list[str] | None = None) -> None:
        super().__init__(
            supported_entities=self.ENTITIES,
            name=f"{type(self).__name__}_{supported_language}",
            supported_language=supported_language,
            context=context,
        )

    def load(self) -> None:
        """Nothing to load: what it reads comes with the parse."""
