"""The review rule: when a finished session may be opened again."""

from __future__ import annotations

from datetime import timedelta

import pytest

from studies.api import SessionInfo
from studies.errors import StudyError
from studies.protocol import parse_protocol
from studies.review import review_note, review_refusal
from tests.studies.study_factory import SEQUENTIAL_TOML, START


def sessions(*states: str) -> list[SessionInfo]:
    """One session per state: "finished", "open", "pending" (washout) or "waiting"."""
    out = []
    for i, state in enumerate(states, start=1):
        out.append(
            SessionInfo(
                reader_id="R1",
                index=i,
                n_total=4,
                n_done=4 if state == "finished" else 0,
                not_before=(START + timedelta(days=30)).date() if state == "pending" else None,
                locked=state in ("pending", "waiting"),
                finished=state == "finished",
            )
        )
    return out


@pytest.mark.parametrize("later", ["pending", "open"])
def test_an_earlier_session_is_closed_while_a_later_one_is_to_be_read(later: str):
    s = sessions("finished", later)
    refusal = review_refusal(s, 1, "after_last_session")
    assert refusal is not None and "once session 2 is finished" in refusal
    assert review_note(s, 1, "after_last_session") == "can be viewed after session 2"
    assert review_refusal(s, 2, "after_last_session") is None  # not a review


def test_several_later_sessions_are_named():
    refusal = review_refusal(
        sessions("finished", "finished", "open", "waiting"), 1, "after_last_session"
    )
    assert refusal is not None and "sessions 3 and 4 are finished" in refusal


def test_after_the_last_session_review_follows_the_rule():
    s = sessions("finished", "finished")
    assert review_refusal(s, 1, "after_last_session") is None
    assert review_note(s, 2, "after_last_session") is None
    assert "does not show finished sessions again" in str(review_refusal(s, 1, "never"))
    assert review_note(s, 2, "never") == "not shown again"
    assert review_refusal(s, 3, "never") is None  # no such session: nothing to refuse


def test_the_protocol_rule_defaults_to_after_the_last_session_and_is_checked():
    assert parse_protocol(SEQUENTIAL_TOML).review == "after_last_session"
    text = SEQUENTIAL_TOML.replace("washout_days = 28", 'washout_days = 28\nreview = "never"')
    assert parse_protocol(text).review == "never"
    bad = SEQUENTIAL_TOML.replace("washout_days = 28", 'washout_days = 28\nreview = "always"')
    with pytest.raises(StudyError, match="review"):
        parse_protocol(bad, "p.toml")
