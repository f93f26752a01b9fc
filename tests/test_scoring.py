"""The Scorer on real components: the default model, spaCy, Presidio."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from commsrisk.schema import RISKS, Message
from tests.utils.pii import cn_resident_id, iban, luhn_card

REPO = Path(__file__).resolve().parents[1]


def _examples() -> list[Message]:
    lines = (REPO / "data" / "examples.jsonl").read_text(encoding="utf-8").splitlines()
    return [Message.model_validate(json.loads(line)) for line in lines]


def test_result_has_scores_flags_evidence_and_versions(scorer) -> None:  # type: ignore[no-untyped-def]
    result = scorer.score(
        Message(text=f"Send the client list with card {luhn_card()} to my gmail tonight", external=True)
    )
    assert set(result.risks) == set(RISKS)
    for decision in result.risks.values():
        assert 0.0 <= decision.score <= 1.0
        assert decision.flagged == (decision.score >= decision.threshold)
        assert decision.explanation.summary
    assert any(p.entity_type == "CREDIT_CARD" and p.value and p.value.startswith("*") for p in result.pii)
    assert result.model_version and result.thresholds_version


def test_flagged_risk_is_explained_by_phrases_of_the_text(scorer) -> None:  # type: ignore[no-untyped-def]
    text = "Let's move this chat to my personal WhatsApp and delete these messages, the desk line is recorded."
    result = scorer.score(Message(text=text))
    flagged = [r for r, d in result.risks.items() if d.flagged]
    assert "off_channel" in flagged, {r: d.score for r, d in result.risks.items()}
    spans = result.risks["off_channel"].explanation.spans
    assert spans and all(0 <= s.start < s.end <= len(text) for s in spans)
    signals_only = scorer.score(Message(text=text), explain="signals").risks["off_channel"]
    assert signals_only.score == result.risks["off_channel"].score
    assert signals_only.explanation.signals == result.risks["off_channel"].explanation.signals
    assert [s for s in signals_only.explanation.spans if s.kind == "phrase"] == []
    # the strongest signal is a text model's log-odds for the risk: the transformer's or the n-gram stack's
    assert result.risks["off_channel"].explanation.signals[0].name in {"clf_off_channel", "ngram_off_channel"}


def test_examples_score_sensibly(scorer) -> None:  # type: ignore[no-untyped-def]
    results = {r.message_id: r for r in scorer.score_batch(_examples())}
    assert len(results) == 30
    assert {r.language for r in results.values()} == {"en", "zh", "es", "de", "fr", "ja"}
    off = ["ex-02", "ex-11", "ex-17", "ex-23", "ex-26"]
    benign = ["ex-03", "ex-06", "ex-12", "ex-13", "ex-19", "ex-30"]
    assert sum(results[m].risks["off_channel"].flagged for m in off) >= 4
    assert sum(any(d.flagged for d in results[m].risks.values()) for m in benign) <= 1
    assert {"CN_RESIDENT_ID", "PHONE_NUMBER", "EMAIL_ADDRESS"} <= {p.entity_type for p in results["ex-09"].pii}


def test_batch_of_1000_equals_one_by_one(scorer) -> None:  # type: ignore[no-untyped-def]
    base = _examples()
    extra = [
        Message(text=f"客户身份证{cn_resident_id()}，请转账到{iban('DE', '370400440532013000')}", message_id="x1"),
        Message(text="Kill the order and delete the duplicate rows", message_id="x2", business_unit="operations"),
    ]
    messages = [m.model_copy(update={"message_id": f"{m.message_id}-{i}"}) for i in range(32) for m in [*base, *extra]]
    messages = messages[:1000]
    batch = scorer.score_batch(messages, explain="signals")
    one_by_one = [scorer.score(m, explain="signals") for m in messages[:1000:7]]
    assert len(batch) == 1000
    for single, batched in zip(one_by_one, batch[:1000:7], strict=True):
        assert single.message_id == batched.message_id
        assert single.pii == batched.pii and single.entities == batched.entities and single.language == batched.language
        for risk in RISKS:
            assert single.risks[risk].score == pytest.approx(batched.risks[risk].score, abs=1e-4)
            assert single.risks[risk].flagged == batched.risks[risk].flagged


def test_no_text_or_pii_values_in_logs(scorer, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    card, person_id = luhn_card(), cn_resident_id()
    secret = f"wire it to my own account, card {card}, id {person_id}, mail me at hidden.person@example.com"
    with caplog.at_level(logging.INFO):
        scorer.score_batch([Message(text=secret, message_id="secret-1")])
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "secret-1" not in logged or "scored" in logged
    for value in (card, person_id, "hidden.person@example.com", "wire it"):
        assert value not in logged


def test_thresholds_tuned_for_another_model_carry_a_warning(scorer, caplog) -> None:  # type: ignore[no-untyped-def]
    import dataclasses
    import logging

    from commsrisk.thresholds import BUILTIN_POLICY

    message = Message(text="Can you send me the client list on WhatsApp?")
    own = BUILTIN_POLICY.model_copy(update={"tuned_for": scorer.model_version})
    assert dataclasses.replace(scorer, policy=lambda: own).score(message).warnings == []
    other = BUILTIN_POLICY.model_copy(update={"version": "v0007-abc", "tuned_for": "run-someothermodel"})
    mismatched = dataclasses.replace(scorer, policy=lambda: other, _warned=set())
    with caplog.at_level(logging.WARNING, logger="commsrisk.scoring"):
        results = mismatched.score_batch([message, message])
    assert all("tuned for model run-someothermodel" in r.warnings[0] for r in results)
    assert scorer.model_version in results[0].warnings[0]
    assert sum("run-someothermodel" in r.getMessage() for r in caplog.records) == 1  # once, not per message
    assert "client list" not in caplog.text


def test_only_signals_present_in_the_message_drive_its_score(scorer) -> None:  # type: ignore[no-untyped-def]
    results = scorer.score_batch(_examples(), explain="signals")
    drivers = [s for r in results for d in r.risks.values() for s in d.explanation.signals]
    assert drivers and all(s.value != 0 for s in drivers)  # an absent channel or PII type folds into the baseline


def test_contributions_and_baseline_add_up_to_the_calibrated_score(scorer) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from commsrisk.signals import Evidence

    combiner = scorer.combiner
    evidence = [
        Evidence(message=m, probabilities=(0.2, 0.7, 0.9), pii=[], language="en", ngram_probabilities=(0.1, 0.5, 0.8))
        for m in _examples()[:5]
    ]
    contributions, features = combiner.contributions(evidence)
    logits = contributions.sum(axis=2) + combiner.baseline
    standardised = (features - combiner.mean) / combiner.scale
    assert np.allclose(logits, standardised @ combiner.coef.T + combiner.intercept)
    absent = features == 0.0
    assert absent.any() and np.all(contributions.transpose(0, 2, 1)[absent] == 0.0)


def test_a_stop_check_runs_between_pieces_and_abandons_the_batch(scorer) -> None:  # type: ignore[no-untyped-def]
    """The service's deadline and disconnects end work through `stop`; it is called per piece of work."""
    from commsrisk.errors import WorkStoppedError
    from commsrisk.service.budget import RequestBudget

    messages = [Message(text=f"note {i}: " + "the offsite agenda is in the shared drive. " * 400) for i in range(6)]
    calls: list[int] = []
    results = scorer.score_batch(messages, stop=lambda: calls.append(1))
    assert len(results) == 6 and len(calls) >= 4, "NLP pieces of ~20,000 characters, a classifier batch, the end"
    budget = RequestBudget(deadline_s=60, request_id="t-1")
    budget.cancel("the client disconnected")
    with pytest.raises(WorkStoppedError, match="client disconnected"):
        scorer.score_batch(messages, stop=budget.check)
    with pytest.raises(WorkStoppedError, match="request_deadline_s"):
        scorer.score_batch(messages, stop=RequestBudget(deadline_s=1e-9, request_id="t-2").check)


def test_only_the_scored_fields_change_a_result(scorer) -> None:  # type: ignore[no-untyped-def]
    """Archive runs score identical messages once: that holds only if the other fields never reach a score."""
    from datetime import UTC, datetime

    from commsrisk.scoring import SCORED_FIELDS

    assert set(Message.model_fields) - set(SCORED_FIELDS) == {
        "message_id",
        "sender",
        "recipients",
        "sent_at",
        "conversation_id",
    }
    base = Message(text="Send the client list to my gmail and delete this chat", channel="whatsapp", external=True)
    varied = base.model_copy(
        update={
            "message_id": "other-id",
            "sender": "someone@else.example",
            "recipients": ["a@b.example", "c@d.example"],
            "sent_at": datetime(2020, 1, 1, tzinfo=UTC),
            "conversation_id": "conv-9",
        }
    )
    channel, external = base.model_copy(update={"channel": "email"}), base.model_copy(update={"external": False})
    first, second, by_channel, by_external = scorer.score_batch([base, varied, channel, external])
    assert first.model_dump(exclude={"message_id"}) == second.model_dump(exclude={"message_id"})
    for other in (by_channel, by_external):
        assert [d.score for d in other.risks.values()] != [d.score for d in first.risks.values()]
