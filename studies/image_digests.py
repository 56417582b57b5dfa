"""Checksums of the blinded image files, kept in the study so that ``verify`` sees a swapped image.

The study record (``studies.record``) proves the rows; the images live beside the database as
files. ``study create`` stores the sha256 of every file of a blinded series in
``series.files_sha256`` (a canonical JSON object ``{file name: sha256}``); the record covers that
column like any other, so whoever replaces, edits, adds or removes an image file must also edit
the row, which the record reports. :func:`check_series_files` compares a series folder with it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from studies.errors import StudyError

_CHUNK = 1 << 20


def file_digests(names: Sequence[str], digests: Sequence[str]) -> str:
    """The ``series.files_sha256`` value for files ``names`` with their sha256 ``digests``."""
    if len(names) != len(digests):
        raise StudyError("every blinded file needs its checksum")
    return json.dumps(dict(zip(names, digests, strict=True)), sort_keys=True, separators=(",", ":"))


def sha256_of(path: Path) -> str:
    """The sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def parse_digests(value: str, where: str) -> dict[str, str]:
    """``series.files_sha256`` as a mapping (StudyError naming ``where`` if it is not one)."""
    try:
        parsed = json.loads(value)
    except ValueError:
        raise StudyError(f"{where}: files_sha256 is not a JSON object") from None
    if not isinstance(parsed, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in parsed.items()
    ):
        raise StudyError(f"{where}: files_sha256 is not a mapping of file names to checksums")
    return parsed


def check_series_files(folder: Path, expected: Mapping[str, str], where: str) -> list[str]:
    """What differs between a series folder and its recorded checksums ([] when identical).

    Parameters
    ----------
    folder
        The series' image folder.
    expected
        ``{file name: sha256}`` as stored at create.
    where
        How messages name the series (e.g. ``series s-3f9a (case C01, arm conv)``).
    """
    if not folder.is_dir():
        return [f"{where}: image folder {folder} is missing"]
    present = {p.name for p in folder.iterdir() if p.is_file()}
    problems = [
        f"{where}: image file {name} is missing" for name in sorted(set(expected) - present)
    ]
    problems += [
        f"{where}: image file {name} was added (not written by study create)"
        for name in sorted(present - set(expected))
    ]
    for name in sorted(set(expected) & present):
        if sha256_of(folder / name) != expected[name]:
            problems.append(f"{where}: image file {name} was changed (its checksum differs)")
    return problems
