"""Feedback after a training case: the reader's answers next to the protocol's reference answers.

Pure Python (no Qt): the controller builds it when a training case is completed, the reading view
shows it. Only questions the protocol gives a reference for are compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from studies.api import AnswerKey, AnswerValue

if TYPE_CHECKING:
    from studies.protocol import Protocol, Question


@dataclass(frozen=True)
class FeedbackItem:
    """One compared answer."""

    label: str  # the question, or the finding for per-finding questions
    group: str  # the question of a per-finding item ("" for per-case questions)
    given: str  # the reader's answer as shown ("" when not answered)
    reference: str  # the reference answer as shown
    agrees: bool


@dataclass(frozen=True)
class TrainingFeedback:
    """What the reader is shown after a training case."""

    assignment_id: str
    items: tuple[FeedbackItem, ...]
    explanation: str  # markdown from the protocol

    @property
    def n_agree(self) -> int:
        """How many answers agree with the reference."""
        return sum(item.agrees for item in self.items)


def _shown(question: Question, value: object) -> str:
    if value is None:
        return ""
    if question.type == "boolean":
        return "Yes" if value else "No"
    label = question.label_for(value)
    if question.type == "likert" and label != str(value):
        return f"{value} {label}"
    return label


def _agree(question: Question, given: object, reference: object) -> bool:
    if given is None:
        return False
    if question.type == "multi":
        return (
            isinstance(given, list)
            and isinstance(reference, list)
            and sorted(map(str, given)) == sorted(map(str, reference))
        )
    if question.type == "number":
        return (
            isinstance(given, int | float)
            and isinstance(reference, int | float)
            and float(given) == float(reference)
        )
    if isinstance(given, bool) or isinstance(reference, bool):  # True must not equal likert 1
        return isinstance(given, bool) and isinstance(reference, bool) and given == reference
    return given == reference


def training_feedback(
    protocol: Protocol,
    assignment_id: str,
    case_id: str | None,
    answers: Mapping[AnswerKey, AnswerValue],
) -> TrainingFeedback | None:
    """The feedback of a completed training case, or None when the protocol gives no reference.

    Parameters
    ----------
    protocol
        The study protocol (its ``training_reference`` tables).
    assignment_id
        The training assignment.
    case_id
        The protocol's training case id (``AssignmentView.training_case``).
    answers
        The reader's answers.
    """
    reference = protocol.training_answers(case_id) if case_id is not None else None
    if reference is None:
        return None
    findings = {f.id: f.label for f in protocol.findings}
    items: list[FeedbackItem] = []
    for question in protocol.questions:  # protocol order, as the panel shows them
        given_ref = reference.answers.get(question.id)
        if given_ref is None:
            continue
        if isinstance(given_ref, dict):
            group = question.text
            pairs = [
                (findings.get(fid, fid), AnswerKey(question.id, fid), value)
                for fid, value in given_ref.items()
            ]
        else:
            group = ""
            pairs = [(question.text, AnswerKey(question.id), given_ref)]
        for label, key, value in pairs:
            given = answers.get(key)
            items.append(
                FeedbackItem(
                    label=label,
                    group=group,
                    given=_shown(question, given),
                    reference=_shown(question, value),
                    agrees=_agree(question, given, value),
                )
            )
    return TrainingFeedback(assignment_id, tuple(items), reference.explanation)
