"""The reads table that the statistics work on, built from the unblinded answers or a CSV.

A reads table has one row per read: ``case, reader, arm, finding, value, read`` (``read`` numbers
repeat reads of one case by one reader on one arm: 1, 2, ...). Building one validates the input:
unknown arms/readers/findings, non-numeric scores and fewer than two readers are errors naming
the column and value; a case that lacks a read that the design expects (read on one arm only, or
not by every reader) is dropped for that finding and reported as an :class:`Exclusion`, never
silently.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from analysis.errors import AnalysisError

if TYPE_CHECKING:
    from studies.protocol import Protocol

READS_COLUMNS: tuple[str, ...] = ("case", "reader", "arm", "finding", "value", "read")
CSV_REQUIRED: tuple[str, ...] = ("case", "reader", "arm", "finding", "value")
_TRUE = {"true", "yes", "present"}
_FALSE = {"false", "no", "absent"}


@dataclass(frozen=True)
class Exclusion:
    """A case left out of one finding's analysis, and why (printed by the report)."""

    case: str
    finding: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        """Plain dictionary for JSON/CSV."""
        return asdict(self)


@dataclass(frozen=True)
class ReadsTable:
    """Validated reads (columns :data:`READS_COLUMNS`) and the cases excluded from them."""

    reads: pd.DataFrame
    exclusions: list[Exclusion] = field(default_factory=list)

    @property
    def arms(self) -> list[str]:
        """Arm codes in order of appearance."""
        return unique_in_order(self.reads["arm"])

    @property
    def findings(self) -> list[str]:
        """Findings in order of appearance."""
        return unique_in_order(self.reads["finding"])


def unique_in_order(values: pd.Series) -> list[str]:
    """Distinct values of a column as strings, in order of first appearance (vectorised)."""
    return [str(value) for value in pd.unique(values.astype(str))]


def reads_from_answers(
    answers: pd.DataFrame,
    protocol: Protocol,
    *,
    question: str | None = None,
    source: str = "answers",
) -> ReadsTable:
    """Reads of one question from the tidy unblinded answers export.

    Parameters
    ----------
    answers : pandas.DataFrame
        ``studies.export.answers_frame(store, unblinded=True)``: needs columns ``reader, session,
        position, case, arm, question, finding, value``.
    protocol : studies.protocol.Protocol
        The study protocol: arms, readers, findings and training cases are checked against it.
    question : str, optional
        The question whose answers become the reads; default the protocol's interchangeability
        question. For a per-case or per-side question the question id becomes the finding.
    source : str
        Name of the input, used in error messages.

    Returns
    -------
    ReadsTable
    """
    if question is None:
        if protocol.interchangeability is None:
            raise AnalysisError(
                f"{source}: the protocol has no [interchangeability] question; name the question"
            )
        question = protocol.interchangeability.question
    question_ids = [q.id for q in protocol.questions]
    if question not in question_ids:
        raise AnalysisError(
            f"{source}: unknown question {question!r} (protocol questions: "
            f"{', '.join(question_ids)})"
        )
    needed = ("reader", "case", "arm", "question", "finding", "value")
    _require(answers, needed, source)
    frame = answers[answers["question"].astype(str) == question].copy()
    if protocol.training_cases:
        frame = frame[~frame["case"].astype(str).isin(protocol.training_cases)]
    if frame.empty:
        raise AnalysisError(f"{source}: no answers to question {question!r}")
    finding = frame["finding"].where(frame["finding"].notna() & (frame["finding"] != ""), question)
    frame = frame.assign(finding=finding.astype(str))
    order = [column for column in ("session", "position") if column in frame.columns]
    if order:
        frame = frame.sort_values(order, kind="stable")
    frame = frame.assign(
        read=frame.groupby(["case", "reader", "arm", "finding"], sort=False).cumcount() + 1
    )
    q = protocol.question(question)
    findings = protocol.question_findings(q) if q.scope == "finding" else [question]
    return validate_reads(
        frame[list(READS_COLUMNS)],
        source=source,
        arms=protocol.arm_codes,
        readers=[r.id for r in protocol.readers],
        findings=findings,
    )


