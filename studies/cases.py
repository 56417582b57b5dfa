"""The cases file (``CASES.csv``): one row per case and arm, pointing at that arm's DICOM folder.

Columns: ``case_id,subject_id,arm,series_dir`` (required), ``series`` (optional: the neutral
name of one series of the exam, e.g. ``cor_pd``, ``sag_t2fs``; a case has one row per arm and
series, and every arm of a case has the same series), ``sequence`` (optional: the sequence type,
a stratum for side balancing in the paired design) and ``truth_<finding_id>`` (optional: the
reference standard, 0 / 1 / empty for unknown). ``case_id`` names the comparison unit and is
shared by its arms; ``subject_id`` groups the cases of one patient. Relative ``series_dir`` paths
resolve against the CSV's folder. Without a ``series`` column each case and arm has one series,
labelled ``series``.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from studies.api import DEFAULT_SERIES_LABEL
from studies.errors import StudyError
from studies.protocol import ID_PATTERN, Protocol, names_arm

REQUIRED_COLUMNS = ("case_id", "subject_id", "arm", "series_dir")
OPTIONAL_COLUMNS = ("series", "sequence")
_SERIES_RE = re.compile(ID_PATTERN)
#: Series labels are shown to the reader (thumbnail strip); kept short.
MAX_SERIES_LABEL = 32
TRUTH_PREFIX = "truth_"


@dataclass(frozen=True)
class CaseRow:
    """One row of CASES.csv: one series of one case on one arm.

    ``truth`` maps each ``truth_<finding>`` column of the file to 1, 0 or None (unknown).
    ``line`` is the row's line number in the file (for messages; 0 when not from a file).
    """

    case_id: str
    subject_id: str
    arm: str
    series_dir: Path
    sequence: str = ""
    truth: dict[str, int | None] = field(default_factory=dict)
    line: int = field(default=0, compare=False)
    series: str = DEFAULT_SERIES_LABEL

    @property
    def key(self) -> tuple[str, str, str]:
        """``(case_id, arm, series)``: what the row names, unique in the file."""
        return (self.case_id, self.arm, self.series)


def load_cases(path: Path | str, protocol: Protocol) -> list[CaseRow]:
    """Read and check CASES.csv against a protocol.

    Parameters
    ----------
    path
        The CSV file (UTF-8, a header row first).
    protocol
        The study protocol: its arms, findings and training cases are checked against the file.

    Returns
    -------
    list[CaseRow]
        The rows in file order.

    Raises
    ------
    StudyError
        Naming the file, the line and the column: missing columns, empty values, an unknown arm,
        a duplicate (case_id, arm, series), one series folder on two rows (two arms or two
        cases), a case without one of the protocol's arms, an arm of a case with other series
        than its other arms, a series label that is not a plain id, names an arm or is not in
        the protocol's hanging order, a subject_id or
        sequence that differs between the arms of one case, a truth column for an unknown
        finding or a value other than 0/1/empty, a series_dir that is not a folder, or a
        training case of the protocol that is not in the file.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            try:
                header = [h.strip() for h in next(reader)]
            except StopIteration:
                raise StudyError(
                    f"{path}: the cases file is empty (expected a header row)"
                ) from None
            columns = _check_header(path, header, protocol)
            raw_rows: list[tuple[int, list[str]]] = []
            for cells in reader:
                if not any(c.strip() for c in cells):
                    continue  # blank line
                raw_rows.append((reader.line_num, cells))
    except FileNotFoundError:
        raise StudyError(f"{path}: cases file not found") from None
    except UnicodeDecodeError as exc:
        raise StudyError(f"{path}: not a UTF-8 text file ({exc.reason})") from None
    except csv.Error as exc:
        raise StudyError(f"{path}: not a valid CSV file ({exc})") from None
    except OSError as exc:
        raise StudyError(f"{path}: cannot read the cases file ({exc})") from None
    if not raw_rows:
        raise StudyError(f"{path}: no cases (only a header row)")
    rows = [_parse_row(path, line, cells, columns, protocol) for line, cells in raw_rows]
    _check_cases(path, rows, protocol)
    return rows


