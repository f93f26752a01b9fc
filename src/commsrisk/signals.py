"""Risk signals: named, versioned features that feed the score besides the classifier.

A signal is registered as ``commsrisk.<name>.v<N>`` in the `signals` registry (catalogue, as spaCy
does) and maps one message's evidence to named float features. The combiner records the signal
names it was trained with and refuses to run with others, so a change in behaviour gets a new
version and old models keep the old one.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import catalogue

from commsrisk.errors import ConfigurationError
from commsrisk.schema import CHANNELS, RISKS, Message, PiiFinding

signals = catalogue.create("commsrisk", "signals", entry_points=True)


@dataclass(frozen=True)
class Evidence:
    """What the steps before scoring found about one message."""

    message: Message
    probabilities: Sequence[float]
    pii: Sequence[PiiFinding]
    language: str
    ngram_probabilities: Sequence[float] | None = None
    """The character n-gram classifier's P(risk), for models stacked with one."""


SignalFn = Callable[[Evidence], dict[str, float]]

PII_GROUPS: dict[str, tuple[str, ...]] = {
    "financial": ("IBAN", "CREDIT_CARD", "SWIFT", "BIC", "ISIN", "CUSIP", "BANK", "ACCOUNT", "CARD", "ROUTING"),
    "government_id": (
        "RESIDENT_ID",
        "SSN",
        "PASSPORT",
        "NATIONAL",
        "TAX",
        "DRIVER",
        "ITIN",
        "NIF",
        "DNI",
        "NIR",
        "NIE",
        "NHS",
        "NINO",
        "NRIC",
        "SIN",
        "TFN",
        "MY_NUMBER",
        "MEDICAL_LICENSE",
    ),
    "contact": ("EMAIL", "PHONE", "MOBILE", "URL", "HANDLE", "WECHAT", "WHATSAPP"),
    "person": ("PERSON",),
}
"""PII types by group, matched on substrings of the entity type (so new country recognizers fall in)."""


def pii_group(entity_type: str) -> str | None:
    """The group an entity type counts towards, or None if it is not counted."""
    for group, needles in PII_GROUPS.items():
        if any(needle in entity_type for needle in needles):
            return group
    return None


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


@signals.register("commsrisk.classifier_logit.v1")
def classifier_logit(evidence: Evidence) -> dict[str, float]:
    """The fine-tuned classifier's log-odds for each risk."""
    return {f"clf_{risk}": _logit(float(p)) for risk, p in zip(RISKS, evidence.probabilities, strict=True)}


@signals.register("commsrisk.ngram_logit.v1")
def ngram_logit(evidence: Evidence) -> dict[str, float]:
    """The character n-gram classifier's log-odds for each risk (models stacked with one)."""
    if evidence.ngram_probabilities is None:
        raise ConfigurationError(
            "this model's combiner uses the n-gram signal but no n-gram classifier was loaded (ngram.npz missing)"
        )
    return {f"ngram_{risk}": _logit(float(p)) for risk, p in zip(RISKS, evidence.ngram_probabilities, strict=True)}


@signals.register("commsrisk.pii_counts.v1")
def pii_counts(evidence: Evidence) -> dict[str, float]:
    """log(1 + count) of PII findings per group: financial ids, government ids, contacts, persons."""
    counts = dict.fromkeys(PII_GROUPS, 0)
    for finding in evidence.pii:
        group = pii_group(finding.entity_type)
        if group is not None:
            counts[group] += 1
    return {f"pii_{group}": math.log1p(count) for group, count in counts.items()}


@signals.register("commsrisk.external.v1")
def external_party(evidence: Evidence) -> dict[str, float]:
    """Whether the message crosses the firm's boundary (unknown counts as neither)."""
    external = evidence.message.external
    return {"external": 1.0 if external else 0.0, "external_unknown": 1.0 if external is None else 0.0}


@signals.register("commsrisk.channel.v1")
def channel(evidence: Evidence) -> dict[str, float]:
    """One-hot channel; an unknown or missing channel counts as 'other'."""
    name = evidence.message.channel if evidence.message.channel in CHANNELS else "other"
    return {f"channel_{c}": 1.0 if c == name else 0.0 for c in CHANNELS}


DEFAULT_SIGNALS: tuple[str, ...] = (
    "commsrisk.classifier_logit.v1",
    "commsrisk.pii_counts.v1",
    "commsrisk.external.v1",
    "commsrisk.channel.v1",
)
NGRAM_SIGNAL = "commsrisk.ngram_logit.v1"
"""Added to the signals of a model stacked with a character n-gram classifier."""


def resolve_signals(names: Sequence[str]) -> list[tuple[str, SignalFn]]:
    """Look up signal functions by registered name; an unknown name lists the known ones."""
    return list(_resolved(tuple(names)))


@functools.lru_cache(maxsize=64)
def _resolved(names: tuple[str, ...]) -> tuple[tuple[str, SignalFn], ...]:
    """Once per list of names: the registry reads every installed package's entry points (1.5 ms)."""
    known = signals.get_all()
    missing = [name for name in names if name not in known]
    if missing:
        raise ConfigurationError(f"unknown signal(s) {missing}; registered signals: {sorted(known)}")
    return tuple((name, known[name]) for name in names)
