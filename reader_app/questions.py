"""Which answers a case asks for: one slot per (question, finding, side), show-if rules and the
required answers still missing. Pure Python (no Qt), shared by the question panel and controller."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from studies.api import AnswerKey, AnswerValue, Side

if TYPE_CHECKING:
    from studies.protocol import Protocol, Question

SIDES: tuple[Side, Side] = ("left", "right")
SIDE_LABELS: dict[str, str] = {"left": "Left image", "right": "Right image"}


@dataclass(frozen=True)
class AnswerSlot:
    """One answer the reader can give for a case."""

    key: AnswerKey
    question: Question
    label: str  # the finding's label or the side's label, "" for per-case questions


def answer_slots(protocol: Protocol, n_sides: int, series: Sequence[str] = ()) -> list[AnswerSlot]:
    """Every answer slot of a case, in protocol order (the store's keys, same order).

    Per-finding questions get one slot per finding; per-side questions one slot per side and
    preference questions one slot, both only when two images are shown; a per-series
    measurement question one slot per series in ``series`` (the case's labels; per side too
    when it is asked per side).
    """
    slots: list[AnswerSlot] = []
    finding_labels = {f.id: f.label for f in protocol.findings}
    for question in protocol.questions:
        if question.per == "series" and question.type in ("roi", "distance"):
            sides: tuple[Side | None, ...] = (None,)
            if question.scope == "side":
                if n_sides < 2:
                    continue
                sides = SIDES
            for label in series:
                for side in sides:
                    text = label if side is None else f"{label}, {SIDE_LABELS[side].lower()}"
                    slots.append(AnswerSlot(AnswerKey(question.id, label, side), question, text))
            continue
        if question.scope == "finding":
            for finding_id in protocol.question_findings(question):
                key = AnswerKey(question.id, finding_id=finding_id)
                slots.append(AnswerSlot(key, question, finding_labels.get(finding_id, finding_id)))
        elif question.scope == "side":
            if n_sides < 2:
                continue
            for side in SIDES:
                slots.append(
                    AnswerSlot(AnswerKey(question.id, side=side), question, SIDE_LABELS[side])
                )
        elif question.type != "preference" or n_sides >= 2:
            slots.append(AnswerSlot(AnswerKey(question.id), question, ""))
    return slots


def rule_key(slot: AnswerSlot, protocol: Protocol) -> AnswerKey | None:
    """The answer a slot's show-if rule reads (same finding / side), or None without a rule."""
    rule = slot.question.show_if
    if rule is None:
        return None
    target = protocol.question(rule.question)
    return AnswerKey(
        rule.question,
        finding_id=slot.key.finding_id if target.scope == "finding" else None,
        side=slot.key.side if target.scope == "side" else None,
    )


def is_shown(
    slot: AnswerSlot, answers: Mapping[AnswerKey, AnswerValue], protocol: Protocol
) -> bool:
    """Whether ``slot`` is shown (and, if required, required) given the answers so far.

    Same rule as the store's ``required_keys``: the rule reads the referenced question's answer
    for the same finding / side (``ShowIf.holds``); a missing answer never satisfies it.
    """
    key = rule_key(slot, protocol)
    if key is None:
        return True
    rule = slot.question.show_if
    assert rule is not None
    return bool(rule.holds(answers.get(key)))


def missing_required(
    slots: list[AnswerSlot], answers: Mapping[AnswerKey, AnswerValue], protocol: Protocol
) -> list[AnswerKey]:
    """Required, shown slots without an answer (Next stays blocked while this is not empty)."""
    return [
        slot.key
        for slot in slots
        if slot.question.required
        and is_shown(slot, answers, protocol)
        and answers.get(slot.key) is None
    ]
