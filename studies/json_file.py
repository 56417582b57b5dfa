"""Reading a small JSON file (key file, manifest, anchor) with one clear error per problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from studies.errors import StudyError


def read_json_object(path: Path, what: str, *, missing: str | None = None) -> dict[str, Any]:
    """The JSON object in ``path``.

    Parameters
    ----------
    path
        The file.
    what
        What the file should be, for messages ("a study key file").
    missing
        The message when the file does not exist (default ``"<path>: <what> not found"``).

    Raises
    ------
    StudyError
        The file is missing, unreadable, not JSON, or not a JSON object.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudyError(missing or f"{path}: {what} not found") from None
    except (OSError, ValueError) as exc:
        raise StudyError(f"{path}: not {what} (cannot read it as JSON: {exc})") from None
    if not isinstance(data, dict):
        raise StudyError(f"{path}: not {what} (a JSON object expected)")
    return data
