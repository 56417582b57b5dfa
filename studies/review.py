"""When a reader may open a finished session again: the protocol's ``review`` rule.

A finished session is read-only, but seeing it is not harmless: during session 2 a reader who
opens session 1 sees the other arm's images of every case next to their own session-1 grades,
which undoes the washout. So while any later session of the reader is still to be read (pending
behind the washout, or open), earlier finished sessions stay closed; afterwards the protocol
decides (``review = "after_last_session"``, the default, or ``"never"``).
"""

from __future__ import annotations

from collections.abc import Sequence

from studies.api import SessionInfo
from studies.protocol import Review


def review_refusal(sessions: Sequence[SessionInfo], index: int, rule: Review) -> str | None:
    """Why finished session ``index`` may not be opened again, or None when it may.

    Parameters
    ----------
    sessions
        All sessions of the reader (:meth:`studies.store.Store.sessions`).
    index
        The session asked for (1-based). A session that is not finished is not a review:
        None (its own washout lock is checked elsewhere).
    rule
        The protocol's ``review`` rule.

    Returns
    -------
    str or None
        A sentence for the reader, or None.
    """
    target = next((s for s in sessions if s.index == index), None)
    if target is None or not target.finished:
        return None
    if rule == "never":
        return f"Session {index} is finished; this study does not show finished sessions again."
    later = [s.index for s in sessions if s.index > index and not s.finished]
    if later:
        if len(later) == 1:
            which = f"session {later[0]} is"
        else:
            which = f"sessions {', '.join(map(str, later[:-1]))} and {later[-1]} are"
        return f"Session {index} is finished; it can be viewed again once {which} finished."
    return None


def review_note(sessions: Sequence[SessionInfo], index: int, rule: Review) -> str | None:
    """A short worklist note for a finished session that cannot be opened now, or None."""
    if review_refusal(sessions, index, rule) is None:
        return None
    if rule == "never":
        return "not shown again"
    return f"can be viewed after session {max(s.index for s in sessions)}"


__all__ = ["review_note", "review_refusal"]
