"""Per-business-unit risk thresholds: the policy schema, loading it, and the decision step."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from commsrisk.errors import ConfigurationError
from commsrisk.schema import RISKS

Thresholds = dict[str, float]


def _check_risks(values: dict[str, float], where: str) -> dict[str, float]:
    unknown = sorted(set(values) - set(RISKS))
    if unknown:
        raise ValueError(f"{where}: unknown risk(s) {unknown}; risks are {list(RISKS)}")
    for risk, value in values.items():
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{where}: {risk} = {value} is outside [0, 1]")
    return {risk: float(value) for risk, value in values.items()}


class ThresholdPolicy(BaseModel):
    """Default thresholds per risk plus per-business-unit overrides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field("unversioned", description="Set when the policy is applied; results name it.")
    defaults: dict[str, float] = Field(..., description="A threshold for every risk.")
    business_units: dict[str, dict[str, float]] = Field(default_factory=dict)

    @field_validator("defaults")
    @classmethod
    def _defaults_complete(cls, defaults: dict[str, float]) -> dict[str, float]:
        defaults = _check_risks(defaults, "defaults")
        missing = [risk for risk in RISKS if risk not in defaults]
        if missing:
            raise ValueError(f"defaults: missing risk(s) {missing}; every risk needs a default")
        return defaults

    @field_validator("business_units")
    @classmethod
    def _overrides_valid(cls, units: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        return {unit: _check_risks(values, f"business_units.{unit}") for unit, values in units.items()}

    def for_unit(self, business_unit: str | None) -> tuple[Thresholds, bool]:
        """Thresholds for a unit and whether the unit has overrides (else the defaults apply)."""
        overrides = self.business_units.get(business_unit or "")
        if overrides is None:
            return dict(self.defaults), False
        return {**self.defaults, **overrides}, True


BUILTIN_POLICY = ThresholdPolicy(version="builtin-0.5", defaults=dict.fromkeys(RISKS, 0.5))
"""Used only when no policy file exists: calibrated scores make 0.5 a neutral start."""


def load_policy(path: Path) -> ThresholdPolicy:
    """Read and validate a policy file.

    Raises:
        ConfigurationError: the file is not valid YAML or breaks the schema (line and reason given).
    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "unknown line"
        raise ConfigurationError(f"{path}: not valid YAML at {where}: {getattr(err, 'problem', err)}") from err
    try:
        return ThresholdPolicy.model_validate(raw or {})
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors(include_input=False))
        raise ConfigurationError(f"{path}: invalid thresholds policy: {problems}") from err


@dataclass(frozen=True)
class Decision:
    """Flags for one message and the thresholds that decided them."""

    flags: dict[str, bool]
    thresholds: Thresholds
    unit_has_overrides: bool


def decide(policy: ThresholdPolicy, business_unit: str | None, scores: dict[str, float]) -> Decision:
    """Flag each risk whose score reaches the unit's threshold."""
    thresholds, has_overrides = policy.for_unit(business_unit)
    flags = {risk: scores[risk] >= thresholds[risk] for risk in RISKS}
    return Decision(flags, thresholds, has_overrides)
