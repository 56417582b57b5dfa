"""Text checks that keep arms out of what the reader sees."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from studies.protocol import Protocol

NEUTRAL_TITLE = "Reader study"


def arm_terms(protocol: Protocol) -> list[str]:
    """Every arm code and description of the protocol (the words a reader must never see)."""
    terms: list[str] = []
    for arm in protocol.arms:
        terms.extend(t for t in (arm.code, arm.description) if t.strip())
    return terms


def mentions_any(text: str, terms: list[str]) -> bool:
    """Whether ``text`` contains any of ``terms`` as a whole word (case-insensitive)."""
    for term in terms:
        pattern = r"(?<![A-Za-z0-9])" + re.escape(term.strip()) + r"(?![A-Za-z0-9])"
        if re.search(pattern, text, flags=re.IGNORECASE):
            return True
    return False


def safe_study_title(title: str, protocol: Protocol) -> str:
    """The study title, or a neutral one when the title names an arm."""
    if not title.strip() or mentions_any(title, arm_terms(protocol)):
        return NEUTRAL_TITLE
    return title.strip()
