"""The study key: a per-study secret the coordinator keeps outside the study database.

``study create`` makes 32 random bytes and writes them to a key file in the coordinator's key
folder (:func:`key_dir`: ``$BLINDREADER_KEY_DIR``, else ``$XDG_CONFIG_HOME/blindreader/keys``,
else ``~/.config/blindreader/keys``), named ``<study id>.key``, readable by its owner only. The
store keys the study record with it (HMAC-SHA256, :mod:`studies.record`); without it nobody can
write a record entry that ``study verify`` accepts as the coordinator's.

Back the key file up once, right after ``study create`` (a copy on an encrypted USB stick or in a
password manager), and never put it in the study folder, a package or a shared drive: whoever
holds it can rewrite the study without ``verify`` noticing. A lost key does not lose the study:
everything still opens and exports, but ``verify`` can then only check the record's internal
consistency, which an editor who recomputes the hashes also passes.

Beside the key, ``<study id>.anchors`` collects the anchors of the coordinator's actions (create,
pack, merge, export, report, seal, verify): one JSON line each with the record's head (entry
number and hash) at that moment and its HMAC. ``verify`` checks the record against every anchor
it can see, so a record cut short or rewritten after an anchor is reported even when the whole
database was replaced. Back it up with the key from time to time; it only adds evidence.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studies.errors import StudyError
from studies.json_file import read_json_object

KEY_FORMAT = "blindreader-study-key/1"
KEY_BYTES = 32
KEY_DIR_VARIABLE = "BLINDREADER_KEY_DIR"


@dataclass(frozen=True)
class StudyKey:
    """A study's secret; ``path`` is where it was read from (None while a study is created)."""

    secret: bytes
    study_id: str | None = None
    path: Path | None = None

    def mac(self, text: str) -> str:
        """HMAC-SHA256 of ``text`` (UTF-8) as hex."""
        return hmac.new(self.secret, text.encode("utf-8"), hashlib.sha256).hexdigest()

    def check(self, text: str, mac: str | None) -> bool:
        """Whether ``mac`` is this key's HMAC of ``text`` (constant-time comparison)."""
        return mac is not None and hmac.compare_digest(self.mac(text), mac)

    def __repr__(self) -> str:  # never print the secret
        return f"StudyKey(study_id={self.study_id!r}, path={self.path!r})"


def new_key() -> StudyKey:
    """A fresh random key (not yet tied to a study or a file)."""
    return StudyKey(secrets.token_bytes(KEY_BYTES))


def key_dir() -> Path:
    """The coordinator's key folder (see the module docstring)."""
    explicit = os.environ.get(KEY_DIR_VARIABLE)
    if explicit:
        return Path(explicit)
    config = os.environ.get("XDG_CONFIG_HOME")
    base = Path(config) if config else Path.home() / ".config"
    return base / "blindreader" / "keys"


def key_path(study_id: str, folder: Path | None = None) -> Path:
    """Where the key file of ``study_id`` lives in ``folder`` (default :func:`key_dir`)."""
    return (folder if folder is not None else key_dir()) / f"{study_id}.key"


def anchor_log_path(key: StudyKey) -> Path | None:
    """The anchor log beside a key file (None for a key that has no file)."""
    if key.path is None or key.study_id is None:
        return None
    return key.path.with_name(f"{key.study_id}.anchors")


def save_key(key: StudyKey, study_id: str, path: Path, *, details: Mapping[str, Any]) -> StudyKey:
    """Write a new key file (owner-only permissions); never overwrites one.

    Parameters
    ----------
    key
        The key to save.
    study_id
        The study it belongs to.
    path
        The key file (its folder is created with owner-only permissions).
    details
        Stored beside the secret so a coordinator can tell key files apart (title, created_at)
        and so the file itself anchors the record at creation (``anchor``).

    Returns
    -------
    StudyKey
        The key, tied to the study and the file.

    Raises
    ------
    StudyError
        The file exists already or cannot be written.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise StudyError(f"{path}: a study key file already exists; it is never replaced") from None
    except OSError as exc:
        raise StudyError(f"{path}: cannot write the study key ({exc.strerror})") from None
    body = {"format": KEY_FORMAT, "study_id": study_id, **details, "key": key.secret.hex()}
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(body, indent=2) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        with contextlib.suppress(OSError):
            path.unlink()
        raise StudyError(f"{path}: cannot write the study key ({exc.strerror})") from None
    return StudyKey(key.secret, study_id, path)


def read_key_file(path: Path) -> tuple[StudyKey, dict[str, Any]]:
    """Read a key file; return the key and the file's other fields (``anchor``, ``title``...).

    Raises
    ------
    StudyError
        Missing, unreadable or malformed (naming the file and the field).
    """
    data = read_json_object(path, "a study key file", missing=f"{path}: study key file not found")
    if data.get("format") != KEY_FORMAT:
        raise StudyError(f"{path}: not a study key file (format must be {KEY_FORMAT!r})")
    study_id, secret = data.get("study_id"), data.get("key")
    if not isinstance(study_id, str) or not study_id:
        raise StudyError(f"{path}: study key file without 'study_id'")
    try:
        raw = bytes.fromhex(secret) if isinstance(secret, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != KEY_BYTES:
        raise StudyError(f"{path}: 'key' must be {KEY_BYTES} bytes as hex")
    details = {k: v for k, v in data.items() if k not in ("key", "format")}
    return StudyKey(raw, study_id, path), details


def load_key(study_id: str, key_file: Path | None = None) -> StudyKey | None:
    """The key of ``study_id``: from ``key_file`` if given, else from the key folder if there.

    Raises
    ------
    StudyError
        ``key_file`` is given but unreadable or belongs to another study.
    """
    if key_file is None:
        candidate = key_path(study_id)
        if not candidate.is_file():
            return None
        key_file = candidate
    key, _ = read_key_file(key_file)
    if key.study_id != study_id:
        raise StudyError(
            f"{key_file}: the key of study {key.study_id}, not of this study ({study_id})"
        )
    return key


def append_anchor(key: StudyKey, anchor: Mapping[str, Any]) -> None:
    """Add one anchor line to the anchor log beside the key file (best effort, fsynced)."""
    path = anchor_log_path(key)
    if path is None:
        return
    line = json.dumps(dict(anchor), sort_keys=True, separators=(",", ":")) + "\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StudyError(f"{path}: cannot add to the anchor log ({exc.strerror})") from None


def read_anchor_log(key: StudyKey) -> list[dict[str, Any]]:
    """Every anchor in the log beside the key ([] when there is none); bad lines are skipped."""
    path = anchor_log_path(key)
    if path is None or not path.is_file():
        return []
    anchors = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            value = json.loads(line)
            if isinstance(value, dict):
                anchors.append(value)
    return anchors
