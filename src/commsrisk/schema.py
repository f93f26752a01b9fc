"""The data contract: risk names, the message in, the result out, and their limits.

Every other module imports these names; nothing else defines a risk name or a limit default.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

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


def text_within_limits(text: str, info: ValidationInfo) -> str:
    """The text, if it is not blank and within `limits.max_text_chars` (the limits come in the context)."""
    limits: Limits = (info.context or {}).get("limits", DEFAULT_LIMITS)
    if not text.strip():
        raise ValueError("text is empty or only whitespace; send the message body")
    if len(text) > limits.max_text_chars:
        raise ValueError(
            f"text has {len(text)} characters, over the limit of {limits.max_text_chars}; "
            "split the message or raise limits.max_text_chars"
        )
    return text


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
        return text_within_limits(text, info)

    @field_validator("lang")
    @classmethod
    def _lang_lower(cls, lang: str | None) -> str | None:
        return lang.lower() if lang else None

    @field_validator("channel")
    @classmethod
    def _channel_lower(cls, channel: str | None) -> str | None:
        return channel.lower() if channel else None


MESSAGE_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
"""Message and decision ids in reviewer feedback: 1-128 letters, digits and . _ : - (the review store keys on them)."""
MAX_REASON_CHARS = 2_000
"""Longest reviewer's reason, in characters."""
MAX_CLOCK_SKEW_S = 300
"""A decision may be dated this many seconds after the receiving clock's now, no more (clock skew)."""

Label = Literal[0, 1]
"""A reviewer's decision on one risk: 1 the risk is there, 0 it is not (None: not reviewed)."""


def _label_value(value: object) -> object:
    """1, 0 or None as given; anything else (true, 1.0, "1", 2) is refused, naming what it was."""
    if value is None or (type(value) is int and value in (0, 1)):
        return value
    seen = str(value).lower() if isinstance(value, bool | int) else f"a {type(value).__name__}"
    raise ValueError(f"a label is 1, 0 or null (not reviewed), not {seen}")


class ReviewLabels(BaseModel):
    """A reviewer's decision per risk: 1 (the risk is there), 0 (it is not), null or absent (not reviewed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    leakage: Label | None = None
    misconduct: Label | None = None
    off_channel: Label | None = None

    _labels_are_0_1_or_null = field_validator(*RISKS, mode="before")(_label_value)

    @model_validator(mode="after")
    def _at_least_one_reviewed(self) -> ReviewLabels:
        if not self.reviewed():
            raise ValueError(f"no risk reviewed; give at least one of {list(RISKS)} as 1 or 0")
        return self

    def reviewed(self) -> dict[str, int]:
        """The risks decided (1 or 0); the others were not reviewed."""
        return {risk: value for risk, value in self.model_dump().items() if value is not None}


class ReviewSeen(BaseModel):
    """What the reviewer saw: the versions of the model and thresholds behind the result, and its scores."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_version: str = Field(..., min_length=1, max_length=128)
    thresholds_version: str | None = Field(None, min_length=1, max_length=128)
    scores: dict[Risk, Annotated[float, Field(ge=0.0, le=1.0)]] = Field(default_factory=dict)


class ReviewDecision(BaseModel):
    """One reviewer's decision on one message, as `/feedback` and `commsrisk reviews import` take it.

    A later decision on the same message supersedes an earlier one (both are kept). Send
    `decision_id` or `decided_at` to make a retry idempotent: the store derives a missing id from
    the message id, reviewer, time and labels, and skips an id it already holds.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    message_id: str = Field(..., pattern=MESSAGE_ID_PATTERN, description="The archive's id of the message reviewed.")
    text: str = Field(..., description="The message body as reviewed; stored as labeled data, never logged.")
    labels: ReviewLabels
    reviewer: str = Field(..., min_length=1, max_length=128, description="Who decided.")
    reason: str | None = Field(None, max_length=MAX_REASON_CHARS, description="Why, in the reviewer's words.")
    decided_at: datetime | None = Field(
        None, description="When the reviewer decided (UTC when it has no offset); default: when it was received."
    )
    decision_id: str | None = Field(
        None, pattern=MESSAGE_ID_PATTERN, description="The review tool's id of this decision; default: derived."
    )
    lang: str | None = Field(None, min_length=2, max_length=8, description="ISO 639-1 code if known.")
    business_unit: str | None = Field(None, max_length=128, description="Sender's business unit.")
    channel: str | None = Field(
        None, max_length=64, description="wechat, whatsapp, signal, sms, teams, bloomberg, email"
    )
    seen: ReviewSeen | None = Field(None, description="The result the reviewer saw (versions and scores).")

    @field_validator("text")
    @classmethod
    def _text_within_limits(cls, text: str, info: ValidationInfo) -> str:
        return text_within_limits(text, info)

    @field_validator("reviewer")
    @classmethod
    def _reviewer_named(cls, reviewer: str) -> str:
        if not reviewer.strip():
            raise ValueError("reviewer is empty or only whitespace; name who decided")
        return reviewer.strip()

    @field_validator("decided_at")
    @classmethod
    def _decided_at_utc(cls, decided_at: datetime | None) -> datetime | None:
        if decided_at is None:
            return None
        try:
            decided_at = decided_at.replace(tzinfo=UTC) if decided_at.tzinfo is None else decided_at.astimezone(UTC)
        except OverflowError as error:
            raise ValueError("decided_at is out of range once converted to UTC") from error
        if decided_at > datetime.now(UTC) + timedelta(seconds=MAX_CLOCK_SKEW_S):
            raise ValueError("decided_at is in the future; send the time of the decision (UTC when it has no offset)")
        return decided_at

    @field_validator("lang", "channel")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value else None


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
the phrases of the text behind each flagged risk (one more forward pass per batch of flagged messages)."""


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
