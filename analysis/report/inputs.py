"""The report's inputs: from a study database (through ``studies``' API) or from CSV exports."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from analysis.errors import AnalysisError

if TYPE_CHECKING:
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
