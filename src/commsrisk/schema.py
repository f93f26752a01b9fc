"""The data contract: risk names, the message in, the result out, and their limits.

Every other module imports these names; nothing else defines a risk name or a limit default.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

Risk = Literal["leakage", "misconduct", "off_channel"]
RISKS: tuple[str, ...] = get_args(Risk)
"""The three risks every message is scored for, in the order of the classifier's outputs."""

LANGUAGES: tuple[str, ...] = ("en", "zh", "es", "de", "fr", "ja")
"""Languages with their own NLP pipeline; others fall back to the English one."""

CHANNELS: tuple[str, ...] = ("wechat", "whatsapp", "signal", "sms", "teams", "bloomberg", "email", "other")
"""Known channels; the scoring features one-hot these (an unknown channel maps to "other")."""


class Limits(BaseModel):
    """Input limits enforced at every edge (HTTP, files, Python API)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_text_chars: int = Field(20_000, gt=0, description="Longest accepted message text, in characters.")
    max_batch_size: int = Field(256, gt=0, description="Most messages in one batch request.")
    max_body_bytes: int = Field(8 * 1024 * 1024, gt=0, description="Largest accepted HTTP request body.")
    max_batch_chars: int = Field(
        1_000_000, gt=0, description="Most characters of text in one batch request, all its messages together."
    )


DEFAULT_LIMITS = Limits()


class Message(BaseModel):
    """One workplace message to score. Only `text` is required."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    text: str = Field(
        ..., description="The message body. Never logged.", examples=["Let's take this to the other app."]
    )
    message_id: str | None = Field(None, max_length=256, description="The archive's id; echoed in the result.")
    lang: str | None = Field(
        None, min_length=2, max_length=8, description="ISO 639-1 code if known (e.g. en, zh); detected when absent."
    )
    business_unit: str | None = Field(
        None, max_length=128, description="Sender's business unit; selects the thresholds."
    )
    channel: str | None = Field(
        None, max_length=64, description="wechat, whatsapp, signal, sms, teams, bloomberg, email"
    )
    sender: str | None = Field(None, max_length=256)
    recipients: list[Annotated[str, Field(max_length=256)]] = Field(default_factory=list, max_length=1000)
    external: bool | None = Field(None, description="True if any recipient or the sender is outside the firm.")
    sent_at: datetime | None = None
    conversation_id: str | None = Field(None, max_length=256)

    @field_validator("text")
    @classmethod
    def _text_within_limits(cls, text: str, info: ValidationInfo) -> str:
        limits: Limits = (info.context or {}).get("limits", DEFAULT_LIMITS)
        if not text.strip():
            raise ValueError("text is empty or only whitespace; send the message body")
        if len(text) > limits.max_text_chars:
            raise ValueError(
                f"text has {len(text)} characters, over the limit of {limits.max_text_chars}; "
                "split the message or raise limits.max_text_chars"
            )
        return text

    @field_validator("lang")
    @classmethod
    def _lang_lower(cls, lang: str | None) -> str | None:
        return lang.lower() if lang else None

    @field_validator("channel")
    @classmethod
    def _channel_lower(cls, channel: str | None) -> str | None:
        return channel.lower() if channel else None


class PiiFinding(BaseModel):
    """Personal or financial data found by a Presidio recognizer."""

    entity_type: str = Field(..., description="Presidio-style type, e.g. IBAN_CODE, CN_RESIDENT_ID.")
    start: int = Field(..., ge=0)
    end: int = Field(..., ge=0)
    score: float = Field(..., ge=0.0, le=1.0)
    recognizer: str
    value: str | None = Field(None, description="Masked unless values were asked for.")


class EntityFinding(BaseModel):
    """A named entity from the same spaCy parse that Presidio used."""

    label: str = Field(..., description="spaCy label, e.g. ORG, PERSON, MONEY, GPE.")
    start: int = Field(..., ge=0)
    end: int = Field(..., ge=0)
    text: str | None = Field(None, description="Only when values were asked for.")


ApiScope = Literal["score", "feedback", "thresholds:read", "admin", "pii:reveal"]
"""What an API key may do: score messages, send reviewer feedback, read the thresholds, read the
metrics and docs when they are closed (admin), and see raw PII values (pii:reveal)."""

Explain = Literal["signals", "phrases"]
"""How much explanation a result carries: the signals behind each score (cheap, always), or also
the phrases of the text behind each flagged risk (a backward pass per flagged message)."""


class Signal(BaseModel):
    """One named input to a risk score and how much it moved the score (log-odds)."""

    name: str
    value: float
    contribution: float


class EvidenceSpan(BaseModel):
    """A span of the text that pushed a risk score up, with its weight."""

    start: int = Field(..., ge=0)
    end: int = Field(..., ge=0)
    kind: Literal["phrase", "pii"]
    weight: float
    label: str | None = Field(None, description="PII type for pii spans.")


class RiskExplanation(BaseModel):
    """Why a risk scored what it did: the signals and the spans behind it."""

    summary: str
    baseline: float = Field(
        0.0, description="Log-odds of a message with every signal absent (zero); the signals' contributions add to it."
    )
    signals: list[Signal] = Field(default_factory=list)
    spans: list[EvidenceSpan] = Field(default_factory=list)


class RiskDecision(BaseModel):
    """Score, decision and evidence for one risk."""

    score: float = Field(..., ge=0.0, le=1.0)
    flagged: bool
    threshold: float = Field(..., ge=0.0, le=1.0)
    explanation: RiskExplanation


class ScoreResult(BaseModel):
    """Everything a reviewer needs about one scored message."""

    message_id: str | None = None
    language: str = Field(..., description="Language whose pipeline was used.")
    languages: list[str] = Field(default_factory=list, description="All languages detected (mixed messages).")
    business_unit: str | None = None
    thresholds_source: Literal["business_unit", "default"] = Field(
        ..., description="'default' when the business unit has no overrides (or is unknown)."
    )
    risks: dict[str, RiskDecision]
    pii: list[PiiFinding] = Field(default_factory=list)
    entities: list[EntityFinding] = Field(default_factory=list)
    model_version: str
    thresholds_version: str
    warnings: list[str] = Field(
        default_factory=list,
        description="What a reviewer must know about this result, e.g. thresholds tuned for another model.",
    )

    @property
    def flags(self) -> dict[str, bool]:
        """Flag per risk, for quick checks."""
        return {risk: decision.flagged for risk, decision in self.risks.items()}


def describe_validation_error(error: Exception) -> str:
    """A one-line description naming each bad field and rule, never echoing the input value."""
    from pydantic import ValidationError

    if not isinstance(error, ValidationError):
        return str(error)
    parts = []
    for item in error.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "body"
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"field '{where}': {message}")
    return "; ".join(parts)


MESSAGE_FIELDS: frozenset[str] = frozenset(Message.model_fields)
"""Columns of a message file that are read; others (labels, notes) are ignored."""
