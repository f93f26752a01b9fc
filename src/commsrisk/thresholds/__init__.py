"""Thresholds per business unit: the policy, its versioned store, and tuning from labeled data.

`policy` holds the schema and the decide step, `store` the history and hot reload, `tuning` the
choice of thresholds from labeled data.

The package exports the policy's names, which the scoring path needs; import the store and the
tuning from their modules (they bring SQLite and matplotlib with them).
"""

from commsrisk.thresholds.policy import (
    BUILTIN_POLICY,
    Decision,
    ThresholdPolicy,
    decide,
    dump_policy,
    load_policy,
    parse_policy,
)

__all__ = ["BUILTIN_POLICY", "Decision", "ThresholdPolicy", "decide", "dump_policy", "load_policy", "parse_policy"]
