"""Temporary siblings of an output (``.<name>.tmp-<pid>-<token>``) and their clean-up.

Commands that build an output under a temporary name and rename it into place (``study pack``,
``study create``) leave such a sibling behind when they are killed. The next run on the same
target removes the ones whose process is gone (:func:`remove_stale`); a sibling of a process
that still runs on this machine is left alone, so two runs never delete each other's work.
Siblings without a process id come from releases before this naming and are removed too.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path


def temp_sibling(target: Path) -> Path:
    """A fresh temporary name beside ``target`` that records this process's id."""
    return target.parent / f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"


def _process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def remove_stale(target: Path) -> list[Path]:
    """Remove the temporary siblings of ``target`` left by runs that are no longer alive.

    Returns
    -------
    list of Path
        What was removed.
    """
    if not target.parent.is_dir():
        return []
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.tmp-(?:(\d+)-)?[0-9a-f]+$")
    removed: list[Path] = []
    for path in target.parent.iterdir():
        match = pattern.match(path.name)
        if match is None:
            continue
        pid = match.group(1)
        if pid is not None and (int(pid) == os.getpid() or _process_alive(int(pid))):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed
