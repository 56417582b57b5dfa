"""Answer slots, show-if and required answers (the same rules as the store's), and the study
title kept neutral when it names an arm."""

from __future__ import annotations

from reader_app.blinding import NEUTRAL_TITLE, safe_study_title
from reader_app.questions import answer_slots, is_shown, missing_required
from studies.api import AnswerKey
from studies.protocol import parse_protocol
from studies.store import Store
from tests.reader_app.conftest import PAIRED_TOML, SEQUENTIAL_TOML

SEQUENTIAL = parse_protocol(SEQUENTIAL_TOML.format(washout=0), "seq.toml")
PAIRED = parse_protocol(PAIRED_TOML, "paired.toml")


def test_slots_follow_the_protocol_order_per_finding_and_per_side():
    keys = [s.key for s in answer_slots(SEQUENTIAL, 1)]
    assert keys[:3] == [AnswerKey("likelihood", "acl"), AnswerKey("likelihood", "meniscus"),
                        AnswerKey("quality")]  # fmt: skip
    assert len(keys) == 8
    labels = [s.label for s in answer_slots(PAIRED, 2)]
    assert labels == ["Left image", "Right image", "", ""]
    assert [s.key for s in answer_slots(PAIRED, 1)] == [AnswerKey("reason")]  # no sides, no pair


def test_show_if_and_missing_match_the_store(make_study, clock):
    slots = answer_slots(PAIRED, 2)
    reason = next(s for s in slots if s.key == AnswerKey("reason"))
    answers = {AnswerKey("quality", side="left"): 2, AnswerKey("quality", side="right"): 3}
    assert not is_shown(reason, answers, PAIRED)
    with Store.open(make_study("paired"), clock=clock) as store:
        for preference in (None, "equal", "left", "right"):
            given = {**answers, AnswerKey("preference"): preference}
            ours = missing_required(slots, given, PAIRED)
            theirs = [k for k in store.required_keys(given) if given.get(k) is None]
            assert ours == theirs
            assert is_shown(reason, given, PAIRED) == (preference in ("left", "right"))


def test_a_title_naming_an_arm_is_replaced():
    assert safe_study_title("Knee reading study", SEQUENTIAL) == "Knee reading study"
    assert safe_study_title("VARNET versus conv knee", SEQUENTIAL) == NEUTRAL_TITLE
    assert safe_study_title("Variational network reconstruction study", SEQUENTIAL) == (
        NEUTRAL_TITLE
    )
    assert safe_study_title("Convalescent knees", SEQUENTIAL) == "Convalescent knees"  # word match