def load_reads_csv(path: Path) -> ReadsTable:
    """Read and validate a reads CSV: ``case,reader,arm,finding,value`` (+ optional ``read``).

    Raises
    ------
    AnalysisError
        Naming the file, the column and what was expected.
    """
    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"{path}: no such reads CSV file")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise AnalysisError(f"{path}: not a readable CSV file ({exc})") from exc
    frame.columns = [str(column).strip() for column in frame.columns]
    _require(frame, CSV_REQUIRED, str(path))
    if "read" not in frame.columns:
        frame["read"] = "1"
    return validate_reads(frame, source=str(path))


def validate_reads(
    frame: pd.DataFrame,
    *,
    source: str,
    arms: list[str] | None = None,
    readers: list[str] | None = None,
    findings: list[str] | None = None,
) -> ReadsTable:
    """Check a reads frame and drop (and report) the cases that lack an expected read.

    Parameters
    ----------
    frame : pandas.DataFrame
        Columns ``case, reader, arm, finding, value`` and optionally ``read``.
    source : str
        Name of the input for messages (a file path, "answers").
    arms, readers, findings : list of str, optional
        The allowed values (from the protocol); values outside them are an error.

    Returns
    -------
    ReadsTable
        The validated reads, ``value`` as float and ``read`` as int, plus the exclusions.
    """
    _require(frame, CSV_REQUIRED, source)
    frame = frame.copy()
    if "read" not in frame.columns:
        frame["read"] = 1
    for column in ("case", "reader", "arm", "finding"):
        text = frame[column].astype(str).str.strip()
        empty = frame[column].isna() | (text == "")
        if empty.any():
            raise AnalysisError(
                f"{source}: column {column!r} is empty on {_where(frame, empty)}; every read "
                f"needs a {column}"
            )
        frame[column] = text
    _check_allowed(frame, "arm", arms, source)
    _check_allowed(frame, "reader", readers, source)
    _check_allowed(frame, "finding", findings, source)
    frame["value"] = _numeric_values(frame, source)
    read = pd.to_numeric(frame["read"], errors="coerce")
    bad_read = read.isna() | (read < 1) | (read != np.floor(read))
    if bad_read.any():
        raise AnalysisError(
            f"{source}: column 'read' must be a whole number >= 1, got "
            f"{frame['read'][bad_read].iloc[0]!r} on {_where(frame, bad_read)}"
        )
    frame["read"] = read.astype(int)
    duplicated = frame.duplicated(["case", "reader", "arm", "finding", "read"], keep=False)
    if duplicated.any():
        raise AnalysisError(
            f"{source}: more than one value for one read on {_where(frame, duplicated)}; number "
            f"repeat reads in column 'read'"
        )
    seen_arms = unique_in_order(frame["arm"])
    if len(seen_arms) < 2:
        raise AnalysisError(
            f"{source}: column 'arm' holds {len(seen_arms)} arm(s) ({', '.join(seen_arms)}); a "
            f"comparison needs at least two"
        )
    n_readers = frame["reader"].nunique()
    if n_readers < 2:
        raise AnalysisError(
            f"{source}: column 'reader' holds {n_readers} reader(s); reader agreement and "
            f"interchangeability need at least two"
        )
    finding_order = {name: i for i, name in enumerate(unique_in_order(frame["finding"]))}
    frame = frame.sort_values("finding", key=lambda c: c.map(finding_order), kind="stable")
    kept, exclusions = _drop_incomplete(frame)
    if kept.empty:
        raise AnalysisError(
            f"{source}: no case was read by every reader on every arm; nothing left to analyse"
        )
    return ReadsTable(reads=kept[list(READS_COLUMNS)].reset_index(drop=True), exclusions=exclusions)


