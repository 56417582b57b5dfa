"""``manifest.json``: the list of every series a reconstruction run produced, with provenance.

Appending reads the existing list, writes the longer list to a temporary file in the same folder
and renames it over the old one, so the manifest is always either the old or the new complete
list. A manifest that is not a JSON list is never overwritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from recon_backend.errors import ReconError

MANIFEST_NAME = "manifest.json"
#: The keys of every manifest entry, in order. ``acquisition`` is what the reader did with the
#: raw file for this series (format, series counters, calibration lines, prewhitening,
#: averages, orientation, crop/resampling, intensity scale of the stored pixels).
ENTRY_KEYS = (
    "input",
    "input_sha256",
    "method",
    "series_dir",
    "series_instance_uid",
    "series_number",
    "n_slices",
    "acquisition",
    "provenance",
    "metrics",
)


def file_sha256(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(path: Path) -> list[dict[str, Any]]:
    """The entries of ``path`` (``[]`` when it does not exist).

    Raises
    ------
    ReconError
        If the file is not valid JSON or not a list of objects.
    """
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReconError(
            f"{path}: not valid JSON ({exc}); expected a list of series entries; left unchanged"
        ) from None
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ReconError(f"{path}: expected a JSON list of series entries; left unchanged")
    return data


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (POSIX ``flock``) so concurrent appends serialise."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: renames are still atomic
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def append_entry(path: Path, entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Append ``entry`` to the manifest at ``path`` atomically; returns the new list.

    Raises
    ------
    ReconError
        If ``entry`` lacks a key of :data:`ENTRY_KEYS` or has others, or the existing manifest
        is corrupt (it is left as it is).
    """
    if tuple(entry) != ENTRY_KEYS:
        raise ReconError(f"{path}: manifest entry keys {list(entry)}, expected {list(ENTRY_KEYS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.parent):
        entries = read_manifest(path)
        entries.append(dict(entry))
        text = json.dumps(entries, indent=2, allow_nan=False) + "\n"
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
    return entries
