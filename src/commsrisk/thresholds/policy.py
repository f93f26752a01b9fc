"""Per-business-unit risk thresholds: the policy schema, loading it, and the decision step."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from commsrisk.errors import ConfigurationError
from commsrisk.schema import RISKS, Risk

Thresholds = dict[str, float]
Threshold = Annotated[float, Field(ge=0.0, le=1.0)]


class ThresholdPolicy(BaseModel):
    """Default thresholds per risk plus per-business-unit overrides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field("unversioned", description="Set when the policy is applied; results name it.")
    name: str | None = Field(None, description="The author's own name for the policy; kept when it is applied.")
    tuned_for: str | None = Field(
        None, description="The model version these thresholds were tuned for; scoring with another model warns."
    )
    defaults: dict[Risk, Threshold] = Field(..., description="A threshold for every risk.")
    business_units: dict[str, dict[Risk, Threshold]] = Field(default_factory=dict)
    unknown_business_units: Literal["reject", "defaults"] | None = Field(
        None,
        description="A message naming a unit not listed here: 'reject' it (HTTP 400) or score it on the defaults. "
        "Unset: 'defaults' when no unit is listed, else 'reject' (a typo must not silently get the defaults).",
    )

    @field_validator("defaults")
    @classmethod
    def _defaults_complete(cls, defaults: dict[str, float]) -> dict[str, float]:
        missing = [risk for risk in RISKS if risk not in defaults]
        if missing:
            raise ValueError(f"missing risk(s) {missing}; every risk needs a default")
        return defaults

    def accepts_unit(self, business_unit: str | None) -> bool:
        """Whether a message of `business_unit` may be scored: no unit, a listed one, or a catch-all policy."""
        if business_unit is None or business_unit in self.business_units:
            return True
        rule = self.unknown_business_units or ("reject" if self.business_units else "defaults")
        return rule == "defaults"

    def for_unit(self, business_unit: str | None) -> tuple[Thresholds, bool]:
        """Thresholds for a unit and whether the unit has overrides (else the defaults apply)."""
        overrides = self.business_units.get(business_unit or "")
        if overrides is None:
            return dict(self.defaults), False
        return {**self.defaults, **overrides}, True


BUILTIN_POLICY = ThresholdPolicy(version="builtin-0.5", defaults=dict.fromkeys(RISKS, 0.5))
"""Used only when no policy file exists: calibrated scores make 0.5 a neutral start."""


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the YAML node at a pydantic error location, as deep as it resolves."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if not isinstance(node, yaml.MappingNode):
            break
        match = next((v for k, v in node.value if getattr(k, "value", None) == str(key)), None)
        if match is None:
            key_node = next((k for k, _ in node.value if getattr(k, "value", None) == str(key)), None)
            return key_node.start_mark.line + 1 if key_node is not None else line
        node, line = match, match.start_mark.line + 1
    return line


def parse_policy(text: str, source: str = "policy") -> ThresholdPolicy:
    """Validate policy YAML text; every problem is reported with its line and reason.

    Raises:
        ConfigurationError: not valid YAML, or the content breaks the schema.
    """
    try:
        root = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "unknown line"
        raise ConfigurationError(f"{source}: not valid YAML at {where}: {getattr(err, 'problem', err)}") from err
    if raw is not None and not isinstance(raw, dict):
        raise ConfigurationError(f"{source}: line 1: a policy is a mapping with 'defaults' and 'business_units'")
    try:
        return ThresholdPolicy.model_validate(raw or {})
    except ValidationError as err:
        problems = []
        for item in err.errors(include_input=False, include_url=False):
            loc = tuple(item["loc"])
            line = _line_of(root, loc)
            field_path = ".".join(map(str, loc)) or "(top)"
            message = item["msg"].removeprefix("Value error, ")
            problems.append(f"line {line}: {field_path}: {message}" if line else f"{field_path}: {message}")
        raise ConfigurationError(f"{source}: invalid thresholds policy: " + "; ".join(problems)) from err


def load_policy(path: Path) -> ThresholdPolicy:
    """Read and validate a policy file.

    Raises:
        ConfigurationError: the file is missing, not valid YAML, or breaks the schema (line and reason given).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigurationError(f"{path}: cannot read the thresholds policy ({err.__class__.__name__})") from err
    return parse_policy(text, str(path))


def dump_policy(policy: ThresholdPolicy) -> str:
    """The policy as YAML, in a stable order (risks in RISKS order, units sorted)."""
    payload: dict[str, object] = {"version": policy.version}
    payload.update({key: getattr(policy, key) for key in ("name", "tuned_for") if getattr(policy, key)})
    payload |= {
        "defaults": {risk: policy.defaults[risk] for risk in RISKS},
        "business_units": {
            unit: {risk: values[risk] for risk in RISKS if risk in values}
            for unit, values in sorted(policy.business_units.items())
        },
    }
    if policy.unknown_business_units is not None:
        payload["unknown_business_units"] = policy.unknown_business_units
    return yaml.safe_dump(payload, sort_keys=False, allow_unicode=True)


@dataclass(frozen=True)
class Decision:
    """Flags for one message and the thresholds that decided them."""

    flags: dict[str, bool]
    thresholds: Thresholds
    unit_has_overrides: bool


def model_mismatch(policy: ThresholdPolicy, model_names: set[str]) -> str | None:
    """A warning when the policy was tuned for a model other than the one scoring, else None."""
    if not policy.tuned_for or policy.tuned_for in model_names:
        return None
    return (
        f"thresholds {policy.version} were tuned for model {policy.tuned_for}, not {sorted(model_names)[0]}: "
        "flags may be too many or too few; re-tune with 'commsrisk thresholds tune'"
    )


def decide(policy: ThresholdPolicy, business_unit: str | None, scores: dict[str, float]) -> Decision:
    """Flag each risk whose score reaches the unit's threshold."""
    thresholds, has_overrides = policy.for_unit(business_unit)
    flags = {risk: scores[risk] >= thresholds[risk] for risk in RISKS}
    return Decision(flags, thresholds, has_overrides)