def _drop_incomplete(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[Exclusion]]:
    """Per finding, drop the cases missing a (reader, arm) read that other cases have."""
    combos = frame[["finding", "reader", "arm"]].drop_duplicates()
    expected = combos.groupby("finding", sort=False).size()
    present = (
        frame[["finding", "case", "reader", "arm"]]
        .drop_duplicates()
        .groupby(["finding", "case"], sort=False)
        .size()
    )
    needed = expected.reindex(present.index.get_level_values("finding")).to_numpy()
    short = present.index[present.to_numpy() < needed]
    if len(short) == 0:
        return frame, []
    exclusions: list[Exclusion] = []
    for finding, case in short:
        part = combos[combos["finding"] == finding]
        rows = frame[(frame["finding"] == finding) & (frame["case"] == case)]
        missing = set(zip(part["reader"], part["arm"], strict=True)) - set(
            zip(rows["reader"], rows["arm"], strict=True)
        )
        missing_arms = sorted(set(part["arm"]) - set(rows["arm"]))
        if missing_arms:
            reason = f"not read on arm(s) {', '.join(missing_arms)}"
        else:
            pairs = ", ".join(f"{reader} on {arm}" for reader, arm in sorted(missing))
            reason = f"missing read(s): {pairs}"
        exclusions.append(Exclusion(case=str(case), finding=str(finding), reason=reason))
    keys = pd.MultiIndex.from_frame(frame[["finding", "case"]])
    return frame[~keys.isin(short)], exclusions


def first_reads(frame: pd.DataFrame) -> pd.DataFrame:
    """Keep the first read (smallest ``read``) of every case, reader and arm (and finding)."""
    if "read" not in frame.columns or frame.empty:
        return frame
    read = pd.to_numeric(frame["read"], errors="coerce")
    if read.isna().any():
        raise AnalysisError("column 'read': every read number must be an integer (1, 2, ...)")
    if read.min() == read.max():
        return frame
    keys = [c for c in ("case", "reader", "arm", "finding") if c in frame.columns]
    first = read.groupby([frame[c] for c in keys]).transform("min")
    return frame[read == first]


def _numeric_values(frame: pd.DataFrame, source: str) -> pd.Series:
    raw = frame["value"]

    def convert(value: object) -> float:
        if isinstance(value, bool):
            return float(value)
        if isinstance(value, int | float):
            return float(value)
        text = str(value).strip().lower()
        if text in _TRUE:
            return 1.0
        if text in _FALSE:
            return 0.0
        try:
            return float(text)
        except ValueError:
            return float("nan")

    values = raw.map(convert).astype(float)
    bad = ~values.map(np.isfinite).astype(bool)
    if bad.any():
        raise AnalysisError(
            f"{source}: column 'value' must be a number, got {raw[bad].iloc[0]!r} on "
            f"{_where(frame, bad)}"
        )
    return values


def _check_allowed(
    frame: pd.DataFrame, column: str, allowed: list[str] | None, source: str
) -> None:
    if allowed is None:
        return
    unknown = ~frame[column].isin(allowed)
    if unknown.any():
        raise AnalysisError(
            f"{source}: column {column!r} has unknown value {frame[column][unknown].iloc[0]!r} "
            f"(expected one of {', '.join(allowed)})"
        )


def _require(frame: pd.DataFrame, columns: tuple[str, ...], source: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise AnalysisError(
            f"{source}: missing column(s) {', '.join(missing)}; expected {', '.join(columns)}"
        )


def _where(frame: pd.DataFrame, mask: pd.Series) -> str:
    """Describe the first flagged row: its case/reader and its data line (header = line 1)."""
    position = int(np.flatnonzero(mask.to_numpy())[0])
    row = frame.iloc[position]
    return f"data row {position + 1} (case {row['case']!r}, reader {row['reader']!r})"