def _check_header(path: Path, header: list[str], protocol: Protocol) -> dict[str, int]:
    where = f"{path}, line 1"
    seen: dict[str, int] = {}
    for index, name in enumerate(header):
        if name in seen:
            raise StudyError(f"{where}, column {name!r}: duplicate column")
        seen[name] = index
    missing = [c for c in REQUIRED_COLUMNS if c not in seen]
    if missing:
        raise StudyError(
            f"{where}: missing column(s) {', '.join(missing)} "
            f"(required: {', '.join(REQUIRED_COLUMNS)})"
        )
    findings = {f.id for f in protocol.findings}
    for name in header:
        if name in REQUIRED_COLUMNS or name in OPTIONAL_COLUMNS:
            continue
        if name.startswith(TRUTH_PREFIX):
            finding = name[len(TRUTH_PREFIX) :]
            if finding not in findings:
                known = ", ".join(sorted(findings)) or "none"
                raise StudyError(
                    f"{where}, column {name!r}: unknown finding {finding!r} "
                    f"(protocol findings: {known})"
                )
            continue
        raise StudyError(
            f"{where}, column {name!r}: unknown column (expected "
            f"{', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)} or truth_<finding>)"
        )
    return seen


def _parse_row(
    path: Path, line: int, cells: list[str], columns: dict[str, int], protocol: Protocol
) -> CaseRow:
    where = f"{path}, line {line}"
    if len(cells) != len(columns):
        raise StudyError(f"{where}: {len(cells)} values, the header has {len(columns)} columns")
    values = {name: cells[index].strip() for name, index in columns.items()}
    for name in REQUIRED_COLUMNS:
        if not values[name]:
            raise StudyError(f"{where}, column {name}: empty value")
    arm = values["arm"]
    if arm not in protocol.arm_codes:
        raise StudyError(
            f"{where}, column arm: unknown arm {arm!r} "
            f"(protocol arms: {', '.join(protocol.arm_codes)})"
        )
    series_dir = Path(values["series_dir"]).expanduser()
    if not series_dir.is_absolute():
        series_dir = path.parent / series_dir
    if not series_dir.exists():
        raise StudyError(f"{where}, column series_dir: folder not found: {series_dir}")
    if not series_dir.is_dir():
        raise StudyError(f"{where}, column series_dir: not a folder: {series_dir}")
    series = values.get("series", "") or DEFAULT_SERIES_LABEL
    if "series" in columns and not values["series"]:
        raise StudyError(f"{where}, column series: empty value (name the series, e.g. cor_pd)")
    if not _SERIES_RE.match(series) or len(series) > MAX_SERIES_LABEL:
        raise StudyError(
            f"{where}, column series: {series!r} is not a valid series name (letters, digits, "
            f"'_', '.', '-', at most {MAX_SERIES_LABEL} characters)"
        )
    arm_word = names_arm(series, protocol.arms)
    if arm_word is not None:
        raise StudyError(
            f"{where}, column series: {series!r} names the arm {arm_word!r} (readers see the "
            "series names; use neutral names such as cor_pd)"
        )
    if "series" in columns and protocol.hanging.series and series not in protocol.hanging.series:
        raise StudyError(
            f"{where}, column series: {series!r} is not in the protocol's hanging order "
            f"(hanging.series: {', '.join(protocol.hanging.series)})"
        )
    truth: dict[str, int | None] = {}
    for name in columns:
        if not name.startswith(TRUTH_PREFIX):
            continue
        value = values[name]
        if value not in ("", "0", "1"):
            raise StudyError(f"{where}, column {name}: expected 0, 1 or empty, got {value!r}")
        truth[name[len(TRUTH_PREFIX) :]] = int(value) if value else None
    return CaseRow(
        case_id=values["case_id"],
        subject_id=values["subject_id"],
        arm=arm,
        series_dir=series_dir,
        sequence=values.get("sequence", ""),
        truth=truth,
        line=line,
        series=series,
    )


def _check_cases(path: Path, rows: list[CaseRow], protocol: Protocol) -> None:
    first: dict[tuple[str, str, str], CaseRow] = {}
    by_case: dict[str, list[CaseRow]] = {}
    by_folder: dict[Path, CaseRow] = {}
    for row in rows:
        key = row.key
        if key in first:
            which = "" if row.series == DEFAULT_SERIES_LABEL else f", series {row.series!r}"
            raise StudyError(
                f"{path}, line {row.line}, column case_id: duplicate case {row.case_id!r} "
                f"for arm {row.arm!r}{which} (already on line {first[key].line})"
            )
        first[key] = row
        folder = row.series_dir.resolve()
        other = by_folder.setdefault(folder, row)
        if other is not row:
            raise StudyError(
                f"{path}, line {row.line}, column series_dir: {row.series_dir} is already the "
                f"series of case {other.case_id!r}, arm {other.arm!r} on line {other.line} "
                "(each case and arm needs its own series folder)"
            )
        case_rows = by_case.setdefault(row.case_id, [])
        if case_rows:
            head = case_rows[0]
            for column, mine, theirs in (
                ("subject_id", row.subject_id, head.subject_id),
                ("sequence", row.sequence, head.sequence),
            ):
                if mine != theirs:
                    raise StudyError(
                        f"{path}, line {row.line}, column {column}: case {row.case_id!r} has "
                        f"{column} {mine!r} here but {theirs!r} on line {head.line} "
                        "(all arms of a case must agree)"
                    )
            for finding, value in row.truth.items():
                if value != head.truth.get(finding):
                    raise StudyError(
                        f"{path}, line {row.line}, column {TRUTH_PREFIX}{finding}: case "
                        f"{row.case_id!r} has truth {value} here but "
                        f"{head.truth.get(finding)} on line {head.line} "
                        "(all arms of a case must agree)"
                    )
        case_rows.append(row)
    for case_id, case_rows in by_case.items():
        present = {r.arm for r in case_rows}
        for arm in protocol.arm_codes:
            if arm not in present:
                raise StudyError(
                    f"{path}, line {case_rows[0].line}, column arm: case {case_id!r} has no row "
                    f"for arm {arm!r} (every case needs all arms: "
                    f"{', '.join(protocol.arm_codes)})"
                )
        _check_same_series(path, case_id, case_rows)
    for training in protocol.training_cases:
        if training not in by_case:
            raise StudyError(
                f"{path}, column case_id: training case {training!r} of the protocol "
                "is not in the cases file"
            )


def _check_same_series(path: Path, case_id: str, case_rows: list[CaseRow]) -> None:
    """Every arm of a case shows the same series (the blinding compares them one to one)."""
    by_arm: dict[str, list[CaseRow]] = {}
    for row in case_rows:
        by_arm.setdefault(row.arm, []).append(row)
    arms = list(by_arm)
    expected = {r.series for r in by_arm[arms[0]]}
    for arm in arms[1:]:
        got = {r.series for r in by_arm[arm]}
        if got != expected:
            missing, extra = sorted(expected - got), sorted(got - expected)
            parts = [f"lacks {', '.join(missing)}"] if missing else []
            parts += [f"has {', '.join(extra)} that arm {arms[0]!r} lacks"] if extra else []
            raise StudyError(
                f"{path}, line {by_arm[arm][0].line}, column series: case {case_id!r} on arm "
                f"{arm!r} {' and '.join(parts)} (every arm of a case needs the same series)"
            )


def cases_by_id(rows: list[CaseRow]) -> dict[str, dict[str, CaseRow]]:
    """Group rows as ``{case_id: {arm: row}}`` (case ids in first-seen order; of a case's
    several series the last row stands for the arm)."""
    grouped: dict[str, dict[str, CaseRow]] = {}
    for row in rows:
        grouped.setdefault(row.case_id, {})[row.arm] = row
    return grouped


__all__ = [
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "TRUTH_PREFIX",
    "CaseRow",
    "cases_by_id",
    "load_cases",
]
