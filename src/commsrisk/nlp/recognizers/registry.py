"""The explicit table of recognizers and the YAML that enables them per language.

A recognizer nobody listed here cannot be enabled by accident, and a name in the YAML that is
not here fails, listing the known ones (Presidio discovers classes through __subclasses__, so a
class never imported is silently missing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

import yaml
from presidio_analyzer import EntityRecognizer
from presidio_analyzer.predefined_recognizers import (
    AbaRoutingRecognizer,
    AuTfnRecognizer,
    CaSinRecognizer,
    DeTaxIdRecognizer,
    EsNieRecognizer,
    EsNifRecognizer,
    MedicalLicenseRecognizer,
    NhsRecognizer,
    SgFinRecognizer,
    UkNinoRecognizer,
    UsItinRecognizer,
    UsSsnRecognizer,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from commsrisk.errors import ConfigurationError
from commsrisk.nlp.recognizers.country_specific.china.cn_person_recognizer import CnPersonRecognizer
from commsrisk.nlp.recognizers.country_specific.china.cn_phone_recognizer import CnPhoneRecognizer
from commsrisk.nlp.recognizers.country_specific.china.cn_resident_id_recognizer import CnResidentIdRecognizer
from commsrisk.nlp.recognizers.country_specific.japan.jp_my_number_recognizer import JpMyNumberRecognizer
from commsrisk.nlp.recognizers.country_specific.presidio_country import context_gated
from commsrisk.nlp.recognizers.finance.bank_account_recognizer import BankAccountRecognizer
from commsrisk.nlp.recognizers.finance.credit_card_recognizer import BoundaryFreeCreditCardRecognizer
from commsrisk.nlp.recognizers.finance.iban_recognizer import BoundaryFreeIbanRecognizer
from commsrisk.nlp.recognizers.finance.isin_recognizer import CusipRecognizer, IsinRecognizer
from commsrisk.nlp.recognizers.finance.swift_bic_recognizer import SwiftBicRecognizer
from commsrisk.nlp.recognizers.generic.address_recognizer import AddressRecognizer
from commsrisk.nlp.recognizers.generic.email_recognizer import BoundaryFreeEmailRecognizer
from commsrisk.nlp.recognizers.generic.ip_recognizer import BoundaryFreeIpRecognizer
from commsrisk.nlp.recognizers.generic.ner_recognizer import NerRecognizer
from commsrisk.nlp.recognizers.generic.passport_recognizer import PassportRecognizer
from commsrisk.nlp.recognizers.generic.person_cue_recognizer import PersonCueRecognizer
from commsrisk.nlp.recognizers.generic.phone_recognizer import PhoneShapeRecognizer, RegionalPhoneRecognizer

RecognizerFactory = Callable[[str, list[str]], EntityRecognizer]


def _us_ssn(language: str, context: list[str]) -> EntityRecognizer:
    return UsSsnRecognizer(supported_language=language, context=context or None)


def _ours(cls: type) -> RecognizerFactory:
    return lambda language, context: cls(supported_language=language, context=context or None)


RECOGNIZERS: dict[str, RecognizerFactory] = {
    "BoundaryFreeEmailRecognizer": _ours(BoundaryFreeEmailRecognizer),
    "BoundaryFreeIpRecognizer": _ours(BoundaryFreeIpRecognizer),
    "AddressRecognizer": _ours(AddressRecognizer),
    "PassportRecognizer": _ours(PassportRecognizer),
    "BoundaryFreeIbanRecognizer": _ours(BoundaryFreeIbanRecognizer),
    "BoundaryFreeCreditCardRecognizer": _ours(BoundaryFreeCreditCardRecognizer),
    "SwiftBicRecognizer": _ours(SwiftBicRecognizer),
    "IsinRecognizer": _ours(IsinRecognizer),
    "CusipRecognizer": _ours(CusipRecognizer),
    "BankAccountRecognizer": _ours(BankAccountRecognizer),
    "RegionalPhoneRecognizer": _ours(RegionalPhoneRecognizer),
    "PhoneShapeRecognizer": _ours(PhoneShapeRecognizer),
    "CnPhoneRecognizer": _ours(CnPhoneRecognizer),
    "CnResidentIdRecognizer": _ours(CnResidentIdRecognizer),
    "CnPersonRecognizer": _ours(CnPersonRecognizer),
    "UsSsnRecognizer": _us_ssn,
    "JpMyNumberRecognizer": _ours(JpMyNumberRecognizer),
    **{
        cls.__name__: _ours(context_gated(cls))
        for cls in (
            AbaRoutingRecognizer,
            UsItinRecognizer,
            NhsRecognizer,
            UkNinoRecognizer,
            MedicalLicenseRecognizer,
            SgFinRecognizer,
            CaSinRecognizer,
            AuTfnRecognizer,
            EsNifRecognizer,
            EsNieRecognizer,
            DeTaxIdRecognizer,
        )
    },
    "NerRecognizer": _ours(NerRecognizer),
    "PersonCueRecognizer": _ours(PersonCueRecognizer),
}


class RecognizerEntry(BaseModel):
    """One recognizer: whether it runs, and for which languages with which context words."""

    model_config = ConfigDict(extra="forbid")

    name: str
    enabled: bool = True
    languages: dict[str, list[str]] = Field(..., description="language -> context words in that language")


class RecognizersConfig(BaseModel):
    """The recognizers file."""

    model_config = ConfigDict(extra="forbid")

    recognizers: list[RecognizerEntry]


def load_recognizers_config(path: Path | None = None) -> RecognizersConfig:
    """Read the recognizers YAML (default: the one shipped with the package).

    Raises:
        ConfigurationError: invalid YAML, a bad entry, or an unknown recognizer name.
    """
    text = (
        path.read_text(encoding="utf-8")
        if path
        else (resources.files("commsrisk.nlp") / "recognizers.yaml").read_text(encoding="utf-8")
    )
    source = str(path) if path else "recognizers.yaml"
    try:
        config = RecognizersConfig.model_validate(yaml.safe_load(text))
    except (yaml.YAMLError, ValidationError) as err:
        raise ConfigurationError(f"{source}: invalid recognizers config: {err}") from err
    unknown = [entry.name for entry in config.recognizers if entry.name not in RECOGNIZERS]
    if unknown:
        raise ConfigurationError(f"{source}: unknown recognizer(s) {unknown}; known: {sorted(RECOGNIZERS)}")
    return config


def build_recognizers(config: RecognizersConfig, languages: Sequence[str]) -> list[EntityRecognizer]:
    """One recognizer instance per enabled entry and configured language.

    A recognizer's English context words count in every language too: staff write "account",
    "passport" and "IP" inside Chinese, Spanish or Japanese chat ("HSBC account 8248...").
    """
    return [
        RECOGNIZERS[entry.name](language, _with_english(context, entry.languages.get("en", [])))
        for entry in config.recognizers
        if entry.enabled
        for language, context in entry.languages.items()
        if language in languages
    ]


def _with_english(context: list[str], english: list[str]) -> list[str]:
    return list(context) + [word for word in english if word not in context]
