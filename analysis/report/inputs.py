"""The report's inputs: from a study database (through ``studies``' API) or from CSV exports."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from analysis.errors import AnalysisError

if TYPE_CHECKING:
    from studies.clock import Clock
    from studies.protocol import Protocol


def inputs_from_db(db: Path | str) -> tuple[pd.DataFrame, Protocol, pd.DataFrame | None]:
    """Unblinded answers, protocol and truth of a study database (through the studies API)."""
    from studies.export import answers_frame, truth_frame
    from studies.store import Store

    with Store.open(db) as store:
        return answers_frame(store, unblinded=True), store.protocol, truth_frame(store)


def assignments_from_db(db: Path | str) -> pd.DataFrame:
    """Every assigned read of a study database (``studies.export.assignments_frame``)."""
    from studies.export import assignments_frame
    from studies.store import Store

    with Store.open(db) as store:
        return assignments_frame(store)


def measurements_from_db(db: Path | str) -> pd.DataFrame | None:
    """The tidy measurement table of a study (``studies.export.measurements_frame``), unblinded.

    None when the protocol declares no ``[[measurements]]``.
    """
    from studies.export import measurements_frame
    from studies.store import Store

    with Store.open(db) as store:
        if not store.protocol.measurements:
            return None
        return measurements_frame(store, unblinded=True)


def measurements_from_csv(path: Path) -> pd.DataFrame:
    """A tidy measurement CSV (``study export --what measurements``), values as numbers.

    Raises
    ------
    AnalysisError
        A missing file or column, or a value that is not a number (naming the file and row).
    """
    from analysis.measurement_agreement import MEASUREMENT_COLUMNS

    frame = _read_csv(path, MEASUREMENT_COLUMNS[:-1])
    values = pd.to_numeric(frame["value"], errors="coerce")
    bad = values.isna() & frame["value"].notna()
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0]) + 2  # the header is line 1
        raise AnalysisError(
            f"{path}, line {row}: column 'value': expected a number, got "
            f"{frame['value'][bad].iloc[0]!r}"
        )
    if "unit" not in frame:
        frame["unit"] = ""
    return frame.assign(value=values, unit=frame["unit"].fillna(""))


def study_record_from_db(db: Path | str, *, clock: Clock) -> dict[str, Any]:
    """What the report says about the study record, and the report's anchor in it.

    Verifies the study (record, events, answer history, image files), reads the sign-in policy
    and the distinguishability measured at create, then anchors the report in the study record
    (``Store.anchor``): ``results.json`` keeps the anchor under ``study_record``, so that
    ``blindreader study verify --anchor results.json`` later shows whether the study still is
    what the report analysed.

    Returns
    -------
    dict
        ``anchor`` (the anchor), ``verified`` (bool), ``keyed`` (checked with the study key),
        ``problems`` (count), ``first_problem``, ``sign_in`` (a sentence) and
        ``distinguishability`` (one dict per compared arm: ``reference_arm``, ``other_arm``,
        ``verdict``, ``accuracy``, ``ci_low``, ``ci_high``, ``chance``, ``p_value``,
        ``summary``).
    """
    from studies.distinguishability import stored_distinguishability
    from studies.store import Store

    with Store.open(db, clock=clock) as store:
        report = store.verify()
        sign_in = store.sign_in_policy().summary()
        measured = stored_distinguishability(store)
        anchor = store.anchor("report", {"verified": report.ok, "problems": len(report.problems)})
    return {
        "anchor": anchor,
        "verified": report.ok,
        "keyed": report.keyed,
        "problems": len(report.problems),
        "first_problem": report.problems[0] if report.problems else None,
        "sign_in": sign_in,
        "distinguishability": [
            {
                "reference_arm": d.reference_arm,
                "other_arm": d.other_arm,
                "verdict": d.verdict,
                "accuracy": d.accuracy,
                "ci_low": d.ci_low,
                "ci_high": d.ci_high,
                "chance": d.chance,
                "p_value": d.p_value,
                "summary": d.summary(),
            }
            for d in measured
        ],
    }


def inputs_from_csv(
    answers_csv: Path, protocol_toml: Path, truth_csv: Path | None = None
) -> tuple[pd.DataFrame, Protocol, pd.DataFrame | None]:
    """Answers from a tidy unblinded export CSV, the protocol TOML and an optional truth CSV.

    Raises
    ------
    AnalysisError
        A missing or unreadable file, or a missing column (naming the file and the column).
    """
    from studies.protocol import load_protocol

    protocol = load_protocol(protocol_toml)
    answers = _read_csv(answers_csv, ("reader", "case", "arm", "question", "finding", "value"))
    truth = None
    if truth_csv is not None:
        truth = _read_csv(truth_csv, ("case", "finding", "truth"))
        values = pd.to_numeric(truth["truth"], errors="coerce")
        bad = values.notna() & ~values.isin([0, 1]) | (values.isna() & truth["truth"].notna())
        if bad.any():
            raise AnalysisError(
                f"{truth_csv}: column 'truth': expected 0, 1 or empty, got "
                f"{truth['truth'][bad].iloc[0]!r}"
            )
        truth = truth.assign(truth=values).dropna(subset=["truth"])
        truth["truth"] = truth["truth"].astype(int)
    return answers, protocol, truth


def _read_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"{path}: no such CSV file")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise AnalysisError(f"{path}: not a readable CSV file ({exc})") from exc
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise AnalysisError(
            f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(required)}"
        )
    # empty cells are "no finding" / "no side" in the export, not the text ""
    return frame.replace("", None)
