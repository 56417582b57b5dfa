"""``blindreader info``: versions, the compute device and the git commit of a checkout."""

from __future__ import annotations

import platform
import sqlite3
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import typer

import blindreader


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def git_commit() -> str | None:
    """The short git commit of the source checkout blindreader runs from, if it is one."""
    root = Path(blindreader.__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    dirty = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        timeout=5,
    ).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")


def compute_device() -> str:
    """The device ``--device auto`` would use, with the GPU's name."""
    import torch

    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps (Apple GPU)"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def collect() -> dict[str, str]:
    """Everything ``blindreader info`` prints, as ordered name -> value pairs."""
    from reader_app.qt_info import qt_version

    commit = git_commit()
    return {
        "python": platform.python_version(),
        "blindreader": blindreader.__version__ + (f" (git {commit})" if commit else ""),
        "torch": _version("torch"),
        "compute device": compute_device(),
        "PySide6 / Qt": f"{_version('PySide6-Essentials')} / {qt_version()}",
        "pydicom": _version("pydicom"),
        "SQLAlchemy": _version("SQLAlchemy"),
        "SQLite": sqlite3.sqlite_version,
        "statsmodels": _version("statsmodels"),
        "platform": platform.platform(),
    }


def info() -> None:
    """Print versions of Python, blindreader, torch (and its device), Qt and the data stack."""
    rows = collect()
    width = max(len(k) for k in rows)
    for key, value in rows.items():
        typer.echo(f"{key:<{width}}  {value}")
